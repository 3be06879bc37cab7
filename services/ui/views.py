"""The page and the JSON routes its script calls (``/ui/…``).

Listings are paged here (``offset``/``limit``): the page never holds more than one page of
a folder. Jobs are built here, one per selected item, from what the page sends (which
side, which items, which destination folder); the page never sees the sealed password.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from services.ui.apiclient import ApiError
from services.ui.auth import bearer, session_of
from services.ui.keys import API, REPOSITORY, SEALER, SETTINGS, TEMPLATES
from services.ui.middleware import SessionExpired
from services.ui.repository import RepoBrowser, RepoEntry
from services.ui.sessions import Repository, Session
from shared.errors import FILE_ERROR_KINDS, FileErrorKind, InvalidInput, Unauthenticated
from shared.irods import strip_prefix
from shared.logging import get_logger
from shared.messaging.messages import PrincipalKind, Submitter, credential_binding

log = get_logger("stager.ui")

FINAL = {"completed", "archived", "cancelled"}
STATES = ("pending", "active", "retry", "completed", "archived", "cancelled")
#: Seconds a folder listing is reused while the user pages through it.
LISTING_TTL = 30.0
#: Cancelled jobs remembered per session (the API deletes a job when it cancels it).
MAX_CANCELLED = 100
MAX_ITEMS = 1000
#: Most jobs one history page may ask for (the API pages them: ``offset``/``limit``,
#: ``total``; the page asks for ``STAGER_JOBS_PAGE_SIZE``).
JOBS_PAGE_MAX = 100


# --- request bodies ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class RepoLogin(_Body):
    """``POST /ui/repo/login``."""

    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=1024)

    @field_validator("username")
    @classmethod
    def _plain(cls, v: str) -> str:
        v = v.strip()
        if not v or any(c in v for c in "\x00\r\n\t/"):
            raise ValueError("give your repository user name, e.g. u123456@ru.nl")
        return v


class MkDir(_Body):
    """``POST /ui/repo/mkdir``: a new folder ``name`` inside ``parent``."""

    parent: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=255)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if v in ("", ".", "..") or "/" in v or any(ord(c) < 32 for c in v):
            raise ValueError("a folder name without / or control characters")
        return v


class Transfer(_Body):
    """``POST /ui/jobs``: one job per item of ``sources`` into folder ``destination``."""

    direction: Literal["upload", "download"]
    sources: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    destination: str = Field(min_length=1)
    title: str = Field(default="", max_length=200)


class Resubmit(_Body):
    """``POST /ui/jobs/resubmit``: a cancelled job again."""

    id: str = Field(min_length=1, max_length=64)


# --- helpers ----------------------------------------------------------------------------


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """The JSON body validated by ``model`` (InvalidInput saying what to fix)."""
    try:
        raw = json.loads(await request.text() or "null")
    except ValueError:
        raise InvalidInput("the request body is not JSON: reload the page") from None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise InvalidInput.from_validation(e) from None


def absolute(path: str, what: str) -> str:
    """A normalised absolute path or InvalidInput."""
    path = path.strip()
    if not path.startswith("/") or "\x00" in path:
        raise InvalidInput(f"{what} must be an absolute path starting with /: {path[:200]!r}")
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm != "/" else "/"


def page_args(request: web.Request) -> tuple[int, int]:
    """``offset`` and ``limit`` from the query (limit capped at the page size)."""
    size = request.app[SETTINGS].page_size
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        limit = min(size, max(1, int(request.query.get("limit", str(size)))))
    except ValueError:
        raise InvalidInput("offset and limit must be whole numbers") from None
    return offset, limit


def _sort_key(e: dict[str, Any]) -> tuple[int, str]:
    return (0 if e["type"] == "dir" else 1, e["name"].casefold())


def paged(path: str, entries: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    """A page of a folder, folders first."""
    ordered = sorted(entries, key=_sort_key)
    parent = posixpath.dirname(path) if path != "/" else None
    return {
        "path": path,
        "parent": parent,
        "total": len(ordered),
        "offset": offset,
        "limit": limit,
        "entries": ordered[offset : offset + limit],
    }


def _cached(session: Session, side: str, path: str, fresh: bool) -> list[dict[str, Any]] | None:
    hit = session.extra.get(f"listing:{side}")
    if fresh or not hit or hit[0] != path or time.monotonic() - hit[1] > LISTING_TTL:
        return None
    return list(hit[2])


def _remember(session: Session, side: str, path: str, entries: list[dict[str, Any]]) -> None:
    session.extra[f"listing:{side}"] = (path, time.monotonic(), entries)


def browser_of(session: Session) -> RepoBrowser:
    """The session's open repository connection, or Unauthenticated asking to log in."""
    browser = session.extra.get("browser")
    if session.repository is None or not isinstance(browser, RepoBrowser) or browser.closed:
        raise Unauthenticated("log in to the repository first (user name and data-access password)")
    return browser


