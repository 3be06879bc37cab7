"""Regression tests of what the fuzzing runs found (docs/testing.md lists each finding).

Each test replays the finding against the real part: the store on a fresh PostgreSQL
database, the API built through ``create_app`` on the real broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.ingest.store import JobStore
from tests.api.conftest import WIDE, WIDE_PW, Api


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_ingest_store_opened_by_several_processes_at_once(db_url: str) -> None:
    """``make up`` on a fresh PostgreSQL database: the API and the ingest worker open the
    ingest store at the same moment; racing CREATE TABLEs made the API die at start
    (duplicate key in pg_type)."""
    stores = await asyncio.gather(*(JobStore.open(db_url) for _ in range(6)))
    try:
        assert await stores[0].list_jobs() == []
    finally:
        await asyncio.gather(*(s.close() for s in stores))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        # schemathesis, PUT /v1/ingest/{name} as YAML: PostgreSQL refuses NUL in text (500)
        ('root: /data/lz\ntarget: "/tempZone/home/rods/ingest/\\0T"\nowner: alice\n', "target"),
        # os.path.realpath raised ValueError (500)
        ('root: "/data/lz/a\\0b"\ntarget: /tempZone/home/rods/ingest/x\nowner: alice\n', "root"),
    ],
)
async def test_ingest_job_with_a_nul_byte_is_refused(
    make_api: Any, db_url: str, body: str, field: str
) -> None:
    api: Api = await make_api(
        ingest_managers=[f"service:{WIDE}"],
        ingest={"db_url": db_url, "allowed_roots": ["/data"]},
    )
    auth = {**api.basic(WIDE, WIDE_PW), "Content-Type": "application/x-yaml"}
    r = await api.client.put("/v1/ingest/nul", data=body, headers=auth)
    assert r.status == 400, await r.text()
    problem = await r.json()
    assert f"{field} contains a NUL byte: remove it" in problem["errorMessage"]
    r = await api.client.get("/v1/ingest/nul", headers=api.basic(WIDE, WIDE_PW))
    assert r.status == 404  # nothing stored
    # the same job without the NUL byte is taken
    r = await api.client.put("/v1/ingest/nul", data=body.replace("\\0", ""), headers=auth)
    assert r.status == 201, await r.text()


def test_dir_listing_of_a_name_too_long_is_the_callers_error() -> None:
    """schemathesis, GET /v1/dir?path=/etc/xxx…(300): the worker's lister failed with
    ENAMETOOLONG, which the API answered 503 (no worker could list); it is a 400."""
    from services.worker.dirlist import _error_reply
    from services.worker.jobs.dirlist import list_dir
    from shared.errors import ErrorKind, InvalidInput, kind_of

    with pytest.raises(InvalidInput, match="longer than the filesystem allows") as e:
        list_dir("/etc/" + "x" * 300, 10)
    assert kind_of(e.value) == ErrorKind.INVALID
    assert _error_reply(kind_of(e.value), str(e.value)).error_kind == "invalid"
    entries, _ = list_dir("/etc", 10_000)  # a real directory is still listed
    assert any(x["name"] == "passwd" for x in entries)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_deeply_nested_bodies_are_refused(make_api: Any, tmp_path: Any) -> None:
    """atheris (api_intake): a body nested a few thousand levels deep made json.loads and
    PyYAML raise RecursionError (a 500); each endpoint answers 400 saying so."""
    api: Api = await make_api(
        ingest_managers=[f"service:{WIDE}"],
        ingest={"db_url": f"sqlite+aiosqlite:///{tmp_path}/i.sqlite", "allowed_roots": ["/data"]},
    )
    deep = "[" * 3000 + "]" * 3000
    manager = api.basic(WIDE, WIDE_PW)
    for method, path, ctype, headers in [
        ("POST", "/v1/job", "application/json", api.basic()),
        ("POST", "/v1/jobs", "application/json", api.basic()),
        ("PUT", "/v1/ingest/deep", "application/json", manager),
        ("PUT", "/v1/ingest/deep", "application/x-yaml", manager),
    ]:
        r = await api.client.request(
            method, path, data=deep, headers={**headers, "Content-Type": ctype}
        )
        assert r.status == 400, (path, ctype, await r.text())
        assert "nested too deeply" in (await r.json())["errorMessage"]
    # a shallow body still reaches validation
    r = await api.client.put(
        "/v1/ingest/deep",
        data="root: /data/x\ntarget: /tempZone/home/rods/x\nowner: alice\n",
        headers={**manager, "Content-Type": "application/x-yaml"},
    )
    assert r.status == 201, await r.text()


def test_a_lone_surrogate_in_a_path_is_refused() -> None:
    """atheris (api_intake): ``\\ud800`` in dstURL passed validation and the sealed job then
    failed to serialise (a 500); it is refused with a message."""
    from shared.messaging.messages import check_abs_path

    with pytest.raises(ValueError, match="lone surrogate"):
        check_abs_path("/tempZone/home/a\ud800b", "dstURL")
    assert check_abs_path("/tempZone/home/ab", "dstURL") == "/tempZone/home/ab"


def test_a_deep_flow_yaml_body_is_refused_before_the_scanner_reads_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """atheris (api_intake, a libFuzzer timeout): ``[`` a few thousand times as a YAML
    ingest body. PyYAML's scanner looks up to 1024 characters ahead for a possible key at
    every flow level, so the body cost about a second (twenty under instrumentation)
    before the depth was refused; now the scanner refuses the 33rd opening bracket. What
    is counted is the scanner's work (tokens fetched), not time."""
    import yaml

    from services.ingest import policy

    fetched = [0]
    real = yaml.scanner.Scanner.fetch_more_tokens

    def counting(self: Any) -> None:
        fetched[0] += 1
        real(self)

    monkeypatch.setattr(yaml.scanner.Scanner, "fetch_more_tokens", counting)
    with pytest.raises(policy.YamlTooDeep, match="nested too deeply: at most 32 levels"):
        policy.load_yaml("[" * 3000 + "]" * 3000)
    assert fetched[0] <= 2 * policy.MAX_YAML_DEPTH
    with pytest.raises(policy.YamlTooDeep):  # block nesting is bounded by the composer
        policy.load_yaml("".join(" " * i + "- \n" for i in range(0, 200, 2)))
    depth = policy.MAX_YAML_DEPTH
    assert policy.load_yaml("[" * depth + "]" * depth) is not None  # the limit itself is fine
    assert policy.load_yaml("t: x[[[[[\n") == {"t": "x[[[[["}  # brackets in a plain scalar
