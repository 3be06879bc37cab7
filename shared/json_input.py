"""Untrusted JSON (and already-parsed YAML) read with bounds: one guarded reader for every
request body, so that no shape of input reaches a handler as a crash.

:func:`parse_json` decodes UTF-8 JSON and then :func:`check_shape` walks the result
without recursion: nesting deeper than ``max_depth``, an array or object with more than
``max_items`` entries, a string longer than ``max_string`` characters or more than
``max_nodes`` values in all is refused with an :class:`~shared.errors.InvalidInput` that
says which limit and where.  Nesting deep enough to exhaust the decoder's own recursion
limit, integers beyond Python's digit limit and ``NaN``/``Infinity`` are refused the same
way, never as a 500.  Messages name positions and limits, never the input's values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidInput


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on the shape of a request body."""

    max_depth: int = 32
    max_items: int = 10_000
    max_string: int = 1024 * 1024
    max_nodes: int = 200_000


DEFAULT_LIMITS = JsonLimits()


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number: send a finite number or a string")


def parse_json(
    raw: bytes, *, what: str = "request body", limits: JsonLimits = DEFAULT_LIMITS
) -> Any:
    """``raw`` as JSON within ``limits``, or InvalidInput saying what is wrong."""
    if not raw.strip():
        raise InvalidInput(f"{what} is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} is not UTF-8 text: send JSON") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InvalidInput(
            f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise InvalidInput(
            f"{what} is nested too deeply: at most {limits.max_depth} levels of arrays and objects"
        ) from None
    except ValueError:  # an integer with more digits than int() converts
        raise InvalidInput(
            f"{what} has a number too long to read: send at most 4300 digits"
        ) from None
    check_shape(data, what=what, limits=limits)
    return data


def check_shape(
    data: Any, *, what: str = "request body", limits: JsonLimits = DEFAULT_LIMITS
) -> None:
    """Raise InvalidInput when parsed ``data`` exceeds ``limits`` (iterative walk)."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "$")]
    nodes = 0
    while stack:
        value, depth, where = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise InvalidInput(f"{what} has more than {limits.max_nodes} values: send less")
        if isinstance(value, str):
            if len(value) > limits.max_string:
                raise InvalidInput(
                    f"{what}: the string at {where} is longer than {limits.max_string} characters"
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > limits.max_depth:
            raise InvalidInput(
                f"{what} is nested too deeply at {where}: at most {limits.max_depth} levels "
                "of arrays and objects"
            )
        if len(value) > limits.max_items:
            kind = "object" if isinstance(value, dict) else "array"
            raise InvalidInput(
                f"{what}: the {kind} at {where} has {len(value)} entries, at most "
                f"{limits.max_items} are allowed"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and len(key) > limits.max_string:
                    raise InvalidInput(f"{what}: a key at {where} is too long")
                stack.append((item, depth + 1, f"{where}.{_key(key)}"))
        else:
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value))


def _key(key: object) -> str:
    """A key for a position in a message: short identifiers as they are, others elided."""
    text = str(key)
    return text if text.isidentifier() and len(text) <= 40 else "<key>"
