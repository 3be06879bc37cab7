"""The fault campaign: jobs over REST while faults are injected at seeded random points,
then the checks (:mod:`faults.verify`) and the table.

    python -m faults [--form short|full] [--seed N] [--logs DIR]

Phase 1 (transfers): the jobs of :func:`faults.plan.make_jobs` are submitted in waves by
the service account ``streamer``, as a data streamer would, while the faults of the
profile happen at times drawn from the seed. Phase 2 (ingest): one ingest job over a tree
of small files while the ingest worker is SIGKILLed and the iRODS server restarted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from faults.plan import JobPlan, Profile, make_ingest_tree, make_jobs
from faults.stack import CampaignStack
from scripts.up import IRODS_ADMIN, STREAMER

FINAL = ("completed", "archived", "cancelled")
ZONE = "tempZone"


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Fault:
    """One injection: what, when (seconds after the start of its phase), what it hit."""

    kind: str
    at: float
    phase: str = "transfer"
    done_at: float = 0.0
    #: wall-clock time it was injected (worker log lines carry wall-clock times)
    wall: float = 0.0
    target: str = ""
    #: job titles (transfer) or the ingest job's name running when it was injected
    affected: set[str] = field(default_factory=set)
    note: str = ""


def schedule(profile: Profile, rng: random.Random) -> list[Fault]:
    """The transfer phase's faults at seeded random times within the window."""
    counts = {
        "worker SIGKILL": profile.worker_kills,
        "transfer child SIGKILL": profile.child_kills,
        "RabbitMQ restart": profile.rabbit_restarts,
        "API restart (SIGKILL)": profile.api_restarts,
        "iRODS restart": profile.irods_restarts,
        "cut worker-broker": profile.broker_cuts,
        "cut worker-iRODS": profile.irods_cuts,
    }
    faults = [
        Fault(kind, rng.uniform(0.1, 1.0) * profile.window)
        for kind, n in counts.items()
        for _ in range(n)
    ]
    return sorted(faults, key=lambda f: f.at)


def ingest_schedule(profile: Profile, rng: random.Random) -> list[Fault]:
    counts = {
        "ingest worker SIGKILL": profile.ingest_worker_kills,
        "iRODS restart (ingest)": profile.ingest_irods_restarts,
    }
    faults = [
        Fault(kind, rng.uniform(0.05, 1.0) * profile.ingest_window, phase="ingest")
        for kind, n in counts.items()
        for _ in range(n)
    ]
    return sorted(faults, key=lambda f: f.at)


