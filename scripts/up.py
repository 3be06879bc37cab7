"""``make up``: the whole stager locally, in the foreground; Ctrl-C stops all of it.

    python -m scripts.up [--local-dir DIR] [--ephemeral] [--workers N] [--grace S]

Starts the iRODS test server (unless ``STAGER_IRODS__HOST`` names a real iRODS), the API
on http://127.0.0.1:8080, one worker (health on 8081) and the ingest worker (health on
8082), each in its own process group, with settings in ``STAGER_*`` environment variables
pointing at each other. Local secrets live in
``.local/`` (made once, then reused): the RSA key pair that seals ``drPass``
(``keys/``) and the password of the service account ``streamer``
(``streamer.password``, 0600; it may act for any non-system user), one message signing key
pair per role (``signing/ROLE.key`` 0600 and ``ROLE.pub``: each service gets its own private
key and the public keys of the roles it hears from) and the broker users (``broker/``: a
vhost ``stager`` with one least-privilege RabbitMQ user per service, made with
``rabbitmqctl`` by :mod:`scripts.broker_users`; nobody uses ``guest``). Children's output
goes to stdout, one line at a time, prefixed with the service name. When everything
answers ``/readyz`` it prints the URLs, a curl example, and one machine-readable line
``stager-up ready api=URL irods=HOST:PORT local=DIR prefix=P``.

SIGINT and SIGTERM stop the workers, then the API and the iRODS server: SIGTERM to each
process group, SIGKILL after ``--grace`` seconds. Children also get SIGTERM if this
process dies (``PR_SET_PDEATHSIG``). ``--ephemeral`` (tests, benchmarks) picks free
ports and a private broker prefix on a private vhost with its own users, all deleted on exit
(a ``STAGER_BROKER__URL`` set by the caller is used as it is, and then only the prefix's
queues and exchanges are deleted). Any ``STAGER_*`` variable already set in the environment
wins over the generated one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from scripts import broker_users

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = "/tmp/stager-demo"  # noqa: S108 - only printed, in the example for the reader
READY_LINE = "stager-up ready "
IRODS_READY = "irods-test-server ready on "
IRODS_ADMIN = ("rods", "rods")  # the test server's fixed rodsadmin account
STREAMER = "streamer"
LOOPBACK = "127.0.0.1"
MIN_UID = 1000


def say(text: str) -> None:
    """One line (or block) of our own output, flushed at once."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


# --- local secrets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """Paths of the generated secrets and the streamer's password hash."""

    keys_dir: Path
    public_key: Path
    password_file: Path
    password_hash: str


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def ensure_secrets(local: Path) -> Secrets:
    """Make the key pair and the streamer password once (reused afterwards); keep the
    database and the iRODS test server's data private to root."""
    from services.api.auth import hash_password
    from shared.crypto import generate_keypair

    local.mkdir(parents=True, exist_ok=True)
    local.chmod(0o711)  # users' children traverse it to their resume journals in state/
    keys = local / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    private, public = keys / "private.pem", keys / "public.pem"
    if not private.exists():
        private_pem, public_pem = generate_keypair()
        _write_private(private, private_pem)
        public.write_bytes(public_pem)
    password_file = local / "streamer.password"
    if not password_file.exists():
        _write_private(password_file, (secrets.token_urlsafe(24) + "\n").encode())
    password_file.chmod(0o600)
    irods = local / "irods"  # the test server's catalog and vault: uploaded data
    irods.mkdir(mode=0o700, exist_ok=True)
    irods.chmod(0o700)
    db = local / "stager.db"  # SQLite makes its -wal and -shm files with the same mode
    if not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
    password = password_file.read_text().strip()
    if not password:
        raise SystemExit(f"up: {password_file} is empty: delete it to make a new password")
    return Secrets(keys, public, password_file, hash_password(password))


def ensure_signing_keys(local: Path) -> Path:
    """``local/signing/ROLE.key`` (0600) and ``ROLE.pub`` per role, made once then reused."""
    from shared.messaging import signing

    root = local / "signing"
    root.mkdir(mode=0o700, exist_ok=True)
    root.chmod(0o700)
    for role in signing.Role:
        key, pub = root / f"{role.value}.key", root / f"{role.value}.pub"
        if key.exists() and pub.exists():
            key.chmod(0o600)
            continue
        key.unlink(missing_ok=True)
        private_pem, public_pem = signing.generate()
        _write_private(key, private_pem)
        pub.write_bytes(public_pem)
    return root


