"""Resource policies a create is voted against: ``minimum_free_space_for_create_in_bytes``.

As iRODS 4.3.4 ``server/core/src/voting.cpp`` (``replica_exceeds_resource_free_space``,
thrown from ``calculate_for_create``): when the resource's context sets
``minimum_free_space_for_create_in_bytes``, a new replica of ``size`` bytes (the size the
client declares; unknown, i.e. negative, passes) is refused with ``USER_FILE_TOO_LARGE``
unless the resource's catalog ``free_space`` minus that minimum leaves room for it. A
negative or unreadable minimum or free space refuses every create, as there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from .errors import IrodsError

MINIMUM_FREE_SPACE = "minimum_free_space_for_create_in_bytes"


def context_value(context: str, key: str) -> str | None:
    """``key``'s value in a resource context string ``k1=v1;k2=v2`` (None: absent)."""
    for item in (context or "").split(";"):
        name, sep, value = item.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def exceeds_free_space(resc: sqlite3.Row | Mapping[str, Any], size: int) -> bool:
    if size < 0:
        return False
    minimum = context_value(str(resc["resc_context"] or ""), MINIMUM_FREE_SPACE)
    if minimum is None:
        return False
    free = str(resc["free_space"] or "").strip()
    if not minimum.isdigit() or not free.isdigit():
        return True  # negative or not a number: refused, as voting.cpp does
    if int(minimum) > int(free):
        return True
    return int(free) - int(minimum) < size


def check_create(resc: sqlite3.Row | Mapping[str, Any], size: int) -> None:
    """Raise ``USER_FILE_TOO_LARGE`` when a replica of ``size`` bytes may not be created."""
    if exceeds_free_space(resc, size):
        minimum = context_value(str(resc["resc_context"] or ""), MINIMUM_FREE_SPACE)
        raise IrodsError(
            "USER_FILE_TOO_LARGE",
            f"Replica exceeds resource free space: {size} bytes on {resc['resc_name']}"
            f" (free_space {resc['free_space'] or 'unset'}, {MINIMUM_FREE_SPACE} {minimum})",
        )
