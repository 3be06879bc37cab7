"""The fault campaign: jobs over REST while faults are injected at seeded random points,
then the checks (:mod:`faults.verify`) and the table.

    python -m faults [--form ci|short|full] [--seed N] [--logs DIR]

Phase 1 (transfers): most jobs of :func:`faults.plan.make_jobs` are submitted at once, in
a few requests, by the service account ``streamer``, as a data streamer would; a reserve
(a third, or one per fault) is held back. Each fault of the profile draws a fraction ``f``
from the seed and fires as soon as ``f`` of the jobs submitted are final, or ``f * window``
seconds after the start, whichever comes first. If fewer than two jobs are in flight (not
final) at that moment, a portion of the reserve is submitted first, so every fault finds
jobs in flight; the number is recorded. Kinds that hit a transfer (a worker or child
SIGKILL, an iRODS cut) wait a little for one to be running. Phase 2 (ingest): one ingest
job over a tree of small files while the ingest worker is SIGKILLed and the iRODS server
restarted, each at a drawn fraction of the files created.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from faults.plan import JobPlan, Profile, make_ingest_tree, make_jobs
from faults.stack import CampaignStack
from scripts.up import IRODS_ADMIN, STREAMER

FINAL = ("completed", "archived", "cancelled")
ZONE = "tempZone"
#: faults fire between these fractions of the run (see the module docstring)
EARLIEST, LATEST = 0.02, 0.8
#: how long a fault that hits a transfer waits for one to be running
WAIT_FOR_TRANSFER = 15.0
#: fewer jobs in flight than this at a fault's moment: a portion of the reserve goes first
LOW_IN_FLIGHT = 2


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Fault:
    """One injection: what, when (seconds after the start of its phase), what it hit."""

    kind: str
    #: the fraction of the run at which it fires (jobs final, or of the window's seconds)
    frac: float
    phase: str = "transfer"
    #: seconds after the start of its phase it was injected
    at: float = 0.0
    done_at: float = 0.0
    #: wall-clock time it was injected (worker log lines carry wall-clock times)
    wall: float = 0.0
    target: str = ""
    #: job titles (transfer) or the ingest job's name running when it was injected
    affected: set[str] = field(default_factory=set)
    #: jobs submitted and not final when it was injected (ingest: 1 while the job runs)
    in_flight: int = -1
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
        Fault(kind, rng.uniform(EARLIEST, LATEST)) for kind, n in counts.items() for _ in range(n)
    ]
    return sorted(faults, key=lambda f: f.frac)


def ingest_schedule(profile: Profile, rng: random.Random) -> list[Fault]:
    counts = {
        "ingest worker SIGKILL": profile.ingest_worker_kills,
        "iRODS restart (ingest)": profile.ingest_irods_restarts,
    }
    faults = [
        Fault(kind, rng.uniform(EARLIEST, LATEST), phase="ingest")
        for kind, n in counts.items()
        for _ in range(n)
    ]
    return sorted(faults, key=lambda f: f.frac)


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


class Tracker:
    """The jobs' states as ``GET /v1/jobs`` last showed them, polled every ``every`` s (the
    last answer stands while the API is down)."""

    def __init__(self, api: Api, every: float = 1.0) -> None:
        self.api = api
        self.every = every
        self.states: dict[str, str] = {}

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.every)

    async def poll(self) -> None:
        with contextlib.suppress(RuntimeError, KeyError, TypeError):
            status, data = await self.api.call("GET", "/v1/jobs", patience=2.0)
            if status == 200:
                self.states = {j["data"]["title"]: j["status"]["status"] for j in data["jobs"]}

    def final(self, titles: set[str]) -> int:
        return sum(1 for t in titles if self.states.get(t) in FINAL)

    def in_flight(self, submitted: set[str]) -> int:
        """Submitted jobs not final (a job the API has not listed yet counts)."""
        return len(submitted) - self.final(submitted)


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
        titles = {j.key for j in jobs}
        tracker = Tracker(self.api)
        t0 = time.monotonic()
        poller = asyncio.create_task(tracker.run())
        # a reserve is held back and fed in before a fault that would find (almost) nothing
        # in flight: so faults still hit jobs late in the run, and small forms work too
        n_reserve = min(len(jobs) // 2, max(len(jobs) // 3, len(faults)))
        reserve = jobs[len(jobs) - n_reserve :]
        portion = -(-n_reserve // max(1, len(faults)))
        submitter = asyncio.create_task(self._submit_waves(jobs[: len(jobs) - n_reserve], result))
        try:
            for fault in faults:
                await self._moment(fault, tracker, result, t0)
                if reserve and tracker.in_flight(result.submitted) < LOW_IN_FLIGHT:
                    batch, reserve = reserve[:portion], reserve[portion:]
                    await self._submit(batch, result)
                    fault.note = "after a reserve portion"
                    await self._wait_transfer(fault)
                fault.in_flight = tracker.in_flight(result.submitted)
                await self._inject(fault, t0)
            await submitter
            if reserve:
                await self._submit(reserve, result)
            say("faults: every fault injected; waiting for the jobs to finish ...")
            deadline = time.monotonic() + self.profile.settle
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
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        result.final = final
        result.phase_seconds["transfer"] = time.monotonic() - t0
        return result

    async def _moment(self, fault: Fault, tracker: Tracker, result: Result, t0: float) -> None:
        """Wait until ``fault.frac`` of the jobs submitted are final or of the window has
        passed (and one job at least has been submitted); then, for a fault that hits a
        transfer, up to :data:`WAIT_FOR_TRANSFER` s for one to be running."""
        at = t0 + fault.frac * self.profile.window
        sub = result.submitted
        await _until(
            lambda: (
                bool(sub)
                and (time.monotonic() >= at or tracker.final(sub) >= fault.frac * len(sub))
            )
        )
        await tracker.poll()
        if tracker.in_flight(sub) >= LOW_IN_FLIGHT:
            await self._wait_transfer(fault)
            await tracker.poll()

    async def _wait_transfer(self, fault: Fault) -> None:
        if fault.kind in ("worker SIGKILL", "transfer child SIGKILL", "cut worker-iRODS"):
            await _until(lambda: bool(self.running()), time.monotonic() + WAIT_FOR_TRANSFER)

    async def _submit_waves(self, jobs: list[JobPlan], result: Result) -> None:
        """Every job at once, in a few requests of at most 50 jobs."""
        for w in range(0, len(jobs), 50):
            await self._submit(jobs[w : w + 50], result)

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
        fault.at = began - t0
        fault.wall = time.time()
        kind = fault.kind
        if kind == "worker SIGKILL":
            busy = [n for n in s.workers_names() if self.running_on(n)]
            name = self.rng.choice(busy or s.workers_names())
            fault.target, fault.affected = name, self.running_on(name)
            await s.kill_service(name)
            await asyncio.sleep(1.0)
            await s.start_service(name)
        elif kind == "transfer child SIGKILL":
            fault.affected = self.running()
            pid = 0
            for _ in range(30):
                pids = await asyncio.to_thread(s.transfer_children)
                if pids:
                    pid = pids[0]  # a busy one when there is one
                    break
                await asyncio.sleep(0.2)
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
            n = s.broker_proxy.cut_at_random(self.rng, 64 * 1024)
            fault.target = f"{n} conns armed"
        elif kind == "cut worker-iRODS":
            fault.affected = self.running()
            assert s.irods_proxy is not None
            n = s.irods_proxy.cut_at_random(self.rng, self.profile.cut_within)
            fault.target = f"{n} conns armed"
            if not n:
                fault.note = "no worker-iRODS connection was open"
        else:  # pragma: no cover - the schedule names only the kinds above
            raise ValueError(kind)
        fault.done_at = time.monotonic() - t0
        say(
            f"faults: t={began - t0:6.1f}s {kind:<24} {fault.target:<16} "
            f"in flight={fault.in_flight} running={len(fault.affected)} "
            f"({time.monotonic() - began:.1f} s)"
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
            at = t0 + self.profile.ingest_window  # at the latest
            job = await self._ingest_moment(name, n, at, fault.frac)
            began = time.monotonic()
            fault.at = began - t0
            fault.wall = time.time()
            if job.get("state") == "running":
                fault.affected = {name}
            fault.in_flight = int(job.get("state") == "running")
            done = job.get("counters", {}).get("files_created", 0)
            fault.target = f"{done}/{n} files"
            if fault.kind == "ingest worker SIGKILL":
                await s.kill_service("ingest")
                await asyncio.sleep(1.0)
                await s.start_service("ingest")
            else:
                assert s.irods is not None
                await asyncio.to_thread(s.irods.restart)
            fault.done_at = time.monotonic() - t0
            say(
                f"faults: t={began - t0:6.1f}s {fault.kind:<24} {fault.target:<16} "
                f"state={job.get('state')} ({time.monotonic() - began:.1f} s)"
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

    async def _ingest_moment(self, name: str, files: int, at: float, frac: float) -> Any:
        """Poll the ingest job until ``frac`` of its files are created, ``at`` has passed
        or it is no longer waiting or running; its last view."""
        while True:
            _, job = await self.api.call("GET", f"/v1/ingest/{name}")
            created = job.get("counters", {}).get("files_created", 0)
            state = job.get("state")
            if state not in ("waiting", "running", None):
                return job
            if time.monotonic() >= at or (state == "running" and created >= frac * files):
                return job
            await asyncio.sleep(0.05)


def _event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


async def _until(done: Callable[[], bool], deadline: float = math.inf) -> None:
    """Return once ``done()`` is true or at ``deadline`` (monotonic), polling every 0.2 s."""
    while True:
        if done() or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.2)


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