#: The public keys each service needs: the roles whose messages it acts on.
HEARS_FROM = {"api": ("worker",), "worker": ("api",), "ingest": ("ingest",)}


# --- ports ---------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True when something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# --- children ------------------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec
    from shared.runas import die_with_parent

    die_with_parent(signal.SIGTERM)


@dataclass
class Child:
    """One service process in its own process group; its output is prefixed to stdout."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_prefix: str | None = None
    proc: asyncio.subprocess.Process | None = None
    ready_line: asyncio.Future[str] | None = None
    pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Spawn the process (own session, SIGTERM when we die) and pump its output."""
        self.ready_line = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.pump = asyncio.create_task(self._pump(), name=f"pump-{self.name}")

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        tag = f"{self.name:<8}| "
        while raw := await self.proc.stdout.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            ready = self.ready_line
            prefix = self.ready_prefix
            if ready is not None and not ready.done() and prefix and line.startswith(prefix):
                ready.set_result(line)
            say(tag + line)

    async def exited(self) -> int:
        """Wait for the process to end; its exit status."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` s; then reap and drain output."""
        proc = self.proc
        if proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            say(f"up: {self.name} did not stop within {grace:g} s: killing it")
        self._signal_group(signal.SIGKILL)  # stragglers in the group, and the leader if slow
        await proc.wait()
        if self.pump is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.pump, 2.0)

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


# --- the stack -----------------------------------------------------------------------------


def ingest_password_source(environ: Mapping[str, str]) -> str | None:
    """Where the ingest worker's iRODS password comes from, as it reads its settings
    (``services.ingest.settings``): ``STAGER_IRODS__PASSWORD``, else (unless
    ``STAGER_INGEST__CLIENT_ENVIRONMENT`` is false) the iRODS client environment:
    ``IRODS_PASSWORD`` or the ``.irodsA`` that ``iinit`` wrote. None: no password."""
    from pydantic import TypeAdapter, ValidationError

    from shared.irods import ClientEnvironmentError, client_environment

    if "STAGER_IRODS__PASSWORD" in environ:
        return "STAGER_IRODS__PASSWORD"
    flag = environ.get("STAGER_INGEST__CLIENT_ENVIRONMENT", "true")
    try:
        use_client_environment = TypeAdapter(bool).validate_python(flag)
    except ValidationError:
        raise SystemExit(
            f"up: STAGER_INGEST__CLIENT_ENVIRONMENT={flag!r} is not a boolean: set true or false"
        ) from None
    if not use_client_environment:
        return None
    if environ.get("IRODS_PASSWORD"):
        return "IRODS_PASSWORD"
    try:
        found = client_environment(environ)
    except ClientEnvironmentError as e:
        raise SystemExit(f"up: {e}") from None
    return "the iRODS authentication file (.irodsA)" if found.get("password") else None


