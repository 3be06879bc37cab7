"""One job of a large tree through the pipeline, against ``isync`` run directly on it.

    python -m bench pipeline_tree       # via the runner
    python -m bench.pipeline_tree       # alone, same settings

The case researchers have: one upload job of a tree of many files (default 100,000 files of
1 KiB - 1 MiB, about 2.3 GB: 95 % log-uniform 1-32 KiB, 5 % log-uniform 32 KiB-1 MiB)
submitted through REST as the service account, run by the worker in a child as the tree's
owner.  The same tree is then put by the ``isync -r`` console script run directly as that
user, with the same repository account, into another new collection: what the pipeline adds
(REST, broker, worker, fork server, events) is the difference.  Rounds alternate the order.

``isync`` runs with the options the worker's transfers have (``-r``, and ``-K`` since the
worker verifies checksums by default: ``TransferDefaults``), so both do the same work.

Figures per tree size: files/s and MiB/s of each, the ratio pipeline / isync (goal >=
0.90), the peak resident memory of the worker process and of the transfer child (VmHWM,
sampled every 0.25 s) next to the peak of the direct ``isync`` process, CPU ms per file by
process (API, worker, fork server, child, test server; isync and test server), and the
task events the job sent with the API's store transactions applying them (the API's
``stager_events_total`` and ``stager_event_batches_total``).  With two or more sizes
(default ``10000,100000``) the peak growth from the smallest to the largest tree, per
process (goal: flat, at most 16 MiB).

Settings: ``BENCH_TREE_FILES`` (comma-separated file counts, default ``10000,100000``),
``BENCH_TREE_ROUNDS`` (1), ``BENCH_TREE_SEED`` (1), ``BENCH_TMPDIR``; the stack is
``bench.pipeline``'s (``BENCH_PIPELINE_WORKERS``, ``BENCH_PIPELINE_CONCURRENCY``,
``BENCH_PIPELINE_LOG_LEVEL``).  Needs root (a Unix user owns the tree).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import BenchResult
from bench.pipeline import Settings, Stack, client, make_user, service_pids
from devtools.accounts import remove_account
from scripts.up import IRODS_ADMIN
from services.worker.settings import TransferDefaults

GOAL_RATIO = 0.90
#: "Flat in the number of files": peak RSS at the largest tree at most this much above the
#: smallest (allocator noise, interpreter caches), not a growth per file.
GOAL_FLAT_MIB = 16.0
DEFAULT_FILES = "10000,100000"
ZONE = "tempZone"
ISYNC = str(Path(sys.executable).with_name("isync"))


def _env_ints(name: str, default: str) -> list[int]:
    return [int(x) for x in (os.environ.get(name) or default).split(",") if x.strip()]


def file_sizes(n: int, seed: int) -> list[int]:
    """``n`` sizes: 95 % log-uniform in [1 KiB, 32 KiB), 5 % in [32 KiB, 1 MiB]."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lo, hi = (10, 15) if rng.random() < 0.95 else (15, 20)
        out.append(int(2 ** rng.uniform(lo, hi)))
    return out


