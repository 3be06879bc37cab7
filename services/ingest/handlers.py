"""Event handlers: load a handler file and call its hooks with the seed's signatures.

A handler file defines ``class event_handler(Core)``.  Hooks and how they are called
(exactly as automated ingest 0.7.0 calls them):

- ``operation(session, meta, **options)`` → ``Operation`` (default ``REGISTER_SYNC``)
- ``delete_mode(meta)`` → ``DeleteMode`` (default ``DO_NOT_DELETE``)
- ``to_resource(session, meta, **options)``, ``target_path(session, meta, **options)``
- ``as_user(meta, **options)`` → ``(zone, user)``
- ``max_retries(hdlr, logger, meta)`` (0), ``timeout(hdlr, logger, meta)`` (3600; a job's
  own ``timeout`` option stands in for a handler without the hook),
  ``delay(hdlr, logger, meta, retries)`` (0)
- ``character_map()`` → dict or pairs
- ``pre_job(hdlr, logger, meta)`` / ``post_job(hdlr, logger, meta)``
- ``pre_``/``post_`` + ``data_obj_create|modify``
  ``(hdlr_mod, logger, session, meta, [op], **options)``,
  ``coll_create|modify`` ``(hdlr_mod, logger, session, meta, **options)``,
  ``data_obj_delete|coll_delete`` ``(hdlr_mod, session, meta, **options)``.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Callable
from typing import Any

from services.ingest.charmap import CharacterMapError, CharMap, normalise
from services.ingest.errors import HandlerError
from shared.ingest.utils import DeleteMode, Operation

HANDLER_CLASS = "event_handler"
DEFAULT_TIMEOUT = 3600.0


def _as_enum(value: Any, enum: type[Operation] | type[DeleteMode], hook: str) -> Any:
    if isinstance(value, enum):
        return value
    name = getattr(value, "name", value)
    try:
        return enum[str(name)]
    except KeyError as e:
        raise HandlerError(f"{hook}() returned {value!r}, not a {enum.__name__}") from e


def check_source(source: str, label: str = "handler") -> None:
    """Compile (never run) handler source: a syntax error raises ``HandlerError``."""
    try:
        compile(source, f"<{label}>", "exec")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        where = f" line {line}" if line else ""
        raise HandlerError(f"event handler {label}: syntax error{where}: {e}") from e


class EventHandler:
    """A loaded handler class (or the default one) with typed hook calls."""

    def __init__(
        self,
        cls: type | None = None,
        module: types.ModuleType | None = None,
        default_timeout: float | None = None,
    ) -> None:
        self.cls = cls
        self.module = module
        #: the job's ``timeout`` option: the limit when the handler has no ``timeout`` hook
        self.default_timeout = default_timeout
        self._cmap: CharMap | None = None
        if cls is not None and hasattr(cls, "character_map"):
            try:
                self._cmap = normalise(cls.character_map())
            except CharacterMapError as e:
                raise HandlerError(str(e)) from e

    @classmethod
    def from_source(
        cls, source: str | None, label: str = "handler", timeout: float | None = None
    ) -> EventHandler:
        """Compile handler source text (``None``: the default handler).

        ``timeout``: the job's own per-task limit (REST ``timeout``, ``--timeout``), used
        when the handler defines no ``timeout`` hook."""
        if not source:
            return cls(default_timeout=timeout)
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        name = f"stager_ingest_handler_{digest}"
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__file__ = f"<{label}>"
            try:
                code = compile(source, f"<{label}>", "exec")
                exec(code, module.__dict__)  # noqa: S102 - the operator's own handler file
            except SyntaxError as e:
                raise HandlerError(
                    f"event handler {label}: syntax error line {e.lineno}: {e.msg}"
                ) from e
            except Exception as e:
                raise HandlerError(f"event handler {label} failed to load: {e}") from e
            sys.modules[name] = module
        handler_cls = getattr(module, HANDLER_CLASS, None)
        if not isinstance(handler_cls, type):
            raise HandlerError(f"event handler {label} defines no class {HANDLER_CLASS!r}")
        return cls(handler_cls, module, timeout)

    @classmethod
    def from_file(cls, path: str) -> tuple[EventHandler, str]:
        """Load a handler file; returns the handler and its source (to ship to workers)."""
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as e:
            raise HandlerError(f"cannot read event handler {path}: {e.strerror}") from e
        return cls.from_source(source, path), source

    def has(self, name: str) -> bool:
        return self.cls is not None and hasattr(self.cls, name)

    def _get(self, name: str) -> Callable[..., Any]:
        return getattr(self.cls, name)

    # --- policy hooks ----------------------------------------------------------------

    def operation(self, session: Any, meta: dict[str, Any], **options: Any) -> Operation:
        if not self.has("operation"):
            return Operation.REGISTER_SYNC
        value = self._get("operation")(session, meta, **options)
        return Operation.REGISTER_SYNC if value is None else _as_enum(value, Operation, "operation")

    def delete_mode(self, meta: dict[str, Any]) -> DeleteMode:
        if not self.has("delete_mode"):
            return DeleteMode.DO_NOT_DELETE
        return _as_enum(self._get("delete_mode")(meta), DeleteMode, "delete_mode")

    def to_resource(self, session: Any, meta: dict[str, Any], **options: Any) -> str | None:
        if not self.has("to_resource"):
            return None
        return self._get("to_resource")(session, meta, **options)

    def target_path(self, session: Any, meta: dict[str, Any], **options: Any) -> str | None:
        if not self.has("target_path"):
            return None
        return self._get("target_path")(session, meta, **options)

    def as_user(self, meta: dict[str, Any], **options: Any) -> tuple[str, str] | None:
        if not self.has("as_user"):
            return None
        zone, user = self._get("as_user")(meta, **options)
        return str(zone), str(user)

    def max_retries(self, logger: Any, meta: dict[str, Any]) -> int:
        if not self.has("max_retries"):
            return 0
        return max(0, int(self._get("max_retries")(self.cls, logger, meta)))

    def timeout(self, logger: Any, meta: dict[str, Any]) -> float:
        """The handler's ``timeout`` hook wins (it sees each file's ``meta``); without it
        the job's ``timeout``, else 3600 s (the anchor's default ``soft_time_limit``)."""
        if not self.has("timeout"):
            return DEFAULT_TIMEOUT if self.default_timeout is None else self.default_timeout
        return float(self._get("timeout")(self.cls, logger, meta))

    def delay(self, logger: Any, meta: dict[str, Any], retries: int) -> float:
        if not self.has("delay"):
            return 0.0
        return max(0.0, float(self._get("delay")(self.cls, logger, meta, retries)))

    def character_map(self) -> CharMap | None:
        return self._cmap

    def pre_job(self, logger: Any, meta: dict[str, Any]) -> None:
        if self.has("pre_job"):
            self._get("pre_job")(self.cls, logger, meta)

    def post_job(self, logger: Any, meta: dict[str, Any]) -> None:
        if self.has("post_job"):
            self._get("post_job")(self.cls, logger, meta)

    # --- event wrappers --------------------------------------------------------------

    def call(self, event: str, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        """Run ``func`` through the handler's ``on_<event>`` (pre, func, post)."""
        full = (self.module, *args)
        wrapper = f"on_{event}"
        if self.has(wrapper):
            self._get(wrapper)(func, *full, **options)
        else:
            func(*full, **options)
