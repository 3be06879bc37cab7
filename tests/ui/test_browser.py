"""The researcher's page in Debian's Chromium (Playwright) against the real stack: the
provider's own login form, the repository login (iRODS and WebDAV), both panes, uploads and
downloads watched live, cancel, restart, logout, a crafted file name, CSRF, an expired
session, keyboard-only use and an axe-core scan. Screenshots: ``.local/ui-screenshots/``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import (
    AXE,
    DAC_PROJECT,
    DR_PASS,
    IDP_LOGIN,
    IDP_PASSWORD,
    SHOTS,
    Stack,
    needs_browser,
    sessions_of,
)

pytestmark = [
    needs_browser,
    pytest.mark.skipif(os.geteuid() != 0, reason="the worker runs transfers as the user"),
    pytest.mark.timeout(240),
]

XSS_NAME = "<img src=x onerror=alert(1)>.txt"


async def shot(page: Any, name: str) -> None:
    # from the top: a full-page capture of a scrolled page loses its last screenful
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def new_page(browser: Any, stack: Stack, **context: Any) -> tuple[Any, Any, list[str]]:
    """A page in a fresh context; JS dialogs are accepted and recorded."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, **context)
    page = await ctx.new_page()
    dialogs: list[str] = []

    async def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        await d.accept()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: print("PAGE ERROR", e))
    page.on("console", lambda m: print("CONSOLE", m.type, m.text))
    return ctx, page, dialogs


async def idp_login(page: Any, stack: Stack, *, shot_name: str | None = None) -> None:
    """From the UI through the provider's own login form back to the app."""
    await page.goto(stack.ui.url + "/")
    await page.wait_for_url(f"{stack.idp.issuer}/interaction/**")
    await page.get_by_label("User name").fill(IDP_LOGIN)
    await page.get_by_label("Password").fill(IDP_PASSWORD)
    if shot_name:
        await shot(page, shot_name)
    await page.get_by_role("button", name="Sign in").click()
    try:
        await page.wait_for_url(stack.ui.url + "/", timeout=15000)
    except Exception:
        await shot(page, "debug-login")
        print("URL", page.url, (await page.content())[:2000])
        raise
    await page.get_by_role("heading", name="Project storage").wait_for()


async def open_local(page: Any, path: Path | str) -> None:
    box = page.locator("#local-path")
    await box.fill(str(path))
    await box.press("Enter")
    await page.locator("#local-table caption", has_text=str(path)).wait_for(state="attached")


async def repo_login(page: Any, stack: Stack, password: str = DR_PASS) -> None:
    await page.get_by_label("Repository user name").fill(stack.dr_user)
    await page.get_by_label("Data-access password").fill(password)
    await page.get_by_role("button", name="Log in to the repository").click()


async def open_repo(page: Any, path: str) -> None:
    box = page.locator("#repo-path")
    await box.fill(path)
    await box.press("Enter")
    await page.locator("#repo-table caption", has_text=path).wait_for(state="attached")


async def job_rows(page: Any) -> list[dict[str, str]]:
    return await page.eval_on_selector_all(
        "#jobs tbody tr[data-job]",
        "rows => rows.map(r => ({id: r.dataset.job, state: r.dataset.state, text: r.innerText}))",
    )


async def wait_states(page: Any, want: dict[str, int], limit: float = 60.0) -> list[dict]:
    """Until the history shows at least these many rows in these states (no reload)."""
    rows: list[dict] = []
    try:
        async with asyncio.timeout(limit):
            while True:
                rows = await job_rows(page)
                counts = {s: sum(1 for r in rows if r["state"] == s) for s in want}
                if all(counts[s] >= n for s, n in want.items()):
                    return rows
                await asyncio.sleep(0.2)
    except TimeoutError:
        await shot(page, "failed-wait")
        raise AssertionError(f"waited for {want}, have {rows}") from None


async def submit_confirmed(page: Any, direction: str, expect_rows: int, name: str) -> None:
    await page.get_by_role("button", name=direction).click()
    dialog = page.locator("#confirm")
    await dialog.wait_for(state="visible")
    assert await dialog.locator("tbody tr").count() == expect_rows
    await shot(page, name)
    await dialog.get_by_role("button", name="Submit").click()
    await page.locator("#status", has_text="submitted").wait_for()