def close_browser(session: Session) -> None:
    """Close what the session holds open (called when a session is dropped)."""
    browser = session.extra.pop("browser", None)
    if isinstance(browser, RepoBrowser):
        browser.close()


async def as_user(request: web.Request, call: Any) -> Any:
    """``await call(token)`` with a fresh token; an API 401 ends the session."""
    token = await bearer(request)
    try:
        return await call(token)
    except ApiError as e:
        if e.status == 401:
            raise SessionExpired(
                "the stager no longer accepts your login: log in again (your selection is kept)"
            ) from None
        raise


#: What a researcher can do about a file that failed, by its kind (the job detail shows it
#: under the file's message).
FILE_ERROR_HINTS: dict[FileErrorKind, str] = {
    "checksum_mismatch": "The copy differed from the original. Restart the job to copy it "
    "anew; if it differs again, tell the operators.",
    "name_taken": "Something different already has this name at the destination. Rename or "
    "remove it there, or choose another destination folder.",
    "permission_denied": "You may not read the source or write the destination. Ask the "
    "owner for access, or choose another folder.",
    "not_found": "It was moved or deleted before it could be copied. Check the folder, "
    "then submit again.",
    "io_error": "The storage refused it (full, over quota, read-only, or the name is too "
    "long). Free space or fix what the message names, then restart the job.",
    "unavailable": "The repository did not answer, or someone else was writing the file. "
    "Restart the job later: it resumes.",
    "parent_failed": "Its folder could not be made at the destination. Fix that folder's "
    "error (listed too), then restart the job.",
    "cancelled": "The transfer was stopped before this file was copied. Restart the job to "
    "finish it.",
    "other": "Restart the job; if it fails again, send this message to the operators.",
}


def file_errors_view(errors: Any) -> list[dict[str, str]] | None:
    """The API's failed files with their kind (``other`` when unknown or missing, as in
    reports made before kinds existed) and the hint for it."""
    if not isinstance(errors, list):
        return None
    out: list[dict[str, str]] = []
    for e in errors:
        if not isinstance(e, dict):
            continue
        kind = e.get("kind")
        known: FileErrorKind = kind if kind in FILE_ERROR_KINDS else "other"
        out.append(
            {
                "path": str(e.get("path", "")),
                "error": str(e.get("error", "")),
                "kind": known,
                "hint": FILE_ERROR_HINTS[known],
            }
        )
    return out


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """What the history table shows of one API ``jobInfo``."""
    data, status = job.get("data", {}), job.get("status", {})
    p = status.get("progress", {}) or {}
    ts = job.get("timestamps", {})
    state = status.get("status", "")
    total, done, failed = p.get("total", 0), p.get("processed", 0), p.get("failed", 0)
    btotal, bdone = p.get("bytesTotal", 0), p.get("bytesDone", 0)
    if btotal:
        percent = min(100.0, 100.0 * bdone / btotal)
    elif total:
        percent = min(100.0, 100.0 * done / total)
    else:
        percent = 100.0 if state == "completed" else 0.0
    times = [t for t in (ts.get("completedAt"), ts.get("lastFailedAt")) if t and t > 0]
    return {
        "id": job.get("id", ""),
        "title": data.get("title", ""),
        "src": data.get("srcURL", ""),
        "dst": data.get("dstURL", ""),
        "state": state,
        "final": state in FINAL,
        "error": status.get("error", ""),
        "attempts": status.get("attempts", 0),
        "created": ts.get("createdAt"),
        "updated": max(times) if times else None,
        "files": {"total": total, "done": done, "failed": failed},
        "bytes": {"total": btotal, "done": bdone},
        "rate": p.get("rate", 0.0),
        "eta": p.get("eta"),
        "percent": round(percent, 1),
        "restartable": state in ("completed", "archived"),
        "resubmittable": state == "cancelled",
        "dryRun": bool(data.get("dryRun")),
        # verified / not_verified / mismatch, or None before any attempt reported
        "checksum": status.get("checksum"),
        "checksumFiles": status.get("checksumFiles", 0),
        "fileErrorsTotal": status.get("fileErrorsTotal", 0),
        # only in one job's detail (GET /v1/job/{id}): the first failed files, the plan
        "fileErrors": file_errors_view(status.get("fileErrors")),
        "plan": status.get("dryRun"),
    }


