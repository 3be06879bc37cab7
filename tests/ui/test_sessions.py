"""The session store, the cookie and the CSRF token, and the middlewares that apply them
(the app built through ``create_app``; no browser, no provider contacted)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.ui.app import create_app
from services.ui.keys import SESSIONS
from services.ui.sessions import (
    PLAIN_COOKIE,
    SECURE_COOKIE,
    Session,
    SessionStore,
    Tokens,
    csrf_ok,
)
from shared.errors import Unavailable
from tests.ui.conftest import logged_in, ui_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tokens() -> Tokens:
    return Tokens("access", "id", "refresh", time.time() + 3600)


def test_sessions_expire_after_their_lifetime_and_are_not_renewed() -> None:
    clock, dropped = Clock(), list[Session]()
    store = SessionStore(
        lifetime=100, login_lifetime=10, max_sessions=5, on_drop=dropped.append, clock=clock
    )
    cookie, s = store.new()
    assert store.get(cookie) is s and not s.authenticated
    clock.now += 11  # a login not finished in time
    assert store.get(cookie) is None and dropped == [s]
    cookie, s = store.new()
    new_cookie = store.logged_in(s, "alice", "Alice", tokens())
    assert store.get(cookie) is None  # no fixation: the pre-login value is dead
    assert store.get(new_cookie) is s and s.authenticated
    clock.now += 99
    assert store.get(new_cookie) is s  # using it does not extend it
    clock.now += 2
    assert store.get(new_cookie) is None


def test_the_store_is_bounded_and_never_logs_someone_out_to_make_room() -> None:
    clock = Clock()
    store = SessionStore(lifetime=100, login_lifetime=10, max_sessions=3, clock=clock)
    _first, s1 = store.new()
    store.logged_in(s1, "a", "A", tokens())
    _c2, s2 = store.new()
    store.logged_in(s2, "b", "B", tokens())
    pending, _s3 = store.new()
    _c4, _s4 = store.new()  # full: the unfinished login goes
    assert store.get(pending) is None and len(store) == 3
    for s in store.sessions():
        if not s.authenticated:
            store.logged_in(s, "c", "C", tokens())
    with pytest.raises(Unavailable):
        store.new()
    clock.now += 101  # now all have expired: room again
    store.new()
    assert len(store) == 1


def test_the_store_keys_are_hashes_of_the_cookie() -> None:
    store = SessionStore(lifetime=100, login_lifetime=10, max_sessions=3)
    cookie, s = store.new()
    assert cookie not in s.id_hash and len(s.id_hash) == 64
    assert store.get("x" * 300) is None  # oversized values are not even hashed


def test_csrf_token_compared_exactly() -> None:
    s = Session(id_hash="h", csrf="tok-123", created=0, expires=1)
    assert csrf_ok(s, "tok-123")
    assert not csrf_ok(s, None) and not csrf_ok(s, "") and not csrf_ok(s, "tok-12")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    c = TestClient(TestServer(create_app(ui_settings())))
    await c.start_server()
    yield c
    await c.close()


async def test_security_headers_on_every_answer(client: TestClient) -> None:
    for path in ("/", "/auth/logged-out", "/static/app.js", "/nope", "/ui/session"):
        r = await client.get(path, allow_redirects=False)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in r.headers  # plain HTTP here


async def test_the_page_has_no_inline_script_and_escapes_what_it_shows(
    client: TestClient,
) -> None:
    s = logged_in(client)
    s.name = "<script>alert(1)</script>"
    r = await client.get("/")
    html = await r.text()
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert '<script src="/static/app.js" type="module"></script>' in html
    assert html.count("<script") == 1  # the one file; nothing inline
    assert s.csrf in html  # the page's token (meta tag and the logout form)


async def test_unauthenticated_visits_go_to_the_login_and_calls_get_a_json_401(
    client: TestClient,
) -> None:
    r = await client.get("/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/auth/login?next=/"
    r = await client.get("/ui/session")
    body = await r.json()
    assert r.status == 401 and body["code"] == "session_expired"
    assert "log in again" in body["errorMessage"]


async def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    s = logged_in(client)
    r = await client.post("/ui/repo/logout", json={})
    assert r.status == 403 and "security token" in (await r.json())["errorMessage"]
    r = await client.post("/ui/repo/logout", json={}, headers={"X-CSRF-Token": "forged"})
    assert r.status == 403
    # the logout form: the token as a form field
    r = await client.post("/auth/logout", data={"csrf": "forged"}, allow_redirects=False)
    assert r.status == 403 and client.app[SESSIONS].sessions() == [s]
    # from another site, even with the token
    r = await client.post(
        "/ui/repo/logout",
        json={},
        headers={"X-CSRF-Token": s.csrf, "Origin": "http://evil.example"},
    )
    assert r.status == 403
    r = await client.post("/ui/repo/logout", json={}, headers={"X-CSRF-Token": s.csrf})
    assert r.status == 200


async def test_an_expired_session_answers_with_what_to_do(client: TestClient) -> None:
    s = logged_in(client)
    s.expires = time.time() - 1
    r = await client.post("/ui/repo/logout", json={}, headers={"X-CSRF-Token": s.csrf})
    body = await r.json()
    assert r.status == 401 and body["code"] == "session_expired"
    assert client.app[SESSIONS].sessions() == []


async def test_bad_input_is_one_readable_message(client: TestClient) -> None:
    s = logged_in(client)
    h = {"X-CSRF-Token": s.csrf}
    r = await client.post("/ui/repo/login", data="{not json", headers=h)
    assert r.status == 400 and "not JSON" in (await r.json())["errorMessage"]
    r = await client.post("/ui/repo/login", json={"username": "a\nb", "password": "x"}, headers=h)
    body = await r.json()
    assert r.status == 400 and "username" in body["errorMessage"]
    assert "x" not in body["errorMessage"].split(":")[-1]  # never the input values
    r = await client.get("/ui/local", params={"path": "relative/dir"})
    assert r.status == 400 and "absolute path" in (await r.json())["errorMessage"]
    r = await client.get("/ui/jobs", params={"state": "bogus"})
    assert r.status == 400 and "unknown state" in (await r.json())["errorMessage"]


async def test_login_and_callback_refuse_what_was_not_started_here(client: TestClient) -> None:
    r = await client.get("/auth/callback", params={"code": "c", "state": "s"})
    assert r.status == 400 and "not started here" in await r.text()
    r = await client.get("/auth/callback", params={"error": "access_denied", "state": "s"})
    assert r.status == 401 and "access_denied" in await r.text()


def test_cookie_names_and_attributes() -> None:
    from aiohttp import web

    from services.ui.sessions import set_cookie

    for secure, name in ((True, SECURE_COOKIE), (False, PLAIN_COOKIE)):
        resp = web.Response()
        set_cookie(resp, "v", secure=secure, max_age=60)
        header = resp.cookies[name].OutputString()
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
        assert ("Secure" in header) is secure


def test_settings_refuse_what_cannot_work() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="http"):
        ui_settings(public_url="stager.example.org")
    with pytest.raises(ValidationError, match="WEBDAV_URL"):
        ui_settings(repository={"check": "webdav"})
    shown = repr(ui_settings(oidc={"issuer": "http://x", "client_secret": "Sekr1t-Value"}))
    assert "Sekr1t-Value" not in shown and "**********" in shown


async def test_the_session_says_where_the_panes_open() -> None:
    c = TestClient(TestServer(create_app(ui_settings(local_root="/home/{user}"))))
    await c.start_server()
    try:
        s = logged_in(c)
        body = await (await c.get("/ui/session")).json()
        assert body["localRoot"] == "/home/alice" and body["user"] == "alice"
        assert body["csrf"] == s.csrf and body["repoUser"] is None and body["browsing"] is False
    finally:
        await c.close()


async def test_logout_forgets_the_session_even_when_the_provider_is_down(
    client: TestClient,
) -> None:
    s = logged_in(client)
    r = await client.post("/auth/logout", data={"csrf": s.csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "http://127.0.0.1:9999/auth/logged-out"
    assert client.app[SESSIONS].sessions() == []
    assert 'stager-ui=""' in r.headers["Set-Cookie"] and "Max-Age=0" in r.headers["Set-Cookie"]
    r = await client.get("/ui/session")
    assert r.status == 401
