"""Job ``dirlist``: list a directory as the user (the responder is ``services.worker.dirlist``)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Mapping
from typing import Any

from services.worker.forkserver.child import ChildOutput
from shared.errors import InvalidInput
from shared.file_types import FileType, file_type

#: A listing's entry types (the Go stager's names); any other type is ``unknown``.
_ENTRY_TYPES = {FileType.LINK: "symlink", FileType.DIRECTORY: "dir", FileType.REGULAR: "regular"}


def _entry_type(mode: int) -> str:
    return _ENTRY_TYPES.get(file_type(mode), "unknown")


def list_dir(path: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Entries of ``path`` sorted by name (at most ``limit``), and whether more exist."""
    if not path.startswith("/") or "\x00" in path:
        raise InvalidInput(f"{path!r} is not an absolute path")
    entries: list[dict[str, Any]] = []
    try:
        it = os.scandir(path)
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:  # the caller's path, not the worker, is at fault
            raise InvalidInput("path has a name longer than the filesystem allows") from None
        raise
    with it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
                entries.append(
                    {
                        "name": e.name,
                        "type": _entry_type(st.st_mode),
                        "size": st.st_size,
                        "mtime": int(st.st_mtime),
                    }
                )
            except OSError:
                entries.append({"name": e.name, "type": "unknown", "size": 0})
    entries.sort(key=lambda d: d["name"])
    return entries[:limit], len(entries) > limit


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """The listing of ``params["path"]`` (at most ``params["limit"]`` entries)."""
    entries, truncated = list_dir(str(params["path"]), int(params.get("limit", 10000)))
    return {"entries": entries, "truncated": truncated}
