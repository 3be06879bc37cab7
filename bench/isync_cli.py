"""isync as users run it: the ``isync`` console script as a whole process, against the same
operation in a python-irodsclient (PRC) script run as its own process.

    python -m bench isync_cli
    python -m bench.isync_cli [--sizes 256,1024] [--rounds 3] [--small-files 10000]

Settings (environment, for ``python -m bench``): ``BENCH_CLI_SIZES`` (MiB, comma separated;
default ``256,1024``), ``BENCH_CLI_ROUNDS`` (3), ``BENCH_CLI_SMALL_FILES`` (10000; 0 skips),
``BENCH_CLI_COSTED_FILES`` (500; 0 skips), ``BENCH_CLI_COST_SLOTS`` (2: the cores of the
bounded real-zone server, see below), ``BENCH_TMPDIR`` (where data and the server live).
The processes run this checkout's code (``PYTHONPATH`` is the repository root), not
whatever the venv's editable install points at.

Per size, four measures, each timed from ``exec`` to exit of the process (imports,
connection set-up, authentication and teardown included, as a user pays them):

* ``put new``: the object does not exist (removed, untimed, right before the run);
* ``put overwrite``: the object exists (isync ``-f``; PRC with ``forceFlag``);
* ``get new``: the local file does not exist; ``get overwrite``: it does (``-f``; ``force``).

An overwritten destination has the source's size and other bytes in its first MiB, and
is older than the source (set up untimed before each run): isync, like rsync, first finds
out that it changed (its default skip policy: a sampled range that differs, else sha256,
the server computing the object's checksum if the catalog has none), then sends it all;
PRC overwrites without looking. An identical destination would be skipped by isync.

``isync -K`` (sha256 while sending, compared with the server's checksum) is timed for
``put new`` too. Variants alternate within a round and the order rotates between rounds;
medians are printed with the ratio PRC / isync (> 1: isync is faster) and the goal.
The machine's own limits are measured in the same run: the sha256 speed of one core over
the same file and a plain copy of the file into the test server's vault directory.
Also: ``isync --help`` against ``python -c "import irods.session"`` (start-up cost), and
``N`` small files (4 KiB) put by one ``isync -r`` process against one PRC process looping
over ``data_objects.put`` (isync twice: by default, new small files of a directory go 50 per
BULK_DATA_OBJ_PUT request, and with ``--no-bulk``, one DATA_OBJ_PUT each, so the same run
shows before and after; the requests each variant sends are counted once on the wire and
printed per file, with client and server CPU ms per file); and ``BENCH_CLI_COSTED_FILES``
small files the same way against a second test server started with ``--cost real-zone``
(a real 5.0.2 zone's measured per-request agent and catalog cost,
``devtools/irods_server/cost.py``; goal 3x), where what counts is the server operations
per file, not client speed. That server's waits are
``asyncio.sleep``s that any number of connections pay at once; on a real zone they are
CPU, so the same files are put once more against a server whose waits share
``BENCH_CLI_COST_SLOTS`` slots (``bench/_bounded_server.py``): the ``2 cores`` row, the
one to compare with the real zone (whose figures are printed beside it).

Each timed run also records the CPU seconds of the client process (user + system, from
``wait4``) and of the test server (``/proc/PID/stat``): less load-dependent than seconds,
and they show which side bounds a run.

Seconds depend on the load of a shared machine; what does not is counted too: every size
is put new, overwritten and got once more, untimed, by each client through a counting
proxy (``bench/_wiretap.py``), and the requests each sent are printed (total and per MiB),
with how many of them ask the server for a checksum (API 629, or a ``regChksum``,
``verifyChksum`` or ``forceChksum`` keyword): none for either client without ``-K``.
``-K``'s cost (isync -K minus isync) is compared with its budget: one sha256 pass of the
file on one core plus the server computing the checksum (API 629 with ``forceChksum``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import irods.keywords as kw

from bench import BenchResult

MiB = 1024 * 1024
BIN = Path(sys.executable).parent
ISYNC = str(BIN / "isync")
REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Goals from the performance issue: PRC time / isync time.
GOALS = {
    "put new": 1.5,
    "get new": 1.5,
    "put overwrite": 1.5,
    "get overwrite": 1.5,
    "small files put": 10.0,
    "small files put, real-zone cost": 3.0,
    "small files put, real-zone cost, 2 cores": 3.0,
}
#: The real iRODS 5.0.2 zone of issue 15 (2 cores): 2,000 x 4 KiB, whole processes.
REAL_ZONE_SMALL = {"files": 2000, "isync": 41.6, "prc": 70.5}
HELP_GOAL_S = 0.1
#: -K may cost at most one sha256 pass plus the server's checksum: budget / cost >= 1.
CHECKSUM_GOAL = 1.0

PRC_SCRIPT = """
import os, sys
from irods.session import iRODSSession
import irods.keywords as kw
op, local, logical, overwrite = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
env = os.path.expanduser("~/.irods/irods_environment.json")
with iRODSSession(irods_env_file=env) as s:
    if op == "put":
        opts = {kw.FORCE_FLAG_KW: ""} if overwrite else {}
        s.data_objects.put(local, logical, **opts)
    elif op == "get":
        opts = {kw.FORCE_FLAG_KW: ""} if overwrite else {}
        s.data_objects.get(logical, local, **opts)
    elif op == "putdir":
        s.collections.create(logical)
        for name in sorted(os.listdir(local)):
            s.data_objects.put(os.path.join(local, name), logical + "/" + name)
