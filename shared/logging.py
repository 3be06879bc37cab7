"""structlog JSON logging, one event per line, with a secret-redacting processor; stdlib
logging goes through the same processors (structlog's ``ProcessorFormatter``)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

REDACTED = "**********"
#: Keys whose values are never logged (case-insensitive substring match).
SECRET_KEY_RE = re.compile(
    r"pass|secret|token|authorization|cookie|credential|private|envelope", re.IGNORECASE
)
#: Inline secrets inside free text: ``Basic xxx`` / ``Bearer xxx`` / ``password=xxx``.
_INLINE_RE = re.compile(
    r"(?i)(basic|bearer)\s+[A-Za-z0-9._~+/=-]+|((?:pass(?:word)?|drpass|secret)\s*[=:]\s*)\S+"
    r"|(amqps?|postgres(?:ql)?(?:\+\w+)?)://([^:/@\s]+):[^@\s]+@"
)


def _scrub_text(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)} {REDACTED}"
        if m.group(2):
            return f"{m.group(2)}{REDACTED}"
        return f"{m.group(3)}://{m.group(4)}:{REDACTED}@"

    return _INLINE_RE.sub(repl, text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED if isinstance(k, str) and SECRET_KEY_RE.search(k) else _scrub(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys, SecretStr values and inline secrets."""
    for key in list(event_dict):
        if SECRET_KEY_RE.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


#: Marks the handler :func:`configure` installed (a second call replaces it, not others').
_OURS = "_stager_handler"


def configure(
    level: str = "info",
    *,
    json: bool = True,
    stream: TextIO | None = None,
    handler: logging.Handler | None = None,
) -> None:
    """Configure structlog and stdlib logging once per process: one line per event.

    structlog events and stdlib records (python-irodsclient, aiohttp, handler code using
    :mod:`logging`) go through the same processors (context variables such as a bound job
    id, level, ISO timestamp, exceptions, secret redaction) and the same renderer, by way of
    structlog's ``ProcessorFormatter`` on one stdlib handler: ``handler`` if given (e.g. a
    rotating file), else a stream handler on ``stream`` (default stderr).
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    common: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    structlog.configure(
        processors=[*common, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    out = handler or logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
        )
    )
    setattr(out, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        if old is not out:
            old.close()
    root.addHandler(out)
    root.setLevel(lvl)


def get_logger(name: str | None = None, **ctx: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name, **ctx)
