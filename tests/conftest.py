"""Shared pytest fixtures: the iRODS test server driven by the real python-irodsclient.

``irods_server`` (session scope)
    A fresh server (``python -m devtools.irods_server --port 0``) on a temp data dir, shared
    by the whole run. A :class:`~devtools.irods_server.launcher.ServerProcess` with ``host``,
    ``port``, ``zone``, ``admin_user``, ``admin_password``, ``data_dir``,
    ``session(user="rods", password=None, **opts) -> iRODSSession`` (rods gets its
    password; close the session or use ``with``), ``write_env(home, user, password)``
    (irods_environment.json + obfuscated .irodsA under ``home/.irods``) and
    ``tls_options()``. Tests sharing it must use unique object names (see ``unique_name``).
``irods_session`` (function)
    An ``iRODSSession`` as rods on ``irods_server``; cleaned up after the test.
``irods_user`` (function factory)
    ``irods_user(password=..., user_type="rodsuser") -> (name, session)``: creates a
    uniquely named user through the admin API and returns a session as that user; both
    removed after the test (with whatever the test left in the user's home and trash).
``irods_env_dir`` (function)
    A temp HOME whose ``.irods/`` holds an environment file and ``.irodsA`` for rods on
    ``irods_server``; ``IRODS_ENVIRONMENT_FILE`` and ``HOME`` are set for the test.
``irods_server_factory`` (function)
    ``irods_server_factory(tls=False, data_dir=None) -> ServerProcess``: a private server
    (its own data dir) for tests that restart it (``srv.restart()`` keeps data dir and
    port) or need TLS; stopped after the test.
``tls_irods_server`` (session scope)
    A server with a throwaway self-signed certificate (generated at test time);
    ``tls_irods_server.session(**tls_irods_server.tls_options())`` negotiates TLS.
``unique_name`` (function)
    A short unique string for object/user names on the shared server.

Infrastructure the service suites share (each defined here only):

``amqp_url`` (function)
    The test RabbitMQ: ``STAGER_TEST_AMQP_URL``, default guest on loopback (``AMQP_URL``
    for plain helpers that cannot take a fixture).
``unique_prefix`` (function)
    A broker prefix of this test's own, so its queues and exchanges meet no other test's.
``names`` / ``amqp`` (function)
    The topology names of ``unique_prefix``, and an ``Amqp`` (connection, confirming
    channel, ``topologies``): every topology listed there is deleted after the test.
``db_url`` (function, parametrised ``sqlite`` / ``postgres``), ``pg_url`` (PostgreSQL only)
    A store URL: a fresh SQLite file, or a fresh PostgreSQL database on
    ``STAGER_TEST_PG_ADMIN`` (dropped after, its connections forced out). Pin one backend
    with ``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``.
``broker_vhost`` (session scope, needs root)
    A private vhost made by ``scripts.broker_users`` with one user per role and a test-admin
    user (:class:`BrokerVhost`: ``.url(role)``, ``.prefix()``); guest has no permission
    there. Removed after the run.
``signing_keys`` (session scope)
    One Ed25519 key pair per role (api, worker, ingest) under a temp dir, as
    :class:`SigningKeys`: ``.settings(role)`` is the ``SigningSettings`` a process of that
    role runs with (its private key, every role's public keys), ``.env(role)`` the same as
    ``STAGER_SIGNING__*`` variables (``file:`` paths) for a subprocess, ``.signer(role)``.
``unix_user`` (function factory, needs root)
    ``unix_user(name=None, *, login_shell="/bin/bash", uid=None) -> pwd.struct_passwd``: a real
    Unix user (uid >= 20000 unless ``uid`` is given, own group, no home, a login shell:
    :func:`shared.unix_users.vet` refuses ``nologin`` accounts), a fresh unique one or the
    one named. A named user that already exists
    is returned as it is and left alone; every user the factory created is removed after
    the test, its leftover processes killed first.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import pwd
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from devtools.accounts import add_account, remove_account
from devtools.irods_server.launcher import ServerProcess, make_self_signed_cert
from scripts import broker_users
from shared.messaging import broker, signing
from shared.messaging.topology import Names, Topology
from shared.settings import SigningSettings

DEFAULT_USER_PASSWORD = "pw-for-tests"
AMQP_URL = os.environ.get("STAGER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN = os.environ.get("STAGER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class SigningKeys:
    """A key pair per role in ``root`` (``ROLE.key`` 0600, ``ROLE.pub``)."""

    root: Path

    def _pub(self, role: signing.Role) -> Path:
        return self.root / f"{role.value}.pub"

    def _key(self, role: signing.Role) -> Path:
        return self.root / f"{role.value}.key"

    def env(self, role: signing.Role) -> dict[str, str]:
        """``STAGER_SIGNING__*`` for a process of ``role`` (file: secrets)."""
        return {
            "STAGER_SIGNING__KEY": f"file:{self._key(role)}",
            **{
                f"STAGER_SIGNING__{r.value.upper()}_KEYS": f"file:{self._pub(r)}"
                for r in signing.Role
            },
        }

    def settings(self, role: signing.Role) -> SigningSettings:
        """The ``SigningSettings`` of a process of ``role``."""
        return SigningSettings.model_validate(
            {k.removeprefix("STAGER_SIGNING__").lower(): v for k, v in self.env(role).items()}
        )

    def signer(self, role: signing.Role) -> signing.Signer:
        return self.settings(role).signer(role)


@functools.cache
def signing_key_set() -> SigningKeys:
    """The run's key pairs (made once; plain helpers that cannot take a fixture use it)."""
    root = Path(tempfile.mkdtemp(prefix="stager-signing-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for role in signing.Role:
        private_pem, public_pem = signing.generate()
        key = root / f"{role.value}.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        (root / f"{role.value}.pub").write_bytes(public_pem)
    return SigningKeys(root)


@pytest.fixture(scope="session")
def signing_keys() -> SigningKeys:
    return signing_key_set()


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@dataclass(frozen=True)
class BrokerVhost:
    """A private vhost with the role users (api, worker, ingest) and a test-admin user.

    The role users may touch every topology whose prefix starts with ``base``; take one per
    test with :meth:`prefix`. ``url(role)`` is a role's URL (``"admin"``: the fixtures'
    user, standing in for a leaked broker password: it may publish anything).
    """

    users: broker_users.BrokerUsers
    base: str

    def url(self, role: str) -> str:
        return self.users.url(role)

    def prefix(self) -> str:
        return self.base + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def broker_vhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerVhost]:
    """The session's :class:`BrokerVhost` (made with ``scripts.broker_users``; removed after)."""
    if os.geteuid() != 0:
        pytest.skip("creating RabbitMQ users needs root (rabbitmqctl)")
    tag = uuid.uuid4().hex[:8]
    base = f"tv{tag}"
    users = broker_users.BrokerUsers(
        vhost=f"stager-test-{tag}",
        users_prefix=f"stager-test-{tag}",
        secrets_dir=tmp_path_factory.mktemp("broker"),
    )
    try:
        broker_users.ensure(users, prefix_re=re.escape(base) + "[a-z0-9]*", admin=True)
    except broker_users.BrokerSetupError as e:
        pytest.skip(str(e))
    try:
        yield BrokerVhost(users, base)
    finally:
        broker_users.remove(users, admin=True)


@pytest.fixture
def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def names(unique_prefix: str) -> Names:
    return Names(unique_prefix)


@dataclass
class Amqp:
    """A connection, a confirming channel, and the topologies to delete afterwards."""

    connection: Any
    channel: Any
    names: Names
    topologies: list[Topology] = field(default_factory=list)


@pytest.fixture
async def amqp(names: Names, amqp_url: str) -> AsyncIterator[Amqp]:
    """A private topology prefix; every topology in ``.topologies`` is deleted after."""
    conn = await broker.connect(amqp_url, name="stager-test")
    ch = await broker.open_channel(conn)
    a = Amqp(conn, ch, names, [Topology(names=names)])
    yield a
    queues = {q for topo in a.topologies for q in topo.queue_names()}
    exchanges = {x for topo in a.topologies for x in topo.exchange_names()}
    for name in sorted(queues):
        await _quietly(conn, "queue_delete", name)
    for name in sorted(exchanges):
        await _quietly(conn, "exchange_delete", name)
    await conn.close()


async def _quietly(conn: Any, method: str, name: str) -> None:
    """Best-effort cleanup on its own channel: a busy shared broker must not hang teardown."""
    try:
        async with asyncio.timeout(20):
            ch = await conn.channel()
            await getattr(ch, method)(name)
            await ch.close()
    except Exception:
        pass


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}"
        return
    async for url in _pg_database():
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (for what only PostgreSQL does: several processes)."""
    async for url in _pg_database():
        yield url


async def _pg_database() -> AsyncIterator[str]:
    name = f"stager_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unix_user() -> Iterator[Callable[..., pwd.struct_passwd]]:
    made: list[str] = []

    def make(
        name: str | None = None, *, login_shell: str = "/bin/bash", uid: int | None = None
    ) -> pwd.struct_passwd:
        if name is not None:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                pass
        if os.geteuid() != 0:
            pytest.skip("creating Unix users needs root")
        account = add_account(name, login_shell=login_shell, uid=uid)
        made.append(account.pw_name)
        return account

    yield make
    for name in made:
        remove_account(name)  # its leftovers first, e.g. a child lingering for its next task


@pytest.fixture(scope="session")
def irods_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("irods") / "data") as srv:
        yield srv


@pytest.fixture(scope="session")
def tls_irods_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("irods-tls")
    cert, key = make_self_signed_cert(base / "tls")
    with ServerProcess(base / "data", tls_cert=cert, tls_key=key) as srv:
        yield srv


@pytest.fixture
def irods_session(irods_server: ServerProcess) -> Iterator[Any]:
    with irods_server.session() as session:
        yield session


@pytest.fixture
def unique_name() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def irods_user(irods_server: ServerProcess) -> Iterator[Callable[..., tuple[str, Any]]]:
    created: list[tuple[str, Any]] = []

    def make(password: str = DEFAULT_USER_PASSWORD, user_type: str = "rodsuser") -> tuple[str, Any]:
        name = "u" + uuid.uuid4().hex[:10]
        with irods_server.session() as admin:
            admin.users.create(name, user_type)
            admin.users.modify(name, "password", password)
        session = irods_server.session(name, password)
        created.append((name, session))
        return name, session

    yield make
    with irods_server.session() as admin:
        for name, session in created:
            session.cleanup()
            _empty_homes(admin, irods_server.zone, name)
            admin.users.remove(name)


def _empty_homes(admin: Any, zone: str, user: str) -> None:
    """Remove what a test left in a user's home and trash (a user must be empty to go)."""
    for path in (f"/{zone}/home/{user}", f"/{zone}/trash/home/{user}"):
        coll = admin.collections.get(path)
        for sub in coll.subcollections:
            admin.collections.remove(sub.path, recurse=True, force=True)
        for obj in coll.data_objects:
            admin.data_objects.unlink(obj.path, force=True)


@pytest.fixture
def irods_env_dir(
    irods_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path / "home"
    env_file = irods_server.write_env(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(env_file))
    return home


@pytest.fixture
def irods_server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    servers: list[ServerProcess] = []

    def make(
        tls: bool = False, data_dir: Path | None = None, presents: str | None = None
    ) -> ServerProcess:
        n = len(servers)
        cert = key = None
        if tls:
            cert, key = make_self_signed_cert(tmp_path / f"tls{n}")
        srv = ServerProcess(
            data_dir or tmp_path / f"data{n}", tls_cert=cert, tls_key=key, presents=presents
        )
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        srv.stop()