"""


@dataclass
class Measure:
    """Seconds per run, per variant, of one measure."""

    name: str
    nbytes: int = 0
    runs: dict[str, list[float]] = field(default_factory=dict)
    #: per run: CPU seconds of the client process and of the test server
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    files: int = 0
    #: round trips only: per variant, the requests that asked the server for a checksum
    checksums: dict[str, int] = field(default_factory=dict)
    #: requests sent per variant, counted once on the wire (small files)
    requests: dict[str, int] = field(default_factory=dict)

    def cpu_median(self, variant: str) -> tuple[float, float]:
        runs = self.cpu.get(variant) or [(0.0, 0.0)]
        return (
            statistics.median(c for c, _ in runs),
            statistics.median(s for _, s in runs),
        )

    def median(self, variant: str) -> float:
        return statistics.median(self.runs[variant])

    def ratio(self, variant: str = "isync") -> float:
        return self.median("prc") / self.median(variant)

    def show(self, variant: str) -> str:
        t = self.median(variant)
        if self.nbytes:
            return f"{t:6.2f} s {self.nbytes / t / MiB:5.0f} MiB/s"
        return f"{t:6.2f} s"


def _make_file(path: Path, size: int) -> None:
    chunk = os.urandom(16 * MiB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


class CliBench:
    """One test server, one HOME with an iRODS environment, the data in ``work``."""

    def __init__(self, server: Any, work: Path) -> None:
        from irods.session import iRODSSession

        self.server = server
        self.work = work
        self.home_dir = work / "home"
        server.write_env(self.home_dir)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home_dir),
            "LANG": "C.UTF-8",
            # this checkout's code, not the one the venv's editable install points at
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.last_cpu = (0.0, 0.0)
        self.session = iRODSSession(
            host=server.host,
            port=server.port,
            user=server.admin_user,
            password=server.admin_password,
            zone=server.zone,
        )
        self.home = f"/{server.zone}/home/{server.admin_user}"
        self.prc_script = work / "prc_op.py"
        self.prc_script.write_text(PRC_SCRIPT)

    def run(self, argv: Sequence[str], env: dict[str, str] | None = None) -> float:
        """Seconds from spawn to exit of one process; a failure stops the benchmark."""
        os.sync()
        before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), self.server_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv, env=env or self.env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            self.server_cpu() - server_before,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {tail}")
        return elapsed

    def server_cpu(self) -> float:
        """CPU seconds (user + system) the test server has used so far."""
        proc = getattr(self.server, "proc", None)
        if proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def prc(self, op: str, local: Path, logical: str, overwrite: bool) -> list[str]:
        return [sys.executable, str(self.prc_script), op, str(local), logical, str(int(overwrite))]

    def remove(self, logical: str) -> None:
        if self.session.data_objects.exists(logical):
            self.session.data_objects.unlink(logical, force=True)

    def vault_file(self, name: str) -> Path:
        hits = [p for p in (Path(self.server.data_dir) / "vault").rglob(name) if p.is_file()]
        if not hits:
            raise RuntimeError(f"{name} not found in the test server's vault")
        return hits[0]

    def timed(self, m: Measure, variant: str, argv: list[str], before: Callable[[], Any]) -> None:
        before()
        m.runs.setdefault(variant, []).append(self.run(argv))
        m.cpu.setdefault(variant, []).append(self.last_cpu)

    def sized(self, size: int, rounds: int) -> list[Measure]:
        """put/get, new/overwrite at one size; plus sha256 and cp ceilings."""
        label = f"{size // MiB} MiB"
        src, back = self.work / "big.bin", self.work / "big.back"
        _make_file(src, size)
        obj = f"{self.home}/big.bin"
        irods = f"irods:{obj}"
        put_new, put_over = (
            Measure(f"put new {label}", size),
            Measure(f"put overwrite {label}", size),
        )
        get_new, get_over = (
            Measure(f"get new {label}", size),
            Measure(f"get overwrite {label}", size),
        )
        limits = Measure(f"limits {label}", size)

        # the stale copy an overwrite replaces: same size, other bytes at the start, so
        # isync's size + sha256 check finds it changed and everything is sent again
        old = self.work / "old.bin"
        shutil.copyfile(src, old)
        with open(old, "r+b") as fh:
            fh.write(os.urandom(min(size, MiB)))

        def absent() -> None:
            self.remove(obj)

        def stale_object() -> None:
            self.session.data_objects.put(str(old), obj, **{kw.FORCE_FLAG_KW: ""})
            # the source changed after the stale copy was written (as when a user re-runs
            # a put after editing): a destination newer than its source would be skipped
            # by isync's modification-time rule without looking at the bytes
            os.utime(src)

        def present() -> None:
            if not self.session.data_objects.exists(obj):
                self.session.data_objects.put(str(src), obj)

        def no_local() -> None:
            present()
            back.unlink(missing_ok=True)

        def stale_local() -> None:
            present()
            shutil.copyfile(old, back)
            past = time.time() - 3600  # older than the object: changed, not skipped by mtime
            os.utime(back, (past, past))

        for r in range(-1, rounds):  # round -1 warms caches and the server; not counted
            scratch = Measure("warm-up", size)

            def pick(m: Measure, scratch: Measure = scratch, r: int = r) -> Measure:
                return scratch if r < 0 else m

            puts: list[tuple[Measure, str, list[str], Callable[[], Any]]] = [
                (pick(put_new), "isync", [ISYNC, str(src), irods], absent),
                (pick(put_new), "prc", self.prc("put", src, obj, False), absent),
                (pick(put_new), "isync -K", [ISYNC, "-K", str(src), irods], absent),
                (pick(put_over), "isync", [ISYNC, "-f", str(src), irods], stale_object),
                (pick(put_over), "prc", self.prc("put", src, obj, True), stale_object),
            ]
            gets: list[tuple[Measure, str, list[str], Callable[[], Any]]] = [
                (pick(get_new), "isync", [ISYNC, irods, str(back)], no_local),
                (pick(get_new), "prc", self.prc("get", back, obj, False), no_local),
                (pick(get_over), "isync", [ISYNC, "-f", irods, str(back)], stale_local),
                (pick(get_over), "prc", self.prc("get", back, obj, True), stale_local),
            ]
            shift = max(r, 0)
            for batch in (puts, gets):
                order = batch[shift % len(batch) :] + batch[: shift % len(batch)]
                for m, variant, argv, before in order:
                    self.timed(m, variant, argv, before)
            if r >= 0:
                present()
                t0 = time.perf_counter()
                self.session.data_objects.chksum(obj, **{kw.FORCE_CHKSUM_KW: ""})
                limits.runs.setdefault("server sha256", []).append(time.perf_counter() - t0)
                limits.runs.setdefault("sha256", []).append(_sha256_seconds(src))
                ceiling = self.vault_file("big.bin").with_name("cp-ceiling.bin")
                t0 = time.perf_counter()
                shutil.copyfile(src, ceiling)
                limits.runs.setdefault("cp", []).append(time.perf_counter() - t0)
                ceiling.unlink()
        trips = self.round_trips(src, obj, back, size, stale_object)
        self.remove(obj)
        back.unlink(missing_ok=True)
        src.unlink()
        old.unlink()
        return [put_new, put_over, get_new, get_over, limits, trips]

    def round_trips(
        self, src: Path, obj: str, back: Path, size: int, stale: Callable[[], Any]
    ) -> Measure:
        """Requests per new-object put, per overwrite put (``stale`` sets up the stale
        copy) and per get, each client once through the tap; and how many of each run's
        requests ask the server for a checksum (API 629 or a checksum keyword)."""
        from bench._wiretap import WireTap

        m = Measure(f"round trips {size // MiB} MiB", size)
        with WireTap(self.server.host, self.server.port) as tap:
            home = self.work / "tap-home"
            env_file = self.server.write_env(home)
            settings = json.loads(env_file.read_text())
            settings["irods_port"] = tap.port
            env_file.write_text(json.dumps(settings))
            env = {**self.env, "HOME": str(home)}
            for op, variant, argv in (
                ("put", "isync", [ISYNC, str(src), f"irods:{obj}"]),
                ("put", "prc", self.prc("put", src, obj, False)),
                ("overwrite", "isync", [ISYNC, "-f", str(src), f"irods:{obj}"]),
                ("overwrite", "prc", self.prc("put", src, obj, True)),
                ("get", "isync", [ISYNC, f"irods:{obj}", str(back)]),
                ("get", "prc", self.prc("get", back, obj, False)),
            ):
                if op == "put":
                    self.remove(obj)
                elif op == "overwrite":
                    stale()
                back.unlink(missing_ok=True)
                tap.reset()
                self.run(argv, env)
                tap.wait_closed()
                m.runs[f"{op} {variant}"] = [float(len(tap.requests))]
                m.checksums[f"{op} {variant}"] = _checksum_requests(tap)
        return m

    def small(
        self, count: int, rounds: int, name: str = "small files put", wire_count: bool = False
    ) -> Measure:
        """``count`` files of 4 KiB: one ``isync -r`` process (bundles of 50 files per
        request, and ``--no-bulk``: one request per file) against one PRC loop process,
        each into a new collection per round; with ``wire_count`` each once more, untimed,
        through the counting proxy (requests per file)."""
        src = self.work / f"small-{count}"
        if not src.exists():
            src.mkdir()
            for i in range(count):
                (src / f"f{i:05}.dat").write_bytes(os.urandom(4096))
        m = Measure(name, files=count)
        tag = uuid.uuid4().hex[:8]

        def variants(base: str) -> list[tuple[str, list[str]]]:
            return [
                ("isync", [ISYNC, "-r", f"{src}/", f"irods:{base}-i"]),
                # one request per file (606), as before bundles: the same run's "before"
                ("isync --no-bulk", [ISYNC, "-r", "--no-bulk", f"{src}/", f"irods:{base}-n"]),
                ("prc", self.prc("putdir", src, f"{base}-p", False)),
            ]

        for r in range(-1, rounds):
            runs = variants(f"{self.home}/small-{tag}-{r + 1}")
            shift = max(r, 0) % len(runs)  # the order rotates between rounds
            for variant, argv in runs[shift:] + runs[:shift]:
                elapsed = self.run(argv)
                if r >= 0:
                    m.runs.setdefault(variant, []).append(elapsed)
                    m.cpu.setdefault(variant, []).append(self.last_cpu)
        if wire_count:
            m.requests = self.small_requests(variants(f"{self.home}/small-{tag}-tap"))
        return m

    def small_requests(self, runs: list[tuple[str, list[str]]]) -> dict[str, int]:
        """Requests each small-files variant sends, once through the counting proxy."""
        from bench._wiretap import WireTap

        out: dict[str, int] = {}
        with WireTap(self.server.host, self.server.port) as tap:
            home = self.work / "tap-home"
            env_file = self.server.write_env(home)
            settings = json.loads(env_file.read_text())
            settings["irods_port"] = tap.port
            env_file.write_text(json.dumps(settings))
            for variant, argv in runs:
                tap.reset()
                self.run(argv, {**self.env, "HOME": str(home)})
                tap.wait_closed()
                out[variant] = len(tap.requests)
        return out

    def startup(self, rounds: int) -> Measure:
        m = Measure("start-up")
        for _ in range(max(rounds, 5)):
            m.runs.setdefault("isync --help", []).append(self.run([ISYNC, "--help"]))
            probe = [sys.executable, "-c", "import irods.session"]
            m.runs.setdefault("import irods.session", []).append(self.run(probe))
        return m


#: API 629 and the keywords that make the server hash a replica on open, close or put.
CHECKSUM_API = 629
CHECKSUM_KEYWORDS = frozenset({kw.REG_CHKSUM_KW, kw.VERIFY_CHKSUM_KW, kw.FORCE_CHKSUM_KW})


def _checksum_requests(tap: Any) -> int:
    """Requests seen by ``tap`` that ask the server for a checksum."""
    return sum(
        1 for r in tap.requests if r.api == CHECKSUM_API or CHECKSUM_KEYWORDS & set(r.keywords)
    )


def _print_runs(m: Measure) -> None:
    """One line per variant of a finished measure, at once (before the final table)."""
    for variant, runs in m.runs.items():
        cpu = m.cpu.get(variant)
        extra = (
            f"  cpu client+server {m.cpu_median(variant)[0]:.2f}+{m.cpu_median(variant)[1]:.2f} s"
            if cpu
            else ""
        )
        print(f"# {m.name}: {variant}: {', '.join(f'{x:.3f}' for x in runs)}{extra}", flush=True)
    for variant, n in m.requests.items():
        print(f"# {m.name}: {variant}: {n} requests for {m.files} files", flush=True)


def _sha256_seconds(path: Path) -> float:
    """One core hashing the file (page cache warm): the floor of what -K adds."""
    h = hashlib.sha256()
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return time.perf_counter() - t0


def _met(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else "NOT met"


def report(measures: list[Measure]) -> None:
    """Every figure beside its goal, then the machine's limits and the raw runs."""
    print(f"{'measure':<30} {'isync':>20} {'prc':>20} {'ratio':>7} {'goal':>6}")
    for m in measures:
        if "prc" in m.runs:
            goal = GOALS.get(m.name.rsplit(" ", 2)[0] if m.nbytes else m.name, 0.0)
            print(
                f"{m.name:<30} {m.show('isync'):>20} {m.show('prc'):>20} "
                f"{m.ratio():6.2f}x {goal:5.1f}x {_met(m.ratio(), goal)}"
            )
            if "isync -K" in m.runs:
                print(
                    f"{'  with -K':<30} {m.show('isync -K'):>20} {'':>20} "
                    f"{m.ratio('isync -K'):6.2f}x"
                )
            if m.cpu:
                (ic, iserv), (pc, pserv) = m.cpu_median("isync"), m.cpu_median("prc")
                print(
                    f"{'  cpu s client + server':<30} {f'{ic:.2f} + {iserv:.2f}':>20} "
                    f"{f'{pc:.2f} + {pserv:.2f}':>20}"
                )
            if "isync --no-bulk" in m.runs:
                print(
                    f"{'  isync --no-bulk (606 each)':<30} {m.show('isync --no-bulk'):>20} "
                    f"{'':>20} {m.ratio('isync --no-bulk'):6.2f}x"
                )
            if m.files:
                per = {v: m.median(v) / m.files * 1000 for v in ("isync", "prc")}
                print(f"{'  ms per file':<30} {per['isync']:17.2f} ms {per['prc']:17.2f} ms")
                for v in ("isync", "isync --no-bulk", "prc"):
                    if v in m.cpu:
                        c, sv = m.cpu_median(v)
                        print(
                            f"{'  cpu ms/file ' + v:<30} client {c / m.files * 1000:.3f}"
                            f"  server {sv / m.files * 1000:.3f}"
                        )
            for v, n in m.requests.items():
                print(f"{'  requests/file ' + v:<30} {n / m.files:8.3f} ({n} for {m.files} files)")
            if m.files and "real-zone" in m.name:
                rz = REAL_ZONE_SMALL
                print(
                    f"{'  real 5.0.2 zone (2 cores)':<30} "
                    f"{rz['isync'] / rz['files'] * 1000:17.2f} ms "
                    f"{rz['prc'] / rz['files'] * 1000:17.2f} ms {rz['prc'] / rz['isync']:6.2f}x"
                    f"  ({rz['files']} files, issue 15)"
                )
        elif m.name.startswith("limits"):
            label = "sha256, one core " + m.name[len("limits ") :]
            print(
                f"{label:<30} {m.nbytes / m.median('sha256') / MiB:9.0f} MiB/s"
                f"   cp into the vault {m.nbytes / m.median('cp') / MiB:.0f} MiB/s"
                f"   server checksum {m.median('server sha256'):.2f} s"
            )
        elif m.name.startswith("round trips"):
            mib = m.nbytes / MiB
            for op in ("put", "overwrite", "get"):
                ours, theirs = m.runs[f"{op} isync"][0], m.runs[f"{op} prc"][0]
                sums = m.checksums[f"{op} isync"], m.checksums[f"{op} prc"]
                print(
                    f"{op + ' requests ' + m.name[len('round trips ') :]:<30} "
                    f"{ours:8.0f} ({ours / mib:.2f}/MiB) {theirs:8.0f} ({theirs / mib:.2f}/MiB) "
                    f"{theirs / ours:6.2f}x  checksum requests {sums[0]} / {sums[1]}"
                )
        elif m.name == "start-up":
            t = m.median("isync --help")
            print(
                f"{'isync --help':<30} {t * 1000:17.0f} ms {'':>20} {'':>7} "
                f"< {HELP_GOAL_S * 1000:.0f} ms {'met' if t < HELP_GOAL_S else 'NOT met'}"
            )
    for cost in _checksum_costs(measures):
        print(
            f"{'-K cost ' + cost.label:<30} {cost.cost:17.2f} s  budget {cost.budget:.2f} s "
            f"{cost.ratio:6.2f}x {CHECKSUM_GOAL:5.1f}x {_met(cost.ratio, CHECKSUM_GOAL)}"
        )
    for m in measures:
        for variant, runs in m.runs.items():
            print(f"    {m.name:<24} {variant:<22} runs: {', '.join(f'{x:.3f}' for x in runs)}")


