"""``/admin``: the admin overview (intake, workers, jobs of every user),
``/admin/queues`` (every queue with ready, unacked, consumers and oldest age; the
dead-letter queue with requeue and discard) and ``/admin/jobs/{id}`` (one job and its
attempts), server-rendered from the API's ``/v1/admin/...`` as the logged-in user.
:func:`services.ui.views.admin_role` tells the main page whether to show its "Admin" link.

Who may see it is the API's call (``GET /v1/admin/me``: 403 for anyone not in an admin
group). Read-only administrators see the page without its forms. Every change is a form
POST carrying the session's CSRF token (the session middleware checks it); one that
touches several jobs first shows a confirmation dialog with the number of jobs, and the
API refuses it unless that number (``confirm``) still matches.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from services.ui.apiclient import ApiError
from services.ui.auth import session_of
from services.ui.keys import API, TEMPLATES
from services.ui.middleware import SessionExpired
from services.ui.views import STATES, as_user
from shared.errors import Forbidden, InvalidInput

JOB_ACTIONS = ("restart", "cancel", "delete")
DEAD_ACTIONS = ("requeue", "discard")
_FILTERS = ("user", "state", "minAge", "maxAge", "offset")


def _render(request: web.Request, template: str, **values: Any) -> web.Response:
    session = session_of(request)
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(user=session.user, name=session.name, csrf=session.csrf, **values)
    )
    return web.Response(text=html, content_type="text/html")


async def _api(request: web.Request, method: str, path: str, **kw: Any) -> Any:
    async def call(token: str) -> Any:
        _, body = await request.app[API].call(method, path, token, **kw)
        return body

    try:
        return await as_user(request, call)
    except ApiError as e:
        if e.status == 403:
            raise Forbidden(e.message) from None
        raise


async def _me(request: web.Request, path: str) -> Any:
    """The caller's admin identity, after sending a visitor without a session to log in."""
    try:
        session_of(request)
    except SessionExpired:
        raise web.HTTPFound("/auth/login?" + urlencode({"next": path})) from None
    return await _api(request, "GET", "/v1/admin/me")


async def page(request: web.Request) -> web.StreamResponse:
    """``GET /admin``."""
    me = await _me(request, "/admin")
    filters = {k: request.query[k] for k in _FILTERS if request.query.get(k)}
    jobs = await _api(request, "GET", "/v1/admin/jobs", params={**filters, "limit": "50"})
    return _render(
        request,
        "admin.html",
        me=me,
        can_act=me.get("role") == "admin",
        intake=await _api(request, "GET", "/v1/admin/intake"),
        workers=(await _api(request, "GET", "/v1/admin/workers"))["workers"],
        jobs=jobs,
        filters=filters,
        states=STATES,
        job_actions=JOB_ACTIONS,
        done=request.query.get("done", "")[:200],
    )


async def queues_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/queues``: the queues and the head of the dead-letter queue."""
    me = await _me(request, "/admin/queues")
    try:
        dead = await _api(request, "GET", "/v1/admin/deadletters", params={"limit": "50"})
    except ApiError as e:
        dead = {"depth": None, "letters": [], "truncated": False, "error": e.message}
    return _render(
        request,
        "admin_queues.html",
        me=me,
        can_act=me.get("role") == "admin",
        queues=await _api(request, "GET", "/v1/admin/queues"),
        dead=dead,
        dead_actions=DEAD_ACTIONS,
        done=request.query.get("done", "")[:200],
    )


async def job_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/jobs/{id}``: one job with every attempt of every run."""
    task_id = request.match_info["id"]
    me = await _me(request, request.path)
    detail = await _api(request, "GET", f"/v1/admin/jobs/{quote(task_id[:64], safe='')}")
    return _render(request, "admin_job.html", me=me, d=detail)


def _back(done: str, page: str = "/admin") -> web.HTTPSeeOther:
    return web.HTTPSeeOther(page + "?" + urlencode({"done": done}))


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    return await request.post()


async def post_intake(request: web.Request) -> web.StreamResponse:
    """``POST /admin/intake``: pause (``paused=1``) or resume."""
    form = await _form(request)
    paused = form.get("paused") == "1"
    reason = str(form.get("reason") or "")[:300]
    await _api(request, "PUT", "/v1/admin/intake", json={"paused": paused, "reason": reason})
    raise _back("intake paused" if paused else "intake resumed")


def _ids(form: MultiDictProxy[Any]) -> list[str]:
    ids = [str(v)[:64] for v in form.getall("id", [])]
    if not ids:
        raise InvalidInput("no job selected: tick the jobs to act on")
    return list(dict.fromkeys(ids))


async def _confirmed(
    request: web.Request,
    form: MultiDictProxy[Any],
    what: str,
    action: str,
    ids: list[str],
    back: str = "/admin",
) -> web.Response | None:
    """The confirmation dialog, unless the form says it was confirmed."""
    if form.get("confirm") is not None:
        return None
    return _render(
        request,
        "admin_confirm.html",
        what=what,
        action=action,
        ids=ids,
        target=request.path,
        back=back,
    )


async def post_jobs(request: web.Request) -> web.StreamResponse:
    """``POST /admin/jobs``: restart, cancel or delete the ticked jobs (after confirming)."""
    form = await _form(request)
    action = str(form.get("action") or "")
    if action not in JOB_ACTIONS:
        raise InvalidInput(f"unknown action: use one of {', '.join(JOB_ACTIONS)}")
    ids = _ids(form)
    dialog = await _confirmed(request, form, "job", action, ids)
    if dialog is not None:
        return dialog
    confirm = _count(form)
    body = {"action": action, "ids": ids, "confirm": confirm}
    result = await _api(request, "POST", "/v1/admin/jobs/bulk", json=body)
    raise _back(f"{action}: {len(result['done'])} done, {len(result['skipped'])} not changed")


async def post_dead(request: web.Request) -> web.StreamResponse:
    """``POST /admin/deadletters``: requeue or discard the ticked dead letters."""
    form = await _form(request)
    action = str(form.get("action") or "")
    if action not in DEAD_ACTIONS:
        raise InvalidInput(f"unknown action: use one of {', '.join(DEAD_ACTIONS)}")
    ids = _ids(form)
    dialog = await _confirmed(request, form, "dead letter", action, ids, back="/admin/queues")
    if dialog is not None:
        return dialog
    body = {"ids": ids, "confirm": _count(form)}
    result = await _api(request, "POST", f"/v1/admin/deadletters/{action}", json=body)
    done = f"{action}: {len(result['done'])} done, {len(result['skipped'])} not changed"
    raise _back(done, "/admin/queues")


def _count(form: MultiDictProxy[Any]) -> int:
    try:
        return int(str(form.get("confirm")))
    except ValueError:
        raise InvalidInput("confirm must be the number of items") from None


def add_routes(app: web.Application) -> None:
    """The admin page's routes."""
    app.router.add_get("/admin", page)
    app.router.add_get("/admin/queues", queues_page)
    app.router.add_get("/admin/jobs/{id}", job_page)
    app.router.add_post("/admin/intake", post_intake)
    app.router.add_post("/admin/jobs", post_jobs)
    app.router.add_post("/admin/deadletters", post_dead)
