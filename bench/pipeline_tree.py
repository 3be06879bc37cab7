"""One job of a large tree through the pipeline, against ``isync`` run directly on it.

    python -m bench pipeline_tree       # via the runner
    python -m bench.pipeline_tree       # alone, same settings

The case researchers have: one upload job of a tree of many files (default 100,000 files of
1 KiB - 1 MiB, about 2.3 GB: 95 % log-uniform 1-32 KiB, 5 % log-uniform 32 KiB-1 MiB)
submitted through REST as the service account, run by the worker in a child as the tree's
owner.  The same tree is then put by the ``isync -r`` console script run directly as that
user, with the same repository account, into another new collection: what the pipeline adds
(REST, broker, worker, fork server, events) is the difference.  Rounds alternate the order.

Figures: files/s and MiB/s of each, the ratio pipeline / isync (goal >= 0.90), and the peak
resident memory of the worker process and of the transfer child (VmHWM, sampled every
0.25 s) next to the peak of the direct ``isync`` process; with several tree sizes
(``BENCH_TREE_FILES=10000,100000``) the peaks show whether memory grows with the number of
files (goal: flat).

Settings: ``BENCH_TREE_FILES`` (comma-separated file counts, default ``100000``),
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

GOAL_RATIO = 0.90
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


@dataclass
class PeakSampler:
    """Peak VmHWM (KiB) of the worker processes and of the transfer children below the
    fork servers, sampled until stopped."""

    workers: list[int]
    forkservers: list[int]
    worker_kib: int = 0
    child_kib: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.worker_kib = max([self.worker_kib, *map(_hwm_kib, self.workers)])
            kids = [p for fs in self.forkservers for p in _descendants(fs)]
            self.child_kib = max([self.child_kib, *map(_hwm_kib, kids)])

    def __enter__(self) -> PeakSampler:
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()


@dataclass
class Run:
    seconds: float
    worker_kib: int = 0
    child_kib: int = 0


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


def pipeline_run(stack: Stack, password: str, user: str, src: Path, coll: str) -> Run:
    assert stack.proc is not None
    pids = service_pids(stack.proc.pid)
    with PeakSampler(pids.get("worker", []), pids.get("forkserver", [])) as peaks:
        t0 = time.monotonic()
        asyncio.run(_pipeline_job(stack.fields["api"], password, user, src, coll))
        seconds = time.monotonic() - t0
    return Run(seconds, peaks.worker_kib, peaks.child_kib)


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


def isync_run(home: Path, user: str, src: Path, coll: str) -> Run:
    """``isync -r SRC/ irods:COLL`` as ``user``; its own peak RSS from ``wait4``."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    cmd = ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--"]
    cmd += [ISYNC, "-r", f"{src}/", f"irods:{coll}"]
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
    return Run(seconds, 0, usage.ru_maxrss)  # KiB on Linux


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
    counts = _env_ints("BENCH_TREE_FILES", "100000")
    rounds = max(1, _env_ints("BENCH_TREE_ROUNDS", "1")[0])
    seed = _env_ints("BENCH_TREE_SEED", "1")[0]
    base = Path(tempfile.mkdtemp(prefix="bench-tree-", dir=os.environ.get("BENCH_TMPDIR")))
    base.chmod(0o711)
    user = make_user()
    stack = Stack(base, Settings())
    results: list[BenchResult] = []
    try:
        stack.start()
        irods = stack.fields["irods"]
        password = (Path(stack.fields["local"]) / "streamer.password").read_text().strip()
        home = _isync_home(base, user, irods)
        for n in counts:
            src = base / f"tree-{n}"
            total = make_tree(src, user, n, seed)
            mib = total / (1 << 20)
            runs: dict[str, list[Run]] = {"pipeline": [], "isync": []}
            for r in range(rounds):
                order = ["pipeline", "isync"] if r % 2 == 0 else ["isync", "pipeline"]
                for kind in order:
                    coll = f"/{ZONE}/home/{IRODS_ADMIN[0]}/tree-{kind}-{n}-{r}"
                    if kind == "pipeline":
                        runs[kind].append(pipeline_run(stack, password, user, src, coll))
                    else:
                        runs[kind].append(isync_run(home, user, src, coll))
                    if (got := _objects(irods, coll)) != n:
                        raise RuntimeError(f"{kind} round {r}: {got} of {n} objects in {coll}")
            pipe = _median([x.seconds for x in runs["pipeline"]])
            direct = _median([x.seconds for x in runs["isync"]])
            ratio = direct / pipe
            met = "met" if ratio >= GOAL_RATIO else "NOT met"
            what = f"{n:,} files, {mib:,.0f} MiB"
            results += [
                BenchResult(
                    f"pipeline, one job of {what}",
                    n / pipe,
                    "files/s",
                    note=f"{mib / pipe:.1f} MiB/s; {pipe:.1f} s (median of {rounds})",
                ),
                BenchResult(
                    f"isync -r directly, {what}",
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
            ]
            shutil.rmtree(src, ignore_errors=True)
        load = os.getloadavg()[0]
        results.append(
            BenchResult("load average at the end", load, "", note=f"{os.cpu_count()} cores")
        )
    finally:
        stack.stop()
        remove_account(user)
        shutil.rmtree(base, ignore_errors=True)
    return results


def main() -> int:
    for r in run():
        print(r.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
