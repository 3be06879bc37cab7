"""isync benchmarks: 1 GiB put/get against python-irodsclient, and 10,000 small files.

    python -m bench isync        # via the runner (settings from the environment)
    python -m bench.isync [--size-mib 1024] [--small-files 10000] [--rounds 3]

Settings: ``BENCH_ISYNC_SIZE_MIB`` (1024), ``BENCH_ISYNC_SMALL_FILES`` (10000; 0 skips),
``BENCH_ISYNC_ROUNDS`` (3), ``BENCH_ISYNC_SMALL_ROUNDS`` (2), ``BENCH_TMPDIR`` (where data
and the server live).

Starts a fresh iRODS test server, runs every variant of a measure in alternating order for
several rounds and prints medians and ratios (python-irodsclient time / isync time, so > 1
means isync is faster). `isync` is the default (no verification, like PRC); `isync -K` also
computes sha256 while copying and compares it with the iRODS checksum; for small files
`isync 3-req` is isync without the one-request put (open/write/close per file). CPU seconds of the
client (this process) and of the server are printed per run: on a shared, overloaded
machine wall times are mostly scheduling noise, CPU seconds show the work each side did.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench import BenchResult
from services.isync import IrodsAccount, NullSink, TransferOptions, transfer

MiB = 1024 * 1024
GOALS = {"put 1 GiB": 1.5, "get 1 GiB": 1.3, "small files put": 10.0}


@dataclass
class Measure:
    """Seconds per run for each variant, and the server's CPU seconds during them."""

    name: str
    nbytes: int = 0
    runs: dict[str, list[float]] = field(default_factory=dict)
    server_cpu: dict[str, list[float]] = field(default_factory=dict)
    client_cpu: dict[str, list[float]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def median(self, variant: str) -> float:
        return statistics.median(self.runs[variant])

    def ratio(self, variant: str = "isync") -> float:
        return self.median("prc") / self.median(variant)

    def show(self, t: float) -> str:
        return f"{self.nbytes / t / MiB:6.0f} MiB/s" if self.nbytes else f"{t:7.2f} s"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _make_file(path: Path, size: int) -> None:
    chunk = os.urandom(16 * MiB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


class Bench:
    def __init__(self, server: Any, work: Path) -> None:
        from irods.session import iRODSSession

        self.server = server
        self.work = work
        self.account = IrodsAccount(
            host=server.host,
            port=server.port,
            user=server.admin_user,
            zone=server.zone,
            password=SecretStr(server.admin_password),
        )
        self.session = iRODSSession(
            host=server.host,
            port=server.port,
            user=server.admin_user,
            password=server.admin_password,
            zone=server.zone,
        )
        self.home = f"/{server.zone}/home/{server.admin_user}"

    def timed(
        self,
        measure: Measure,
        variant: str,
        fn: Callable[[], Any],
        clear: Callable[[], Any] | None = None,
    ) -> None:
        """Time `fn`; `clear` removes the previous output right before it, after a sync.

        Order matters on this VM (Firecracker, free page reporting): pages freed seconds
        before a run are handed back to the host, and the next writer pays a host fault on
        every first touch (2-4x the kernel time of a copy into the page cache). Syncing first
        and freeing the old output immediately before the run gives every variant the same
        warm pages, and no dirty-page backlog throttles it.
        """
        pid = self.server.proc.pid
        os.sync()
        if clear is not None:
            clear()
        cpu0, own0, t0 = _cpu_seconds(pid), time.process_time(), time.perf_counter()
        fn()
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
        measure.runs.setdefault(variant, []).append(elapsed)
        measure.server_cpu.setdefault(variant, []).append(cpu)
        measure.client_cpu.setdefault(variant, []).append(time.process_time() - own0)
        measure.load.append(os.getloadavg()[0])

    def isync(self, src: str, dst: str, **opts: Any) -> None:
        options = TransferOptions(force=True, resume_dir=self.work / "journals", **opts)
        report = transfer(src, dst, self.account, options, NullSink())
        if report.exit_status != 0:
            failed = [o.error for o in report.outcomes if o.outcome == "failed"][:3]
            raise RuntimeError(f"isync failed: {failed}")

    def remove(self, path: str) -> None:
        if self.session.data_objects.exists(path):
            self.session.data_objects.unlink(path, force=True)

    def vault_file(self, name: str) -> Path:
        hits = [p for p in (Path(self.server.data_dir) / "vault").rglob(name) if p.is_file()]
        assert hits, f"{name} not found in the vault"
        return hits[0]

    def large(self, size: int, rounds: int) -> list[Measure]:
        src, back = self.work / "big.bin", self.work / "big.back"
        _make_file(src, size)
        obj = f"{self.home}/big.bin"
        put, get = Measure("put 1 GiB", size), Measure("get 1 GiB", size)

        def put_with(variant: str) -> Callable[[], Any]:
            return {
                "isync": lambda: self.isync(str(src), f"irods:{obj}"),
                "isync -K": lambda: self.isync(str(src), f"irods:{obj}", verify_checksum=True),
                "prc": lambda: self.session.data_objects.put(str(src), obj),
            }[variant]

        def get_with(variant: str) -> Callable[[], Any]:
            return {
                "isync": lambda: self.isync(f"irods:{obj}", str(back)),
                "isync -K": lambda: self.isync(f"irods:{obj}", str(back), verify_checksum=True),
                "prc": lambda: self.session.data_objects.get(obj, str(back), force=True),
            }[variant]

        scratch = Measure("warm-up", size)
        for r in range(-1, rounds):  # round -1 warms the page cache and is not counted
            put_m, get_m = (scratch, scratch) if r < 0 else (put, get)
            # rotate the order so that each variant goes first once in three rounds: the first
            # big transfer after a phase change is slower whoever does it
            variants = ["isync", "prc", "isync -K"]
            order = variants[r % 3 :] + variants[: r % 3]
            for variant in order:
                self.timed(put_m, variant, put_with(variant), lambda: self.remove(obj))
            vault = self.vault_file("big.bin")
            ceiling = vault.with_name("cp-ceiling.bin")
            self.timed(put_m, "cp", functools.partial(shutil.copyfile, src, ceiling))
            # an untimed copy leaves a 1 GiB output whose pages the first get reuses, as
            # every later get reuses its predecessor's
            shutil.copyfile(vault, back)
            ceiling.unlink()
            for variant in order:
                self.timed(get_m, variant, get_with(variant), lambda: back.unlink(missing_ok=True))
            self.timed(get_m, "cp", functools.partial(shutil.copyfile, vault, back), back.unlink)
            back.unlink()
        self.remove(obj)
        src.unlink()
        return [put, get]

    def small(self, count: int, rounds: int) -> list[Measure]:
        src = self.work / "small"
        src.mkdir()
        for i in range(count):
            (src / f"f{i:05}.dat").write_bytes(os.urandom(4096))
        names = sorted(os.listdir(src))
        measure = Measure("small files put")

        def prc_loop(coll: str) -> None:
            self.session.collections.create(coll)
            for name in names:
                self.session.data_objects.put(str(src / name), f"{coll}/{name}")

        # untimed warm-up through both clients: the first few thousand creates in a fresh
        # server (catalog, vault directories, heap growth on cold VM pages) cost 2-3x more
        # server CPU per file whoever makes them
        warm = src.parent / "small-warm"
        warm.mkdir()
        for name in names[:500]:
            os.link(src / name, warm / name)
        self.isync(f"{warm}/", f"irods:{self.home}/warm-i", recursive=True)
        self.session.collections.create(f"{self.home}/warm-p")
        for name in names[:500]:
            self.session.data_objects.put(str(warm / name), f"{self.home}/warm-p/{name}")
        for r in range(rounds):
            base = f"{self.home}/small-{r}"
            runs: dict[str, Callable[[], Any]] = {
                "isync": functools.partial(
                    self.isync, f"{src}/", f"irods:{base}-i", recursive=True
                ),
                "isync -K": functools.partial(
                    self.isync, f"{src}/", f"irods:{base}-k", recursive=True, verify_checksum=True
                ),
                "prc": functools.partial(prc_loop, f"{base}-p"),
                # the one-request put (606) switched off: open/write/close per file
                "isync 3-req": functools.partial(
                    self.isync, f"{src}/", f"irods:{base}-o", recursive=True, single_buffer_max=0
                ),
            }
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for variant in order:
                self.timed(measure, variant, runs[variant])
        return [measure]


def report(measures: list[Measure]) -> None:
    print(
        f"{'measure':<16} {'isync':>12} {'isync -K':>12} {'prc':>12} {'ratio':>6} "
        f"{'ratio -K':>8} {'goal':>5} {'cp ceiling':>12}"
    )
    for m in measures:
        ceiling = m.show(m.median("cp")) if "cp" in m.runs else "-"
        print(
            f"{m.name:<16} {m.show(m.median('isync')):>12} {m.show(m.median('isync -K')):>12} "
            f"{m.show(m.median('prc')):>12} {m.ratio():5.2f}x {m.ratio('isync -K'):7.2f}x "
            f"{GOALS[m.name]:4.1f}x {ceiling:>12}"
        )
        print(f"    load average (1 min) during the runs: median {statistics.median(m.load):.1f}")
        for variant, runs in m.runs.items():
            server = statistics.median(m.server_cpu[variant])
            client = statistics.median(m.client_cpu[variant])
            print(
                f"    {variant:<9} runs (s): {', '.join(f'{x:.2f}' for x in runs):<30}"
                f" CPU s: client {client:5.2f} server {server:5.2f}"
            )


def measure_all(
    size_mib: int, small_files: int, rounds: int, small_rounds: int = 2
) -> list[Measure]:
    """Start a fresh test server in a temp dir, measure, clean up."""
    from devtools.irods_server.launcher import ServerProcess

    work = Path(tempfile.mkdtemp(prefix="isync-bench-", dir=os.environ.get("BENCH_TMPDIR")))
    try:
        with ServerProcess(work / "server") as server:
            bench = Bench(server, work)
            try:
                measures = bench.large(size_mib * MiB, rounds)
                if small_files:
                    measures += bench.small(small_files, small_rounds)
            finally:
                bench.session.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return measures


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def run() -> list[BenchResult]:
    """The `python -m bench` entry point: detailed table on stdout, figures returned."""
    measures = measure_all(
        _env_int("BENCH_ISYNC_SIZE_MIB", 1024),
        _env_int("BENCH_ISYNC_SMALL_FILES", 10_000),
        _env_int("BENCH_ISYNC_ROUNDS", 3),
        _env_int("BENCH_ISYNC_SMALL_ROUNDS", 2),
    )
    report(measures)
    results = []
    for m in measures:
        unit = "MiB/s" if m.nbytes else "s"

        def value(variant: str, m: Measure = m) -> float:
            t = m.median(variant)
            return m.nbytes / t / MiB if m.nbytes else t

        results.append(BenchResult(f"isync {m.name}", value("isync"), unit))
        results.append(BenchResult(f"isync -K {m.name}", value("isync -K"), unit))
        results.append(BenchResult(f"prc {m.name}", value("prc"), unit))
        if "cp" in m.runs:
            results.append(BenchResult(f"cp ceiling {m.name}", value("cp"), unit))
        goal = GOALS[m.name]
        results.append(
            BenchResult(
                f"ratio isync/prc {m.name}",
                m.ratio(),
                "x",
                note=f"goal {goal}x; with -K {m.ratio('isync -K'):.2f}x",
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.isync")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--small-files", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--small-rounds", type=int, default=2)
    args = p.parse_args(argv)
    report(measure_all(args.size_mib, args.small_files, args.rounds, args.small_rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
