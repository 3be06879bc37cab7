"""structlog JSON logging, one event per line, with a secret-redacting processor."""

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


def configure(level: str = "info", *, json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog (and stdlib logging through it) once per process."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=lvl, stream=stream or sys.stderr, format="%(message)s")


def get_logger(name: str | None = None, **ctx: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name, **ctx)
