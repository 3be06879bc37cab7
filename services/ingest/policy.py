"""Who may ingest what: allowed root prefixes, handler files by name, safe YAML bodies.

The API (``PUT /v1/ingest/{name}``), ``stager ingest start`` and the workers apply the same
checks: a job's root must lie, after resolving symbolic links, under one of
``STAGER_INGEST__ALLOWED_ROOTS``; handler code comes from a file the operator put in
``STAGER_INGEST__HANDLER_DIR`` (named by the job), and source sent over REST is refused
unless ``STAGER_INGEST__REST_HANDLER_CODE`` is true.  The worker checks the root again
(the broker and the job store are not trust boundaries) as the job's owner.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import yaml

from services.ingest.errors import HandlerError
from shared.errors import InvalidInput

#: A handler file's name in the handler directory (``NAME`` or ``NAME.py``).
HANDLER_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ROOTS_SETTING = "STAGER_INGEST__ALLOWED_ROOTS"
HANDLER_DIR_SETTING = "STAGER_INGEST__HANDLER_DIR"


class RootRefused(InvalidInput):
    """An ingest root outside the allowed prefixes (or not absolute)."""

    title = "ingest root refused"


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def resolve_root(root: str, allowed: Sequence[str]) -> str:
    """``root`` with symlinks resolved, if it lies under an allowed prefix; else refuse.

    Raises :class:`RootRefused` with a message saying what to fix.
    """
    if not root.startswith("/"):
        raise RootRefused("root must be an absolute path on the workers' filesystem")
    if "\x00" in root:
        raise RootRefused("root contains a NUL byte: remove it")
    if not allowed:
        raise RootRefused(
            f"no ingest roots are allowed here: the operator lists the directories ingest "
            f"may read in {ROOTS_SETTING}"
        )
    real = os.path.realpath(root)
    for prefix in allowed:
        if _under(real, os.path.realpath(prefix)):
            return real
    shown = root if real == root else f"{root} (resolved: {real})"
    raise RootRefused(
        f"root {shown} is not under an allowed ingest root ({', '.join(allowed)}): "
        f"choose a directory under one of them, or ask the operator to add it to {ROOTS_SETTING}"
    )


def check_scan(path: str, root: str, allowed: Sequence[str]) -> None:
    """Before a worker lists ``path`` of a job rooted at ``root``: the root must still
    resolve under an allowed prefix, and ``path`` (symlinks resolved) inside the root.

    The broker and the job store are not trust boundaries: a job row or task naming
    another directory, or a directory swapped for a symbolic link, is refused here.
    """
    real_root = resolve_root(root, allowed)
    real = os.path.realpath(path)
    if not _under(real, real_root):
        shown = path if real == path else f"{path} (resolved: {real})"
        raise RootRefused(f"directory {shown} is outside the job's root {real_root}")


def check_allowed_prefixes(allowed: Sequence[str]) -> None:
    """Settings check: absolute prefixes, and never ``/`` itself (that allows ``/root``)."""
    for prefix in allowed:
        if not prefix.startswith("/"):
            raise InvalidInput(f"{ROOTS_SETTING}: {prefix!r} is not an absolute path")
        if os.path.realpath(prefix) == "/":
            raise InvalidInput(f"{ROOTS_SETTING}: '/' would allow every directory; name one")


def within(path: str, root: str) -> bool:
    """Whether ``path`` (normalised, no symlinks resolved) lies in the tree at ``root``."""
    return _under(os.path.normpath(path), os.path.normpath(root))


def handler_file(name: str, handler_dir: str | None) -> str:
    """The path of handler ``name`` in the handler directory (it must exist there)."""
    if not handler_dir:
        raise HandlerError(
            f"event handler {name!r}: no handler directory is configured "
            f"(the operator sets {HANDLER_DIR_SETTING})"
        )
    if not HANDLER_NAME_RE.match(name) or ".." in name:
        raise HandlerError(
            f"event handler {name!r}: give the name of a file in the handler directory "
            "(letters, digits, '_', '-', '.'; no path)"
        )
    base = os.path.realpath(handler_dir)
    path = os.path.join(base, name if name.endswith(".py") else name + ".py")
    if not _under(os.path.realpath(path), base) or not os.path.isfile(path):
        raise HandlerError(f"event handler {name!r} is not in the handler directory {handler_dir}")
    return path


def rest_code_refused(handler_dir: str | None) -> HandlerError:
    """The error for handler source sent over REST while that is disabled."""
    where = handler_dir or f"the handler directory ({HANDLER_DIR_SETTING})"
    return HandlerError(
        f"handler code over REST is disabled; put the handler in {where} and name it "
        "with event_handler"
    )


#: How deeply an ingest job's YAML may nest (as the API's JSON reader allows).
MAX_YAML_DEPTH = 32


class YamlTooDeep(yaml.YAMLError):
    """The YAML body nests deeper than :data:`MAX_YAML_DEPTH`."""


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases (no billion-laughs expansion) and
    nesting deeper than :data:`MAX_YAML_DEPTH` (refused as soon as it is reached: a body
    thousands of levels deep used to recurse to Python's limit, seconds per request)."""

    _depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # the scanner reads ahead up to 1024 characters per possible key, at a cost that
        # grows with the flow level: an opening ``[`` / ``{`` too deep is refused here
        if self.flow_level >= MAX_YAML_DEPTH:
            raise YamlTooDeep(f"request body is nested too deeply: at most {MAX_YAML_DEPTH} levels")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "YAML anchors and aliases (&, *) are not accepted in ingest jobs",
                event.start_mark,
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise YamlTooDeep(f"request body is nested too deeply: at most {MAX_YAML_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """Parse an ingest job body: YAML's safe subset, without anchors or aliases, at most
    :data:`MAX_YAML_DEPTH` levels deep (deeper raises :class:`YamlTooDeep`)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


#: The anchor's per-job queue options and their defaults (``irods_sync start
#: --restart_queue/--path_queue/--file_queue``; its REST API took the same fields).
QUEUES = {"restart_queue": "restart", "path_queue": "path", "file_queue": "file"}


def check_queues(given: dict[str, str | None], flag: str = "--") -> None:
    """Refuse a queue name other than the anchor's default (``flag``: ``--`` for the CLI's
    options, ``""`` for the REST fields): this ingest's workers consume one pair of queues,
    so a job that named its own would never reach the workers the user meant."""
    for name, default in QUEUES.items():
        value = given.get(name)
        if value is not None and value != default:
            raise InvalidInput(
                f"{flag}{name} {value}: a job cannot have its own queues (ingest workers "
                f"consume <prefix>.ingest.dirs/.files, shared by every job of their job "
                f"store); omit {flag}{name}. To run jobs on workers of their own, start those "
                f"workers with their own STAGER_INGEST__DB_URL and STAGER_BROKER__PREFIX and "
                f"submit the jobs to that job store",
                errors=[{"field": name, "message": "only the default, " + default}],
            )