async def test_login_browse_transfer_cancel_restart_logout(browser: Any, ui_stack: Stack) -> None:
    stack = ui_stack
    ctx, page, dialogs = await new_page(browser, stack)
    await idp_login(page, stack, shot_name="01-idp-login-form")
    await shot(page, "02-logged-in")

    # the session cookie: HttpOnly, SameSite=Lax, not readable by scripts
    cookies = {c["name"]: c for c in await ctx.cookies()}
    ui_cookie = cookies["stager-ui"]
    assert ui_cookie["httpOnly"] and ui_cookie["sameSite"] == "Lax"
    assert "stager-ui" not in await page.evaluate("document.cookie")

    # repository login (iRODS): a wrong password first
    await repo_login(page, stack, password="wrong-password")
    await page.locator("#repo-login-error", has_text="authentication failed").wait_for()
    await repo_login(page, stack)
    await page.locator("#repo-who", has_text=stack.dr_user).wait_for()
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")

    # new folder on the repository side
    await page.get_by_label("New folder").fill("incoming")
    await page.get_by_role("button", name="Create folder").click()
    await page.get_by_role("button", name="incoming/").click()
    incoming = f"{stack.repo_home}/incoming"
    await page.locator("#repo-table caption", has_text=incoming).wait_for(state="attached")

    # project storage: typed path, breadcrumbs, sizes, a symlink marked, a crafted name as text
    await open_local(page, stack.home)
    await page.locator("#local .crumbs").get_by_role("button", name="tmp").wait_for()
    await page.get_by_role("button", name="data/").click()
    table = page.locator("#local-table")
    await table.get_by_text(XSS_NAME, exact=True).wait_for()
    assert await table.locator("img").count() == 0
    assert await table.locator("tr", has_text="link").get_by_text("symlink").count() == 1
    assert "6 B" in await table.locator("tr", has_text="a.txt").inner_text()
    await shot(page, "03-both-panes")

    # select a.txt with the mouse and sub/ with the keyboard
    await page.get_by_label("Select a.txt").check()
    await page.get_by_label("Select a.txt").press("Home")  # focus the first row: sub/
    await page.keyboard.press("Space")
    assert await page.get_by_label("Select sub").is_checked()
    await submit_confirmed(page, "Upload →", 2, "04-confirm-upload")
    rows = await wait_states(page, {"completed": 2})
    await shot(page, "05-uploads-completed")
    assert all("100%" in r["text"] for r in rows)
    with stack.dr_session.data_objects.open(f"{incoming}/a.txt", "r") as fh:
        assert fh.read() == b"alpha\n"
    assert stack.dr_session.data_objects.exists(f"{incoming}/sub/b.bin")

    # download sub/ from the repository into ~/down
    await page.get_by_label("Select sub").first.wait_for()
    await page.locator("#repo-table").get_by_label("Select sub").check()
    await open_local(page, stack.home / "down")
    await submit_confirmed(page, "← Download", 1, "06-confirm-download")
    await wait_states(page, {"completed": 3})
    got = stack.home / "down" / "sub" / "b.bin"
    assert got.read_bytes() == (stack.home / "data" / "sub" / "b.bin").read_bytes()

    # a big upload: watched live, then cancelled while it runs
    await open_local(page, stack.home)
    await page.get_by_label("Select big").check()
    await page.locator("#repo").get_by_role("button", name="Select none").click()
    await submit_confirmed(page, "Upload →", 1, "07-confirm-big")
    rows = await wait_states(page, {"active": 1})
    big = next(r for r in rows if r["state"] == "active")
    row = page.locator(f'tr[data-job="{big["id"]}"]')
    bar = row.get_by_role("progressbar")
    async with asyncio.timeout(30):
        while float(await bar.get_attribute("aria-valuenow") or 0) <= 0:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await row.get_by_role("button", name="Details").click()
    await shot(page, "08-big-running")
    assert "/s" in await row.inner_text()  # the rate
    await row.get_by_role("button", name="Cancel").click()
    await page.locator(f'tr[data-job="{big["id"]}"][data-state="cancelled"]').wait_for()
    r = await stack.api.get(f"/v1/job/{big['id']}", headers=await _bearer(stack, ctx))
    # the API stopped it and deleted it, or keeps it as cancelled
    assert r.status == 404 or (await r.json())["status"]["status"] == "cancelled"
    async with asyncio.timeout(5):  # the worker stopped the transfer
        while big["id"] in stack.worker.cancels._running:  # noqa: ASYNC110 - its state
            await asyncio.sleep(0.05)
    assert any("Cancel" in d for d in dialogs)
    await shot(page, "09-cancelled")

    # restart: a completed job runs again; the cancelled one can be submitted again
    done = (await wait_states(page, {"completed": 3}))[-1]
    done_row = page.locator(f'tr[data-job="{done["id"]}"]')
    r = await stack.api.get(f"/v1/job/{done['id']}", headers=await _bearer(stack, ctx))
    before = (await r.json())["timestamps"]["completedAt"]
    await asyncio.sleep(1.1)  # completedAt has whole seconds
    await done_row.get_by_role("button", name="Restart").click()
    await page.locator("#status", has_text="Restart").wait_for()
    async with asyncio.timeout(30):
        while True:
            r = await stack.api.get(f"/v1/job/{done['id']}", headers=await _bearer(stack, ctx))
            body = await r.json()
            again_done = body["timestamps"]["completedAt"] > before
            if body["status"]["status"] == "completed" and again_done:
                break
            await asyncio.sleep(0.2)
    await wait_states(page, {"completed": 3})
    cancelled = page.locator(f'tr[data-job="{big["id"]}"]')
    known = {r["id"] for r in await job_rows(page)}
    await cancelled.get_by_role("button", name="Submit again").click()
    async with asyncio.timeout(30):
        while not (fresh := [r for r in await job_rows(page) if r["id"] not in known]):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    (again,) = fresh
    await page.locator(f'tr[data-job="{again["id"]}"]').get_by_role("button", name="Delete").click()
    await page.locator(f'tr[data-job="{again["id"]}"]').wait_for(state="detached")

    # copy as isync command
    await ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    await done_row.get_by_role("button", name="Copy as isync command").click()
    await page.locator("#status", has_text="isync -r").wait_for()
    assert "isync -r -K -P" in await page.evaluate("navigator.clipboard.readText()")

    assert not [d for d in dialogs if d.strip() == "1"]  # no alert(1) from the crafted name
    assert DR_PASS not in stack.logs.getvalue()

    # logout ends the provider session too: the next visit shows its login form again
    await page.get_by_role("button", name="Log out", exact=True).click()
    await page.get_by_role("button", name="Yes, sign me out").click()
    await page.get_by_role("heading", name="You are logged out").wait_for()
    await shot(page, "10-logged-out")
    await page.goto(stack.ui.url + "/")
    await page.wait_for_url(f"{stack.idp.issuer}/interaction/**")
    await page.get_by_label("Password").wait_for()
    await ctx.close()


