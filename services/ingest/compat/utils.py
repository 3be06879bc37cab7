"""The anchor's ``utils`` enums and rules under its module name."""

from shared.ingest.utils import DeleteMode, Operation, delete_mode_is_compatible_with_operation

__all__ = ["DeleteMode", "Operation", "delete_mode_is_compatible_with_operation"]