@dataclass
class Stack:
    """What runs, where, and how to reach it."""

    local: Path
    ephemeral: bool
    workers: int
    grace: float
    children: list[Child] = field(default_factory=list)
    api_url: str = ""
    worker_urls: list[str] = field(default_factory=list)
    ingest: bool = False
    ingest_url: str = ""
    irods: str = ""
    test_irods: bool = True
    prefix: str = ""
    #: the vhost and role users made for this run (None: the caller gave STAGER_BROKER__URL)
    broker: broker_users.BrokerUsers | None = None
    signing_dir: Path | None = None

    def role_env(self, role: str) -> dict[str, str]:
        """A service's own broker URL and signing key, and the public keys it trusts."""
        env: dict[str, str] = {}
        if self.broker is not None:
            env["STAGER_BROKER__URL"] = f"file:{self.broker.url_file(role)}"
        if self.signing_dir is not None:
            if "STAGER_SIGNING__KEY" not in os.environ:
                env["STAGER_SIGNING__KEY"] = f"file:{self.signing_dir / f'{role}.key'}"
            for other in HEARS_FROM[role]:
                name = f"STAGER_SIGNING__{other.upper()}_KEYS"
                if name not in os.environ:
                    env[name] = f"file:{self.signing_dir / f'{other}.pub'}"
        return env

    def configure_broker(self) -> None:
        """The vhost and one user per service (``rabbitmqctl``), unless the caller set
        ``STAGER_BROKER__URL``. ``--ephemeral``: a vhost and users of this run only."""
        self.signing_dir = ensure_signing_keys(self.local)
        if "STAGER_BROKER__URL" in os.environ:
            return
        name = f"stager-{self.prefix}" if self.ephemeral else "stager"
        secrets_dir = self.local / (f"broker-{self.prefix}" if self.ephemeral else "broker")
        users = broker_users.BrokerUsers(vhost=name, users_prefix=name, secrets_dir=secrets_dir)
        try:
            self.broker = broker_users.ensure(users, prefix_re=re.escape(self.prefix))
        except broker_users.BrokerSetupError as e:
            raise SystemExit(
                f"up: cannot create the broker users: {e} "
                "(or set STAGER_BROKER__URL to a broker URL of your own)"
            ) from None

    def setdefault(self, key: str, value: str, *, force: bool = False) -> str:
        """Set ``STAGER_<key>`` unless the user already did (``force``: always)."""
        name = "STAGER_" + key
        if force or name not in os.environ:
            os.environ[name] = value
        return os.environ[name]

    def configure(self, sec: Secrets) -> None:
        """Settings shared by every child (in our own environment, which they inherit)."""
        f = self.ephemeral
        self.test_irods = "STAGER_IRODS__HOST" not in os.environ
        self.setdefault("LOG_JSON", "false" if sys.stdout.isatty() else "true")
        self.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{self.local / 'stager.db'}")
        self.setdefault("PUBLIC_KEYS", json.dumps([f"file:{sec.public_key}"]))
        accounts = {STREAMER: {"password_hash": sec.password_hash, "act_for": ["*"]}}
        self.setdefault("AUTH__SERVICE_ACCOUNTS", json.dumps(accounts))
        self.setdefault("PRIVATE_KEYS_DIR", str(sec.keys_dir))
        self.setdefault("STATE_DIR", str(self.local / "state"))
        prefix = "up" + uuid.uuid4().hex[:12] if f else "stager"
        self.prefix = self.setdefault("BROKER__PREFIX", prefix, force=f)
        host = self.setdefault("HOST", LOOPBACK)
        port = self.setdefault("PORT", str(free_port() if f else 8080), force=f)
        self.api_url = f"http://{host}:{port}"
        if self.test_irods:
            user, password = IRODS_ADMIN
            self.setdefault("IRODS__HOST", LOOPBACK, force=True)
            self.setdefault("IRODS__ZONE", "tempZone", force=True)
            self.setdefault("IRODS__USER", user, force=True)
            self.setdefault("IRODS__PASSWORD", password, force=True)
            cred = {STREAMER: {"user": user, "password": password}}
            self.setdefault("SERVICE_CREDENTIALS", json.dumps(cred))
        self.ingest = self.configure_ingest()

    def broker_host(self) -> tuple[str, int]:
        """Host and port of the broker URL the children will use."""
        url = os.environ.get("STAGER_BROKER__URL", f"amqp://{LOOPBACK}:5672/")
        if url.startswith("file:"):
            url = Path(url[5:]).read_text().strip()
        parts = urlsplit(url)
        return parts.hostname or LOOPBACK, parts.port or 5672

    def check_ports(self) -> None:
        """Clear errors for what would otherwise fail inside a child."""
        bhost, bport = self.broker_host()
        if not port_open(bhost, bport):
            raise SystemExit(
                f"up: RabbitMQ is not reachable on {bhost}:{bport}: "
                "run scripts/ensure-services.sh (make up does) or set STAGER_BROKER__URL"
            )
        wanted = [(int(os.environ["STAGER_PORT"]), "the API")]
        if not self.ephemeral:
            wanted.append((8081, "the worker's health endpoint"))
            if self.ingest:
                wanted.append((8082, "the ingest worker's health endpoint"))
            if self.test_irods:
                wanted.append((1247, "the iRODS test server"))
        for port, what in wanted:
            if port_open(LOOPBACK, port):
                raise SystemExit(
                    f"up: port {port} for {what} is taken (another `make up`?): "
                    "stop it, or use --ephemeral for free ports"
                )

    async def start_irods(self) -> None:
        """The iRODS test server on ``local/irods``; its port from its ready line."""
        port = 0 if self.ephemeral else 1247
        data = self.local / "irods"
        argv = [sys.executable, "-m", "devtools.irods_server", "--data", str(data)]
        argv += ["--allow-root"] if os.geteuid() == 0 else []  # it refuses root otherwise
        child = Child("irods", [*argv, "--port", str(port)], ready_prefix=IRODS_READY)
        self.children.append(child)
        await child.start()
        assert child.ready_line is not None
        line = await self._first(child, child.ready_line, "its ready line")
        hostport = line[len(IRODS_READY) :].split()[0]
        self.irods = hostport
        self.setdefault("IRODS__PORT", hostport.rsplit(":", 1)[1], force=True)

    def configure_ingest(self) -> bool:
        """The ingest job store and managers; False: no iRODS account for the ingest worker.

        The API (REST), the CLI and the ingest worker read the same ``STAGER_INGEST__DB_URL``
        (and the same broker prefix and iRODS settings as everything else); ``streamer`` may
        start and stop ingest jobs locally. With a real iRODS the ingest worker runs only when
        it has a password to log in with (:func:`ingest_password_source`).
        """
        self.setdefault("INGEST__DB_URL", f"sqlite+aiosqlite:///{self.local / 'ingest.sqlite'}")
        self.setdefault("INGEST_MANAGERS", json.dumps([f"service:{STREAMER}"]))
        self.setdefault("INGEST__ALLOWED_ROOTS", json.dumps([DEMO_DIR]))  # roots ingest may read
        worker = self.test_irods or ingest_password_source(os.environ) is not None
        # no ingest worker: the API refuses ingest jobs (503) rather than let them wait
        self.setdefault("INGEST__WORKERS", "true" if worker else "false", force=not worker)
        return worker

    async def start_services(self) -> None:
        """The API, the workers and the ingest worker (each with its own health port)."""
        api = Child("api", [sys.executable, "-m", "services.api"], env=self.role_env("api"))
        self.children.append(api)
        await api.start()
        for n in range(self.workers):
            port = free_port() if self.ephemeral or n else 8081
            name = "worker" if self.workers == 1 else f"worker{n + 1}"
            w = Child(name, [sys.executable, "-m", "services.worker"], env=self.role_env("worker"))
            w.env["STAGER_HTTP_PORT"] = str(port)
            self.worker_urls.append(f"http://{LOOPBACK}:{port}")
            self.children.append(w)
            await w.start()
        if self.ingest:
            ing = Child("ingest", [sys.executable, "-m", "services.ingest"])
            ing.env.update(self.role_env("ingest"))  # broker user and signing keys
            ing.env["STAGER_HTTP_PORT"] = str(free_port() if self.ephemeral else 8082)
            self.ingest_url = f"http://{LOOPBACK}:{ing.env['STAGER_HTTP_PORT']}"
            self.children.append(ing)
            await ing.start()
        if not self.test_irods:
            self.irods = f"{os.environ['STAGER_IRODS__HOST']}:" + os.environ.get(
                "STAGER_IRODS__PORT", "1247"
            )

    async def _first(self, child: Child, what: Awaitable[str], name: str) -> str:
        """``what``, unless ``child`` exits first."""
        waiter = asyncio.ensure_future(what)
        dead = asyncio.create_task(child.exited())
        done, _ = await asyncio.wait({waiter, dead}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            dead.cancel()
            return waiter.result()
        waiter.cancel()
        raise StackFailed(f"{child.name} exited with status {dead.result()} before {name}")

    async def wait_ready(self, limit: float) -> None:
        """Until the API and every worker (ingest too) answer ``/readyz`` with 200."""
        urls = [self.api_url, *self.worker_urls, *([self.ingest_url] if self.ingest_url else [])]
        pending = [u + "/readyz" for u in urls]
        try:
            async with (
                asyncio.timeout(limit),
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            ):
                while pending:
                    for child in self.children:
                        if child.proc is not None and child.proc.returncode is not None:
                            raise StackFailed(
                                f"{child.name} exited with status {child.proc.returncode} "
                                "while starting"
                            )
                    pending = [u for u in pending if not await _is_ready(http, u)]
                    if pending:
                        await asyncio.sleep(0.2)
        except TimeoutError:
            raise StackFailed(f"not ready after {limit:g} s: {', '.join(pending)}") from None

    async def stop(self) -> None:
        """Workers first (they hand unfinished tasks back), then the rest."""
        workers = [c for c in self.children if c.name.startswith("worker")]
        others = [c for c in self.children if c not in workers]
        await asyncio.gather(*(c.stop(self.grace) for c in workers))
        await asyncio.gather(*(c.stop(self.grace) for c in others))
        if self.ephemeral and self.broker is not None:
            await asyncio.to_thread(self.remove_broker)
        elif self.ephemeral and self.prefix:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(clean_up_broker(), 10)

    def remove_broker(self) -> None:
        """``--ephemeral``: this run's vhost (every queue in it), users and their secrets."""
        users = self.broker
        if users is None:
            return
        try:
            broker_users.remove(users)
        except broker_users.BrokerSetupError as e:
            say(f"up: {e}")
        shutil.rmtree(users.secrets_dir, ignore_errors=True)


class StackFailed(Exception):
    """A child died or did not get ready."""


async def _is_ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def clean_up_broker() -> None:
    """Remove every queue and exchange of the broker prefix (``--ephemeral``), ingest's too.

    The names come from :class:`shared.messaging.topology.Topology` with the workers' retry
    delays (``STAGER_RETRY__*``): the same object the API and the workers declare from.
    """
    from services.worker.settings import WorkerSettings
    from shared.messaging import broker
    from shared.messaging.topology import Names, Topology, delete_topology, retry_delays

    s = WorkerSettings()
    topo = Topology(
        names=Names(s.broker.prefix),
        delivery_limit=s.delivery_limit,
        retry_delays_ms=retry_delays(s.retry.delays()),
    )
    conn = await broker.connect(s.broker.url.get_secret_value(), name="stager-up-cleanup")
    try:
        await delete_topology(await conn.channel(), topo)
    finally:
        await conn.close()


# --- the researcher web UI (services/ui), its OIDC provider and WebDAV server ------------
# One section: ui_configure() before the API starts (the API must accept the provider's
# tokens), ui_start() after it, ui_banner() for the banner. Test accounts alice and bob log
# in at the provider (devtools/oidc, npm oidc-provider) and map to the Unix users stg-alice
# and stg-bob (made when missing, as root, not with --ephemeral); admin and helpdesk (the
# admin view's administrator and read-only administrator: their tokens' groups claim holds
# ADMIN_GROUP / READONLY_GROUP) to stg-admin and stg-helpdesk; their passwords and the
# UI's client secret are made once in .local/oidc/ (0600). Without node the UI is left out.

UI_ACCOUNTS = {
    "alice": "stg-alice",
    "bob": "stg-bob",
    "admin": "stg-admin",
    "helpdesk": "stg-helpdesk",
}
#: The admin view's groups (STAGER_ADMIN__GROUPS / __READONLY_GROUPS) and the test
#: accounts whose tokens carry them: ``admin`` may act, ``helpdesk`` may only look.
ADMIN_GROUP, READONLY_GROUP = "stager-admins", "stager-helpdesk"
UI_GROUPS = {"admin": [ADMIN_GROUP], "helpdesk": [READONLY_GROUP]}
UI_ROLES = {"admin": "administrator", "helpdesk": "read-only administrator"}
UI_PORT, WEBDAV_PORT = 8083, 8084


@dataclass
class UiPlan:
    """Where the UI, its provider and the WebDAV server run (``skipped``: why not)."""

    url: str = ""
    issuer: str = ""
    webdav: str = ""
    accounts_file: Path | None = None
    logins: list[str] = field(default_factory=list)
    skipped: str = ""


def _ui_secret(path: Path) -> str:
    if not path.exists():
        _write_private(path, (secrets.token_urlsafe(24) + "\n").encode())
    return path.read_text().strip()


def _ui_unix_users(ephemeral: bool) -> dict[str, str]:
    """IdP login -> Unix user; users are made only as root and not for --ephemeral runs."""
    out: dict[str, str] = {}
    for login, unix in UI_ACCOUNTS.items():
        try:
            pwd.getpwnam(unix)
        except KeyError:
            if ephemeral or os.geteuid() != 0:
                continue
            done = subprocess.run(
                ["useradd", "-m", "-s", "/bin/bash", unix], capture_output=True, check=False
            )
            if done.returncode != 0:
                continue
        out[login] = unix
    if not out:  # --ephemeral or not root: the user running make up, if it is a real one
        user, real = demo_user()
        if real:  # the admin logins too: two logins may map to one Unix user
            out.update(dict.fromkeys(("alice", *UI_GROUPS), user))
    return out


async def ui_configure(stack: Stack, plan: UiPlan) -> None:
    """Start the OIDC provider (before the API) and point the API at it."""
    from dataclasses import asdict

    from devtools.oidc.launcher import SERVER, Account, Client, OidcSetupError
    from devtools.oidc.launcher import ensure_installed as npm_ci
    from devtools.oidc.launcher import node as node_exe

    if "STAGER_AUTH__OIDC__ISSUER" in os.environ:
        plan.skipped = "STAGER_AUTH__OIDC__ISSUER is set: run services.ui yourself (docs/ui.md)"
        return
    if not stack.ephemeral and any(port_open(LOOPBACK, p) for p in (UI_PORT, WEBDAV_PORT)):
        plan.skipped = f"port {UI_PORT} or {WEBDAV_PORT} is taken"
        return
    try:
        exe = node_exe()
        await asyncio.to_thread(npm_ci)
    except OidcSetupError as e:
        plan.skipped = str(e)
        return
    users = _ui_unix_users(stack.ephemeral)
    if not users:
        plan.skipped = "no Unix user for the test accounts (run make up as root)"
        return
    root = stack.local / "oidc"
    root.mkdir(mode=0o700, exist_ok=True)
    plan.accounts_file = root / "accounts.txt"
    passwords = {login: _ui_secret(root / f"{login}.password") for login in users}
    plan.logins = sorted(users)
    if not plan.accounts_file.exists():
        _write_private(plan.accounts_file, b"")
    plan.accounts_file.write_text(
        "".join(
            f"{login} {passwords[login]} (Unix user {users[login]}"
            + (f"; {UI_ROLES[login]}, group {UI_GROUPS[login][0]}" if login in UI_GROUPS else "")
            + ")\n"
            for login in users
        )
    )
    ui_port = free_port() if stack.ephemeral else UI_PORT
    plan.url = f"http://{LOOPBACK}:{ui_port}"
    client = Client(
        "stager-ui",
        _ui_secret(root / "client.secret"),
        [f"{plan.url}/auth/callback"],
        [f"{plan.url}/auth/logged-out"],
    )
    accounts = {
        k: Account(passwords[k], users[k], k.capitalize(), groups=UI_GROUPS.get(k, []))
        for k in users
    }
    config = {
        "host": LOOPBACK,
        "port": 0,
        "audience": "stager-api",
        "access_token_ttl": 300,
        "clients": [asdict(client)],
        "accounts": {k: asdict(v) for k, v in accounts.items()},
    }
    config_file = root / "provider.json"
    config_file.unlink(missing_ok=True)
    _write_private(config_file, json.dumps(config).encode())
    idp = Child("oidc", [exe, str(SERVER), str(config_file)], ready_prefix='{"issuer"')
    idp.env["NODE_ENV"] = "production"
    stack.children.append(idp)
    await idp.start()
    assert idp.ready_line is not None
    line = await stack._first(idp, idp.ready_line, "its issuer line")
    plan.issuer = str(json.loads(line)["issuer"])
    stack.setdefault("AUTH__OIDC__ISSUER", plan.issuer, force=True)
    stack.setdefault("AUTH__OIDC__AUDIENCE", "stager-api")
    stack.setdefault("ADMIN__GROUPS", json.dumps([ADMIN_GROUP]))
    stack.setdefault("ADMIN__READONLY_GROUPS", json.dumps([READONLY_GROUP]))


async def ui_start(stack: Stack, plan: UiPlan) -> None:
    """The WebDAV server in front of iRODS, then the UI (after the API)."""
    if plan.skipped:
        return
    irods_host, irods_port = stack.irods.rsplit(":", 1)
    zone = os.environ.get("STAGER_IRODS__ZONE", "tempZone")
    dav_port = free_port() if stack.ephemeral else WEBDAV_PORT
    dav = Child(
        "webdav",
        [
            *(sys.executable, "-m", "devtools.webdav", "--port", str(dav_port)),
            *("--irods-host", irods_host, "--irods-port", irods_port, "--zone", zone),
        ],
        ready_prefix='{"url"',
    )
    stack.children.append(dav)
    await dav.start()
    assert dav.ready_line is not None
    plan.webdav = json.loads(await stack._first(dav, dav.ready_line, "its URL line"))["url"]
    port = plan.url.rsplit(":", 1)[1]
    ui = Child("ui", [sys.executable, "-m", "services.ui"])
    ui.env.update(
        {
            "STAGER_PORT": port,
            "STAGER_PUBLIC_URL": plan.url,
            "STAGER_API_URL": stack.api_url,
            "STAGER_COOKIE_SECURE": "false",
            "STAGER_OIDC__ISSUER": plan.issuer,
            "STAGER_OIDC__CLIENT_SECRET": f"file:{stack.local / 'oidc' / 'client.secret'}",
            "STAGER_REPOSITORY__WEBDAV_URL": plan.webdav,
            "STAGER_LOCAL_ROOT": "/home/{user}",
        }
    )
    stack.children.append(ui)
    await ui.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        for _ in range(100):
            if await _is_ready(http, plan.url + "/livez"):
                return
            if ui.proc is not None and ui.proc.returncode is not None:
                raise StackFailed(f"ui exited with status {ui.proc.returncode} while starting")
            await asyncio.sleep(0.2)
    raise StackFailed("the UI did not answer on " + plan.url)


def ui_banner(plan: UiPlan) -> list[str]:
    """The UI's lines in the banner."""
    if plan.skipped:
        return [f"  UI       not started: {plan.skipped}"]
    logins = " or ".join(x for x in plan.logins if x not in UI_GROUPS)
    admins = ", ".join(f"{x} ({UI_ROLES[x]})" for x in plan.logins if x in UI_GROUPS)
    lines = [
        f"  UI       {plan.url}   (log in as {logins}: cat {plan.accounts_file}; "
        f"repository login {IRODS_ADMIN[0]}/{IRODS_ADMIN[1]} on the test iRODS)",
    ]
    if admins:
        lines.append(f"  Admin    {plan.url}/admin   (log in as {admins}; same file)")
    return [*lines, f"  OIDC     {plan.issuer}   WebDAV {plan.webdav}"]


# --- end of the researcher web UI section -------------------------------------------------


# --- the banner ----------------------------------------------------------------------------


def demo_user() -> tuple[str, bool]:
    """(a non-system user for the example, whether it is a real account)."""
    for name in (os.environ.get("SUDO_USER"), os.environ.get("USER")):
        if not name:
            continue
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid >= MIN_UID:
            return name, True
    return "alice", False


def broker_line(stack: Stack) -> str:
    """Which vhost and users the services log in with."""
    if stack.broker is None:
        return "STAGER_BROKER__URL as given (every service shares it)"
    b = stack.broker
    users = ", ".join(b.user(r) for r in b.roles)
    return f"vhost {b.vhost}, users {users} (passwords in {b.secrets_dir})"


def banner(stack: Stack, sec: Secrets, ui: UiPlan | None = None) -> str:
    """What is running, and a curl example that submits a job as ``streamer``."""
    user, real = demo_user()
    irods_user = IRODS_ADMIN[0] if stack.test_irods else os.environ.get("STAGER_IRODS__USER", "")
    zone = os.environ.get("STAGER_IRODS__ZONE", "tempZone")
    coll = f"/{zone}/home/{irods_user}/stager-demo"
    body = json.dumps(
        {
            "title": "make up demo",
            "stagerUser": user,
            "drUser": irods_user,
            "srcURL": DEMO_DIR + "/",
            "dstURL": f"irods:{coll}",
        }
    )
    ingest_body = json.dumps(
        {"root": DEMO_DIR, "target": f"/{zone}/home/{irods_user}/ingest-demo", "owner": user}
    )
    auth = f'-u "{STREAMER}:$(cat {sec.password_file})"'
    api = stack.api_url
    irods_line = f"{stack.irods}  zone {zone}"
    if stack.test_irods:
        irods_line += f", account {IRODS_ADMIN[0]}/{IRODS_ADMIN[1]} (iRODS test server)"
    who = (
        f"the upload runs as Unix user {user}"
        if real
        else f"replace {user} by a Unix user with uid >= {MIN_UID}; the upload runs as them"
    )
    lines = [
        "",
        "The data stager is up.",
        f"  API      {api}   (docs {api}/v1/docs, OpenAPI {api}/v1/openapi.json)",
        f"  metrics  {api}/metrics  " + "  ".join(u + "/metrics" for u in stack.worker_urls),
        f"  iRODS    {irods_line}",
        f"  secrets  {stack.local}  (service account {STREAMER}: {sec.password_file})",
        f"  broker   {broker_line(stack)}",
        *(ui_banner(ui) if ui is not None else []),
        "",
        f"Submit a job as {STREAMER} ({who}):",
        "",
        f"  mkdir -p {DEMO_DIR} && echo hello > {DEMO_DIR}/hello.txt && chmod -R a+rX {DEMO_DIR}",
        f"  curl -sS {auth} -H 'Content-Type: application/json' \\",
        f"    -d '{body}' \\",
        f"    {api}/v1/job",
        f"  curl -sS {auth} {api}/v1/jobs   # its status",
        "",
        f"Ingest the same folder (an ingest job; {STREAMER} is a local data manager):",
        "",
        f"  curl -sS {auth} -X PUT -H 'Content-Type: application/json' \\",
        f"    -d '{ingest_body}' \\",
        f"    {api}/v1/ingest/demo",
        f"  curl -sS {auth} {api}/v1/ingest/demo   # state and counters",
        "",
    ]
    if os.geteuid() != 0:
        lines.append(
            "WARNING: not running as root: the worker cannot become other Unix users, so "
            "transfers as anyone but yourself fail. Run `make up` as root for those."
        )
    if not stack.test_irods and "STAGER_SERVICE_CREDENTIALS" not in os.environ:
        lines.append(
            f"NOTE: no repository credential for {STREAMER} on the worker "
            '(STAGER_SERVICE_CREDENTIALS=\'{"streamer": {"user": ..., "password": ...}}\'): '
            "give drPass in each job."
        )
    lines.append("Ctrl-C stops everything.")
    lines.append(
        f"{READY_LINE}api={api} irods={stack.irods} local={stack.local} prefix={stack.prefix}"
    )
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.up", description="run the stack locally")
    p.add_argument(
        "--local-dir",
        type=Path,
        default=Path(os.environ.get("STAGER_UP_LOCAL_DIR", REPO / ".local")),
        help="secrets, database, iRODS data and state (default .local/)",
    )
    p.add_argument(
        "--ephemeral",
        action="store_true",
        default=os.environ.get("STAGER_UP_EPHEMERAL") == "1",
        help="free ports and a private broker prefix (tests, benchmarks)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds before SIGKILL")
    p.add_argument("--ready-timeout", type=float, default=90.0)
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


async def run(args: argparse.Namespace) -> int:
    """Start, wait for a signal or a dying child, stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    local: Path = args.local_dir.resolve()
    sec = ensure_secrets(local)
    stack = Stack(local, args.ephemeral, args.workers, args.grace)
    stack.configure(sec)
    stack.check_ports()
    stack.configure_broker()
    status = 0
    try:
        status = await _serve(stack, sec, stop, args.ready_timeout)
    except StackFailed as e:
        say(f"up: {e}; stopping")
        status = 1
    finally:
        say("up: stopping ...")
        await stack.stop()
        say("up: stopped")
    return status


async def _serve(stack: Stack, sec: Secrets, stop: asyncio.Event, ready_timeout: float) -> int:
    async def until_stopped(step: Callable[[], Awaitable[None]]) -> bool:
        """Run ``step`` unless a signal comes first; False when stopped."""
        work = asyncio.ensure_future(step())
        halt = asyncio.create_task(stop.wait())
        await asyncio.wait({work, halt}, return_when=asyncio.FIRST_COMPLETED)
        halt.cancel()
        if work.done():
            work.result()
            return True
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, StackFailed):
            await work
        return False

    ui = UiPlan()
    if stack.test_irods and not await until_stopped(stack.start_irods):
        return 0
    if not await until_stopped(lambda: ui_configure(stack, ui)):
        return 0
    if not await until_stopped(stack.start_services):
        return 0
    if not await until_stopped(lambda: stack.wait_ready(ready_timeout)):
        return 0
    if not await until_stopped(lambda: ui_start(stack, ui)):
        return 0
    say(banner(stack, sec, ui))
    exits = {asyncio.create_task(c.exited()): c for c in stack.children}
    halt = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({halt, *exits}, return_when=asyncio.FIRST_COMPLETED)
    for t in (halt, *exits):
        t.cancel()
    for t in done:
        if t in exits:
            raise StackFailed(f"{exits[t].name} exited with status {t.result()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make up``."""
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
