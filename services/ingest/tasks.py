"""AMQP bodies of ingest work: directory tasks, file-batch tasks and delete tasks.

Paths travel as text when they are UTF-8 and as base64 of the raw bytes when not
(``*_b64``), so a non-UTF-8 file name survives JSON.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.ingest.constants import BODY_VERSION
from services.ingest.diff import Replica
from shared.ingest.utils import is_unicode_encode_error_path


def to_wire(path: str) -> tuple[str, str | None]:
    """``(text, b64)``: text is printable; b64 is set when ``path`` is not UTF-8."""
    if is_unicode_encode_error_path(path):
        raw = os.fsencode(path)
        return raw.decode("utf-8", "replace"), base64.b64encode(raw).decode("ascii")
    return path, None


def from_wire(text: str, b64: str | None) -> str:
    """The ``os``-level path back from ``to_wire``."""
    return os.fsdecode(base64.b64decode(b64)) if b64 else text


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: int = BODY_VERSION
    task_id: str
    job: str
    generation: int
    attempt: int = 0


class ReplicaRow(BaseModel):
    """A catalog replica the diff saw (so the file task needs no query)."""

    number: int
    resc_hier: str
    path: str
    size: int
    mtime: int

    def replica(self) -> Replica:
        return Replica(self.number, self.resc_hier, self.path, self.size, self.mtime)


Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


class Known(BaseModel):
    """What a job recorded of one entry of a directory (handed to the owner's child)."""

    name: str
    name_b64: str | None = None
    stat: Stat

    @property
    def os_name(self) -> str:
        return from_wire(self.name, self.name_b64)


class EntryRecord(BaseModel):
    """A state for the job store to record (``stat`` None: forget the entry)."""

    dir: str
    dir_b64: str | None = None
    name: str
    name_b64: str | None = None
    stat: Stat | None = None

    @classmethod
    def of(cls, directory: str, name: str, stat: Stat | None) -> EntryRecord:
        d, db = to_wire(directory)
        n, nb = to_wire(name)
        return cls(dir=d, dir_b64=db, name=n, name_b64=nb, stat=stat)

    @property
    def os_dir(self) -> str:
        return from_wire(self.dir, self.dir_b64)

    @property
    def os_name(self) -> str:
        return from_wire(self.name, self.name_b64)


class FileItem(BaseModel):
    """One file to create or update."""

    name: str
    name_b64: str | None = None
    logical: str
    reason: Literal["UnicodeEncodeError", "character_map"] | None = None
    kind: str = "regular"
    size: int
    mtime: float
    ctime: float
    action: Literal["create", "modify", "meta"]
    replicas: list[ReplicaRow] = Field(default_factory=list)
    #: the file's state when listed, recorded once it is synced
    stat: Stat | None = None
    #: an S3 object's ETag as listed (None for files)
    etag: str | None = None

    @property
    def os_name(self) -> str:
        return from_wire(self.name, self.name_b64)


class DirTask(_Body):
    """List one directory, diff it against its collection, fan out."""

    kind: Literal["dir"] = "dir"
    path: str
    path_b64: str | None = None
    collection: str
    #: Whether the collection existed when the parent looked (None: unknown, check).
    exists: bool | None = None
    is_root: bool = False
    #: What the job recorded of this directory's entries and of the directory itself:
    #: filled in by the worker from the job store for the owner's child, never published
    #: (None: nothing was looked up, every entry counts as never recorded).
    known: list[Known] | None = None
    known_self: Stat | None = None

    @property
    def os_path(self) -> str:
        return from_wire(self.path, self.path_b64)


class FileBatchTask(_Body):
    """Sync up to ``files_per_task`` files of one directory."""

    kind: Literal["files"] = "files"
    dir_path: str
    dir_path_b64: str | None = None
    collection: str
    items: list[FileItem]
    #: a redelivery of a batch whose counters were never committed (its worker died while
    #: or after syncing it): the child looks at the catalog again before each file
    recheck: bool = False

    @property
    def os_dir(self) -> str:
        return from_wire(self.dir_path, self.dir_path_b64)


class DeleteTask(_Body):
    """Remove data objects and collections whose files and directories are gone."""

    kind: Literal["delete"] = "delete"
    collection: str
    data_objects: list[str] = Field(default_factory=list)
    collections: list[str] = Field(default_factory=list)


IngestTask = Annotated[DirTask | FileBatchTask | DeleteTask, Field(discriminator="kind")]
TASK_ADAPTER: TypeAdapter[DirTask | FileBatchTask | DeleteTask] = TypeAdapter(IngestTask)


def decode_task(body: bytes) -> DirTask | FileBatchTask | DeleteTask:
    """Parse an AMQP body (raises ``pydantic.ValidationError`` when malformed)."""
    return TASK_ADAPTER.validate_json(body)


_IDS = uuid.UUID("5b0c6a52-3f4e-4d67-9a43-2c1f3e1b7d10")


def child_id(parent: str, index: int) -> str:
    """The id of a task's ``index``-th child: the same on every run of that task."""
    return uuid.uuid5(_IDS, f"{parent}/{index}").hex


def fill(
    parent: DirTask, children: list[DirTask | FileBatchTask | DeleteTask], count: int
) -> list[DirTask | FileBatchTask | DeleteTask]:
    """Exactly the ``count`` children a task was counted with, listed again.

    A directory that changed since it was first listed may yield fewer children (empty
    batches stand in for them, so ``pending`` still reaches 0) or more (left to the next
    pass).
    """
    wanted = [child_id(parent.task_id, i) for i in range(count)]
    keep = set(wanted)
    out = [c for c in children if c.task_id in keep]
    have = {c.task_id for c in out}
    for tid in wanted:
        if tid not in have:
            out.append(
                FileBatchTask(
                    task_id=tid,
                    job=parent.job,
                    generation=parent.generation,
                    dir_path=parent.path,
                    dir_path_b64=parent.path_b64,
                    collection=parent.collection,
                    items=[],
                )
            )
    return out