async def _bearer(stack: Stack, ctx: Any) -> dict[str, str]:
    """The access token of the UI's one logged-in session (to check the API directly)."""
    for s in sessions_of(stack.ui).sessions():
        if s.authenticated:
            return {"Authorization": f"Bearer {s.tokens.access_token}"}
    raise AssertionError("no logged-in session")


async def test_csrf_expiry_webdav_keyboard_and_accessibility(browser: Any, ui_stack: Stack) -> None:
    stack = ui_stack
    ctx, page, _dialogs = await new_page(browser, stack)
    await idp_login(page, stack)

    # a POST without the CSRF token (or with a wrong one) is refused; with it, it works
    async def post(headers: dict[str, str]) -> dict:
        return await page.evaluate(
            """async (h) => { const r = await fetch('/ui/repo/logout', {method: 'POST',
                 headers: Object.assign({'Content-Type': 'application/json'}, h), body: '{}'});
                 return {status: r.status, body: await r.json()}; }""",
            headers,
        )

    refused = await post({})
    assert refused["status"] == 403, refused
    assert "security token" in refused["body"]["errorMessage"]
    assert (await post({"X-CSRF-Token": "forged"}))["status"] == 403
    token = await page.get_attribute('meta[name="csrf-token"]', "content")
    assert (await post({"X-CSRF-Token": token}))["status"] == 200

    # an access token about to expire is refreshed before the next API call
    (session,) = [s for s in sessions_of(stack.ui).sessions() if s.authenticated]
    assert session.tokens is not None
    old = session.tokens.access_token
    session.tokens.expires_at = 0
    await page.get_by_role("button", name="Refresh", exact=True).last.click()
    async with asyncio.timeout(20):
        while session.tokens.access_token == old:  # noqa: ASYNC110 - the server's state
            await asyncio.sleep(0.1)
    await page.locator("#jobs tbody td", has_text="No transfers here yet").wait_for()

    # a folder of 10,000 entries: paged, and the next page comes quickly
    many = stack.home / "many"
    many.mkdir()
    owner = many.parent.stat()
    for i in range(10_000):
        (many / f"f{i:05}.dat").touch()
    for p in [many, *many.iterdir()]:
        os.chown(p, owner.st_uid, owner.st_gid)
    t0 = time.monotonic()
    await open_local(page, many)
    pager = page.locator("#local .pager span")
    await pager.filter(has_text="1\u201350 of 10000").wait_for()
    await page.locator("#local").get_by_role("button", name="Next page").click()
    await pager.filter(has_text="51\u2013100 of 10000").wait_for()
    assert await page.locator("#local-table tbody tr").count() == 50
    assert time.monotonic() - t0 < 20
    await shot(page, "11a-ten-thousand")

    # keyboard only: repository login, pick a folder, upload, confirm
    await page.get_by_label("Repository user name").focus()
    await page.keyboard.type(stack.dr_user)
    await page.keyboard.press("Tab")
    await page.keyboard.type(DR_PASS)
    await page.keyboard.press("Enter")
    await page.locator("#repo-who", has_text=stack.dr_user).wait_for()
    # the DAC lookup fills the repository path
    await open_repo(page, f"/{stack.irods.zone}/home")
    await page.get_by_label("Project number").fill(DAC_PROJECT)
    await page.get_by_label("Project number").press("Enter")
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")
    await page.get_by_label("Project number").fill("not-a-number")
    await page.get_by_label("Project number").press("Enter")
    await page.locator("#status.error", has_text="malformed").wait_for()
    await page.locator("#local-path").focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(str(stack.home / "data"))
    await page.keyboard.press("Enter")
    await page.get_by_label("Select a.txt").wait_for()
    await page.get_by_label(f"Select {XSS_NAME}").focus()  # folders first, then by name
    await page.keyboard.press("Space")
    await page.keyboard.press("ArrowDown")  # a.txt
    await page.keyboard.press("Space")
    assert await page.get_by_label("Select a.txt").is_checked()
    await page.keyboard.press("ArrowDown")  # past the symlink (not selectable): stays
    assert await page.get_by_label("Select a.txt").evaluate("e => e === document.activeElement")
    await page.locator("#upload").focus()
    await page.keyboard.press("Enter")
    await page.locator("#confirm").wait_for(state="visible")
    await shot(page, "11-keyboard-confirm")
    axe = await _axe(page)
    await page.keyboard.press("Enter")  # Submit has the focus
    await page.locator("#status", has_text="submitted").wait_for()
    await wait_states(page, {"completed": 2})
    assert stack.dr_session.data_objects.exists(f"{stack.repo_home}/{XSS_NAME}")
    await (
        page.locator("#jobs tbody tr[data-job]").first.get_by_role("button", name="Details").click()
    )
    axe += await _axe(page)
    await shot(page, "12-history-details")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "13-phone-width")
    axe += await _axe(page)
    serious = [v for v in axe if v["impact"] in ("serious", "critical")]
    (SHOTS / "axe-results.json").write_text(json.dumps(axe, indent=1))
    assert not serious, json.dumps(serious, indent=1)[:3000]
    await page.set_viewport_size({"width": 1280, "height": 800})

    # an expired session: the page says so, the selection survives a new login
    await page.get_by_label("Select sub").check()
    sessions_of(stack.ui).clear()
    await page.locator("#upload").click()  # still works client-side: the dialog opens
    await page.locator("#confirm").get_by_role("button", name="Submit").click()
    expired = page.locator("#expired")
    await expired.wait_for(state="visible")
    await shot(page, "14-session-expired")
    await expired.get_by_role("link", name="Log in again").click()
    await page.wait_for_url(stack.ui.url + "/")  # the provider still knows alice
    await page.locator("#status", has_text="earlier selection was kept").wait_for()
    await page.get_by_label("Repository user name").wait_for()  # a new session: log in again
    await repo_login(page, stack)
    await page.get_by_label("Select sub").wait_for()
    assert await page.get_by_label("Select sub").is_checked()
    await ctx.close()

    # the WebDAV way of checking the repository login (as the system we replace)
    assert stack.make_ui is not None
    dav_ui = await stack.make_ui(repository={"check": "webdav", "webdav_url": stack.dav_url})
    stack.ui = dav_ui
    ctx, page, _ = await new_page(browser, stack)
    await idp_login(page, stack)
    await repo_login(page, stack, password="wrong")
    await page.locator("#repo-login-error", has_text="check your user name").wait_for()
    await repo_login(page, stack)
    await page.locator("#repo-who", has_text=stack.dr_user).wait_for()
    await shot(page, "15-webdav-login")
    await ctx.close()


