"""The pydantic models at isync's boundary (account, options, progress, outcomes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import FileErrorKind

MiB = 1024 * 1024

Outcome = Literal["transferred", "skipped", "failed", "dry-run"]


class TransferOptions(BaseModel):
    """What to transfer and how (the CLI flags)."""

    model_config = ConfigDict(frozen=True)

    recursive: bool = False
    force: bool = False
    verify_checksum: bool = False
    # streams per large file; None = follow the machine and the object (streams.stream_count)
    streams: int | None = Field(default=None, ge=1, le=32)
    parallel_files: int = Field(default=8, ge=1, le=64)
    dry_run: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_policy: Literal["checksum", "size-only"] = "checksum"
    bwlimit: int | None = Field(default=None, gt=0)
    follow_symlinks: bool = False
    resume_dir: Path | None = None
    #: A file noting the part objects, part files, journals and collections this run makes
    #: (services.isync.leftovers): set by the worker so a cancel or final failure removes
    #: them; the isync command keeps its parts for the next run to resume.
    leftovers: Path | None = None
    large_file_threshold: int = Field(default=32 * MiB, ge=1)
    buffer_size: int = Field(default=8 * MiB, ge=64 * 1024, le=64 * MiB)
    # files up to this size move in one request (606/608); 0 = always open/write/close
    single_buffer_max: int = Field(default=4 * MiB, ge=0, le=64 * MiB)
    # new small files go up to 50 per request (689, services.isync.bulk); False: one each
    bulk: bool = True
    progress_interval: float = Field(default=0.5, gt=0)


class ProgressEvent(BaseModel):
    """A snapshot of the whole transfer's progress."""

    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    bytes_sent: int = 0
    rate: float = 0.0
    eta: float | None = None
    current: str | None = None


class FileOutcome(BaseModel):
    """What happened to one file."""

    src: str
    dst: str
    outcome: Outcome
    bytes: int = 0
    bytes_sent: int = 0
    checksum: str | None = None
    resumed: bool = False
    reason: str | None = None
    error: str | None = None
    #: why it failed (set with ``error``): what the worker and the UI decide by
    kind: FileErrorKind | None = None
    exit_status: int = 0


class TransferReport(BaseModel):
    """Every file's outcome plus totals; `exit_status` is the CLI's exit code."""

    src: str
    dst: str
    outcomes: list[FileOutcome] = Field(default_factory=list)
    files_total: int = 0
    files_transferred: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_sent: int = 0
    elapsed: float = 0.0
    exit_status: int = 0