def isync_command(src: str, dst: str) -> str:
    """The same transfer as an ``isync`` command line (shell-quoted)."""
    return shlex.join(["isync", "-r", "-K", "-P", src, dst])


# --- the page ---------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    """``GET /``: the app, or off to log in."""
    try:
        session = session_of(request)
    except SessionExpired:
        raise web.HTTPFound("/auth/login?next=/") from None
    settings = request.app[SETTINGS]
    html = (
        request.app[TEMPLATES]
        .get_template("index.html")
        .render(
            user=session.user,
            name=session.name,
            csrf=session.csrf,
            page_size=settings.page_size,
            jobs_page_size=settings.jobs_page_size,
            poll_ms=int(settings.poll_interval * 1000),
            help_url=settings.help_url,
        )
    )
    return web.Response(text=html, content_type="text/html")


async def get_session(request: web.Request) -> web.Response:
    """``GET /ui/session``: who is logged in, and the repository login if any."""
    session = session_of(request)
    repo = session.repository
    browser = session.extra.get("browser")
    browsing = isinstance(browser, RepoBrowser) and not browser.closed
    return web.json_response(
        {
            "user": session.user,
            "name": session.name,
            "csrf": session.csrf,
            "expires": int(session.expires),
            "localRoot": request.app[SETTINGS].local_root.replace("{user}", session.user or ""),
            "repoUser": repo.user if repo else None,
            "repoRoot": request.app[REPOSITORY].root(repo.user) if repo else None,
            "browsing": browsing,
            "states": STATES,
        }
    )


# --- project storage --------------------------------------------------------------------


async def list_local(request: web.Request) -> web.Response:
    """``GET /ui/local?path=&offset=&limit=``: a page of a folder listed as the user."""
    session = session_of(request)
    path = absolute(request.query.get("path", "/"), "path")
    offset, limit = page_args(request)
    entries = _cached(session, "local", path, request.query.get("fresh") == "1")
    if entries is None:
        raw = await as_user(request, lambda t: request.app[API].list_dir(t, path))
        entries = [
            {
                "name": e["name"],
                "type": e["type"],
                "size": e.get("size", 0),
                "mtime": e.get("mtime"),
            }
            for e in raw
        ]
        _remember(session, "local", path, entries)
    return web.json_response(paged(path, entries, offset, limit))


# --- the repository ---------------------------------------------------------------------


async def repo_login(request: web.Request) -> web.Response:
    """``POST /ui/repo/login``: check, seal at once, open the browsing connection."""
    session = session_of(request)
    body: RepoLogin = await read_body(request, RepoLogin)
    app = request.app
    assert session.user is not None
    browser = await app[REPOSITORY].login(body.username, body.password.get_secret_value())
    binding = credential_binding(
        session.user, body.username, Submitter(kind=PrincipalKind.USER, name=session.user)
    )
    envelope = app[SEALER].seal(body.password, binding)
    del body  # the plaintext goes no further than this request
    close_browser(session)
    session.repository = Repository(user=browser.user, envelope=envelope)
    session.extra["browser"] = browser
    session.extra.pop("listing:repo", None)
    log.info("ui.repo_login", user=session.user, dr_user=browser.user)
    return web.json_response(
        {"repoUser": browser.user, "repoRoot": app[REPOSITORY].root(browser.user)}
    )


async def repo_logout(request: web.Request) -> web.Response:
    """``POST /ui/repo/logout``: forget the envelope and close the connection."""
    session = session_of(request)
    close_browser(session)
    session.repository = None
    session.extra.pop("listing:repo", None)
    return web.json_response({"repoUser": None})


def _repo_dicts(entries: list[RepoEntry]) -> list[dict[str, Any]]:
    return [{"name": e.name, "type": e.type, "size": e.size, "mtime": e.mtime} for e in entries]


async def list_repo(request: web.Request) -> web.Response:
    """``GET /ui/repo?path=&offset=&limit=``: a page of a collection."""
    session = session_of(request)
    browser = browser_of(session)
    path = absolute(strip_prefix(request.query.get("path", "/")), "path")
    offset, limit = page_args(request)
    entries = _cached(session, "repo", path, request.query.get("fresh") == "1")
    if entries is None:
        entries = _repo_dicts(await request.app[REPOSITORY].run(browser.list, path))
        _remember(session, "repo", path, entries)
    return web.json_response(paged(path, entries, offset, limit))


