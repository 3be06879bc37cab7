"""The campaign's own stack: a RabbitMQ node, the iRODS test server, the API, workers and
the ingest worker, a fresh PostgreSQL database (or SQLite) and a real Unix user, all on
loopback and all started here, so that killing and restarting them disturbs no other test.

Configuration is :class:`scripts.up.Stack`'s (the same ``STAGER_*`` settings ``make up``
gives its children, the same secrets and broker users); only the processes are kept here,
because the campaign stops and starts them one at a time. The workers reach the broker and
iRODS through :class:`devtools.tcp_proxy.TcpProxy` so their connections can be cut (and
the iRODS side slowed to the profile's ``irods_rate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from devtools.accounts import add_account, remove_account
from devtools.irods_server.launcher import ServerProcess
from devtools.tcp_proxy import TcpProxy
from faults.rabbit import RabbitNode
from scripts import broker_users
from scripts.up import LOOPBACK, STREAMER, Child, _is_ready, ensure_secrets, free_port
from scripts.up import Stack as UpStack

PG_ADMIN = os.environ.get("STAGER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
READY_TIMEOUT = 180.0


class StackError(RuntimeError):
    """A part of the stack did not come up; the message says which and where its log is."""


class LoggedChild(Child):
    """A :class:`scripts.up.Child` whose output goes to a log file (and ``lines``)."""

    log_path: Path | None = None
    lines: list[tuple[float, str]]

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        assert self.log_path is not None
        with open(self.log_path, "a") as out:  # noqa: ASYNC230 - a log file, appended line by line
            while raw := await self.proc.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append((time.time(), line))
                out.write(line + "\n")
                out.flush()

    def kill(self) -> None:
        """SIGKILL the process (not its group: its children die with it by PDEATHSIG)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)


