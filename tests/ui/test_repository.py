"""The repository side against the iRODS test server (python-irodsclient unmodified) and
the WebDAV server in front of it: login checks, the password gone after login, listing,
new folders, idle connections closed, and the envelope the UI keeps."""

from __future__ import annotations

import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtools.webdav.launcher import WebdavServer
from services.ui.app import create_app, sweep_once
from services.ui.keys import SESSIONS
from services.ui.repository import RepoBrowser, Repository
from services.ui.settings import RepositorySettings
from shared.crypto import Binding, binding_of
from shared.errors import InvalidInput, NotFound, Unauthenticated
from shared.settings import IrodsSettings
from tests.ui.conftest import DR_PASS, logged_in, ui_settings


def holds(obj: Any, secret: str, depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """Attribute paths under ``obj`` whose value is (or contains) ``secret``."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8 or isinstance(obj, types.ModuleType | type):
        return []
    seen.add(id(obj))
    if isinstance(obj, str | bytes):
        text = obj.decode(errors="replace") if isinstance(obj, bytes) else obj
        return ["<value>"] if secret in text else []
    children: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        children = [(repr(k), v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = [(f"[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).items())
    found = []
    for name, child in children:
        found += [f".{name}{p}" for p in holds(child, secret, depth + 1, seen)]
    return found


@pytest.fixture
async def repo(irods_server: Any) -> AsyncIterator[Repository]:
    irods = IrodsSettings(host=irods_server.host, port=irods_server.port, zone=irods_server.zone)
    async with aiohttp.ClientSession() as http:
        r = Repository(RepositorySettings(), irods, http)
        yield r
        r.close()


@pytest.fixture
def dav(irods_server: Any) -> Iterator[WebdavServer]:
    with WebdavServer(irods_server.host, irods_server.port, irods_server.zone) as server:
        yield server


async def test_login_keeps_a_connection_but_not_the_password(
    repo: Repository, irods_user: Any, irods_server: Any
) -> None:
    name, session = irods_user(password=DR_PASS)
    home = f"/{irods_server.zone}/home/{name}"
    for i in range(120):
        session.collections.create(f"{home}/d{i:03}")
    session.data_objects.create(f"{home}/f.txt")
    with session.data_objects.open(f"{home}/f.txt", "w") as fh:
        fh.write(b"12345")
    browser: RepoBrowser = await repo.login(name, DR_PASS)
    try:
        assert holds(browser, DR_PASS) == []
        entries = await repo.run(browser.list, home)
        assert len(entries) == 121
        f = next(e for e in entries if e.name == "f.txt")
        assert f.type == "regular" and f.size == 5 and f.mtime and f.mtime > time.time() - 600
        await repo.run(browser.mkdir, f"{home}/new")
        assert session.collections.exists(f"{home}/new")
        with pytest.raises(InvalidInput, match="already exists"):
            await repo.run(browser.mkdir, f"{home}/new")
        with pytest.raises(NotFound):
            await repo.run(browser.list, f"{home}/missing")
        with pytest.raises(NotFound):
            await repo.run(browser.mkdir, f"{home}/missing/x")
        # the connection works on and on without the password (one at a time)
        for _ in range(3):
            await repo.run(browser.list, home)
        browser.close()
        with pytest.raises(Unauthenticated, match="log in to the repository again"):
            await repo.run(browser.list, home)
    finally:
        browser.close()


async def test_wrong_password_or_user_is_refused_readably(
    repo: Repository, irods_user: Any
) -> None:
    name, _ = irods_user(password=DR_PASS)
    with pytest.raises(Unauthenticated, match="authentication failed") as e:
        await repo.login(name, "not-it")
    assert "not-it" not in str(e.value)
    with pytest.raises(Unauthenticated):
        await repo.login("nobody-here", DR_PASS)


async def test_webdav_check_by_propfind(
    repo: Repository, irods_user: Any, dav: WebdavServer
) -> None:
    name, _ = irods_user(password=DR_PASS)
    repo.settings = RepositorySettings(check="webdav", webdav_url=dav.url)
    with pytest.raises(Unauthenticated, match="check your user name"):
        await repo.login(name, "not-it")
    browser = await repo.login(name, DR_PASS)
    browser.close()
    repo.settings = RepositorySettings(check="webdav", webdav_url="http://127.0.0.1:9")
    with pytest.raises(Exception, match="cannot be reached"):
        await repo.login(name, DR_PASS)


async def test_repository_login_through_the_app_keeps_only_the_envelope(
    irods_user: Any, irods_server: Any
) -> None:
    name, _ = irods_user(password=DR_PASS)
    settings = ui_settings(
        irods={"host": irods_server.host, "port": irods_server.port, "zone": irods_server.zone},
        repository={"browse_idle": 60},
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        s = logged_in(client)
        h = {"X-CSRF-Token": s.csrf}
        r = await client.post(
            "/ui/repo/login", json={"username": name, "password": DR_PASS}, headers=h
        )
        assert r.status == 200, await r.text()
        assert DR_PASS not in await r.text()
        assert s.repository is not None
        assert binding_of(s.repository.envelope) == Binding(stager_user="alice", dr_user=name)
        assert holds(s, DR_PASS) == [] and holds(client.app[SESSIONS], DR_PASS) == []
        home = f"/{irods_server.zone}/home/{name}"
        r = await client.get("/ui/repo", params={"path": f"irods:{home}"})
        assert r.status == 200 and (await r.json())["path"] == home
        r = await client.get("/ui/session")
        assert (await r.json())["browsing"] is True
        # idle longer than browse_idle: closed; browsing asks for the password again,
        # the envelope stays for jobs
        s.extra["browser"].last_used -= 61
        sweep_once(client.app)
        r = await client.get("/ui/repo", params={"path": home})
        assert r.status == 401 and "log in to the repository" in (await r.json())["errorMessage"]
        assert s.repository is not None
        # logout of the repository forgets the envelope too
        r = await client.post("/ui/repo/logout", json={}, headers=h)
        assert r.status == 200 and s.repository is None
    finally:
        await client.close()
