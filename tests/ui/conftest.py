"""The real stack for the UI tests: the OIDC provider (npm oidc-provider), the API and a
worker (real transfers as the Unix user through isync) on real RabbitMQ, the iRODS test
server, the WebDAV server in front of it, the UI, and Debian's Chromium driven by
Playwright.

``ui_stack`` (function) starts everything and returns a :class:`Stack`; ``browser``
(function) is a Chromium page factory. Browser tests are skipped only when
``/usr/bin/chromium`` is absent and ``CI`` is not set; under ``CI=true`` they run (and
fail if it is missing). Screenshots go to ``.local/ui-screenshots/``.
"""

from __future__ import annotations

import functools
import io
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devtools.oidc.launcher import Account, Client, OidcProvider, OidcSetupError
from devtools.webdav.launcher import WebdavServer
from services.api.app import create_app as create_api
from services.ui.app import create_app as create_ui
from services.ui.keys import SESSIONS
from services.ui.sessions import PLAIN_COOKIE, Session, Tokens
from services.ui.settings import UiSettings
from services.worker.app import Worker
from services.worker.settings import WorkerSettings
from shared.crypto import generate_keypair
from shared.logging import configure
from shared.messaging.signing import Role
from shared.messaging.topology import Names, Topology, delete_topology
from shared.settings import IrodsSettings
from tests.api.conftest import api_settings
from tests.conftest import AMQP_URL, signing_key_set

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".local" / "ui-screenshots"
AXE = REPO / "devtools" / "oidc" / "node_modules" / "axe-core" / "axe.min.js"
IDP_LOGIN, IDP_PASSWORD = "alice", "Alice-idp-Pa55"
DR_PASS = "Dr-UI-Pa55w0rd-MUST-NOT-LEAK"
CLIENT_SECRET = "ui-client-secret-for-tests"
DAC_PROJECT = "3010000.01"


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here (None: they can, or CI insists)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return None
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is absent (apt-get install chromium) and CI is not set"
    if shutil.which("node") is None:
        return "node is absent (apt-get install nodejs npm) and CI is not set"
    return None