async def _axe(page: Any) -> list[dict]:
    """axe-core (the pinned npm package) run on the page as it is now."""
    await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))"
    )
    return list(result)


# --- restart live, keyboard only, layout, accessibility in every state ---------------------


async def tab_to(page: Any, selector: str, limit: int = 200) -> None:
    """Press Tab (only) until the focused element matches ``selector``."""
    seen: list[str] = []
    for _ in range(limit):
        if await page.evaluate("s => !!document.activeElement?.matches(s)", selector):
            return
        await page.keyboard.press("Tab")
        seen.append(
            await page.evaluate(
                "() => { const e = document.activeElement; return e ? `${e.tagName}#${e.id}"
                "[${e.getAttribute('aria-label') || e.textContent.trim().slice(0, 20)}]` : '-' }"
            )
        )
    raise AssertionError(f"Tab never reached {selector}; focus went {seen[-30:]}")


#: counts trusted mouse and touch input on every document of a context (none may happen)
COUNT_POINTER = """
window.__pointer = 0;
for (const t of ['pointerdown', 'mousedown', 'touchstart'])
  addEventListener(t, (e) => { if (e.isTrusted) window.__pointer += 1; }, true);
"""


async def test_keyboard_only_from_the_provider_s_login_form_to_a_completed_transfer(
    browser: Any, ui_stack: Stack
) -> None:
    """Tab, Enter and Space (and typing text) only: the provider's own form, the repository
    login, a typed folder path, a selection, Upload, the confirmation, the job completing."""
    stack = ui_stack
    ctx, page, _ = await new_page(browser, stack)
    await ctx.add_init_script(COUNT_POINTER)
    await page.goto(stack.ui.url + "/")
    await page.wait_for_url(f"{stack.idp.issuer}/interaction/**")
    await tab_to(page, "#login")  # autofocused: no key needed
    await page.keyboard.type(IDP_LOGIN)
    await page.keyboard.press("Tab")
    await page.keyboard.type(IDP_PASSWORD)
    await shot(page, "kb-01-idp-form")
    assert await page.evaluate("window.__pointer") == 0
    await page.keyboard.press("Enter")
    await page.wait_for_url(stack.ui.url + "/", timeout=15000)
    await page.get_by_role("heading", name="Project storage").wait_for()

    await tab_to(page, "#repo-user")
    await page.keyboard.type(stack.dr_user)
    await page.keyboard.press("Tab")
    await page.keyboard.type(DR_PASS)
    await page.keyboard.press("Enter")
    await page.locator("#repo-who", has_text=stack.dr_user).wait_for()
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")

    await tab_to(page, "#local-path")  # Tab into a text box selects what it holds
    await page.keyboard.type(str(stack.home / "data"))
    await page.keyboard.press("Enter")
    await page.locator("#local-table caption", has_text=str(stack.home / "data")).wait_for(
        state="attached"
    )
    await tab_to(page, '#local-table input[aria-label="Select a.txt"]')
    await page.keyboard.press("Space")
    assert await page.get_by_label("Select a.txt").is_checked()
    await tab_to(page, "#upload")
    await page.keyboard.press("Enter")
    await page.locator("#confirm").wait_for(state="visible")
    assert await page.evaluate("document.activeElement.id") == "confirm-submit"
    await shot(page, "kb-02-confirm")
    await page.keyboard.press("Enter")
    await page.locator("#status", has_text="submitted").wait_for()
    rows = await wait_states(page, {"completed": 1})
    await shot(page, "kb-03-completed")
    assert "100%" in rows[0]["text"]
    with stack.dr_session.data_objects.open(f"{stack.repo_home}/a.txt", "r") as fh:
        assert fh.read() == b"alpha\n"
    # the job's details open with Enter on its Details button
    await tab_to(page, f'tr[data-job="{rows[0]["id"]}"] button[aria-controls]')
    await page.keyboard.press("Enter")
    details = page.locator(f'#d-{rows[0]["id"]} [data-item="checksums"]')
    await details.filter(has_text="verified").wait_for()
    assert await page.evaluate("window.__pointer") == 0
    await ctx.close()


