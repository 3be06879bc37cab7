"""shared.file_types on real files of every kind a scan or a listing meets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from shared.file_types import FileType, file_type


def test_every_kind_on_real_files(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "d")
    os.mkfifo(tmp_path / "p")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        found = {n: file_type(os.lstat(tmp_path / n).st_mode) for n in "fdlps"}
    finally:
        sock.close()
    assert found == {
        "f": FileType.REGULAR,
        "d": FileType.DIRECTORY,
        "l": FileType.LINK,
        "p": FileType.PIPE,
        "s": FileType.SOCKET,
    }
    assert file_type(os.lstat("/dev/null").st_mode) is FileType.CHARACTER
    assert file_type(0) is FileType.UNKNOWN
