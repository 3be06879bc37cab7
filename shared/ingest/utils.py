"""The seed's ``Operation`` and ``DeleteMode`` enums and their compatibility rules."""

from __future__ import annotations

from enum import Enum


class Operation(Enum):
    """What happens to a file (same names and values as automated ingest 0.7.0)."""

    REGISTER_SYNC = 0
    REGISTER_AS_REPLICA_SYNC = 1
    PUT = 2
    PUT_SYNC = 3
    PUT_APPEND = 4
    NO_OP = 5


class DeleteMode(Enum):
    """What happens to a data object whose file disappeared."""

    DO_NOT_DELETE = 0
    UNREGISTER = 1
    TRASH = 2
    NO_TRASH = 3


PUT_OPERATIONS = frozenset({Operation.PUT, Operation.PUT_SYNC, Operation.PUT_APPEND})

_ALLOWED_DELETE_MODES: dict[Operation, frozenset[DeleteMode]] = {
    Operation.NO_OP: frozenset({DeleteMode.DO_NOT_DELETE}),
    Operation.REGISTER_SYNC: frozenset({DeleteMode.DO_NOT_DELETE, DeleteMode.UNREGISTER}),
    Operation.REGISTER_AS_REPLICA_SYNC: frozenset(
        {DeleteMode.DO_NOT_DELETE, DeleteMode.UNREGISTER}
    ),
    Operation.PUT: frozenset({DeleteMode.DO_NOT_DELETE}),
    Operation.PUT_SYNC: frozenset(
        {DeleteMode.DO_NOT_DELETE, DeleteMode.TRASH, DeleteMode.NO_TRASH}
    ),
    Operation.PUT_APPEND: frozenset(
        {DeleteMode.DO_NOT_DELETE, DeleteMode.TRASH, DeleteMode.NO_TRASH}
    ),
}


def delete_mode_is_compatible_with_operation(delete_mode: DeleteMode, operation: Operation) -> bool:
    """The seed's rule: registered data may only be unregistered, put data only deleted."""
    return delete_mode in _ALLOWED_DELETE_MODES.get(operation, frozenset())


def is_unicode_encode_error_path(path: str) -> bool:
    """True when ``path`` (surrogate-escaped by ``os``) cannot be encoded as UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