async def test_a_restarted_job_runs_again_with_live_progress_to_completed(
    browser: Any, ui_stack: Stack
) -> None:
    """Restart a completed upload whose object was removed: without a reload the row goes
    back to a running state, its progress bar moves, and it ends completed at 100%."""
    stack = ui_stack
    mid = stack.home / "mid"
    mid.mkdir()
    # 6 s at the stack's 2 MB/s; progress moves per 8 MiB buffer, so it shows part-way
    data = os.urandom(12 * 1024 * 1024)
    (mid / "mid.bin").write_bytes(data)
    owner = stack.home.stat()
    for p in (mid, mid / "mid.bin"):
        os.chown(p, owner.st_uid, owner.st_gid)
    ctx, page, _ = await new_page(browser, stack)
    await idp_login(page, stack)
    await repo_login(page, stack)
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")
    await open_local(page, mid)
    await page.get_by_label("Select mid.bin").check()
    await submit_confirmed(page, "Upload →", 1, "restart-01-confirm")
    (job,) = await wait_states(page, {"completed": 1})
    obj = f"{stack.repo_home}/mid.bin"
    stack.dr_session.data_objects.unlink(obj, force=True)
    await page.evaluate("window.__samePage = 'yes'")

    row = f'tr[data-job="{job["id"]}"]'
    await page.locator(row).get_by_role("button", name="Restart").click()
    samples: list[tuple[str, float]] = []
    async with asyncio.timeout(60):
        while True:
            got = await page.evaluate(
                """(sel) => { const r = document.querySelector(sel);
                     const b = r && r.querySelector('[role=progressbar]');
                     return r ? [r.dataset.state, Number(b ? b.getAttribute('aria-valuenow') : -1)]
                              : null; }""",
                row,
            )
            if got is not None:
                samples.append((got[0], got[1]))
            if (
                len(samples) > 1
                and got
                and got[0] == "completed"
                and any(s != "completed" for s, _ in samples)
            ):
                break
            await asyncio.sleep(0.1)
    await shot(page, "restart-02-completed-again")
    running = [(s, v) for s, v in samples if s != "completed"]
    assert running, samples
    assert {s for s, _ in running} <= {"pending", "active", "retry"}, samples
    assert any(0 < v < 100 for s, v in running if s == "active"), sorted(set(samples))
    assert samples[-1] == ("completed", 100.0), samples
    assert await page.evaluate("window.__samePage") == "yes"  # no reload happened
    assert "100%" in await page.locator(row).inner_text()
    assert stack.dr_session.data_objects.get(obj).size == len(data)
    await ctx.close()


