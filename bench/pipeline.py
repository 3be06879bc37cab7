"""Pipeline benchmark: 1,000 one-file upload jobs submitted at once through REST.

    python -m bench pipeline          # via the runner
    python -m bench.pipeline          # alone, same settings

Runs the local stack exactly as ``make up`` does (``python -m scripts.up --ephemeral``:
API on SQLite, worker(s), the iRODS test server, a private RabbitMQ prefix) in a temp dir,
creates a Unix user (needs root) owning one small file per job, and submits every job as
the service account ``streamer`` (no drPass: the worker uses its repository credential).
Figures: jobs/s from the submit request to the last job seen ``completed`` (polling the
API's ``/metrics``), and p50/p99 of submit → completed per job (``created_at`` →
``completed_at`` in the task store, read after the run).  Goal on the 2-core machine:
>= 100 jobs/s, p50 < 300 ms.

Settings: ``BENCH_PIPELINE_JOBS`` (1000), ``BENCH_PIPELINE_MODE`` (``batch``: one
``POST /v1/jobs`` with every job, at most 1000 per request; ``single``: one
``POST /v1/job`` per job, ``BENCH_PIPELINE_CLIENTS`` (32) at a time),
``BENCH_PIPELINE_WORKERS`` (1 worker process), ``BENCH_PIPELINE_CONCURRENCY`` (8
transfers per worker), ``BENCH_PIPELINE_LOG_LEVEL`` (``warning``), ``BENCH_TMPDIR``,
``BENCH_PIPELINE_PROFILE`` (a directory: record each service with ``py-spy record
--subprocesses --format raw`` into ``<service>.txt``; needs ``pip install py-spy``).
CPU seconds used by each service during the run are printed too, with the load average:
on a shared machine they show where the work went better than wall time does.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench import BenchResult
from devtools.accounts import add_account, remove_account
from scripts.up import IRODS_ADMIN, READY_LINE, REPO

GOAL_RATE = 100.0  # jobs/s
GOAL_P50 = 0.300  # s
MAX_BATCH = 1000
COMPLETED_RE = re.compile(r'^stager_jobs_total\{state="(completed|archived)"\} (\S+)$', re.M)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


@dataclass
class Settings:
    """What to run (from ``BENCH_PIPELINE_*``)."""

    jobs: int = field(default_factory=lambda: _env_int("BENCH_PIPELINE_JOBS", 1000))
    mode: str = field(default_factory=lambda: os.environ.get("BENCH_PIPELINE_MODE", "batch"))
    serial: int = field(default_factory=lambda: _env_int("BENCH_PIPELINE_SERIAL", 20))
    clients: int = field(default_factory=lambda: _env_int("BENCH_PIPELINE_CLIENTS", 32))
    workers: int = field(default_factory=lambda: _env_int("BENCH_PIPELINE_WORKERS", 1))
    concurrency: int = field(default_factory=lambda: _env_int("BENCH_PIPELINE_CONCURRENCY", 8))
    log_level: str = field(
        default_factory=lambda: os.environ.get("BENCH_PIPELINE_LOG_LEVEL", "warning")
    )


# --- processes -----------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its reaped children (transfer processes)."""
    fields = _proc_stat(pid)
    if fields is None:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def service_pids(root: int) -> dict[str, list[int]]:
    """Service name → pids below ``root`` (irods, api, worker, fork server), by ``-m`` module."""
    kinds = {
        "devtools.irods_server": "irods",
        "services.api": "api",
        "services.worker": "worker",
        "services.worker.forkserver": "forkserver",
    }
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            by_parent.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[str, list[int]] = {}
    todo = list(by_parent.get(root, []))
    while todo:
        pid = todo.pop()
        todo += by_parent.get(pid, [])
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
        if module in kinds:
            found.setdefault(kinds[module], []).append(pid)
    beam = subprocess.run(["pgrep", "-x", "beam.smp"], capture_output=True, text=True, check=False)
    found["rabbitmq (shared)"] = [int(p) for p in beam.stdout.split()]
    return found


def cpu_by_service(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()}


@dataclass
class Stack:
    """``python -m scripts.up --ephemeral`` in ``base/local``, its output kept."""

    base: Path
    settings: Settings
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    fields: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 120.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
        slots = self.settings.concurrency * self.settings.workers
        env |= {
            "STAGER_CONCURRENCY": str(self.settings.concurrency),
            "STAGER_LOG_LEVEL": self.settings.log_level,
            # one user fills every slot: the bench measures throughput, not fairness
            "STAGER_DISPATCH__MAX_IN_FLIGHT_PER_USER": str(slots),
        }
        cmd = [sys.executable, "-m", "scripts.up", "--ephemeral", "--grace", "5"]
        cmd += ["--workers", str(self.settings.workers), "--local-dir", str(self.base / "local")]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(timeout) or not self.fields:
            self.stop()
            raise RuntimeError("the stack did not start:\n" + "\n".join(self.lines[-40:]))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(READY_LINE):
                self.fields = dict(p.split("=", 1) for p in line[len(READY_LINE) :].split())
                self.ready.set()
        self.ready.set()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the job set -------------------------------------------------------------------------


