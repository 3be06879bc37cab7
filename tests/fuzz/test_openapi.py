"""``/v1/openapi.json`` describes exactly the routes the API serves (the ingest sub-app's
included): every path and method of the router is in the document, and nothing else is."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.app import create_app
from services.api.keys import SPEC
from shared.crypto import generate_keypair
from tests.api.conftest import api_settings


def served(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of ``app`` and its sub-apps (whose resources
    carry their mount prefix).

    A HEAD that aiohttp adds beside a GET (``web.get(..., allow_head=True)``) is part of
    that GET in HTTP, so it is not listed; a HEAD of its own would be.
    """
    out: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            out |= served(resource._app)
            continue
        for route in resource:
            out.add((route.method, resource.canonical))
    return {(m, p) for m, p in out if not (m == "HEAD" and ("GET", p) in out)}


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}


def make_app(tmp_path: Any) -> web.Application:
    _private, public = generate_keypair(2048)
    settings = api_settings(
        f"sqlite+aiosqlite:///{tmp_path}/s.sqlite", "tdoc", public, "http://127.0.0.1:9"
    )
    return create_app(settings)


def test_every_route_is_documented_and_nothing_else(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    routes, doc = served(app), documented(app[SPEC])
    assert ("PUT", "/v1/ingest/{name}") in routes and ("GET", "/livez") in routes
    assert routes - doc == set(), "served but not in /v1/openapi.json"
    assert doc - routes == set(), "in /v1/openapi.json but not served"


def test_a_route_added_without_documentation_is_caught(tmp_path: Any) -> None:
    app = make_app(tmp_path)

    async def hidden(_r: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/v1/hidden", hidden)
    assert served(app) - documented(app[SPEC]) == {("POST", "/v1/hidden")}


def test_ingest_bodies_are_described_from_their_models(tmp_path: Any) -> None:
    spec = make_app(tmp_path)[SPEC]
    put = spec["paths"]["/v1/ingest/{name}"]["put"]
    media = put["requestBody"]["content"]
    assert set(media) == {"application/json", "application/x-yaml"}
    assert media["application/json"]["schema"] == {"$ref": "#/components/schemas/IngestRequest"}
    schemas = spec["components"]["schemas"]
    assert {"root", "target", "files_per_task"} <= set(schemas["IngestRequest"]["properties"])
    view = schemas["IngestJobView"]["properties"]
    assert "handler" not in view and {"state", "counters", "progress"} <= set(view)
    assert set(put["responses"]) == {"201", "400", "401", "403", "409", "413"}
    # every operation with a body documents the body limit
    for ops in spec["paths"].values():
        for op in ops.values():
            if "requestBody" in op:
                assert "413" in op["responses"], op["operationId"]


def test_links_name_operations_that_exist(tmp_path: Any) -> None:
    spec = make_app(tmp_path)[SPEC]
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    links = [
        link
        for ops in spec["paths"].values()
        for op in ops.values()
        for resp in op["responses"].values()
        for link in resp.get("links", {}).values()
    ]
    assert len(links) >= 10
    assert {link["operationId"] for link in links} <= ids
    created = spec["paths"]["/v1/job"]["post"]["responses"]["200"]["links"]
    assert created["get_v1_job_id"]["parameters"] == {"id": "$response.body#/id"}