#: the controls that must be on screen (inside the viewport's width) in each layout state
MAIN_CONTROLS = {
    "panes": ["#logout", "#local-path", "#repo-path", "#upload", "#download",
              "#history-refresh", "#state-filter"],
    "confirm": ["#confirm-submit", "#confirm-preview", "#confirm-cancel"],
    "jobs": ["#history-refresh", "#jobs tbody tr[data-job] button[aria-controls]",
             '#jobs tbody tr[data-job] button[data-verb="restart"]'],
    "jobs-failed": ["#jobs tbody tr[data-job] button[aria-controls]",
                    '#jobs tbody tr[data-job] button[data-verb="restart"]'],
    "expired": ["#relogin"],
}  # fmt: skip

LAYOUT = """(selectors) => {
  const w = window.innerWidth;
  const out = { scrollWidth: document.scrollingElement.scrollWidth, innerWidth: w, controls: {} };
  for (const s of selectors) {
    const e = document.querySelector(s);
    const r = e ? e.getBoundingClientRect() : null;
    const style = e ? getComputedStyle(e) : null;
    out.controls[s] = !!(r && r.width > 0 && r.height > 0 && style.visibility !== 'hidden'
      && r.left >= 0 && r.right <= w + 0.5);
  }
  // a table that scrolls sideways inside its box hides columns just the same
  out.clipped = [...document.querySelectorAll('.table-wrap')]
    .filter((t) => t.offsetParent !== null && t.scrollWidth > t.clientWidth + 1)
    .map((t) => `${t.closest('[id]').id}: ${t.scrollWidth} > ${t.clientWidth}`);
  return out;
}"""


