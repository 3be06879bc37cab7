"""isync: the parallel, verified, resumable transfer core and its CLI.

The public names load on first use (PEP 562), so `isync --help` and the argument checks
start without importing the transfer engine and python-irodsclient.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.isync.engine import transfer
    from services.isync.models import (
        FileOutcome,
        ProgressEvent,
        TransferOptions,
        TransferReport,
    )
    from services.isync.progress import JsonLinesSink, NullSink, ProgressSink, RecordingSink
    from shared.errors import ExitStatus
    from shared.irods import IrodsAccount

_WHERE = {
    "transfer": "services.isync.engine",
    "FileOutcome": "services.isync.models",
    "ProgressEvent": "services.isync.models",
    "TransferOptions": "services.isync.models",
    "TransferReport": "services.isync.models",
    "JsonLinesSink": "services.isync.progress",
    "NullSink": "services.isync.progress",
    "ProgressSink": "services.isync.progress",
    "RecordingSink": "services.isync.progress",
    "ExitStatus": "shared.errors",
    "IrodsAccount": "shared.irods",
}

__all__ = [
    "ExitStatus",
    "FileOutcome",
    "IrodsAccount",
    "JsonLinesSink",
    "NullSink",
    "ProgressEvent",
    "ProgressSink",
    "RecordingSink",
    "TransferOptions",
    "TransferReport",
    "transfer",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'services.isync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
