"""``character_map``: rename path elements the way automated ingest 0.7.0 does.

A handler's ``character_map()`` returns a dict (or key/value pairs), applied in order:
a key is one character, a tuple of characters, a compiled regex, or a predicate on one
character; the value replaces what matches.  When an element changes, a suffix that
encodes what changed (position and original character, in a radix of characters the
map leaves alone) is appended so two names cannot collide; past 28 bytes of changes the
SHA-224 of the original name is encoded instead.  Same algorithm as the seed, so
re-syncing a tree first ingested by the seed finds the same logical names.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

CharMap = list[tuple[Any, str]]

_SEPARATORS = "-~_"
_RADIX = string.digits + string.ascii_letters
_DIGEST_BYTES = hashlib.sha224().digest_size


class CharacterMapError(ValueError):
    """A handler's ``character_map()`` returned something unusable."""


def normalise(raw: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> CharMap:
    """Validate a ``character_map()`` result into ordered (key, replacement) pairs."""
    try:
        pairs = list(raw.items()) if isinstance(raw, Mapping) else [tuple(p) for p in raw]
    except TypeError as e:
        raise CharacterMapError(
            "character_map() must return a dict or an iterable of (key, value) pairs"
        ) from e
    out: CharMap = []
    for pair in pairs:
        if len(pair) != 2:
            raise CharacterMapError("character_map() pairs must have two elements")
        key, value = pair
        if not isinstance(value, str) or len(value) > 1:
            raise CharacterMapError("character_map() values must be single characters")
        single = isinstance(key, str) and len(key) == 1
        chars = isinstance(key, tuple) and all(isinstance(c, str) and len(c) == 1 for c in key)
        if not (single or chars or isinstance(key, re.Pattern) or callable(key)):
            raise CharacterMapError(
                "character_map() keys must be single characters, tuples of single "
                "characters, compiled regexes or predicates"
            )
        out.append((key, value))
    return out


def translate_string(text: str, cmap: CharMap) -> str:
    """Apply every rule of ``cmap`` to ``text``, in order."""
    for key, value in cmap:
        if isinstance(key, tuple):
            text = text.translate({ord(c): value for c in key})
        elif isinstance(key, re.Pattern):
            text = key.sub(value, text)
        elif isinstance(key, str):
            text = text.translate({ord(key): value})
        else:
            predicate: Callable[[str], Any] = key
            text = "".join(value if predicate(c) else c for c in text)
    return text


def _untouched(chars: str, cmap: CharMap) -> str:
    mapped = translate_string(chars, cmap)
    return "".join(a for a, b in zip(chars, mapped, strict=False) if a == b)


def _changes(name: str, new: str) -> bytes:
    encoded = b""
    for index, (old, now) in enumerate(zip(name, new, strict=False)):
        if old == now:
            continue
        encoded += chr(index).encode("utf-8") + old.encode("utf-8", "surrogateescape")
        if len(encoded) >= _DIGEST_BYTES:
            return hashlib.sha224(name.encode("utf-8", "surrogateescape")).digest()
    return encoded


def translate_element(name: str, cmap: CharMap) -> str:
    """One path element, mapped, plus the disambiguating suffix when it changed."""
    new = translate_string(name, cmap)
    changed = _changes(name, new)
    if not changed:
        return new
    separators = _untouched(_SEPARATORS, cmap)
    radix = _untouched(_RADIX, cmap) or _RADIX
    number = int.from_bytes(changed, "big")
    suffix = separators[:1]
    while number:
        number, digit = divmod(number, len(radix))
        suffix += radix[digit]
    return new + suffix


def translate_path(path: str, cmap: CharMap) -> str:
    """Map each element of a ``/``-separated path independently."""
    parts = path.split("/")
    return "/".join(translate_element(p, cmap) if p else p for p in parts)
