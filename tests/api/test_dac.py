"""DAC lookup: static map, then the iRODS test server queried through python-irodsclient."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.dac import DacResolver, DacSettings
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from shared.settings import IrodsSettings


def irods_settings(srv: Any) -> IrodsSettings:
    return IrodsSettings(
        host=srv.host,
        port=srv.port,
        zone=srv.zone,
        user=srv.admin_user,
        password=srv.admin_password,
        timeout=5.0,
    )


@pytest.fixture
def dacs(irods_server: Any, unique_name: str) -> dict[str, str]:
    """Collections with AVUs: one DAC for project A, two for B, a non-DAC for C."""
    base = f"/{irods_server.zone}/home/rods/{unique_name}"
    n = int.from_bytes(unique_name.encode()[-3:], "big") % 10_000_000
    projects = {k: f"{n:07d}.{i:02d}" for i, k in enumerate("ABC")}
    with irods_server.session() as s:
        s.collections.create(base)
        for name, project, kind in [
            ("a", projects["A"], "DAC"),
            ("b1", projects["B"], "DAC"),
            ("b2", projects["B"], "DAC"),
            ("c", projects["C"], "RDC"),
        ]:
            coll = s.collections.create(f"{base}/{name}")
            coll.metadata.add("projectID", project)
            coll.metadata.add("collectionType", kind)
    return {**projects, "base": base}


async def test_dac_from_irods(irods_server: Any, dacs: dict[str, str]) -> None:
    resolver = DacResolver(DacSettings(ttl=60), irods_settings(irods_server))
    try:
        assert await resolver.resolve(dacs["A"]) == f"{dacs['base']}/a"
        with pytest.raises(Conflict, match="2 data-acquisition collections"):
            await resolver.resolve(dacs["B"])
        with pytest.raises(NotFound):
            await resolver.resolve(dacs["C"])  # has AVUs, but is not a DAC
        with pytest.raises(InvalidInput):
            await resolver.resolve("../etc")
    finally:
        resolver.close()


async def test_dac_static_map_and_cache(irods_server: Any, dacs: dict[str, str]) -> None:
    static = {"3010000.01": "/tempZone/static/dac"}
    resolver = DacResolver(DacSettings(static=static, ttl=60), irods_settings(irods_server))
    try:
        assert await resolver.resolve("3010000.01") == "/tempZone/static/dac"
        assert await resolver.resolve(dacs["A"]) == f"{dacs['base']}/a"
        with irods_server.session() as s:  # cached: a metadata change is not seen yet
            s.collections.get(f"{dacs['base']}/a").metadata.remove("projectID", dacs["A"])
        assert await resolver.resolve(dacs["A"]) == f"{dacs['base']}/a"
    finally:
        resolver.close()
    fresh = DacResolver(DacSettings(ttl=60), irods_settings(irods_server))
    try:
        with pytest.raises(NotFound):
            await fresh.resolve(dacs["A"])
    finally:
        fresh.close()


async def test_dac_unreachable_is_unavailable() -> None:
    resolver = DacResolver(DacSettings(), IrodsSettings(port=1, timeout=1.0))
    try:
        with pytest.raises(Unavailable, match="try again"):
            await resolver.resolve("3010000.02")
    finally:
        resolver.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_dac_endpoint(make_api: Any, irods_server: Any, dacs: dict[str, str]) -> None:
    api = await make_api(irods=irods_settings(irods_server))
    r = await api.client.get(f"/v1/dac/project/{dacs['A']}")
    assert r.status == 200 and await r.json() == {"collName": f"{dacs['base']}/a"}
    r = await api.client.get(f"/v1/dac/project/{dacs['B']}")
    assert r.status == 409
    r = await api.client.get("/v1/dac/project/9999999.99")
    assert r.status == 404 and "no data-acquisition collection" in (await r.json())["errorMessage"]
    r = await api.client.get("/readyz")
    assert (await r.json())["checks"]["irods"] == "ok"