async def repo_mkdir(request: web.Request) -> web.Response:
    """``POST /ui/repo/mkdir``: one new folder on the repository side."""
    session = session_of(request)
    browser = browser_of(session)
    body: MkDir = await read_body(request, MkDir)
    parent = absolute(strip_prefix(body.parent), "parent")
    path = posixpath.join(parent, body.name)
    await request.app[REPOSITORY].run(browser.mkdir, path)
    session.extra.pop("listing:repo", None)
    return web.json_response({"path": path})


# --- jobs -------------------------------------------------------------------------------


def build_jobs(session: Session, t: Transfer, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """One API job per source item; repository paths get the ``irods:`` prefix. A
    ``dry_run`` job only plans (isync's dry run, as the user) and moves nothing."""
    repo = session.repository
    if repo is None:
        raise Unauthenticated("log in to the repository first: jobs need its password")
    assert session.user is not None
    dest = absolute(strip_prefix(t.destination), "destination")
    jobs = []
    for raw in t.sources:
        src = absolute(strip_prefix(raw), "source")
        if src == "/":
            raise InvalidInput("the root folder cannot be copied as a whole: pick folders in it")
        name = posixpath.basename(src)
        if t.direction == "upload":
            src_url, dst_url = src, f"irods:{dest.rstrip('/')}/"
        else:
            src_url, dst_url = f"irods:{src}", dest.rstrip("/") + "/"
        job: dict[str, Any] = {
            "title": (("preview: " if dry_run else "") + (t.title or name))[:200],
            "stagerUser": session.user,
            "drUser": repo.user,
            "drPass": repo.envelope,
            "srcURL": src_url,
            "dstURL": dst_url,
        }
        if dry_run:
            job["dryRun"] = True
        jobs.append(job)
    return jobs


async def submit(request: web.Request) -> web.Response:
    """``POST /ui/jobs``: submit the confirmed jobs (207 when some were refused)."""
    return await _submit(request, dry_run=False)


async def preview(request: web.Request) -> web.Response:
    """``POST /ui/preview``: the same jobs as dry runs (the worker plans them as the user
    and moves nothing); the page follows them with ``GET /ui/jobs/{id}``, shows each plan
    in the confirmation and deletes them."""
    return await _submit(request, dry_run=True)


async def _submit(request: web.Request, *, dry_run: bool) -> web.Response:
    session = session_of(request)
    body: Transfer = await read_body(request, Transfer)
    jobs = build_jobs(session, body, dry_run=dry_run)
    status, answer = await as_user(request, lambda t: request.app[API].submit(t, jobs))
    accepted = [job_view(j) for j in answer.get("jobs", [])]
    rejected = [
        {"source": body.sources[r["index"]], "message": r.get("errorMessage", "")}
        for r in answer.get("rejected", [])
        if 0 <= r.get("index", -1) < len(body.sources)
    ]
    return web.json_response({"accepted": accepted, "rejected": rejected}, status=status)


def _cancelled(session: Session) -> list[dict[str, Any]]:
    return list(session.extra.setdefault("cancelled", []))


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /ui/jobs?state=&offset=&limit=``: the history, newest first, one page."""
    session = session_of(request)
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {state[:40]!r}: use one of {', '.join(STATES)}")
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        default = request.app[SETTINGS].jobs_page_size
        limit = min(JOBS_PAGE_MAX, max(1, int(request.query.get("limit", str(default)))))
    except ValueError:
        raise InvalidInput("offset and limit must be whole numbers") from None
    api = request.app[API]
    jobs, total = await as_user(request, lambda t: api.jobs(t, state, offset, limit))
    if total is None:  # an API that does not page answers everything: page it here
        total, jobs = len(jobs), jobs[offset : offset + limit]
    views = [job_view(j) for j in jobs]
    kept: list[dict[str, Any]] = []
    if state in (None, "cancelled"):  # an API that deletes cancelled jobs: this session's
        listed = {v["id"] for v in views}
        kept = [v for v in _cancelled(session) if v["id"] not in listed]
        total += len(kept)
    if offset == 0 and kept:
        views = sorted(kept + views, key=lambda v: (v.get("created") or 0, v["id"]), reverse=True)
    return web.json_response(
        {
            "jobs": views,
            "total": total,
            "offset": offset,
            "limit": limit,
            "active": sum(1 for v in views if not v["final"]),
        }
    )


async def get_job(request: web.Request) -> web.Response:
    """``GET /ui/jobs/{id}``."""
    session_of(request)
    job_id = request.match_info["id"]
    job = await as_user(request, lambda t: request.app[API].job(t, job_id))
    return web.json_response(job_view(job))


async def cancel_job(request: web.Request) -> web.Response:
    """``POST /ui/jobs/{id}/cancel``: the API stops the transfer. An API that keeps the job
    as cancelled lists it from then on; one that deletes it does not, and the history then
    keeps a cancelled row for this session. Either can be submitted again."""
    session = session_of(request)
    job_id = request.match_info["id"]
    api = request.app[API]
    job = await as_user(request, lambda t: api.cancel(t, job_id))
    view = job_view(job)
    view.update(state="cancelled", final=True, restartable=False, resubmittable=True)
    try:
        await as_user(request, lambda t: api.job(t, job_id))
    except ApiError as e:
        if e.status != 404:
            raise
        view["updated"] = int(time.time())
        kept = [v for v in _cancelled(session) if v["id"] != view["id"]]
        session.extra["cancelled"] = [view, *kept][:MAX_CANCELLED]
    return web.json_response(view)


async def delete_job(request: web.Request) -> web.Response:
    """``POST /ui/jobs/{id}/delete``: remove it from the history (cancelling it if it
    still runs)."""
    session = session_of(request)
    job_id = request.match_info["id"]
    mine = [v for v in _cancelled(session) if v["id"] != job_id]
    if len(mine) != len(_cancelled(session)):
        session.extra["cancelled"] = mine
        return web.json_response({"id": job_id, "deleted": True})
    api = request.app[API]
    job = job_view(await as_user(request, lambda t: api.job(t, job_id)))
    await as_user(request, lambda t: api.cancel(t, job_id))
    if not job["final"]:  # the first DELETE cancelled it; an API that keeps cancelled
        try:  # jobs hides it on the second, one that deleted it answers 404
            await as_user(request, lambda t: api.cancel(t, job_id))
        except ApiError as e:
            if e.status not in (404, 409):
                raise
    return web.json_response({"id": job_id, "deleted": True})


async def restart_job(request: web.Request) -> web.Response:
    """``POST /ui/jobs/{id}/restart``: a completed or archived job runs again; a cancelled
    one is submitted again as a new job."""
    session = session_of(request)
    job_id = request.match_info["id"]
    for view in _cancelled(session):
        if view["id"] == job_id:
            return await _resubmit(request, session, view)
    current = job_view(await as_user(request, lambda t: request.app[API].job(t, job_id)))
    if current["state"] == "cancelled":
        return await _resubmit(request, session, current)
    job = await as_user(request, lambda t: request.app[API].restart(t, job_id))
    return web.json_response(job_view(job))


async def _resubmit(request: web.Request, session: Session, view: dict[str, Any]) -> web.Response:
    repo = session.repository
    if repo is None:
        raise Unauthenticated("log in to the repository first: jobs need its password")
    assert session.user is not None
    job = {
        "title": view["title"],
        "stagerUser": session.user,
        "drUser": repo.user,
        "drPass": repo.envelope,
        "srcURL": view["src"],
        "dstURL": view["dst"],
    }
    _, answer = await as_user(request, lambda t: request.app[API].submit(t, [job]))
    jobs = answer.get("jobs", [])
    if not jobs:
        reasons = "; ".join(r.get("errorMessage", "") for r in answer.get("rejected", []))
        raise InvalidInput(f"the job was refused: {reasons}")
    session.extra["cancelled"] = [v for v in _cancelled(session) if v["id"] != view["id"]]
    return web.json_response(job_view(jobs[0]))


async def job_command(request: web.Request) -> web.Response:
    """``GET /ui/jobs/{id}/isync``: the job as an isync command."""
    session = session_of(request)
    job_id = request.match_info["id"]
    for view in _cancelled(session):
        if view["id"] == job_id:
            return web.json_response({"command": isync_command(view["src"], view["dst"])})
    job = job_view(await as_user(request, lambda t: request.app[API].job(t, job_id)))
    return web.json_response({"command": isync_command(job["src"], job["dst"])})


async def dac(request: web.Request) -> web.Response:
    """``GET /ui/dac/{number}``: a project's data-acquisition collection."""
    session_of(request)
    number = request.match_info["number"]
    path = await as_user(request, lambda t: request.app[API].dac(t, number))
    return web.json_response({"path": path})