class Api:
    """The REST calls the campaign makes, as ``streamer``; retried while the API is down."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        raw = base64.b64encode(f"{STREAMER}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {raw}"}
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    async def call(
        self, method: str, path: str, body: Any = None, *, patience: float = 300.0
    ) -> tuple[int, Any]:
        """One request; connection errors and 502/503 are retried for ``patience`` s."""
        deadline = time.monotonic() + patience
        while True:
            try:
                async with self.http.request(
                    method, self.url + path, json=body, headers=self.headers
                ) as r:
                    data = await r.json(content_type=None)
                    if r.status not in (502, 503):
                        return r.status, data
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: the API did not answer for {patience:g} s")
            await asyncio.sleep(0.5)

    async def jobs(self) -> dict[str, list[dict[str, Any]]]:
        """Every job of ours by title (a list: a title submitted twice shows up twice)."""
        status, data = await self.call("GET", "/v1/jobs")
        if status != 200:
            raise RuntimeError(f"GET /v1/jobs answered {status}: {data}")
        out: dict[str, list[dict[str, Any]]] = {}
        for job in data["jobs"]:
            out.setdefault(job["data"]["title"], []).append(job)
        return out


@dataclass
class Result:
    """What the campaign saw, for the checks and the table."""

    jobs: list[JobPlan]
    faults: list[Fault]
    final: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    submitted: set[str] = field(default_factory=set)
    ingest_name: str = ""
    ingest_tree: dict[str, int] = field(default_factory=dict)
    ingest_target: str = ""
    ingest_job: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)


class Campaign:
    def __init__(self, stack: CampaignStack, profile: Profile, seed: int) -> None:
        self.stack = stack
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(seed ^ 0x5EED)
        self.root = f"/{ZONE}/home/{IRODS_ADMIN[0]}/faults-{seed}"
        self.api = Api(stack.api_url, stack.password)

    # --- helpers --------------------------------------------------------------------------

    def running_on(self, service: str) -> set[str]:
        """Task ids started and not ended by the current incarnation of a worker."""
        child = self.stack.services[service].child
        running: set[str] = set()
        for _, line in list(child.lines) if child else []:
            ev = _event(line)
            if ev is None:
                continue
            if ev.get("event") == "task.start":
                running.add(str(ev.get("task_id")))
            elif ev.get("event") in ("task.end", "task.requeued_on_shutdown"):
                running.discard(str(ev.get("task_id")))
        return running

    def running(self) -> set[str]:
        out: set[str] = set()
        for name in self.stack.workers_names():
            out |= self.running_on(name)
        return out

    # --- phase 1 -----------------------------------------------------------------------------

    async def transfers(self) -> Result:
        s = self.stack
        say(f"faults: building {self.profile.jobs} jobs (seed {self.seed}) ...")
        with s.irods_session() as session:
            session.collections.create(self.root)
            jobs = await asyncio.to_thread(
                make_jobs,
                self.profile,
                self.seed,
                s.data_root,
                self.root,
                session,
                (s.uid, s.gid),
            )
        faults = schedule(self.profile, self.rng)
        result = Result(jobs=jobs, faults=faults)
        total = sum(j.size for j in jobs)
        say(f"faults: {len(jobs)} jobs, {total / 2**20:.1f} MiB; {len(faults)} faults")
        t0 = time.monotonic()
        submitter = asyncio.create_task(self._submit_waves(jobs, result, t0))
        for fault in faults:
            await _sleep_until(t0 + fault.at)
            await self._inject(fault, t0)
        await submitter
        say("faults: every fault injected; waiting for the jobs to finish ...")
        deadline = time.monotonic() + self.profile.settle
        titles = {j.key for j in jobs}
        while True:
            final = await self.api.jobs()
            open_ = [
                t
                for t in titles
                if not final.get(t) or final[t][-1]["status"]["status"] not in FINAL
            ]
            if not open_ or time.monotonic() > deadline:
                break
            await asyncio.sleep(2.0)
        result.final = final
        result.phase_seconds["transfer"] = time.monotonic() - t0
        return result

    async def _submit_waves(self, jobs: list[JobPlan], result: Result, t0: float) -> None:
        waves = 4
        per = -(-len(jobs) // waves)
        for w in range(waves):
            batch = jobs[w * per : (w + 1) * per]
            if not batch:
                continue
            await _sleep_until(t0 + w * 0.6 * self.profile.window / waves)
            await self._submit(batch, result)

    async def _submit(self, batch: list[JobPlan], result: Result) -> None:
        """POST /v1/jobs; after a lost reply, only the titles not stored yet go again."""
        bodies = {j.key: j.body(self.stack.user, IRODS_ADMIN[0]) for j in batch}
        todo = list(bodies)
        for _ in range(20):
            try:
                status, data = await self.api.call(
                    "POST", "/v1/jobs", {"jobs": [bodies[k] for k in todo]}, patience=5.0
                )
            except RuntimeError:
                status, data = 0, None
            if status in (200, 207):
                for job in data["jobs"]:
                    result.submitted.add(job["data"]["title"])
                if status == 207:
                    result.errors.append(f"submission rejected some jobs: {data['rejected']}")
                return
            if status and status not in (502, 503):
                result.errors.append(f"POST /v1/jobs answered {status}: {data}")
                return
            stored = await self.api.jobs()
            result.submitted |= {k for k in todo if k in stored}
            todo = [k for k in todo if k not in stored]
            if not todo:
                return
            await asyncio.sleep(1.0)
        result.errors.append(f"could not submit {len(todo)} jobs: {todo[:5]}")

    async def _inject(self, fault: Fault, t0: float) -> None:
        s = self.stack
        began = time.monotonic()
        fault.wall = time.time()
        kind = fault.kind
        if kind == "worker SIGKILL":
            name = self.rng.choice(s.workers_names())
            fault.target, fault.affected = name, self.running_on(name)
            await s.kill_service(name)
            await asyncio.sleep(1.0)
            await s.start_service(name)
        elif kind == "transfer child SIGKILL":
            fault.affected = self.running()
            pid = 0
            for _ in range(40):
                pids = s.transfer_children()
                if pids:
                    pid = self.rng.choice(pids)
                    break
                await asyncio.sleep(0.5)
            if pid:
                fault.target = f"pid {pid}"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            else:
                fault.note = "no transfer child was running"
        elif kind == "RabbitMQ restart":
            fault.affected = self.running()
            assert s.rabbit is not None
            await asyncio.to_thread(s.rabbit.restart, 1.0)
            await self._all_ready()
        elif kind == "API restart (SIGKILL)":
            fault.affected = self.running()
            await s.restart_service("api", kill=True)
        elif kind.startswith("iRODS restart"):
            fault.affected = self.running()
            assert s.irods is not None
            await asyncio.to_thread(s.irods.restart)
        elif kind == "cut worker-broker":
            fault.affected = self.running()
            assert s.broker_proxy is not None
            fault.target = f"{s.broker_proxy.cut()} connections"
        elif kind == "cut worker-iRODS":
            fault.affected = self.running()
            assert s.irods_proxy is not None
            fault.target = f"{s.irods_proxy.cut()} connections"
        else:  # pragma: no cover - the schedule names only the kinds above
            raise ValueError(kind)
        fault.done_at = time.monotonic() - t0
        say(
            f"faults: t={began - t0:6.1f}s {kind:<24} {fault.target:<16} "
            f"running={len(fault.affected)} ({time.monotonic() - began:.1f} s)"
        )

    async def _all_ready(self) -> None:
        for name in self.stack.services:
            await self.stack.wait_ready(name)

    # --- phase 2 -----------------------------------------------------------------------------

    async def ingest(self, result: Result) -> None:
        s = self.stack
        n = self.profile.ingest_files
        say(f"faults: ingest of {n} files ...")
        root = s.data_root / "ingest"
        result.ingest_tree = await asyncio.to_thread(make_ingest_tree, root, n, (s.uid, s.gid))
        name = f"faults-{self.seed}"
        target = f"{self.root}/ingest"
        result.ingest_name, result.ingest_target = name, target
        faults = ingest_schedule(self.profile, self.rng)
        result.faults.extend(faults)
        body = {"root": str(root), "target": target, "owner": s.user, "files_per_task": 50}
        status, data = await self.api.call("PUT", f"/v1/ingest/{name}", body)
        if status != 201:
            result.errors.append(f"PUT /v1/ingest/{name} answered {status}: {data}")
            return
        t0 = time.monotonic()
        for fault in faults:
            await _sleep_until(t0 + fault.at)
            began = time.monotonic()
            fault.wall = time.time()
            _, job = await self.api.call("GET", f"/v1/ingest/{name}")
            if job.get("state") == "running":
                fault.affected = {name}
            if fault.kind == "ingest worker SIGKILL":
                fault.target = "ingest"
                await s.kill_service("ingest")
                await asyncio.sleep(1.0)
                await s.start_service("ingest")
            else:
                assert s.irods is not None
                await asyncio.to_thread(s.irods.restart)
            fault.done_at = time.monotonic() - t0
            say(
                f"faults: t={began - t0:6.1f}s {fault.kind:<24} state={job.get('state')} "
                f"({time.monotonic() - began:.1f} s)"
            )
        deadline = time.monotonic() + self.profile.ingest_settle
        while True:
            _, job = await self.api.call("GET", f"/v1/ingest/{name}")
            if job.get("state") in ("completed", "failed", "stopped"):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        result.ingest_job = job
        result.phase_seconds["ingest"] = time.monotonic() - t0


def _event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def worker_completions(stack: CampaignStack) -> dict[tuple[str, int], list[float]]:
    """(task id, run) -> times a worker logged ``task.end`` with ``completed``."""
    out: dict[tuple[str, int], list[float]] = {}
    for name in stack.workers_names():
        for child in stack.services[name].history:
            for t, line in child.lines:
                ev = _event(line)
                if ev and ev.get("event") == "task.end" and ev.get("state") == "completed":
                    out.setdefault((str(ev.get("task_id")), int(ev.get("run", 1))), []).append(t)
    return out
