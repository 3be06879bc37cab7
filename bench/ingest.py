"""Ingest benchmarks: REGISTER_SYNC and PUT of many small files, and scanner memory.

    python -m bench.ingest [--files 100000] [--workers 4] [--concurrency 2] [--rounds 1]
                           [--no-anchor] [--only ours|anchor] [--ops REGISTER_SYNC,PUT]
                           [--results FILE] [--scan-entries 1000000]

Against one fresh iRODS test server: our ingest (``--workers`` processes of
``python -m services.ingest``, ``--concurrency`` threads each) and the anchor,
irods-capability-automated-ingest 0.7.0 (Celery + Redis, ``celery -c workers``),
installed into its own venv under ``.bench/`` on first use.  Each measure alternates
ours/anchor for ``--rounds`` and prints medians and the ratio (files/s ours / anchor).
The scanner measure walks a tree of ``--scan-entries`` entries through the directory
task's listing and diff in a child process and reports its peak RSS.

``--only`` runs one side and ``--results FILE`` merges each side's seconds into a JSON file,
so the anchor (about 30 minutes per operation at 100,000 files) and ours can run at
different times on the same machine; the ratio line is printed once both are in the file.

Our jobs run as their owner (``--owner``; run as root without it, the bench makes a
throwaway Unix user for the run), with an ingest signing key made for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.accounts import add_account, remove_account

REPO = Path(__file__).resolve().parents[1]
ANCHOR_VENV = REPO / ".bench" / "automated-ingest-0.7.0"
ANCHOR_PINS = [
    "irods-capability-automated-ingest==0.7.0",
    "celery[redis]==5.4.0",
    "kombu==5.4.2",
    "redis==4.6.0",
]
GOAL = 10.0
#: How often the bench asks whether a run finished (seconds; each look costs CPU the run
#: itself competes for, on either side)
POLL = 0.2
SEED_HANDLER = """
from irods_capability_automated_ingest.core import Core
from irods_capability_automated_ingest.utils import Operation

