"""The /admin page against a real API (real RabbitMQ, both stores, a real OIDC JWKS
server): who sees it, read-only without forms, CSRF on every change, the confirmation
step before a multi-job action, escaping of what users wrote, a job's attempts page."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtools.oidc.launcher import Account, Client, OidcProvider, OidcSetupError
from services.api.admin.settings import AdminSettings
from services.api.keys import STORE
from services.ui.app import create_app as create_ui
from services.ui.keys import SESSIONS
from services.ui.sessions import PLAIN_COOKIE, Session, Tokens
from shared.messaging.messages import TaskEvent, TaskState, utcnow
from tests.api.conftest import (  # noqa: F401 - fixtures used by make_api
    ALICE,
    BOB,
    Api,
    api_settings,
    job,
    keypair,
    make_api,
    oidc,
    oidc_key,
)
from tests.ui.conftest import browser, free_port, needs_browser, ui_settings  # noqa: F401

ADMINS, VIEWERS = "stager-admins", "stager-viewers"


@pytest.fixture
async def stack(make_api: Any) -> AsyncIterator[tuple[Api, TestClient]]:  # noqa: F811
    api = await make_api(admin=AdminSettings(groups=[ADMINS], readonly_groups=[VIEWERS]))
    ui = TestClient(TestServer(create_ui(ui_settings(api_url=str(api.client.make_url("/"))))))
    await ui.start_server()
    yield api, ui
    await ui.close()


def login(api: Api, ui: TestClient, user: str, groups: list[str]) -> Session:
    store = ui.app[SESSIONS]
    _, s = store.new()
    token = api.oidc.token(user, groups=groups)
    cookie = store.logged_in(s, user, user.title(), Tokens(token, "id", None, time.time() + 300))
    ui.session.cookie_jar.update_cookies({PLAIN_COOKIE: cookie})
    return s


async def submit(api: Api, n: int, **over: Any) -> list[str]:
    ids = []
    for _ in range(n):
        r = await api.client.post("/v1/job", json=job(**over), headers=api.basic())
        assert r.status == 200, await r.text()
        ids.append((await r.json())["id"])
    return ids


async def test_only_administrators_see_the_page(stack: tuple[Api, TestClient]) -> None:
    api, ui = stack
    r = await ui.get("/admin", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"].startswith("/auth/login")
    login(api, ui, "stgalice", ["staff"])
    r = await ui.get("/admin")
    assert r.status == 403 and "admin group" in await r.text()
    await submit(api, 1, title="<script>alert(1)</script>")
    login(api, ui, "stgview1", [VIEWERS])
    r = await ui.get("/admin")
    html = await r.text()
    assert r.status == 200 and "readonly" in html and "Jobs (1)" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "Pause intake" not in html and 'name="id"' not in html  # no forms to act
    assert "script-src" in r.headers["Content-Security-Policy"]
    assert "<script>" not in html.replace(
        '<script src="/static/admin.js" type="module"></script>', ""
    )


async def test_queues_page_and_the_admin_link(stack: tuple[Api, TestClient]) -> None:
    """/admin/queues lists every queue with ready, unacked, consumers and oldest age and
    the dead letters; the main page links to /admin only for administrators."""
    api, ui = stack
    login(api, ui, "stgalice", ["staff"])
    html = await (await ui.get("/")).text()
    assert 'id="admin-link"' not in html
    assert (await ui.get("/admin/queues")).status == 403
    for user, groups, role in (
        ("stgview1", [VIEWERS], "readonly"),
        ("stgroot1", [ADMINS], "admin"),
    ):
        s = login(api, ui, user, groups)
        html = await (await ui.get("/")).text()
        assert '<a href="/admin" id="admin-link">Admin</a>' in html
        r = await ui.get("/admin/queues")
        html = await r.text()
        assert r.status == 200 and f"({user}, {role})" in html
        assert '<a href="/admin/queues" aria-current="page">Queues</a>' in html
        for name in (api.names.tasks_queue, api.names.dead_queue, api.names.events_queue):
            assert f'<tr data-queue="{name}">' in html
        assert '<th scope="col">Unacked</th>' in html and "Dead letters (0)" in html
        assert ('value="requeue"' in html) is (role == "admin")
        admin_page = await (await ui.get("/admin")).text()
        assert '<a href="/admin/queues">Queues</a>' in admin_page
    r = await ui.post(
        "/admin/deadletters",
        data=[("csrf", s.csrf), ("action", "requeue"), ("id", "m-1")],
    )
    html = await r.text()
    assert r.status == 200 and "Requeue 1 dead letter?" in html
    assert '<a href="/admin/queues" id="cancel-confirm">' in html


async def test_changes_need_csrf_and_multi_job_actions_a_confirmation(
    stack: tuple[Api, TestClient],
) -> None:
    api, ui = stack
    s = login(api, ui, "stgroot1", [ADMINS])
    r = await ui.post("/admin/intake", data={"paused": "1"}, allow_redirects=False)
    assert r.status == 403
    r = await ui.post(
        "/admin/intake",
        data={"csrf": s.csrf, "paused": "1", "reason": "upgrade"},
        allow_redirects=False,
    )
    assert r.status == 303
    html = await (await ui.get("/admin")).text()
    assert "Paused by user:stgroot1: upgrade" in html and "Resume intake" in html
    r = await api.client.post("/v1/job", json=job(), headers=api.basic())
    assert r.status == 503
    await ui.post("/admin/intake", data={"csrf": s.csrf, "paused": "0"})
    ids = await submit(api, 2)
    form = [("csrf", s.csrf), ("action", "cancel"), ("id", ids[0]), ("id", ids[1])]
    r = await ui.post("/admin/jobs", data=form)
    html = await r.text()
    assert r.status == 200 and "Cancel 2 jobs?" in html and 'name="confirm" value="2"' in html
    assert 'id="confirm-dialog"' in html
    states = {(await api.app[STORE].get(i)).state for i in ids}  # type: ignore[union-attr]
    assert states == {"pending"}  # nothing changed before confirming
    r = await ui.post("/admin/jobs", data=[*form, ("confirm", "1")], allow_redirects=False)
    assert r.status == 409  # the API refuses a count that does not match
    r = await ui.post("/admin/jobs", data=[*form, ("confirm", "2")], allow_redirects=False)
    assert r.status == 303 and "cancel:+2+done" in r.headers["Location"]
    states = {(await api.app[STORE].get(i)).state for i in ids}  # type: ignore[union-attr]
    assert states == {"cancelled"}
    r = await ui.post("/admin/jobs", data=[("csrf", s.csrf), ("action", "explode"), ("id", "x")])
    assert r.status == 400 and "Traceback" not in await r.text()


async def test_the_job_page_lists_its_attempts(stack: tuple[Api, TestClient]) -> None:
    api, ui = stack
    [task_id] = await submit(api, 1)
    at = utcnow()
    await api.app[STORE].apply_events(
        [
            TaskEvent(
                task_id=task_id, attempt=1, seq=1, state=TaskState.ACTIVE, worker="w1:7", at=at
            ),
            TaskEvent(
                task_id=task_id,
                attempt=1,
                seq=2,
                state=TaskState.RETRY,
                worker="w1:7",
                error="<b>no</b> answer",
                error_kind="timeout",
                at=at,
            ),
            TaskEvent(
                task_id=task_id, attempt=2, seq=3, state=TaskState.ACTIVE, worker="w2:9", at=at
            ),
        ]
    )
    r = await ui.get(f"/admin/jobs/{task_id}", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == f"/auth/login?next=/admin/jobs/{task_id}"
    login(api, ui, "stgalice", ["staff"])
    assert (await ui.get(f"/admin/jobs/{task_id}")).status == 403
    login(api, ui, "stgview1", [VIEWERS])
    html = await (await ui.get("/admin")).text()
    assert f'href="/admin/jobs/{task_id}"' in html
    r = await ui.get(f"/admin/jobs/{task_id}")
    html = await r.text()
    assert r.status == 200 and "Attempts (2)" in html and html.count('class="attempt"') == 2
    assert "w1:7" in html and "w2:9" in html and "<code>timeout</code>" in html
    assert "&lt;b&gt;no&lt;/b&gt; answer" in html and "<b>no</b>" not in html
    assert (await ui.get("/admin/jobs/nope")).status == 404


@needs_browser
@pytest.mark.timeout(120)
async def test_in_chromium_the_confirmation_dialog_is_modal_and_acts(
    make_api: Any,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    api = await make_api(admin=AdminSettings(groups=[ADMINS]))
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = ui_settings(api_url=str(api.client.make_url("/")), public_url=origin)
    ui = TestClient(TestServer(create_ui(settings), host="127.0.0.1", port=port))
    await ui.start_server()
    try:
        store = ui.app[SESSIONS]
        _, s = store.new()
        token = api.oidc.token("stgroot1", groups=[ADMINS])
        cookie = store.logged_in(
            s, "stgroot1", "Root", Tokens(token, "id", None, time.time() + 300)
        )
        ids = await submit(api, 2)
        ctx = await browser.new_context()
        await ctx.add_cookies([{"name": PLAIN_COOKIE, "value": cookie, "url": origin}])
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(origin + "/admin")
        for i in ids:
            await page.get_by_label(f"select {i}").check()
        await page.get_by_role("button", name="Cancel selected").click()
        dialog = page.get_by_role("dialog")
        await dialog.wait_for()
        assert "Cancel 2 jobs?" in await dialog.inner_text()
        assert await page.evaluate("document.querySelector('dialog').matches(':modal')")
        await page.get_by_role("button", name="Cancel 2").click()
        await page.wait_for_url("**/admin?done=*")
        assert "cancel: 2 done" in await page.locator("#done").inner_text()
        states = {(await api.app[STORE].get(i)).state for i in ids}
        assert states == {"cancelled"}
        assert errors == []  # no CSP violation, no script error
        await ctx.close()
    finally:
        await ui.close()


def _console_error(errors: list[str], message: Any) -> None:
    if message.type == "error":
        errors.append(message.text)


@needs_browser
@pytest.mark.timeout(180)
async def test_in_chromium_admin_and_read_only_admin_log_in_at_the_dev_provider(
    make_api: Any,  # noqa: F811
    browser: Any,  # noqa: F811
    keypair: tuple[bytes, bytes],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The dev OIDC provider's admin and read-only accounts (groups claim in the token):
    each logs in through its form, the main page shows the Admin link, the queues page
    shows every queue; only the administrator gets the requeue form. A user without a
    group gets no link."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    client = Client("stager-ui", "ui-secret", [f"{origin}/auth/callback"], [f"{origin}/"])
    accounts = {
        "admin": Account("Admin-Pa55", ALICE, "Admin", groups=[ADMINS]),
        "helpdesk": Account("Help-Pa55", BOB, "Helpdesk", groups=[VIEWERS]),
        "plain": Account("Plain-Pa55", ALICE, "Plain"),
    }
    try:
        idp = OidcProvider(accounts=accounts, clients=[client], log_path=tmp_path / "idp.log")
        idp.start()
    except OidcSetupError as e:
        pytest.fail(str(e))
    try:
        auth = api_settings("sqlite+aiosqlite://", "x", keypair[1], idp.issuer).auth
        api = await make_api(
            admin=AdminSettings(groups=[ADMINS], readonly_groups=[VIEWERS]), auth=auth
        )
        settings = ui_settings(
            api_url=str(api.client.make_url("/")),
            public_url=origin,
            oidc={"issuer": idp.issuer, "client_id": "stager-ui", "client_secret": "ui-secret"},
        )
        ui = TestClient(TestServer(create_ui(settings), host="127.0.0.1", port=port))
        await ui.start_server()
        try:
            for login_name, password, role in (
                ("admin", "Admin-Pa55", "admin"),
                ("helpdesk", "Help-Pa55", "readonly"),
                ("plain", "Plain-Pa55", None),
            ):
                ctx = await browser.new_context()
                page = await ctx.new_page()
                errors: list[str] = []
                page.on("console", functools.partial(_console_error, errors))
                await page.goto(origin + "/")
                await page.wait_for_url(f"{idp.issuer}/interaction/**")
                await page.get_by_label("User name").fill(login_name)
                await page.get_by_label("Password").fill(password)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(origin + "/", timeout=15000)
                link = page.get_by_role("link", name="Admin", exact=True)
                if role is None:
                    assert await link.count() == 0
                    await page.goto(origin + "/admin/queues")
                    assert "admin group" in await page.locator("main").inner_text()
                    await ctx.close()
                    continue
                await link.click()
                await page.wait_for_url(origin + "/admin")
                await page.get_by_role("link", name="Queues").click()
                await page.wait_for_url(origin + "/admin/queues")
                assert f", {role})" in await page.locator("#who").inner_text()
                table = page.locator("#queue-table")
                for name in (api.names.tasks_queue, api.names.priority_queue, api.names.dead_queue):
                    assert await table.locator(f'tr[data-queue="{name}"]').count() == 1
                heads = await table.locator("thead th").all_inner_texts()
                assert heads[2:6] == ["Ready", "Unacked", "Consumers", "Oldest (s)"]
                requeue = page.get_by_role("button", name="Requeue selected")
                assert await requeue.count() == (1 if role == "admin" else 0)
                assert errors == []  # no CSP violation, no script error
                await ctx.close()
        finally:
            await ui.close()
    finally:
        idp.stop()