needs_browser = pytest.mark.skipif(
    browser_skip_reason() is not None, reason=browser_skip_reason() or ""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def keypair() -> tuple[bytes, bytes]:
    return generate_keypair(2048)


@dataclass
class Ui:
    """A running UI: its URL, app and settings."""

    url: str
    app: web.Application
    runner: web.AppRunner


@dataclass
class Stack:
    """Everything a UI test talks to."""

    idp: OidcProvider
    api: TestClient
    worker: Worker
    ui: Ui
    irods: Any
    dr_user: str
    dr_session: Any
    home: Path
    dav_url: str
    logs: io.StringIO = field(default_factory=io.StringIO)
    make_ui: Callable[..., Any] | None = None

    @property
    def repo_home(self) -> str:
        return f"/{self.irods.zone}/home/{self.dr_user}"


@pytest.fixture
def alice(unix_user: Callable[..., pwd.struct_passwd]) -> pwd.struct_passwd:
    """The researcher's Unix user: a fresh one per test (other suites on this machine add
    and remove their fixed-name users while we run)."""
    return unix_user()


@pytest.fixture
def alice_home(alice: pwd.struct_passwd) -> Iterator[Path]:
    """A folder owned by alice with a few files, a crafted name, a symlink and a big file."""
    pw = alice
    base = Path(tempfile.mkdtemp(prefix="stager-ui-"))
    base.chmod(0o711)
    home = base / "alice"
    (home / "data" / "sub").mkdir(parents=True)
    (home / "data" / "a.txt").write_text("alpha\n")
    (home / "data" / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    (home / "data" / "<img src=x onerror=alert(1)>.txt").write_text("not html\n")
    (home / "data" / "link").symlink_to("a.txt")
    (home / "big").mkdir()
    (home / "big" / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    (home / "down").mkdir()
    for p in [home, *home.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    home.chmod(0o700)
    yield home
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def ui_stack(
    irods_server: Any,
    irods_user: Any,
    alice: pwd.struct_passwd,
    alice_home: Path,
    unique_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """The whole stack, alice logged in nowhere yet."""
    logs = io.StringIO()
    configure("debug", json=True, stream=logs)
    ports = [free_port(), free_port()]
    client = Client(
        "stager-ui",
        CLIENT_SECRET,
        [f"http://127.0.0.1:{p}/auth/callback" for p in ports],
        [f"http://127.0.0.1:{p}/auth/logged-out" for p in ports],
    )
    idp_log = tmp_path / "oidc.log"
    try:
        idp = OidcProvider(
            accounts={IDP_LOGIN: Account(IDP_PASSWORD, alice.pw_name, "Alice Tester")},
            clients=[client],
            log_path=idp_log,
        ).start()
    except OidcSetupError as e:
        pytest.fail(str(e))
    dav = WebdavServer(irods_server.host, irods_server.port, irods_server.zone).start()
    irods = IrodsSettings(
        host=irods_server.host,
        port=irods_server.port,
        zone=irods_server.zone,
        user=irods_server.admin_user,
        password=irods_server.admin_password,
    )
    private_pem, public_pem = keypair()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k1.pem").write_bytes(private_pem)
    dr_user, dr_session = irods_user(password=DR_PASS)
    settings = api_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}",
        unique_prefix,
        public_pem,
        idp.issuer,
        irods=irods,
        ingest={"db_url": f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite"},
        dac={"static": {DAC_PROJECT: f"/{irods_server.zone}/home/{dr_user}"}},
    )
    api = TestClient(TestServer(create_api(settings)))
    await api.start_server()
    worker_settings: dict[str, Any] = dict(
        broker={"url": AMQP_URL, "prefix": unique_prefix},
        irods=irods,
        private_keys_dir=keys,
        state_dir=tmp_path / "state",
        http_port=0,
        concurrency=2,
        progress_interval=0.2,
        cancel_grace=0.5,
        transfer={"bwlimit": 2_000_000},
        retry={"max_attempts": 2, "base_delay": 0.3, "factor": 2, "max_delay": 1},
        signing=signing_key_set().settings(Role.WORKER),
    )
    worker = Worker(WorkerSettings(**worker_settings))
    await worker.start()
    runners: list[web.AppRunner] = []

    async def make_ui(port: int, **over: Any) -> Ui:
        base: dict[str, Any] = dict(
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            api_url=str(api.make_url("")).rstrip("/"),
            public_keys=[public_pem.decode()],
            cookie_secure=False,
            oidc={
                "issuer": idp.issuer,
                "client_id": client.client_id,
                "client_secret": CLIENT_SECRET,
            },
            irods={"host": irods_server.host, "port": irods_server.port, "zone": irods.zone},
            repository={"check": "irods", "webdav_url": dav.url},
            poll_interval=0.5,
            page_size=50,
        )
        base.update(over)
        app = create_ui(UiSettings(**base))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Ui(f"http://127.0.0.1:{port}", app, runner)

    ui = await make_ui(ports[0])
    stack = Stack(
        idp, api, worker, ui, irods_server, dr_user, dr_session, alice_home, dav.url, logs
    )
    stack.make_ui = lambda **over: make_ui(ports[1], **over)
    try:
        yield stack
    finally:
        for runner in runners:
            await runner.cleanup()
        await worker.close()
        await api.close()
        amqp = await aio_pika.connect_robust(AMQP_URL)
        channel = await amqp.channel()
        await delete_topology(channel, Topology(names=Names(unique_prefix)))
        await delete_topology(channel, worker.topology)
        await amqp.close()
        dav.stop()
        idp.stop()  # irods_user empties and removes the repository user after us


def ui_settings(**over: Any) -> UiSettings:
    base: dict[str, Any] = dict(
        public_url="http://127.0.0.1:9999",
        public_keys=[keypair()[1].decode()],
        oidc={"issuer": "http://127.0.0.1:9", "client_secret": "s"},
        cookie_secure=False,
    )
    base.update(over)
    return UiSettings(**base)


def logged_in(client: TestClient) -> Session:
    """A logged-in session, its cookie set on the client."""
    store = client.app[SESSIONS]
    _, s = store.new()
    cookie = store.logged_in(s, "alice", "Alice", Tokens("access", "id", None, time.time() + 3600))
    client.session.cookie_jar.update_cookies({PLAIN_COOKIE: cookie})
    return s


def sessions_of(ui: Ui) -> Any:
    """The UI's session store (tests expire sessions through it)."""
    return ui.app[SESSIONS]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A Chromium (Debian's) for the test; closed after."""
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (CI must run these tests)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()