class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.{op}
"""
OUR_HANDLER = SEED_HANDLER.replace("irods_capability_automated_ingest", "shared.ingest")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_tree(root: Path, files: int, per_dir: int = 1000, size: int = 64) -> None:
    payload = b"x" * size
    for i in range(files):
        d = root / f"d{i // per_dir:05d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:07d}").write_bytes(payload)


# --- ours -------------------------------------------------------------------------------


def signing_env(work: Path) -> dict[str, str]:
    """An ingest signing key pair for this run (the workers sign and verify their tasks)."""
    from shared.messaging.signing import generate

    private_pem, public_pem = generate()
    key, pub = work / "ingest.key", work / "ingest.pub"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    pub.write_bytes(public_pem)
    return {"STAGER_SIGNING__KEY": f"file:{key}", "STAGER_SIGNING__INGEST_KEYS": f"file:{pub}"}


@contextlib.contextmanager
def job_owner(name: str | None) -> Iterator[str | None]:
    """The Unix user our jobs run as: ``name``; as root without one, a throwaway user."""
    if name or os.geteuid() != 0:
        yield name
        return
    made = add_account(prefix="stgbench", login_shell="/bin/sh").pw_name
    try:
        yield made
    finally:
        remove_account(made)


class Ours:
    def __init__(
        self, server: Any, work: Path, workers: int, concurrency: int, owner: str | None
    ) -> None:
        self.work = work
        self.db = f"sqlite+aiosqlite:///{work}/ingest.sqlite"
        self.prefix = "bench" + uuid.uuid4().hex[:8]
        self.owner = owner
        self.env = {
            **os.environ,
            **signing_env(work),
            "STAGER_INGEST__ALLOWED_ROOTS": json.dumps([str(work)]),
            "PYTHONPATH": str(REPO),
            "STAGER_INGEST__DB_URL": self.db,
            "STAGER_BROKER__PREFIX": self.prefix,
            "STAGER_INGEST__CONCURRENCY": str(concurrency),
            "STAGER_HTTP_PORT": "0",  # several workers side by side
            "STAGER_IRODS__HOST": server.host,
            "STAGER_IRODS__PORT": str(server.port),
            "STAGER_IRODS__USER": "rods",
            "STAGER_IRODS__ZONE": server.zone,
            "STAGER_IRODS__PASSWORD": server.admin_password,
        }
        asyncio.run(self._make_store())  # its schema once, not by four workers at once
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "services.ingest"],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=open(work / f"worker{i}.log", "w"),  # noqa: SIM115
            )
            for i in range(workers)
        ]

    async def _make_store(self) -> None:
        from services.ingest.store import JobStore

        await (await JobStore.open(self.db)).close()

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until every worker consumes both ingest queues (their start-up is not the
        ingest: the anchor's Celery workers are given time to start too)."""
        asyncio.run(self._wait_ready(time.monotonic() + timeout))

    async def _wait_ready(self, deadline: float) -> None:
        import aio_pika

        from shared.messaging.topology import Names

        names = Names(self.prefix)
        url = self.env.get("STAGER_BROKER__URL", "amqp://guest:guest@127.0.0.1/")
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    log = (self.work / f"worker{i}.log").read_text(errors="replace")
                    raise RuntimeError(f"ingest worker {i} exited at start-up:\n{log[-3000:]}")
            with contextlib.suppress(Exception):  # queues not declared yet
                conn = await aio_pika.connect(url)
                async with conn:
                    ch = await conn.channel()
                    counts = []
                    for q in (names.ingest_dirs_queue, names.ingest_files_queue):
                        queue = await ch.declare_queue(q, passive=True)
                        counts.append(queue.declaration_result.consumer_count or 0)
                    if min(counts) >= len(self.procs):
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError("the ingest workers did not start consuming in time")

    def run(self, root: Path, target: str, op: str, files_per_task: int = 50) -> float:
        return asyncio.run(self._run(root, target, op, files_per_task))

    async def _run(self, root: Path, target: str, op: str, files_per_task: int) -> float:
        from services.ingest.store import ACTIVE, IngestOptions, Job, JobStore

        store = await JobStore.open(self.db)
        try:
            job = Job(
                name="b" + uuid.uuid4().hex[:10],
                root=str(root),
                target=target,
                handler=OUR_HANDLER.format(op=op),
                handler_label=op,
                options=IngestOptions(files_per_task=files_per_task, owner=self.owner),
            )
            t0 = time.perf_counter()
            await store.create(job)
            while True:
                got = await store.get(job.name)
                if got.state not in ACTIVE:
                    break
                await asyncio.sleep(POLL)
            elapsed = time.perf_counter() - t0
            failed = got.counters["files_failed"] + got.counters["tasks_failed"]
            if got.state != "completed" or failed:
                raise RuntimeError(f"our {op} run failed: {got.state} {got.error} {got.counters}")
            return elapsed
        finally:
            await store.close()

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_queues())

    async def _delete_queues(self) -> None:
        import aio_pika

        from shared.messaging.topology import Names

        conn = await aio_pika.connect(
            self.env.get("STAGER_BROKER__URL", "amqp://guest:guest@127.0.0.1/")
        )
        async with conn:
            ch = await conn.channel()
            names = Names(self.prefix)
            for q in (names.ingest_dirs_queue, names.ingest_files_queue):
                await ch.queue_delete(q)


# --- the anchor -------------------------------------------------------------------------


def ensure_anchor() -> Path:
    """The anchor's venv (created and pinned on first use); returns its python."""
    python = ANCHOR_VENV / "bin" / "python"
    if not (ANCHOR_VENV / ".installed").exists():
        ANCHOR_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PINS], check=True)
        (ANCHOR_VENV / ".installed").touch()
    return python


class Anchor:
    def __init__(self, server: Any, work: Path, workers: int) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.python = ensure_anchor()
        self.work = work
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        self.env = {
            **os.environ,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "IRODS_HOST": server.host,
            "IRODS_PORT": str(server.port),
            "IRODS_USER_NAME": "rods",
            "IRODS_ZONE_NAME": server.zone,
            "IRODS_PASSWORD": server.admin_password,
        }
        self.env.pop("PYTHONPATH", None)
        time.sleep(0.5)
        celery = str(ANCHOR_VENV / "bin" / "celery")
        self.workers = subprocess.Popen(
            [
                celery,
                "-A",
                "irods_capability_automated_ingest",
                "worker",
                "-l",
                "error",
                "-Q",
                "restart,path,file",
                "-c",
                str(workers),
            ],
            cwd=work,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "celery.log", "w"),  # noqa: SIM115
        )
        time.sleep(3)

    def run(self, root: Path, target: str, op: str, files_per_task: int = 50) -> float:
        handler = self.work / f"anchor_{op.lower()}.py"
        handler.write_text(SEED_HANDLER.format(op=op))
        cmd = [
            str(self.python),
            "-m",
            "irods_capability_automated_ingest.irods_sync",
            "start",
            str(root),
            target,
            "--synchronous",
            "--event_handler",
            str(handler),
            "--job_name",
            "a" + uuid.uuid4().hex[:10],
            "--files_per_task",
            str(files_per_task),
            "--redis_host",
            "127.0.0.1",
            "--redis_port",
            str(self.redis_port),
        ]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=self.work, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"anchor {op} failed: {done.stderr[-2000:]}")
        return elapsed

    def close(self) -> None:
        for p in (self.workers, self.redis):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(15)


