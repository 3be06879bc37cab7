"""schemathesis hooks (``SCHEMATHESIS_HOOKS=fuzz.hooks``, set by :mod:`fuzz.api`).

Generated from the schema alone, almost every job body is refused at the first rule the
schema cannot say (``stagerUser`` must be a real user the caller may act for; one side
local and absolute, the other ``irods:``; an ingest root under the allowed roots), so the
code behind those rules would go untested. Beside each generated body these hooks offer a
*plausible* one: the same generated fields with the few the schema cannot express filled
in from the running stack (``FUZZ_STAGER_USER``, ``FUZZ_INGEST_ROOT``, ``FUZZ_IRODS_HOME``),
and likewise for ``/v1/dir`` and the project numbers of ``/v1/dac``. Hypothesis then picks
either, so both the refusals and the accepted paths (jobs stored, dispatched, listed,
cancelled, restarted; ingest jobs started and stopped; directories listed by a worker)
are fuzzed. Nothing here checks a response: the checks are schemathesis' own.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

USER = os.environ.get("FUZZ_STAGER_USER", "")
INGEST_ROOT = os.environ.get("FUZZ_INGEST_ROOT", "/tmp/stager-demo")  # noqa: S108
IRODS_HOME = os.environ.get("FUZZ_IRODS_HOME", "/tempZone/home/rods")
#: who schemathesis runs as (``service`` or ``user``, set by :mod:`fuzz.api`)
PRINCIPAL = os.environ.get("FUZZ_PRINCIPAL", "")

#: path segments that break path handling more often than random text does (a fuzzer's
#: dictionary): NUL, dot segments, separators in disguise, control and wide characters
_TRICKY = ["\x00", "a\x00b", "..", ".", "...", "%2e%2e", "\\", "\n", " ", "~", "x" * 300, "\u202e"]
_SEGMENT = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=12),
    st.sampled_from(_TRICKY),
)
_PRINTABLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
#: local paths the worker is asked to read or list as the user (downloads to them find no
#: source object, so nothing is written)
_LOCAL = st.sampled_from(["/tmp", "/", "/etc", "/root", "/nonexistent", "/etc/passwd"])  # noqa: S108


@st.composite
def _job(draw: st.DrawFn, generated: dict[str, Any]) -> dict[str, Any]:
    local = draw(_LOCAL) + "/" + draw(_SEGMENT)
    remote = "irods:" + IRODS_HOME + "/fuzz/" + draw(_SEGMENT)
    upload = draw(st.booleans())
    # free text the schema leaves open but the API checks (no control characters, an
    # email address): the generated value, or one that passes
    title = draw(st.one_of(st.just(generated.get("title", "")), st.text(_PRINTABLE, max_size=80)))
    email = draw(st.one_of(st.none(), st.emails(), st.just(generated.get("stagerUserEmail"))))
    return {
        **generated,
        "title": title,
        "stagerUserEmail": email,
        "stagerUser": USER,
        "drUser": draw(st.sampled_from(["rods", "alice@ru.nl"])),
        "srcURL": local if upload else remote,
        "dstURL": remote if upload else local,
    }


@st.composite
def _ingest(draw: st.DrawFn, generated: dict[str, Any]) -> dict[str, Any]:
    root = INGEST_ROOT + "/" + draw(_SEGMENT)
    target = IRODS_HOME + "/ingest/" + draw(_SEGMENT)
    # The generated owner and event handler (random text) are refused, and so, mostly, is
    # a body with all of the generated options (S3 fields without an S3 root, ...). A
    # service account must name the owner (the stack's user, whom it may act for); a user
    # may name itself or leave it out. "minimal" keeps only what a job needs, so that the
    # accepted path (stored, run by the ingest worker, listed, stopped) is reached too.
    variants = ["generated", "owned", "minimal"]
    if PRINCIPAL != "service":
        variants.append("unowned")
    variant = draw(st.sampled_from(variants))
    body = {**generated, "root": root, "target": target}
    if variant != "generated":
        for key in ("owner", "event_handler", "event_handler_data"):
            body.pop(key, None)
    if variant == "minimal":
        body = {"root": root, "target": target}
        if "interval" in generated and draw(st.booleans()):
            body["interval"] = generated["interval"]
    if variant in ("owned", "minimal") and (PRINCIPAL == "service" or draw(st.booleans())):
        body["owner"] = USER
    return body


def _route(context: schemathesis.HookContext) -> tuple[str, str]:
    op = context.operation
    return ("", "") if op is None else (op.method.upper(), op.path)


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """A generated body, or the plausible variant of it."""
    route = _route(context)
    if not USER or not isinstance(body, dict):
        return st.just(body)
    if route == ("POST", "/v1/job"):
        return st.one_of(st.just(body), _job(body))
    if route == ("POST", "/v1/jobs") and isinstance(body.get("jobs"), list) and body["jobs"]:
        jobs = body["jobs"]
        fixed = st.tuples(*(_job(j) if isinstance(j, dict) else st.just(j) for j in jobs))
        return st.one_of(st.just(body), fixed.map(lambda js: {**body, "jobs": list(js)}))
    if route == ("PUT", "/v1/ingest/{name}"):
        return st.one_of(st.just(body), _ingest(body))
    return st.just(body)


@schemathesis.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    """``/v1/dir``: a real directory (or a file, or one the user may not read) as the user."""
    if _route(context) != ("GET", "/v1/dir") or not USER or not isinstance(query, dict):
        return st.just(query)
    paths = st.one_of(_LOCAL, st.builds(lambda a, b: f"{a}/{b}", _LOCAL, _SEGMENT))
    plausible = st.builds(lambda path: {**query, "path": path, "user": USER}, paths)
    return st.one_of(st.just(query), plausible)


@schemathesis.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: Any
) -> st.SearchStrategy[Any]:
    """``/v1/dac/project/{number}``: numbers of the configured form as well."""
    if _route(context) != ("GET", "/v1/dac/project/{number}") or not isinstance(
        path_parameters, dict
    ):
        return st.just(path_parameters)
    numbers = st.from_regex(r"\A[0-9]{7}\.[0-9]{2}\Z")
    plausible = numbers.map(lambda n: {**path_parameters, "number": n})
    return st.one_of(st.just(path_parameters), plausible)