@dataclass
class ChecksumCost:
    """-K's extra seconds at one size against one sha256 pass plus the server's checksum."""

    label: str
    cost: float
    budget: float

    @property
    def ratio(self) -> float:
        return self.budget / self.cost if self.cost > 0 else float("inf")


def _checksum_costs(measures: list[Measure]) -> list[ChecksumCost]:
    limits = {m.name[len("limits ") :]: m for m in measures if m.name.startswith("limits")}
    out = []
    for m in measures:
        if "isync -K" in m.runs and m.name.startswith("put new "):
            label = m.name[len("put new ") :]
            lim = limits[label]
            out.append(
                ChecksumCost(
                    label,
                    m.median("isync -K") - m.median("isync"),
                    lim.median("sha256") + lim.median("server sha256"),
                )
            )
    return out


def measure_all(
    sizes_mib: Sequence[int],
    rounds: int,
    small_files: int,
    costed_files: int = 0,
    cost_slots: int = 2,
    on_measure: Callable[[Measure], None] | None = None,
) -> list[Measure]:
    """Every measure against a plain test server; then, if ``costed_files``, small files
    against one that charges a real zone's per-request cost, and against one whose cost
    is bounded by ``cost_slots`` cores (0 skips that one). ``on_measure`` sees each measure
    as soon as it is complete (a run cut short by a time limit keeps what it printed)."""
    from bench._bounded_server import BoundedServer
    from devtools.irods_server.launcher import ServerProcess

    work = Path(tempfile.mkdtemp(prefix="isync-cli-bench-", dir=os.environ.get("BENCH_TMPDIR")))
    try:
        with ServerProcess(work / "server") as server:
            bench = CliBench(server, work)
            try:
                measures = [bench.startup(rounds)]
                for size in sizes_mib:
                    measures += bench.sized(size * MiB, rounds)
                    if on_measure:
                        for m in measures[-6:]:
                            on_measure(m)
                if small_files:
                    measures.append(bench.small(small_files, rounds, wire_count=True))
                    if on_measure:
                        on_measure(measures[-1])
            finally:
                bench.session.cleanup()
        if costed_files:
            with ServerProcess(work / "server-costed", cost="real-zone") as server:
                bench = CliBench(server, work)
                try:
                    measures.append(
                        bench.small(costed_files, rounds, "small files put, real-zone cost")
                    )
                    if on_measure:
                        on_measure(measures[-1])
                finally:
                    bench.session.cleanup()
        if costed_files and cost_slots:
            with BoundedServer(work / "server-bounded", cost="real-zone", slots=cost_slots) as srv:
                bench = CliBench(srv, work)
                name = f"small files put, real-zone cost, {cost_slots} cores"
                GOALS.setdefault(name, GOALS["small files put, real-zone cost"])
                try:
                    measures.append(bench.small(costed_files, rounds, name))
                    if on_measure:
                        on_measure(measures[-1])
                finally:
                    bench.session.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return measures


