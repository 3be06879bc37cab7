"""isync: the parallel, verified, resumable transfer core and its CLI."""

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
