"""The page's dry-run preview, per-file errors and checksum result in the job detail, and
the history paged by the API, in Debian's Chromium against the real stack (provider, API,
worker as the user, iRODS test server). Screenshots: ``.local/ui-screenshots/2*.png``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from services.ui.views import FILE_ERROR_HINTS
from tests.ui.conftest import Stack, needs_browser
from tests.ui.test_browser import (
    _bearer,
    idp_login,
    new_page,
    open_local,
    repo_login,
    shot,
    submit_confirmed,
    wait_states,
)

pytestmark = [
    needs_browser,
    pytest.mark.skipif(os.geteuid() != 0, reason="the worker runs transfers as the user"),
    pytest.mark.timeout(240),
]


async def test_dry_run_preview_file_errors_checksums_and_paged_history(
    browser: Any, ui_stack: Stack
) -> None:
    stack = ui_stack
    assert stack.make_ui is not None
    stack.ui = await stack.make_ui(jobs_page_size=2)  # two jobs a page: paging shows at 3
    ctx, page, _dialogs = await new_page(browser, stack)
    await idp_login(page, stack)
    await repo_login(page, stack)
    await page.locator("#repo-who", has_text=stack.dr_user).wait_for()
    await page.locator("#repo-table caption", has_text=stack.repo_home).wait_for(state="attached")

    # a clean upload of data/: its checksums are verified
    await open_local(page, stack.home)
    await page.locator("#local-table").get_by_label("Select data").check()
    await submit_confirmed(page, "Upload →", 1, "20-confirm-data")
    [first] = await wait_states(page, {"completed": 1})
    row = page.locator(f'tr[data-job="{first["id"]}"]')
    await row.get_by_role("button", name="Details").click()
    checks = page.locator(f'#d-{first["id"]} dd[data-item="checksums"]')
    await checks.filter(has_text="verified: the sha256 of all 3 files").wait_for()

    # change one file, add one: the dry run says what would happen, and moves nothing
    data = stack.home / "data"
    (data / "sub" / "b.bin").write_bytes(os.urandom(1000))
    (data / "new.txt").write_bytes(b"n" * 1234)
    os.chown(data / "new.txt", data.stat().st_uid, data.stat().st_gid)
    await page.locator("#local-table").get_by_label("Select data").check()
    await page.get_by_role("button", name="Upload →").click()
    dialog = page.locator("#confirm")
    await dialog.wait_for(state="visible")
    await dialog.get_by_role("button", name="Preview (dry run)").click()
    await page.locator("#preview-status", has_text="Dry run done").wait_for(timeout=60000)
    plan = dialog.locator(".plan")
    text = await plan.inner_text()
    assert "1 file (1.2 kB) to transfer" in text, text
    assert "3 unchanged" in text and "1 refused" in text, text
    actions = await plan.locator("tbody tr").evaluate_all(
        "rows => Object.fromEntries(rows.map(r => [r.cells[0].innerText.split('/').pop(),"
        " r.dataset.action]))"
    )
    assert actions["new.txt"] == "transfer" and actions["b.bin"] == "conflict", actions
    assert actions["a.txt"] == "skip" and actions["link"] == "skip", actions
    assert "exists and differs" in await plan.locator('tr[data-action="conflict"]').inner_text()
    await shot(page, "21-dry-run-preview")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "21b-dry-run-preview-phone")
    await page.set_viewport_size({"width": 1280, "height": 800})
    assert not stack.dr_session.data_objects.exists(f"{stack.repo_home}/data/new.txt")
    # the dry-run jobs left the history (deleted once shown)
    listed = await stack.api.get("/v1/jobs", headers=await _bearer(stack, ctx))
    assert [j["data"]["dryRun"] for j in (await listed.json())["jobs"]] == [False]

    # submitted for real: the changed file fails, named with its reason; not verified
    await dialog.get_by_role("button", name="Submit").click()
    await page.locator("#status", has_text="submitted").wait_for()
    rows = await wait_states(page, {"archived": 1}, limit=90)
    failed = next(r for r in rows if r["state"] == "archived")
    row = page.locator(f'tr[data-job="{failed["id"]}"]')
    await row.get_by_role("button", name="Details").click()
    errors = page.locator(f"#d-{failed['id']} .file-errors li")
    await errors.first.wait_for()
    assert await errors.count() == 1
    item = await errors.first.inner_text()
    assert str(data / "sub" / "b.bin") in item and "exists and differs" in item, item
    # its kind came from isync through the worker and the API; the page shows its hint
    assert await errors.first.get_attribute("data-kind") == "name_taken"
    assert FILE_ERROR_HINTS["name_taken"] in item, item
    checks = page.locator(f'#d-{failed["id"]} dd[data-item="checksums"]')
    assert "not verified" in await checks.inner_text()
    await shot(page, "22-failed-files")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "22b-failed-files-phone")
    await page.set_viewport_size({"width": 1280, "height": 800})
    assert stack.dr_session.data_objects.exists(f"{stack.repo_home}/data/new.txt")

    # a third job; the history is paged by the API, two a page
    await open_local(page, stack.home)
    await page.locator("#local-table").get_by_label("Select big").check()
    await submit_confirmed(page, "Upload →", 1, "23-confirm-third")
    pager = page.locator("#jobs-pager span")
    await pager.filter(has_text="1\u20132 of 3").wait_for()
    assert await page.locator("#jobs tbody tr[data-job]").count() == 2
    newest = {
        r["id"]
        for r in await page.eval_on_selector_all(
            "#jobs tbody tr[data-job]", "rows => rows.map(r => ({id: r.dataset.job}))"
        )
    }
    await page.locator("#jobs-pager").get_by_role("button", name="Older", exact=True).click()
    await pager.filter(has_text="3\u20133 of 3").wait_for()
    [oldest] = await page.eval_on_selector_all(
        "#jobs tbody tr[data-job]", "rows => rows.map(r => r.dataset.job)"
    )
    assert oldest == first["id"] and oldest not in newest
    await shot(page, "24-history-page-2")
    await page.get_by_label("Show").select_option("archived")
    await pager.filter(has_text="1\u20131 of 1").wait_for()
    # what the page got is what the API paged (not everything filtered here)
    got = await page.evaluate("fetch('/ui/jobs?offset=1&limit=1').then(r => r.json())")
    api = await stack.api.get("/v1/jobs?offset=1&limit=1", headers=await _bearer(stack, ctx))
    want = await api.json()
    assert [j["id"] for j in got["jobs"]] == [j["id"] for j in want["jobs"]]
    assert got["total"] == want["total"] == 3
    await ctx.close()