async def check_layout(page: Any, state: str, sizes: list[tuple[int, int]]) -> list[dict]:
    """At each viewport size: a screenshot, no horizontal overflow, the state's controls on
    screen. Returns what was measured (for the note)."""
    measured = []
    for width, height in sizes:
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(150)
        await shot(page, f"layout-{width}x{height}-{state}")
        got = await page.evaluate(LAYOUT, MAIN_CONTROLS[state])
        got.update(state=state, viewport=f"{width}x{height}")
        measured.append(got)
        assert got["scrollWidth"] <= got["innerWidth"], got
        assert all(got["controls"].values()), got
        assert not got["clipped"], got
    return measured


VIEWPORTS = [(1280, 800), (390, 844)]


async def test_layout_at_desktop_and_phone_width(browser: Any, ui_stack: Stack) -> None:
    """1280x800 and 390x844: panes, confirmation, jobs with details open, an expired
    session; nothing wider than the window, the main controls on screen, screenshots kept."""
    stack = ui_stack
    ctx, page, _ = await new_page(browser, stack)
    await idp_login(page, stack)
    await repo_login(page, stack)
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")
    long_name = "results_" + "x" * 90 + ".csv"  # one long word: it must wrap, not widen
    (stack.home / "data" / long_name).write_text("1\n")
    owner = stack.home.stat()
    os.chown(stack.home / "data" / long_name, owner.st_uid, owner.st_gid)
    await open_local(page, stack.home / "data")  # the crafted name and a long path
    measured = await check_layout(page, "panes", VIEWPORTS)
    await page.get_by_label("Select a.txt").check()
    await page.get_by_label(f"Select {long_name}").check()
    await page.locator("#upload").click()
    await page.locator("#confirm").wait_for(state="visible")
    measured += await check_layout(page, "confirm", VIEWPORTS)
    await page.locator("#confirm-submit").click()
    job, _ = await wait_states(page, {"completed": 2})
    await page.locator(f'tr[data-job="{job["id"]}"]').get_by_role("button", name="Details").click()
    await page.locator(f'#d-{job["id"]} [data-item="checksums"]').wait_for()
    measured += await check_layout(page, "jobs", VIEWPORTS)
    # a failed job: its long error line and failed-file list must wrap as well
    (stack.home / "data" / long_name).write_text("changed\n")
    await reupload_fails_name_taken(page, long_name, completed=2)
    measured += await check_layout(page, "jobs-failed", VIEWPORTS)
    sessions_of(stack.ui).clear()
    await page.locator("#history-refresh").click()
    await page.locator("#expired").wait_for(state="visible")
    measured += await check_layout(page, "expired", VIEWPORTS)
    (SHOTS / "layout-results.json").write_text(json.dumps(measured, indent=1))
    await ctx.close()