def make_user() -> str:
    return add_account(prefix="stgbench").pw_name


def make_files(base: Path, user: str, n: int) -> Path:
    """``n`` small files owned by ``user`` in a directory only they can read."""
    pw = pwd.getpwnam(user)
    src = base / "src"
    src.mkdir(mode=0o700)
    for i in range(n):
        path = src / f"f{i:05d}.txt"
        path.write_bytes(f"job {i}\n".encode() * 8)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chown(src, pw.pw_uid, pw.pw_gid)
    return src


def job_bodies(user: str, src: Path, coll: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "title": f"bench {i}",
            "stagerUser": user,
            "drUser": "rods",
            "srcURL": str(src / f"f{i:05d}.txt"),
            "dstURL": f"irods:{coll}/f{i:05d}.txt",
        }
        for i in range(n)
    ]


# --- measuring -----------------------------------------------------------------------------


async def submit(
    http: aiohttp.ClientSession, api: str, bodies: list[dict[str, Any]], s: Settings
) -> list[str]:
    """Submit every job; their ids.  Raises when any job is refused."""
    ids: list[str] = []
    if s.mode == "batch":
        for i in range(0, len(bodies), MAX_BATCH):
            async with http.post(f"{api}/v1/jobs", json={"jobs": bodies[i : i + MAX_BATCH]}) as r:
                reply = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"batch submit: {r.status} {str(reply)[:500]}")
                ids += [j["id"] for j in reply["jobs"]]
        return ids
    if s.mode != "single":
        raise ValueError(f"BENCH_PIPELINE_MODE={s.mode!r}: use batch or single")
    gate = asyncio.Semaphore(s.clients)

    async def one(body: dict[str, Any]) -> str:
        async with gate, http.post(f"{api}/v1/job", json=body) as r:
            reply = await r.json()
            if r.status != 200:
                raise RuntimeError(f"submit: {r.status} {str(reply)[:500]}")
            return str(reply["id"])

    return list(await asyncio.gather(*(one(b) for b in bodies)))


async def finished(http: aiohttp.ClientSession, api: str) -> int:
    """Jobs that reached completed or archived, from the API's counter."""
    async with http.get(f"{api}/metrics") as r:
        text = await r.text()
    return int(sum(float(m.group(2)) for m in COMPLETED_RE.finditer(text)))


async def one_by_one(
    http: aiohttp.ClientSession, api: str, bodies: list[dict[str, Any]]
) -> list[float]:
    """Submit → completed seconds seen by the client, one job at a time (an idle stack)."""
    seconds = []
    for body in bodies:
        t0 = time.monotonic()
        async with http.post(f"{api}/v1/job", json=body) as r:
            job = await r.json()
            if r.status != 200:
                raise RuntimeError(f"submit: {r.status} {str(job)[:500]}")
        while job["status"]["status"] not in ("completed", "archived"):
            await asyncio.sleep(0.005)
            async with http.get(f"{api}/v1/job/{job['id']}") as r:
                job = await r.json()
        if job["status"]["status"] != "completed":
            raise RuntimeError(f"job {job['id']} failed: {job['status']['error']}")
        seconds.append(time.monotonic() - t0)
    return sorted(seconds)


def client(password: str, s: Settings) -> aiohttp.ClientSession:
    """An HTTP client authenticated as ``streamer``."""
    return aiohttp.ClientSession(
        auth=aiohttp.BasicAuth("streamer", password),
        connector=aiohttp.TCPConnector(limit=max(s.clients, 8)),
        timeout=aiohttp.ClientTimeout(total=300),
    )


async def alone(api: str, password: str, bodies: list[dict[str, Any]], s: Settings) -> list[float]:
    async with client(password, s) as http:
        return await one_by_one(http, api, bodies)


async def drive(api: str, password: str, bodies: list[dict[str, Any]], s: Settings) -> float:
    """Submit the burst, wait until every job is final; seconds from submit to the last."""
    async with client(password, s) as http:
        async with http.get(f"{api}/v1/jobs") as r:  # warm the auth cache (scrypt)
            r.raise_for_status()
        t0 = time.monotonic()
        await submit(http, api, bodies, s)
        idle_since, last = time.monotonic(), -1
        while (done := await finished(http, api)) < len(bodies):
            if done != last:
                idle_since, last = time.monotonic(), done
            elif time.monotonic() - idle_since > 60:
                raise RuntimeError(f"stuck at {done}/{len(bodies)} jobs finished for 60 s")
            await asyncio.sleep(0.2)  # each scrape costs the API a count query
        return time.monotonic() - t0


