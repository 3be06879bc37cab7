"""The API's JSON intake and the ingest endpoint's JSON and YAML intake, from the request
body's bytes to the validated job.

The input's first byte chooses the endpoint (a v1 job, a batch, or an ingest job) and the
content type; the rest is the body. Each is handled by the API's own functions on a real
aiohttp request: ``handlers.read_json`` then ``seal_job`` for every job (a plaintext
``drPass`` is sealed, an envelope is checked), or the ingest sub-app's ``_body`` then
``IngestRequest``, ``job_owner`` and ``job_from_request`` (roots under a temporary allowed
root; handler source accepted, so it is compiled, never run).

Contract: a ``StagerError`` or a pydantic ``ValidationError`` (both become a 4xx problem
in the error middleware), or a valid ``TaskSpec`` / ingest ``Job`` that serialises to
JSON. Anything else would be a 500: a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Any

from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from services.api import handlers
from services.api.auth import AuthSettings, Principal
from services.api.keys import SEALER, SETTINGS
from services.api.settings import ApiSettings
from services.ingest import rest
from shared.crypto import Sealer, generate_keypair
from shared.errors import StagerError
from shared.messaging.messages import PrincipalKind
from shared.settings import IngestStoreSettings

_LOOP = asyncio.new_event_loop()
_PUBLIC = generate_keypair(2048)[1]
_ROOT = tempfile.mkdtemp(prefix="stager-fuzz-root-")
_APP = web.Application()
_APP[SETTINGS] = ApiSettings(public_keys=[_PUBLIC.decode()], auth=AuthSettings(check_users=False))
_APP[SEALER] = Sealer.from_pem([_PUBLIC])
_INGEST = IngestStoreSettings(allowed_roots=[_ROOT], rest_handler_code=True)
_PRINCIPALS = [
    Principal(PrincipalKind.SERVICE, "streamer", frozenset({"*"})),
    Principal(PrincipalKind.SERVICE, "narrow", frozenset({"alice"})),
    Principal(PrincipalKind.USER, "alice"),
]
_TYPES = ["application/json", "application/x-yaml", "text/yaml", "text/plain"]


def _request(method: str, path: str, content_type: str, body: bytes) -> web.Request:
    protocol = BaseProtocol(_LOOP)
    payload = StreamReader(protocol, 2**22, loop=_LOOP)
    payload.feed_data(body)
    payload.feed_eof()
    return make_mocked_request(
        method, path, headers={"Content-Type": content_type}, payload=payload, app=_APP
    )


async def _jobs(principal: Principal, body: bytes, batch: bool) -> None:
    raw = await handlers.read_json(_request("POST", "/v1/jobs", "application/json", body))
    items: list[Any] = raw.get("jobs", []) if batch and isinstance(raw, dict) else [raw]
    for item in items if isinstance(items, list) else [items]:
        try:
            spec = handlers.seal_job(_APP, principal, item)
        except StagerError:
            continue
        spec.model_dump_json()


async def _ingest(principal: Principal, content_type: str, body: bytes) -> None:
    request = _request("PUT", "/v1/ingest/fz", content_type, body)
    data = await rest._body(request)
    if not isinstance(data, dict):
        return
    parsed = rest.IngestRequest.model_validate(data)
    job = rest.job_from_request("fz", parsed, _INGEST)
    job.options.owner = rest.job_owner(principal, parsed.owner)
    job.model_dump_json()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    # ``/ROOT`` stands for the allowed ingest root (a temporary directory)
    choice, body = data[0], data[1:].replace(b"/ROOT", _ROOT.encode())
    route, content_type = choice % 3, _TYPES[choice // 3 % len(_TYPES)]
    principal = _PRINCIPALS[choice // 12 % len(_PRINCIPALS)]
    if route == 2:
        work = _ingest(principal, content_type, body)
    else:
        work = _jobs(principal, body, batch=route == 1)
    with contextlib.suppress(StagerError, ValidationError):
        _LOOP.run_until_complete(work)
