"""The ingest REST endpoints as a sub-app of a real aiohttp app (the API's error middleware)."""

from __future__ import annotations

import json

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.middleware import error_middleware
from services.ingest.rest import make_app, principals_allowed
from services.ingest.store import JobState, JobStore
from shared.errors import Unauthenticated
from shared.messaging.messages import PrincipalKind
from shared.settings import IngestStoreSettings
from tests.ingest.conftest import make_tree

GOOD = {"Authorization": "Bearer manager"}


class Who:
    def __init__(self, name: str, kind: PrincipalKind = PrincipalKind.SERVICE) -> None:
        self.name = name
        self.kind = kind
        self.act_for: frozenset[str] = frozenset({"alice"})


async def authenticate(request: web.Request) -> Who:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthenticated("missing Authorization header")
    return Who(header.removeprefix("Bearer "))


@pytest.fixture
async def client(tmp_path):
    db_url = f"sqlite+aiosqlite:///{tmp_path}/rest.sqlite"
    store = await JobStore.open(db_url)
    app = web.Application(middlewares=[error_middleware])
    authorize = principals_allowed(authenticate, ["manager"])
    settings = IngestStoreSettings(
        db_url=db_url, allowed_roots=[str(tmp_path), "/tmp"], rest_handler_code=True
    )
    app.add_subapp("/v1/ingest", make_app(db_url=db_url, authorize=authorize, settings=settings))
    async with TestClient(TestServer(app)) as c:
        c.store = store  # type: ignore[attr-defined]
        yield c
    await store.close()