def store_latencies(db: Path) -> tuple[list[float], dict[str, int]]:
    """submit → completed seconds per completed job, and the count per final state."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT state, created_at, completed_at FROM stager_tasks").fetchall()
    finally:
        con.close()
    states: dict[str, int] = {}
    latencies = []
    for state, created, completed in rows:
        states[state] = states.get(state, 0) + 1
        if state == "completed" and completed:
            c0, c1 = datetime.fromisoformat(created), datetime.fromisoformat(completed)
            latencies.append((c1 - c0).total_seconds())
    return sorted(latencies), states


def quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def start_profilers(pids: dict[str, list[int]]) -> list[subprocess.Popen[bytes]]:
    """``py-spy record`` on every service when ``BENCH_PIPELINE_PROFILE`` names a dir."""
    out = os.environ.get("BENCH_PIPELINE_PROFILE")
    if not out:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(out).mkdir(parents=True, exist_ok=True)
    spies = []
    for name, ps in pids.items():
        for pid in ps if "rabbitmq" not in name else []:
            cmd = [spy, "record", "--subprocesses", "--nonblocking", "--format", "raw"]
            cmd += ["--rate", "50", "-o", f"{out}/{name}-{pid}.txt", "-p", str(pid)]
            spies.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
    time.sleep(2)  # let them attach
    return spies


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


# --- entry points --------------------------------------------------------------------------


def _collection(irods: str, coll: str, *, create: bool = False) -> int:
    """Create ``coll`` (``create``) or count its data objects, as rods."""
    from irods.session import iRODSSession

    host, port = irods.rsplit(":", 1)
    admin = dict(zip(("user", "password"), IRODS_ADMIN, strict=True))
    with iRODSSession(host=host, port=int(port), zone="tempZone", **admin) as session:
        if create:
            session.collections.create(coll)
            return 0
        return len(session.collections.get(coll).data_objects)


def run() -> list[BenchResult]:
    """Start the stack, run the jobs, stop everything; the figures."""
    if os.geteuid() != 0:
        raise RuntimeError("needs root: it creates a Unix user and the worker setuids to it")
    s = Settings()
    base = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=os.environ.get("BENCH_TMPDIR")))
    base.chmod(0o711)
    user = make_user()
    stack = Stack(base, s)
    try:
        src = make_files(base, user, s.jobs + s.serial)
        stack.start()
        assert stack.proc is not None
        api, local = stack.fields["api"], Path(stack.fields["local"])
        coll = "/tempZone/home/rods/bench"
        _collection(stack.fields["irods"], coll, create=True)
        password = (local / "streamer.password").read_text().strip()
        pids = service_pids(stack.proc.pid)
        load0 = os.getloadavg()
        spies = start_profilers(pids)
        cpu0 = cpu_by_service(pids)
        bodies = job_bodies(user, src, coll, s.jobs + s.serial)
        elapsed = asyncio.run(drive(api, password, bodies[: s.jobs], s))
        cpu1 = cpu_by_service(pids)
        stop_profilers(spies)
        load1 = os.getloadavg()
        latencies, states = store_latencies(local / "stager.db")
        one = asyncio.run(alone(api, password, bodies[s.jobs :], s)) if s.serial else [0.0]
        objects = _collection(stack.fields["irods"], coll)
    finally:
        stack.stop()
        remove_account(user)
        shutil.rmtree(base, ignore_errors=True)
    if states.get("completed", 0) != s.jobs or objects != s.jobs + s.serial:
        raise RuntimeError(f"not every job completed: {states}, {objects} objects in iRODS")
    rate = s.jobs / elapsed
    p50, p99 = quantile(latencies, 0.50), quantile(latencies, 0.99)
    setup = (
        f"{s.mode} submit, {s.workers} worker x {s.concurrency}, log {s.log_level}; "
        f"load avg {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores"
    )
    cpu = ", ".join(f"{k} {cpu1[k] - cpu0.get(k, 0.0):.1f}" for k in sorted(cpu1))
    return [
        BenchResult(
            f"{s.jobs} one-file jobs, submit -> all completed",
            rate,
            "jobs/s",
            note=f"goal >= {GOAL_RATE:.0f}; {elapsed:.1f} s; {setup}",
        ),
        BenchResult(
            "submit -> completed p50",
            p50 * 1000,
            "ms",
            note=f"of the burst (queueing included: ~half the run); goal < {GOAL_P50 * 1000:.0f}",
        ),
        BenchResult("submit -> completed p99", p99 * 1000, "ms", note="of the burst"),
        BenchResult(
            "one job alone, submit -> completed p50",
            quantile(one, 0.5) * 1000,
            "ms",
            note=f"p99 {quantile(one, 0.99) * 1000:.0f} ms; {s.serial} jobs one at a time, "
            f"seen by the client; goal < {GOAL_P50 * 1000:.0f}",
        ),
        BenchResult(
            "CPU seconds during the run (all services)",
            sum(cpu1[k] - cpu0.get(k, 0.0) for k in cpu1 if "rabbitmq" not in k),
            "s",
            note=f"{cpu} (rabbitmq counts every helper's use)",
        ),
    ]


def main() -> int:
    for r in run():
        print(r.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
