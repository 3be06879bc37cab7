"""The stager API as the logged-in user: HTTP with the user's access token as bearer.

The UI never talks to the broker or the task store; whatever it shows of jobs and project
storage comes from here. An API error is passed on with its status and its one-line
message (which the API already words for people).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StagerError,
    Unauthenticated,
    Unavailable,
)

_BY_STATUS: dict[int, type[StagerError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


class ApiError(StagerError):
    """An API answer that is not a success; ``status`` is the API's."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.kind = _BY_STATUS.get(status, Unavailable).kind


class ApiClient:
    """``GET``/``POST``/``PUT``/``DELETE`` on the API with a bearer token."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/")
        self.http = http

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """(status, JSON body) of a successful call; :class:`ApiError` otherwise."""
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self.http.request(
                method, self.base + path, params=params, json=json, headers=headers
            ) as r:
                try:
                    body = await r.json(content_type=None)
                except ValueError:
                    body = None
                if r.status in ok:
                    return r.status, body
                message = ""
                if isinstance(body, dict):
                    message = str(body.get("errorMessage") or body.get("detail") or "")
                raise ApiError(r.status, message or f"the stager API answered {r.status}", body)
        except aiohttp.ClientError as e:
            raise Unavailable(
                f"the stager API cannot be reached ({type(e).__name__}); try again later"
            ) from None
        except TimeoutError:
            raise Unavailable("the stager API did not answer in time; try again") from None

    async def list_dir(self, token: str, path: str) -> list[dict[str, Any]]:
        """``GET /v1/dir``: the entries of a local directory, listed as the user."""
        _, body = await self.call("GET", "/v1/dir", token, params={"path": path})
        return list(body.get("entries", []))

    async def jobs(
        self, token: str, state: str | None, offset: int = 0, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], int | None]:
        """``GET /v1/jobs[/state]?offset=&limit=``: one page, newest first, and how many
        match (None from an API that does not page: then the list is all there is)."""
        path = "/v1/jobs" + (f"/{quote(state, safe='')}" if state else "")
        params = {"offset": str(offset), "limit": str(limit)}
        _, body = await self.call("GET", path, token, params=params)
        total = body.get("total")
        return list(body.get("jobs", [])), total if isinstance(total, int) else None

    async def job(self, token: str, job_id: str) -> dict[str, Any]:
        """``GET /v1/job/{id}``."""
        _, body = await self.call("GET", f"/v1/job/{quote(job_id, safe='')}", token)
        return dict(body)

    async def submit(self, token: str, jobs: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/jobs`` (200 all accepted, 207 some rejected)."""
        status, body = await self.call(
            "POST", "/v1/jobs", token, json={"jobs": jobs}, ok=(200, 207)
        )
        return status, dict(body)

    async def cancel(self, token: str, job_id: str) -> dict[str, Any]:
        """``DELETE /v1/job/{id}``: stop it if it runs, and delete it."""
        _, body = await self.call("DELETE", f"/v1/job/{quote(job_id, safe='')}", token)
        return dict(body)

    async def restart(self, token: str, job_id: str) -> dict[str, Any]:
        """``PUT /v1/job/scheduled/{id}``: run a completed or archived job again."""
        _, body = await self.call("PUT", f"/v1/job/scheduled/{quote(job_id, safe='')}", token)
        return dict(body)

    async def dac(self, token: str, number: str) -> str:
        """``GET /v1/dac/project/{number}``: the project's data-acquisition collection."""
        _, body = await self.call("GET", f"/v1/dac/project/{quote(number, safe='')}", token)
        return str(body.get("collName", ""))
