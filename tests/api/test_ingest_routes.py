"""The ingest endpoints mounted in the API as a sub-app: reserved to data managers, JSON or YAML."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import WIDE, WIDE_PW, Api

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def test_ingest_jobs_reserved_to_data_managers(make_api: Any, tmp_path: Any) -> None:
    store = f"sqlite+aiosqlite:///{tmp_path}/ingest-routes.sqlite"
    api: Api = await make_api(
        ingest_managers=[WIDE], ingest={"db_url": store, "allowed_roots": ["/data"]}
    )
    body = {"root": "/data/landing", "target": "/tempZone/home/rods/landing", "owner": "alice"}

    r = await api.client.put("/v1/ingest/lz", json=body, headers=api.basic())
    assert r.status == 403, await r.text()
    assert "data managers" in (await r.text())
    r = await api.client.put("/v1/ingest/lz", json=body)
    assert r.status == 401

    auth = api.basic(WIDE, WIDE_PW)
    r = await api.client.put("/v1/ingest/lz", json=body, headers=auth)
    assert r.status == 201, await r.text()
    assert (await r.json())["name"] == "lz"

    yaml_body = "root: /data/other\ntarget: /tempZone/home/rods/other\ninterval: 60\nowner: bob\n"
    r = await api.client.put(
        "/v1/ingest/other",
        data=yaml_body,
        headers={**auth, "Content-Type": "application/x-yaml"},
    )
    assert r.status == 201, await r.text()

    r = await api.client.get("/v1/ingest", headers=auth)
    names = sorted(j["name"] for j in (await r.json())["jobs"])
    assert names == ["lz", "other"]

    r = await api.client.put(
        "/v1/ingest/bad", json={"root": "relative", "target": "/x"}, headers=auth
    )
    assert r.status == 400
    assert "absolute" in (await r.text())

    r = await api.client.delete("/v1/ingest/lz", headers=auth)
    assert r.status == 200
    r = await api.client.get("/v1/ingest/lz", headers=auth)
    assert (await r.json())["state"] == "stopped"
    r = await api.client.get("/v1/ingest/nosuchjob", headers=auth)
    assert r.status == 404

    # mounted as a sub-app, the routes still go through the API's middleware and metrics
    text = await (await api.client.get("/metrics")).text()
    assert 'route="/v1/ingest/{name}"' in text and 'route="/v1/ingest"' in text


async def test_ingest_bodies_are_bounded(make_api: Any, tmp_path: Any) -> None:
    """Deep JSON or YAML nesting and oversized strings in an ingest body are a 400 that
    says so (the API's one guarded reader), never a 500; nothing is stored."""
    store = f"sqlite+aiosqlite:///{tmp_path}/ingest-bounds.sqlite"
    api: Api = await make_api(
        ingest_managers=[WIDE], ingest={"db_url": store, "allowed_roots": ["/data"]}
    )
    auth = api.basic(WIDE, WIDE_PW)
    json_h = {**auth, "Content-Type": "application/json"}
    yaml_h = {**auth, "Content-Type": "application/x-yaml"}
    cases = [
        (b"[" * 10_000 + b"]" * 10_000, json_h, "nested too deeply"),
        (b"root: " + b"[" * 10_000 + b"]" * 10_000, yaml_h, "nested too deeply"),
        (b"root: " + b"[" * 40 + b"]" * 40, yaml_h, "at most 32 levels"),
        (b'{"root": "/data/x", "target": "' + b"x" * (1024 * 1024 + 1) + b'"}', json_h, "longer"),
    ]
    for raw, headers, hint in cases:
        r = await api.client.put("/v1/ingest/deep", data=raw, headers=headers)
        text = await r.text()
        assert r.status == 400 and hint in text, text[:300]
    r = await api.client.get("/v1/ingest", headers=auth)
    assert (await r.json())["jobs"] == []