# --- scanner memory ---------------------------------------------------------------------

SCAN_CHILD = """
import resource, sys
from services.ingest.diff import classify
from services.ingest.scanner import Excludes, walk
from shared.ingest.utils import Operation
n = 0
for path, listing in walk(sys.argv[1], Excludes()):
    for e in listing.entries:
        if not e.is_dir:
            classify([], e.size, e.mtime, Operation.REGISTER_SYNC, e.path)
            n += 1
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def scanner_memory(work: Path, entries: int) -> tuple[int, int]:
    root = work / "scan"
    make_tree(root, entries, per_dir=1000, size=0)
    out = subprocess.run(
        [sys.executable, "-c", SCAN_CHILD, str(root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    shutil.rmtree(root, ignore_errors=True)
    return int(out[0]), int(out[1])


# --- main -------------------------------------------------------------------------------


@contextlib.contextmanager
def server(work: Path) -> Iterator[Any]:
    sys.path.insert(0, str(REPO))
    from devtools.irods_server.launcher import ServerProcess

    with ServerProcess(work / "irods") as srv:
        yield srv


def save_results(path: Path, key: str, results: dict[str, dict[str, list[float]]]) -> None:
    """Merge this run's seconds into ``path`` (one entry per file count and worker count)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = results
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--files-per-task", type=int, default=50, help="both sides' batch size")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-anchor", action="store_true")
    p.add_argument("--only", choices=("ours", "anchor"), help="run one side only")
    p.add_argument("--ops", default="REGISTER_SYNC,PUT", help="comma-separated operations")
    p.add_argument("--results", type=Path, help="JSON file the seconds are merged into")
    p.add_argument("--scan-entries", type=int, default=1_000_000)
    p.add_argument("--owner", help="the Unix user our jobs run as (default: a throwaway one)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work.chmod(0o755)  # the jobs' owner reads the tree
    results: dict[str, dict[str, list[float]]] = {}
    key = f"{args.files}:{args.workers}"
    if args.files_per_task != 50:
        key += f":{args.files_per_task}"
    if args.results and args.results.exists():
        results = json.loads(args.results.read_text()).get(key, {})
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    try:
        src = work / "src"
        if ops:
            make_tree(src, args.files)
        with server(work) as srv, job_owner(args.owner) as owner:
            ours = (
                None
                if args.only == "anchor"
                else Ours(srv, work, args.workers, args.concurrency, owner)
            )
            if ours is not None:
                ours.wait_ready()
            anchor = (
                None if args.no_anchor or args.only == "ours" else Anchor(srv, work, args.workers)
            )
            try:
                for op in ops:
                    for who in ("ours", "anchor"):
                        if (ours if who == "ours" else anchor) is not None:
                            results.setdefault(op, {})[who] = []
                    for r in range(args.rounds):
                        for who, runner in (("ours", ours), ("anchor", anchor)):
                            if runner is None:
                                continue
                            target = f"/{srv.zone}/home/rods/{who}_{op.lower()}_{r}"
                            secs = runner.run(src, target, op, args.files_per_task)
                            results.setdefault(op, {}).setdefault(who, []).append(secs)
                            print(f"  {who} {op} round {r}: {secs:.1f} s", flush=True)
                            if args.results:
                                save_results(args.results, key, results)
            finally:
                if ours is not None:
                    ours.close()
                if anchor is not None:
                    anchor.close()
        for op, by in results.items():
            if not by.get("ours") and not by.get("anchor"):
                continue
            line = f"ingest {op:<14} {args.files} files, {args.workers} workers:"
            ours_fps = args.files / statistics.median(by["ours"]) if by.get("ours") else None
            if ours_fps is not None:
                line += f" ours {ours_fps:8.0f} files/s"
            if by.get("anchor"):
                anchor_fps = args.files / statistics.median(by["anchor"])
                line += f"  anchor {anchor_fps:8.0f} files/s"
            if ours_fps is not None and by.get("anchor"):
                ratio = ours_fps / (args.files / statistics.median(by["anchor"]))
                line += f"  ratio {ratio:5.2f}x (goal {GOAL}x)"
            print(line, flush=True)
        if args.scan_entries:
            n, rss = scanner_memory(work, args.scan_entries)
            print(f"ingest scanner memory    {n} entries: peak RSS {rss} MB (goal < 300 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
