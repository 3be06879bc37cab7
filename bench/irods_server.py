"""Put and get a 1 GiB object with python-irodsclient against the iRODS test server.

Single stream (``num_threads=1``) and parallel (the client's default thread count), on
loopback, against a fresh server in a temp dir. A baseline shows how fast this machine
writes a fresh file of the same size on the same filesystem, since every put ends in
such a write. Each figure is the median of ``BENCH_IRODS_ROUNDS`` rounds (default 3; this
machine's load varies). Settings also: ``BENCH_IRODS_SIZE_MIB`` (default 1024),
``BENCH_TMPDIR``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BenchResult
from devtools.irods_server.launcher import ServerProcess

MIB = 1024 * 1024
BLOCK = 8 * MIB


def size_mib() -> int:
    value = os.environ.get("BENCH_IRODS_SIZE_MIB", "1024")
    try:
        size = int(value)
    except ValueError:
        raise ValueError(f"BENCH_IRODS_SIZE_MIB must be an integer, not {value!r}") from None
    if size < 8:
        raise ValueError("BENCH_IRODS_SIZE_MIB must be at least 8")
    return size


def write_file(path: Path, size: int) -> float:
    """Write ``size`` bytes of incompressible data to a new file; returns seconds taken."""
    block = os.urandom(BLOCK)
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for offset in range(0, size, BLOCK):
            f.write(block[: min(BLOCK, size - offset)])
    return time.perf_counter() - started


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def rounds() -> int:
    value = os.environ.get("BENCH_IRODS_ROUNDS", "3")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BENCH_IRODS_ROUNDS must be a positive integer, not {value!r}")
    return int(value)


def summary(name: str, rates: list[float]) -> BenchResult:
    note = f"median of {len(rates)}, best {max(rates):.0f}" if len(rates) > 1 else ""
    return BenchResult(name, statistics.median(rates), "MiB/s", note)


def run() -> list[BenchResult]:
    size_m, n = size_mib(), rounds()
    size = size_m * MIB
    label = f"{size_m // 1024} GiB" if size_m % 1024 == 0 else f"{size_m} MiB"
    rates: dict[str, list[float]] = {}
    tmp_root = os.environ.get("BENCH_TMPDIR")
    with tempfile.TemporaryDirectory(prefix="bench-irods-", dir=tmp_root) as t:
        tmp = Path(t)
        src, dst, baseline = tmp / "source.bin", tmp / "download.bin", tmp / "baseline.bin"
        write_file(src, size)
        with ServerProcess(tmp / "data") as srv, srv.session() as session:
            home = f"/{srv.zone}/home/{srv.admin_user}"
            for _ in range(n):
                key = f"baseline: write a fresh {label} file"
                rates.setdefault(key, []).append(size_m / write_file(baseline, size))
                baseline.unlink()
                for mode, opts in (("single stream", {"num_threads": 1}), ("parallel", {})):
                    obj = f"{home}/bench-{mode.replace(' ', '-')}.bin"
                    took = timed(session.data_objects.put, str(src), obj, **opts)
                    rates.setdefault(f"put {label} {mode}", []).append(size_m / took)
                    took = timed(session.data_objects.get, obj, str(dst), **opts)
                    if (got := dst.stat().st_size) != size:
                        raise RuntimeError(f"get returned {got} bytes, expected {size}")
                    rates.setdefault(f"get {label} {mode}", []).append(size_m / took)
                    dst.unlink()
                    session.data_objects.unlink(obj, force=True)
    return [summary(name, values) for name, values in rates.items()]