def _results(measures: list[Measure]) -> list[BenchResult]:
    out: list[BenchResult] = []
    for m in measures:
        if m.name == "start-up":
            t = m.median("isync --help")
            out.append(
                BenchResult(
                    "isync --help",
                    t * 1000,
                    "ms",
                    note=f"goal < {HELP_GOAL_S * 1000:.0f} ms; import irods.session "
                    f"{m.median('import irods.session') * 1000:.0f} ms",
                )
            )
        elif m.name.startswith("limits"):
            out.append(
                BenchResult(
                    f"sha256 one core {m.name[7:]}", m.nbytes / m.median("sha256") / MiB, "MiB/s"
                )
            )
            out.append(
                BenchResult(f"cp into vault {m.name[7:]}", m.nbytes / m.median("cp") / MiB, "MiB/s")
            )
            out.append(BenchResult(f"server checksum {m.name[7:]}", m.median("server sha256"), "s"))
        elif m.name.startswith("round trips"):
            label = m.name[len("round trips ") :]
            for op, name in (
                ("put", "put new"),
                ("overwrite", "put overwrite"),
                ("get", "get new"),
            ):
                ours, theirs = m.runs[f"{op} isync"][0], m.runs[f"{op} prc"][0]
                sums = m.checksums[f"{op} isync"], m.checksums[f"{op} prc"]
                out.append(
                    BenchResult(
                        f"requests isync {name} {label}",
                        ours,
                        "requests",
                        note=f"prc {theirs:.0f}; {theirs / ours:.2f}x fewer; checksum requests "
                        f"isync {sums[0]}, prc {sums[1]}",
                    )
                )
        else:
            key = m.name.rsplit(" ", 2)[0] if m.nbytes else m.name
            note = (
                f"goal {GOALS.get(key, 0.0)}x; "
                f"isync {m.median('isync'):.2f} s, prc {m.median('prc'):.2f} s"
            )
            if "isync -K" in m.runs:
                note += f"; -K {m.ratio('isync -K'):.2f}x"
            if "isync --no-bulk" in m.runs:
                note += f"; --no-bulk {m.ratio('isync --no-bulk'):.2f}x"
            for v, n in m.requests.items():
                note += f"; {v} {n / m.files:.3f} requests/file"
            if m.cpu:
                (ic, iserv), (pc, pserv) = m.cpu_median("isync"), m.cpu_median("prc")
                note += f"; cpu client+server isync {ic:.2f}+{iserv:.2f} s"
                note += f", prc {pc:.2f}+{pserv:.2f} s"
            out.append(
                BenchResult(f"ratio isync/prc whole process {m.name}", m.ratio(), "x", note=note)
            )
    for cost in _checksum_costs(measures):
        out.append(
            BenchResult(
                f"-K budget/cost {cost.label}",
                cost.ratio,
                "x",
                note=f"goal >= {CHECKSUM_GOAL}x; -K costs {cost.cost:.2f} s, one sha256 pass "
                f"plus the server's checksum {cost.budget:.2f} s",
            )
        )
    return out


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def _sizes(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"sizes must be MiB numbers separated by commas, not {text!r}") from None


def run() -> list[BenchResult]:
    """The ``python -m bench`` entry point."""
    measures = measure_all(
        _sizes(os.environ.get("BENCH_CLI_SIZES", "256,1024")),
        _env_int("BENCH_CLI_ROUNDS", 3),
        _env_int("BENCH_CLI_SMALL_FILES", 10_000),
        _env_int("BENCH_CLI_COSTED_FILES", 500),
        _env_int("BENCH_CLI_COST_SLOTS", 2),
    )
    report(measures)
    return _results(measures)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.isync_cli", description=__doc__)
    p.add_argument("--sizes", default="256,1024", help="MiB, comma separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--small-files", type=int, default=10_000)
    p.add_argument("--costed-files", type=int, default=500, help="0 skips")
    p.add_argument(
        "--cost-slots", type=int, default=2, help="cores of the bounded real-zone server; 0 skips"
    )
    args = p.parse_args(argv)
    measures = measure_all(
        _sizes(args.sizes),
        args.rounds,
        args.small_files,
        args.costed_files,
        args.cost_slots,
        on_measure=_print_runs,
    )
    report(measures)
    for r in _results(measures):
        print(r.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