async def reupload_fails_name_taken(page: Any, name: str, completed: int) -> None:
    """Upload local file ``name`` (changed since its first upload) again: the job fails (the
    name is taken, beside ``completed`` completed jobs); its details are opened on the
    failed-file list."""
    await page.locator("#local-table").get_by_label(f"Select {name}").check()
    await page.locator("#upload").click()
    await page.locator("#confirm-submit").click()
    rows = await wait_states(page, {"completed": completed, "archived": 1})
    failed = next(r for r in rows if r["state"] == "archived")
    await (
        page.locator(f'tr[data-job="{failed["id"]}"]').get_by_role("button", name="Details").click()
    )
    await page.locator(f'#d-{failed["id"]} .file-errors li[data-kind="name_taken"]').wait_for()


async def axe_counts(page: Any, state: str, results: dict[str, Any]) -> None:
    """axe-core on the page as it is; violations kept per state, by impact."""
    violations = await _axe(page)
    await shot(page, f"axe-{state}")
    results[state] = {
        "url": page.url.split("?")[0],
        "by_impact": {
            i: sum(1 for v in violations if v["impact"] == i)
            for i in ("critical", "serious", "moderate", "minor")
        },
        "violations": violations,
    }


async def test_axe_finds_no_serious_violation_in_any_page_state(
    browser: Any, ui_stack: Stack
) -> None:
    """The provider's login form, the page before and after the repository login (both
    panes), the confirmation, the history, a job's details, the expired-session dialog and
    the logged-out page: axe-core finds nothing serious or critical in any of them."""
    stack = ui_stack
    ctx, page, _ = await new_page(browser, stack)
    results: dict[str, Any] = {}
    await page.goto(stack.ui.url + "/")
    await page.wait_for_url(f"{stack.idp.issuer}/interaction/**")
    await axe_counts(page, "login", results)
    await page.get_by_label("User name").fill(IDP_LOGIN)
    await page.get_by_label("Password").fill(IDP_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(stack.ui.url + "/", timeout=15000)
    await page.locator("#repo-login").wait_for()
    await axe_counts(page, "repository-login", results)
    await repo_login(page, stack)
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")
    await open_local(page, stack.home / "data")
    await axe_counts(page, "panes", results)
    await page.get_by_label("Select a.txt").check()
    await page.locator("#upload").click()
    await page.locator("#confirm").wait_for(state="visible")
    await axe_counts(page, "confirmation", results)
    await page.locator("#confirm-submit").click()
    (job,) = await wait_states(page, {"completed": 1})
    await axe_counts(page, "jobs", results)
    await page.locator(f'tr[data-job="{job["id"]}"]').get_by_role("button", name="Details").click()
    await page.locator(f'#d-{job["id"]} [data-item="checksums"]').wait_for()
    await axe_counts(page, "job-detail", results)
    # a second upload of a changed a.txt fails (the name is taken): its failed-file list
    (stack.home / "data" / "a.txt").write_text("changed\n")
    await reupload_fails_name_taken(page, "a.txt", completed=1)
    await axe_counts(page, "job-detail-failed-file", results)
    await page.set_viewport_size({"width": 390, "height": 844})
    await axe_counts(page, "job-detail-phone", results)
    await page.set_viewport_size({"width": 1280, "height": 800})
    sessions_of(stack.ui).clear()
    await page.locator("#history-refresh").click()
    await page.locator("#expired").wait_for(state="visible")
    await axe_counts(page, "expired-session", results)
    await page.locator("#relogin").click()
    await page.wait_for_url(stack.ui.url + "/")
    await page.get_by_role("button", name="Log out", exact=True).click()
    await page.get_by_role("button", name="Yes, sign me out").click()
    await page.get_by_role("heading", name="You are logged out").wait_for()
    await axe_counts(page, "logged-out", results)
    # the scan can fail: an image without a text alternative is found at once
    await page.evaluate("document.querySelector('main').append(document.createElement('img'))")
    assert "image-alt" in {v["id"] for v in await _axe(page)}
    (SHOTS / "axe-states.json").write_text(json.dumps(results, indent=1))
    serious = {
        s: [v for v in r["violations"] if v["impact"] in ("serious", "critical")]
        for s, r in results.items()
    }
    assert not any(serious.values()), json.dumps(serious, indent=1)[:4000]
    await ctx.close()
