"""Server CPU per small-file put: 689 bulk (50 files a request) vs 606 single buffer vs
601 create + 676 write + 673 close.

    python -m devtools.irods_server.bench_single_buffer [--files 2000] [--size 4096]

Starts a fresh server, sends the raw API requests with python-irodsclient's message
classes on one connection and reads the server's user+system CPU from /proc.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import irods.keywords as kw
from irods.api_number import api_number
from irods.message import FileOpenRequest, OpenedDataObjRequest, StringStringMap, iRODSMessage

from .launcher import ServerProcess

TICK = os.sysconf("SC_CLK_TCK")
ROUND = 100


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _inp(path: str, size: int, opts: dict[str, str], flags: int = 0) -> FileOpenRequest:
    return FileOpenRequest(
        objPath=path,
        createMode=0o644,
        openFlags=flags,
        offset=0,
        dataSize=size,
        numThreads=0,
        oprType=1,
        KeyValPair_PI=StringStringMap(opts),
    )


def _call(conn: Any, api: str, msg: Any, bs: bytes = b"") -> Any:
    conn.send(iRODSMessage("RODS_API_REQ", msg=msg, bs=bs, int_info=api_number[api]))
    return conn.recv()


def _put_606(conn: Any, path: str, data: bytes) -> None:
    _call(conn, "DATA_OBJ_PUT_AN", _inp(path, len(data), {kw.DATA_INCLUDED_KW: ""}), data)


def _put_3(conn: Any, path: str, data: bytes) -> None:
    fd = _call(conn, "DATA_OBJ_CREATE_AN", _inp(path, len(data), {}, flags=0o1101)).int_info

    def opened(length: int) -> OpenedDataObjRequest:
        return OpenedDataObjRequest(
            l1descInx=fd,
            len=length,
            whence=0,
            oprType=0,
            offset=0,
            bytesWritten=0,
            KeyValPair_PI=StringStringMap({}),
        )

    _call(conn, "DATA_OBJ_WRITE_AN", opened(len(data)), data)
    _call(conn, "DATA_OBJ_CLOSE_AN", opened(0))


def _put_689(conn: Any, paths: list[str], data: bytes) -> None:
    from services.isync import bulk  # isync's client packing of BulkOprInp_PI

    for at in range(0, len(paths), bulk.MAX_FILES):
        part = paths[at : at + bulk.MAX_FILES]
        files = [(path, 0o644, len(data)) for path in part]
        coll = path_dir = part[0].rsplit("/", 1)[0]
        assert path_dir
        bulk.send(conn, coll, files, memoryview(data * len(part)), None, {})


def _each(put: Any) -> Any:
    def many(conn: Any, paths: list[str], data: bytes) -> None:
        for path in paths:
            put(conn, path, data)

    return many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    data = os.urandom(args.size)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data") as srv:
        assert srv.proc is not None
        pid = srv.proc.pid
        with srv.session() as session, session.pool.get_connection() as conn:
            methods = (
                ("689 bulk", _put_689),
                ("606 put", _each(_put_606)),
                ("601+676+673", _each(_put_3)),
            )
            cpu = dict.fromkeys((name for name, _ in methods), 0.0)
            wall = dict(cpu)
            for name, _ in methods:
                session.collections.create(f"/tempZone/home/rods/{name.split()[0]}")
            for start in range(0, args.files, ROUND):  # interleaved: no order effect
                for name, put in methods:
                    coll = f"/tempZone/home/rods/{name.split()[0]}"
                    cpu0, wall0 = _cpu_seconds(pid), time.perf_counter()
                    paths = [f"{coll}/f{i}" for i in range(start, min(start + ROUND, args.files))]
                    put(conn, paths, data)
                    cpu[name] += _cpu_seconds(pid) - cpu0
                    wall[name] += time.perf_counter() - wall0
            for name, _ in methods:
                print(
                    f"{name:12s} {args.files} files of {args.size} B:"
                    f" server CPU {cpu[name] * 1e6 / args.files:7.0f} µs/file,"
                    f" wall {wall[name] * 1e6 / args.files:7.0f} µs/file"
                )


if __name__ == "__main__":
    main()