@dataclass
class Service:
    """One restartable service: how to start it and where it answers ``/readyz``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    child: LoggedChild | None = None
    #: every incarnation's (start time, output lines)
    history: list[LoggedChild] = field(default_factory=list)


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class CampaignStack:
    """Everything the campaign runs against; :meth:`start`, then :meth:`stop` (always)."""

    logs: Path
    workers: int = 2
    concurrency: int = 2
    store: str = "postgres"
    #: bytes per second through the worker-iRODS proxy (None: unlimited)
    irods_rate: float | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stager-faults-")))
    user: str = ""
    uid: int = -1
    gid: int = -1
    password: str = ""
    api_url: str = ""
    services: dict[str, Service] = field(default_factory=dict)
    rabbit: RabbitNode | None = None
    irods: ServerProcess | None = None
    broker_proxy: TcpProxy | None = None
    irods_proxy: TcpProxy | None = None
    _database: str = ""
    _made_user: bool = False
    _saved_env: dict[str, str] = field(default_factory=dict)

    # --- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tmp.chmod(0o711)
        self._saved_env = dict(os.environ)
        for k in [k for k in os.environ if k.startswith("STAGER_")]:
            del os.environ[k]
        await asyncio.to_thread(self._make_user)
        self.rabbit = RabbitNode(self.tmp / "rabbit")
        await asyncio.to_thread(self.rabbit.start)
        local = self.tmp / "local"
        sec = ensure_secrets(local)
        self.password = sec.password_file.read_text().strip()
        os.environ["STAGER_DATABASE_URL"] = await self._store_url()
        os.environ["STAGER_INGEST__DB_URL"] = os.environ["STAGER_DATABASE_URL"]
        os.environ["STAGER_LOG_JSON"] = "true"
        os.environ["STAGER_INGEST__ALLOWED_ROOTS"] = json.dumps([str(self.data_root)])
        os.environ["STAGER_INGEST_MANAGERS"] = json.dumps([f"service:{STREAMER}"])
        # short retry waits, so a retried job finishes within the campaign
        os.environ["STAGER_RETRY__BASE_DELAY"] = "1"
        os.environ["STAGER_RETRY__FACTOR"] = "2"
        os.environ["STAGER_RETRY__MAX_DELAY"] = "8"
        # the part-object path (resume, rename) for every file of a MiB or more
        os.environ["STAGER_TRANSFER__LARGE_FILE_THRESHOLD"] = str(1024 * 1024)
        os.environ["STAGER_CONCURRENCY"] = str(self.concurrency)
        os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # noqa: ASYNC240
        up = UpStack(local, ephemeral=True, workers=self.workers, grace=10.0)
        up.configure(sec)
        self.api_url = up.api_url
        self.irods = ServerProcess(local / "irods", log_level="WARNING")
        await asyncio.to_thread(self.irods.start, 60.0)
        os.environ["STAGER_IRODS__PORT"] = str(self.irods.port)
        up.signing_dir = _signing(local)
        users = broker_users.BrokerUsers(
            vhost=f"stager-{up.prefix}",
            users_prefix=f"stager-{up.prefix}",
            secrets_dir=local / "broker",
            port=self.rabbit.port,
        )
        up.broker = await asyncio.to_thread(
            broker_users.ensure, users, prefix_re=re.escape(up.prefix), admin=True
        )
        self.broker_users = up.broker
        self.broker_proxy = TcpProxy(LOOPBACK, self.rabbit.port).start()
        self.irods_proxy = TcpProxy(LOOPBACK, self.irods.port, rate=self.irods_rate).start()
        proxied = replace(users, port=self.broker_proxy.port)
        worker_url = local / "broker" / "worker-proxied.url"
        _write_private(worker_url, proxied.url("worker") + "\n")
        py = sys.executable
        self.services["api"] = Service(
            "api", [py, "-m", "services.api"], up.role_env("api"), self.api_url
        )
        for n in range(self.workers):
            port = free_port()
            env = up.role_env("worker")
            env["STAGER_BROKER__URL"] = f"file:{worker_url}"
            env["STAGER_IRODS__PORT"] = str(self.irods_proxy.port)
            env["STAGER_HTTP_PORT"] = str(port)
            name = f"worker{n + 1}"
            self.services[name] = Service(
                name, [py, "-m", "services.worker"], env, f"http://{LOOPBACK}:{port}"
            )
        port = free_port()
        env = {**up.role_env("ingest"), "STAGER_HTTP_PORT": str(port)}
        self.services["ingest"] = Service(
            "ingest", [py, "-m", "services.ingest"], env, f"http://{LOOPBACK}:{port}"
        )
        for svc in self.services.values():
            await self.start_service(svc.name)

    @property
    def data_root(self) -> Path:
        """Local sources and download targets (the user's)."""
        return self.tmp / "data"

    def _make_user(self) -> None:
        if os.geteuid() != 0:
            raise StackError("the fault campaign needs root: it makes a Unix user (useradd)")
        pw = add_account(prefix="stgfl")
        self.user = pw.pw_name
        self._made_user = True
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.data_root.mkdir(mode=0o755)
        os.chown(self.data_root, self.uid, self.gid)

    async def _store_url(self) -> str:
        if self.store == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp / 'local' / 'store.sqlite'}"
        from sqlalchemy.engine import make_url

        self._database = f"stager_faults_{uuid.uuid4().hex[:12]}"
        await _pg(f'CREATE DATABASE "{self._database}"')
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=self._database)
        return url.render_as_string(hide_password=False)

    # --- services -------------------------------------------------------------------------

    async def start_service(self, name: str) -> None:
        """Start one service and wait until it answers ``/readyz``."""
        svc = self.services[name]
        child = LoggedChild(name, svc.argv, env=dict(svc.env))
        child.log_path = self.logs / f"{name}.log"
        child.lines = []
        await child.start()
        svc.child = child
        svc.history.append(child)
        await self.wait_ready(name)

    async def wait_ready(self, name: str, limit: float = READY_TIMEOUT) -> None:
        svc = self.services[name]
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while not await _is_ready(http, svc.url + "/readyz"):
                proc = svc.child.proc if svc.child else None
                if proc is not None and proc.returncode is not None:
                    raise StackError(
                        f"{name} exited with status {proc.returncode} (log: {name}.log)"
                    )
                if time.monotonic() > deadline:
                    raise StackError(f"{name} not ready after {limit:g} s (log: {name}.log)")
                await asyncio.sleep(0.3)

    async def kill_service(self, name: str) -> None:
        """SIGKILL a service and wait for it to be gone."""
        svc = self.services[name]
        if svc.child is not None:
            svc.child.kill()
            await svc.child.stop(5.0)

    async def restart_service(self, name: str, *, kill: bool = False) -> None:
        svc = self.services[name]
        if kill:
            await self.kill_service(name)
        elif svc.child is not None:
            await svc.child.stop(10.0)
        await self.start_service(name)

    def workers_names(self) -> list[str]:
        return [n for n in self.services if n.startswith("worker")]

    def transfer_children(self) -> list[int]:
        """Pids of the transfer children: the user's processes whose parent is a worker's
        fork server (``services.worker.forkserver``, root: it forks each child and the
        child drops to the user). Children that used CPU in the last 0.3 s (busy with a
        task, not idle in the reuse pool) come first."""
        procs: dict[int, tuple[int, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as fh:
                    status = fh.read()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            try:
                uid = int(fields["Uid"].split()[0])
                ppid = int(fields["PPid"].strip())
            except (KeyError, ValueError):
                continue
            procs[int(entry)] = (uid, ppid)
        servers = {pid for pid, (uid, _) in procs.items() if uid == 0 and _is_forkserver(pid)}
        kids = sorted(p for p, (uid, ppid) in procs.items() if uid == self.uid and ppid in servers)
        before = {p: _cpu_ticks(p) for p in kids}
        time.sleep(0.3)
        busy = [p for p in kids if _cpu_ticks(p) > before[p]]
        return busy + [p for p in kids if p not in busy]

    def irods_session(self) -> Any:
        """An admin session straight to the server (not through the proxy)."""
        assert self.irods is not None
        return self.irods.session()

    # --- stop -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything, newest first; remove the user, the database, the broker node
        and the temp dir."""
        workers = [s for n, s in self.services.items() if n.startswith("worker")]
        others = [s for n, s in self.services.items() if not n.startswith("worker")]
        for group in (workers, others):
            await asyncio.gather(
                *(s.child.stop(10.0) for s in group if s.child is not None),
                return_exceptions=True,
            )
        for proxy in (self.broker_proxy, self.irods_proxy):
            if proxy is not None:
                proxy.stop()
        if self.irods is not None:
            self.irods.stop()
        if self.rabbit is not None:
            await asyncio.to_thread(self.rabbit.remove)
        if self._database:
            with contextlib.suppress(Exception):
                await _pg(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        if self._made_user:
            remove_account(self.user)
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.environ.clear()
        os.environ.update(self._saved_env)


def _is_forkserver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"services.worker.forkserver" in fh.read()
    except OSError:
        return False


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def _signing(local: Path) -> Path:
    from scripts.up import ensure_signing_keys

    return ensure_signing_keys(local)


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