def make_tree(root: Path, user: str, n: int, seed: int) -> int:
    """``n`` files in directories of 1,000 (and sub-directories of 100) owned by ``user``;
    their total size."""
    pw = pwd.getpwnam(user)
    total = 0
    chunk = os.urandom(1 << 20)
    root.mkdir(mode=0o700)
    for i, size in enumerate(file_sizes(n, seed)):
        d = root / f"d{i // 1000:03d}" / f"s{(i // 100) % 10}"
        if not d.is_dir():
            d.mkdir(parents=True)
        fd = os.open(d / f"f{i:06d}.dat", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            off = (i * 4099) % (len(chunk) - size) if size < len(chunk) else 0
            os.write(fd, chunk[off : off + size])
        finally:
            os.close(fd)
        total += size
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)
    os.chown(root, pw.pw_uid, pw.pw_gid)
    return total


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(by_parent.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += by_parent.get(pid, [])
    return out


def _own_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` itself (not its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


@dataclass
class PeakSampler:
    """Peak VmHWM (KiB) of the worker processes and of the transfer children below the
    fork servers, and the children's CPU seconds (last seen per pid), sampled until
    stopped."""

    workers: list[int]
    forkservers: list[int]
    worker_kib: int = 0
    child_kib: int = 0
    child_cpu: dict[int, float] = field(default_factory=dict)
    #: CPU of the children alive before the run (a warm child kept from an earlier job)
    child_cpu_before: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def child_cpu_seconds(self) -> float:
        """The children's CPU seconds during the run."""
        return sum(v - self.child_cpu_before.get(p, 0.0) for p, v in self.child_cpu.items())

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.sample()

    def sample(self) -> None:
        self.worker_kib = max([self.worker_kib, *map(_hwm_kib, self.workers)])
        kids = [p for fs in self.forkservers for p in _descendants(fs)]
        self.child_kib = max([self.child_kib, *map(_hwm_kib, kids)])
        for pid in kids:
            self.child_cpu[pid] = max(self.child_cpu.get(pid, 0.0), _own_cpu(pid))

    def __enter__(self) -> PeakSampler:
        kids = [p for fs in self.forkservers for p in _descendants(fs)]
        self.child_cpu_before = {p: _own_cpu(p) for p in kids}
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.sample()


@dataclass
class Run:
    """One timed run: seconds, peak RSS (KiB), CPU seconds by process, and for the pipeline
    the API's event counters over the run."""

    seconds: float
    worker_kib: int = 0
    child_kib: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    events: float = 0.0
    event_batches: float = 0.0


async def _pipeline_job(api: str, password: str, user: str, src: Path, coll: str) -> None:
    body = {
        "title": f"tree {src.name}",
        "stagerUser": user,
        "drUser": IRODS_ADMIN[0],
        "srcURL": f"{src}/",
        "dstURL": f"irods:{coll}",
        "timeout": 6 * 3600,
    }
    async with client(password, Settings()) as http:
        async with http.post(f"{api}/v1/job", json=body) as r:
            job = await r.json()
            if r.status != 200:
                raise RuntimeError(f"submit: {r.status} {str(job)[:300]}")
        while job["status"]["status"] not in ("completed", "archived", "cancelled"):
            await asyncio.sleep(0.5)
            async with http.get(f"{api}/v1/job/{job['id']}") as r:
                job = await r.json()
        if job["status"]["status"] != "completed":
            raise RuntimeError(f"the tree job ended {job['status']}")


async def _api_counters(api: str, password: str) -> dict[str, float]:
    """The API's event counters: events received and store transactions applying them."""
    async with client(password, Settings()) as http, http.get(f"{api}/metrics") as r:
        text = await r.text()
    found = {"events": 0.0, "event_batches": 0.0}
    for line in text.splitlines():
        if line.startswith("stager_events_total{"):
            found["events"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("stager_event_batches_total "):
            found["event_batches"] = float(line.rsplit(" ", 1)[1])
    return found


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {k: sum(_own_cpu(p) for p in ps) for k, ps in pids.items() if "rabbitmq" not in k}


def pipeline_run(stack: Stack, password: str, user: str, src: Path, coll: str) -> Run:
    assert stack.proc is not None
    api = stack.fields["api"]
    pids = service_pids(stack.proc.pid)
    before = asyncio.run(_api_counters(api, password))
    cpu0 = _cpu(pids)
    with PeakSampler(pids.get("worker", []), pids.get("forkserver", [])) as peaks:
        t0 = time.monotonic()
        asyncio.run(_pipeline_job(api, password, user, src, coll))
        seconds = time.monotonic() - t0
    cpu1 = _cpu(pids)
    after = asyncio.run(_api_counters(api, password))
    cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    cpu["child"] = peaks.child_cpu_seconds
    return Run(
        seconds,
        peaks.worker_kib,
        peaks.child_kib,
        cpu,
        events=after["events"] - before["events"],
        event_batches=after["event_batches"] - before["event_batches"],
    )


def _isync_home(base: Path, user: str, irods: str) -> Path:
    from irods.password_obfuscation import encode

    home = base / f"home-{uuid.uuid4().hex[:6]}"
    (home / ".irods").mkdir(parents=True)
    host, port = irods.rsplit(":", 1)
    env = {
        "irods_host": host,
        "irods_port": int(port),
        "irods_user_name": IRODS_ADMIN[0],
        "irods_zone_name": ZONE,
        "irods_default_resource": "demoResc",
        "irods_home": f"/{ZONE}/home/{IRODS_ADMIN[0]}",
    }
    (home / ".irods" / "irods_environment.json").write_text(json.dumps(env))
    pw = pwd.getpwnam(user)
    # the obfuscation is keyed by the uid that reads it
    (home / ".irods" / ".irodsA").write_text(encode(IRODS_ADMIN[1], uid=pw.pw_uid))
    for dirpath, _dirs, files in os.walk(home):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
    (home / ".irods" / ".irodsA").chmod(0o600)
    return home


def isync_args() -> list[str]:
    """The ``isync`` options that do what the worker's transfers do: recursive, and
    ``-K`` when the worker verifies checksums (its default)."""
    defaults = TransferDefaults()
    return ["-r"] + (["-K"] if defaults.verify_checksum else [])


def isync_run(home: Path, user: str, src: Path, coll: str, irods_pids: list[int]) -> Run:
    """``isync -r [-K] SRC/ irods:COLL`` as ``user``; its own peak RSS and CPU from
    ``wait4``, and the test server's CPU over the run."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    cmd = ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--"]
    cmd += [ISYNC, *isync_args(), f"{src}/", f"irods:{coll}"]
    server0 = sum(_own_cpu(p) for p in irods_pids)
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-300:]
            raise RuntimeError(f"isync exited {proc.returncode}: {tail}")
    cpu = {
        "isync": usage.ru_utime + usage.ru_stime,
        "irods": sum(_own_cpu(p) for p in irods_pids) - server0,
    }
    return Run(seconds, 0, usage.ru_maxrss, cpu)  # KiB on Linux


def _objects(irods: str, coll: str) -> int:
    from irods.column import Like
    from irods.models import Collection, DataObject
    from irods.session import iRODSSession

    host, port = irods.rsplit(":", 1)
    user, password = IRODS_ADMIN
    with iRODSSession(host=host, port=int(port), zone=ZONE, user=user, password=password) as s:
        q = s.query(DataObject.id).filter(Like(Collection.name, f"{coll}%"))
        return sum(1 for _ in q.get_results())


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def run() -> list[BenchResult]:
    if os.geteuid() != 0:
        raise RuntimeError("needs root: a Unix user owns the tree and the worker setuids to it")
    counts = _env_ints("BENCH_TREE_FILES", DEFAULT_FILES)
    rounds = max(1, _env_ints("BENCH_TREE_ROUNDS", "1")[0])
    seed = _env_ints("BENCH_TREE_SEED", "1")[0]
    base = Path(tempfile.mkdtemp(prefix="bench-tree-", dir=os.environ.get("BENCH_TMPDIR")))
    base.chmod(0o711)
    user = make_user()
    stack = Stack(base, Settings())
    results: list[BenchResult] = []
    peaks: dict[int, tuple[float, float, float]] = {}  # files -> worker, child, isync MiB
    try:
        stack.start()
        assert stack.proc is not None
        irods = stack.fields["irods"]
        irods_pids = service_pids(stack.proc.pid).get("irods", [])
        password = (Path(stack.fields["local"]) / "streamer.password").read_text().strip()
        home = _isync_home(base, user, irods)
        for n in counts:
            src = base / f"tree-{n}"
            total = make_tree(src, user, n, seed)
            runs: dict[str, list[Run]] = {"pipeline": [], "isync": []}
            loads: list[float] = []
            for r in range(rounds):
                order = ["pipeline", "isync"] if r % 2 == 0 else ["isync", "pipeline"]
                for kind in order:
                    coll = f"/{ZONE}/home/{IRODS_ADMIN[0]}/tree-{kind}-{n}-{r}"
                    if kind == "pipeline":
                        runs[kind].append(pipeline_run(stack, password, user, src, coll))
                    else:
                        runs[kind].append(isync_run(home, user, src, coll, irods_pids))
                    loads.append(os.getloadavg()[0])
                    if (got := _objects(irods, coll)) != n:
                        raise RuntimeError(f"{kind} round {r}: {got} of {n} objects in {coll}")
            results += size_results(n, total, runs, loads)
            peaks[n] = (
                max(x.worker_kib for x in runs["pipeline"]) / 1024,
                max(x.child_kib for x in runs["pipeline"]) / 1024,
                max(x.child_kib for x in runs["isync"]) / 1024,
            )
            shutil.rmtree(src, ignore_errors=True)
        results += growth_results(peaks)
        load = os.getloadavg()[0]
        results.append(
            BenchResult("load average at the end", load, "", note=f"{os.cpu_count()} cores")
        )
    finally:
        stack.stop()
        remove_account(user)
        shutil.rmtree(base, ignore_errors=True)
    return results


def size_results(
    n: int, total: int, runs: dict[str, list[Run]], loads: list[float]
) -> list[BenchResult]:
    """The figures of one tree size: rates, the ratio and its goal, memory, CPU per file,
    events and store transactions per job."""
    rounds = len(runs["pipeline"])
    mib = total / (1 << 20)
    pipe = _median([x.seconds for x in runs["pipeline"]])
    direct = _median([x.seconds for x in runs["isync"]])
    ratio = direct / pipe
    met = "met" if ratio >= GOAL_RATIO else "NOT met"
    what = f"{n:,} files, {mib:,.0f} MiB"
    load = f"load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"

    def cpu_ms(kind: str) -> str:
        keys = sorted({k for x in runs[kind] for k in x.cpu})
        per = {k: _median([x.cpu.get(k, 0.0) for x in runs[kind]]) * 1000 / n for k in keys}
        return ", ".join(f"{k} {v:.2f}" for k, v in per.items())

    events = _median([x.events for x in runs["pipeline"]])
    batches = _median([x.event_batches for x in runs["pipeline"]])
    return [
        BenchResult(
            f"pipeline, one job of {what}",
            n / pipe,
            "files/s",
            note=f"{mib / pipe:.1f} MiB/s; {pipe:.1f} s (median of {rounds}); {load}",
        ),
        BenchResult(
            f"isync {' '.join(isync_args())} directly, {what}",
            n / direct,
            "files/s",
            note=f"{mib / direct:.1f} MiB/s; {direct:.1f} s",
        ),
        BenchResult(
            f"pipeline / isync, {what}",
            ratio,
            "x",
            note=f"{ratio:.2f}x, goal >= {GOAL_RATIO:.2f}: {met}",
        ),
        BenchResult(
            f"peak RSS worker, {what}",
            max(x.worker_kib for x in runs["pipeline"]) / 1024,
            "MiB",
        ),
        BenchResult(
            f"peak RSS transfer child, {what}",
            max(x.child_kib for x in runs["pipeline"]) / 1024,
            "MiB",
            note="goal: flat in the number of files",
        ),
        BenchResult(
            f"peak RSS isync process, {what}",
            max(x.child_kib for x in runs["isync"]) / 1024,
            "MiB",
        ),
        BenchResult(
            f"CPU ms per file, pipeline, {what}",
            sum(
                _median([x.cpu.get(k, 0.0) for x in runs["pipeline"]])
                for k in runs["pipeline"][0].cpu
            )
            * 1000
            / n,
            "ms",
            note=cpu_ms("pipeline"),
        ),
        BenchResult(
            f"CPU ms per file, isync directly, {what}",
            sum(_median([x.cpu.get(k, 0.0) for x in runs["isync"]]) for k in runs["isync"][0].cpu)
            * 1000
            / n,
            "ms",
            note=cpu_ms("isync"),
        ),
        BenchResult(
            f"task events per job, {what}",
            events,
            "",
            note=f"{events / n:.4f} per file (+1 task message per job); "
            f"{batches:.0f} store transactions, {batches / n:.4f} per file",
        ),
    ]


def growth_results(peaks: dict[int, tuple[float, float, float]]) -> list[BenchResult]:
    """Peak RSS at the largest tree against the smallest, per process (goal: flat)."""
    if len(peaks) < 2:
        return []
    small, large = min(peaks), max(peaks)
    out = []
    for i, name in enumerate(("worker", "transfer child", "isync process")):
        grew = peaks[large][i] - peaks[small][i]
        per = grew * 1024 * 1024 / (large - small)
        flat = "met" if grew <= GOAL_FLAT_MIB else "NOT met"
        out.append(
            BenchResult(
                f"peak RSS growth {name}, {small:,} -> {large:,} files",
                grew,
                "MiB",
                note=f"{per:.0f} bytes per file; goal flat (<= {GOAL_FLAT_MIB:.0f} MiB): {flat}",
            )
        )
    return out


def main() -> int:
    for r in run():
        print(r.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