async def test_put_json_then_get_list_delete(client, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    body = {"root": str(src), "target": "/tempZone/home/rods/r", "files_per_task": 5}
    body["owner"] = "alice"
    r = await client.put("/v1/ingest/job-1", json=body, headers=GOOD)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["name"] == "job-1" and created["state"] == "waiting"
    assert "handler" not in created
    r = await client.put("/v1/ingest/job-1", json=body, headers=GOOD)
    assert r.status == 409
    r = await client.get("/v1/ingest/job-1", headers=GOOD)
    assert (await r.json())["options"]["files_per_task"] == 5
    r = await client.get("/v1/ingest", headers=GOOD)
    assert [j["name"] for j in (await r.json())["jobs"]] == ["job-1"]
    r = await client.delete("/v1/ingest/job-1", headers=GOOD)
    assert r.status == 200 and (await r.json())["state"] == "stopped"
    assert (await client.store.get("job-1")).state is JobState.STOPPED


async def test_put_yaml_as_the_seed_did(client, tmp_path):
    src = make_tree(tmp_path / "src", 1)
    handler = (
        "from shared.ingest.core import Core\n"
        "from shared.ingest.utils import Operation\n\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def operation(session, meta, **options):\n"
        "        return Operation.PUT\n"
    )
    doc = {
        "root": str(src),
        "target": "/tempZone/home/rods/y",
        "interval": 60,
        "append_json": {"a": 1},
        "irods_idle_disconnect_seconds": 7,
        "timeout": 10,
        "all": True,
        "event_handler_data": handler,
        "owner": "alice",
    }
    r = await client.put(
        "/v1/ingest/yaml-job",
        data=yaml.safe_dump(doc),
        headers={**GOOD, "Content-Type": "application/x-yaml"},
    )
    assert r.status == 201, await r.text()
    job = await client.store.get("yaml-job")
    assert job.interval == 60 and job.handler == handler and job.options.append_json == {"a": 1}
    assert job.options.irods_idle_disconnect_seconds == 7
    # the seed's REST fields: timeout (its job-level limit; here the limit for a handler
    # without timeout()) and all (its --all, renamed --ignore_cache there)
    assert job.options.timeout == 10 and job.options.ignore_cache is True


@pytest.mark.parametrize(
    ("body", "ctype", "status", "says"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        ("root: [", "application/x-yaml", 400, "not valid YAML"),
        (json.dumps({"root": "/x"}), "application/json", 400, "target"),
        (json.dumps({"root": "rel", "target": "/z/c"}), "application/json", 400, "absolute"),
        (
            json.dumps({"root": "/x", "target": "/z/c", "bogus": 1}),
            "application/json",
            400,
            "bogus",
        ),
        (
            json.dumps({"root": "/tmp", "target": "/z/c", "event_handler_data": "def (:"}),
            "application/json",
            400,
            "syntax error",
        ),
        (
            json.dumps({"root": "/tmp", "target": "/z/c", "exclude_file_type": ["file"]}),
            "application/json",
            400,
            "unknown file type",
        ),
    ],
)
async def test_bad_bodies_are_explained(client, body, ctype, status, says):
    r = await client.put("/v1/ingest/bad", data=body, headers={**GOOD, "Content-Type": ctype})
    assert r.status == status
    problem = await r.json()
    assert says in problem["detail"]


async def test_only_data_managers(client):
    r = await client.get("/v1/ingest")
    assert r.status == 401
    r = await client.get("/v1/ingest", headers={"Authorization": "Bearer someone"})
    assert r.status == 403
    r = await client.get("/v1/ingest/nope", headers=GOOD)
    assert r.status == 404


async def test_policy_refusals_say_what_to_fix(tmp_path):
    """Alias bombs, roots outside the prefixes, REST handler code, name-only principals."""
    db_url = f"sqlite+aiosqlite:///{tmp_path}/p.sqlite"
    app = web.Application(middlewares=[error_middleware])

    async def oidc_streamer(request: web.Request) -> Who:
        return Who("streamer", PrincipalKind.USER)

    settings = IngestStoreSettings(db_url=db_url, allowed_roots=[str(tmp_path)])
    app.add_subapp(
        "/v1/ingest",
        make_app(
            db_url=db_url,
            authorize=principals_allowed(authenticate, ["service:manager"]),
            settings=settings,
        ),
    )
    app.add_subapp(
        "/v2/ingest",
        make_app(
            db_url=db_url,
            authorize=principals_allowed(oidc_streamer, ["streamer"]),
            settings=settings,
        ),
    )
    async with TestClient(TestServer(app)) as c:
        bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\nroot: /tmp\ntarget: /z/c\n'
        r = await c.put("/v1/ingest/b", data=bomb, headers={**GOOD, "Content-Type": "text/yaml"})
        assert r.status == 400 and "aliases" in (await r.json())["detail"]
        r = await c.put("/v1/ingest/r", json={"root": "/root", "target": "/z/c"}, headers=GOOD)
        assert r.status == 400 and "not under an allowed" in (await r.json())["detail"]
        body = {"root": str(tmp_path), "target": "/z/c", "event_handler_data": "x = 1\n"}
        r = await c.put("/v1/ingest/h", json=body, headers=GOOD)
        assert r.status == 400 and "handler code over REST is disabled" in await r.text()
        r = await c.put("/v2/ingest/s", json={"root": str(tmp_path), "target": "/z/c"})
        assert r.status == 403  # an OIDC user named like the service account
        ok = {"root": str(tmp_path), "target": "/z/c"}
        r = await c.put("/v1/ingest/ok", json=ok, headers=GOOD)
        assert r.status == 400 and "owner: name the Unix user the job runs as" in await r.text()
        r = await c.put("/v1/ingest/ok", json={**ok, "owner": "mallory"}, headers=GOOD)
        assert r.status == 403 and "may not start ingest jobs as 'mallory'" in await r.text()
        r = await c.put("/v1/ingest/ok", json={**ok, "owner": "root"}, headers=GOOD)
        assert r.status == 403 and "root" in await r.text()
        r = await c.put("/v1/ingest/ok", json={**ok, "owner": "alice"}, headers=GOOD)
        assert r.status == 201, await r.text()
        assert (await r.json())["options"]["owner"] == "alice"


def test_job_owner_rules():
    """A user's jobs run as that user; a service account names one of its act_for users."""
    from services.ingest.rest import job_owner
    from shared.errors import Forbidden, InvalidInput

    user = Who("alice", PrincipalKind.USER)
    assert job_owner(user, None) == job_owner(user, "alice") == "alice"
    with pytest.raises(Forbidden, match="runs as that user"):
        job_owner(user, "bob")
    service = Who("streamer")
    with pytest.raises(InvalidInput, match="name the Unix user"):
        job_owner(service, None)
    with pytest.raises(Forbidden, match="'bob'"):
        job_owner(service, "bob")
    service.act_for = frozenset({"*"})
    assert job_owner(service, "bob") == "bob"
    with pytest.raises(Forbidden, match="root"):
        job_owner(service, "root")


@pytest.mark.parametrize(
    ("extra", "limit", "ignore_cache"),
    [
        ({}, None, False),
        ({"all": False}, None, False),
        ({"all": True}, None, True),
        ({"ignore_cache": True, "all": False}, None, True),
        ({"timeout": 2.5}, 2.5, False),
    ],
)
async def test_timeout_and_all_are_applied(client, tmp_path, extra, limit, ignore_cache):
    """The seed's REST API (automated ingest 0.5 ``flask_app.py``; its README's ``submit.yaml``
    has ``timeout:`` and ``all:``) took both; ``all`` was its ``--all`` ("ignores cached last
    sync time", commit b41ff9b), which became ``--ignore_cache`` (0865060)."""
    src = make_tree(tmp_path / "src", 1)
    body = {"root": str(src), "target": "/tempZone/home/rods/t", "owner": "alice", **extra}
    r = await client.put("/v1/ingest/t", json=body, headers=GOOD)
    assert r.status == 201, await r.text()
    job = await client.store.get("t")
    assert job.options.timeout == limit and job.options.ignore_cache is ignore_cache


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"all": "maybe"}, "all"),
    ],
)
async def test_bad_timeout_or_all_is_a_400_naming_it(client, tmp_path, extra, says):
    body = {"root": str(tmp_path), "target": "/tempZone/home/rods/t", "owner": "alice", **extra}
    r = await client.put("/v1/ingest/t", json=body, headers=GOOD)
    assert r.status == 400
    problem = await r.json()
    assert says in {e["field"] for e in problem["errors"]}, problem


@pytest.mark.parametrize("field", ["restart_queue", "path_queue", "file_queue"])
async def test_own_queue_names_are_refused_saying_what_to_do(client, tmp_path, field):
    """The seed's REST API defaulted ``file_queue``/``path_queue``/``restart_queue`` to
    file, path, restart and routed the job's tasks there. The defaults are accepted (a
    script written for it may send them); another name is a 400 naming the field and how
    to give jobs workers of their own, and no job is written."""
    src = make_tree(tmp_path / "src", 1)
    body = {"root": str(src), "target": "/tempZone/home/rods/q", "owner": "alice"}
    r = await client.put("/v1/ingest/q", json={**body, field: "mine"}, headers=GOOD)
    assert r.status == 400
    problem = await r.json()
    assert field in {e["field"] for e in problem["errors"]}
    assert "a job cannot have its own queues" in problem["detail"]
    assert "STAGER_BROKER__PREFIX" in problem["detail"]
    r = await client.get("/v1/ingest/q", headers=GOOD)
    assert r.status == 404
    defaults = {"restart_queue": "restart", "path_queue": "path", "file_queue": "file"}
    r = await client.put("/v1/ingest/q", json={**body, **defaults}, headers=GOOD)
    assert r.status == 201, await r.text()
