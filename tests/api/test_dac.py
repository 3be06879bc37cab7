"""DAC lookup: static map, then the iRODS test server queried through python-irodsclient;
authenticated, throttled per principal, a bounded cache, and a bounded number of iRODS
connections however many numbers are asked for (counted by a real TCP proxy)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.api.dac import DacResolver, DacSettings
from services.api.throttle import Throttled
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from shared.settings import IrodsSettings
from tests.api.conftest import Api


def irods_settings(srv: Any, port: int | None = None) -> IrodsSettings:
    return IrodsSettings(
        host=srv.host,
        port=port or srv.port,
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
    assert r.status == 401  # no credentials: nothing is looked up
    h = api.bearer()
    r = await api.client.get(f"/v1/dac/project/{dacs['A']}", headers=h)
    assert r.status == 200 and await r.json() == {"collName": f"{dacs['base']}/a"}
    r = await api.client.get(f"/v1/dac/project/{dacs['B']}", headers=api.basic())
    assert r.status == 409
    r = await api.client.get("/v1/dac/project/9999999.99", headers=h)
    assert r.status == 404 and "no data-acquisition collection" in (await r.json())["errorMessage"]
    r = await api.client.get("/readyz")
    assert (await r.json())["checks"]["irods"] == "ok"


@dataclass
class Proxy:
    """A TCP proxy in front of the iRODS test server that counts connections."""

    port: int
    accepted: int = 0
    open: int = 0
    most_open: int = 0


@pytest.fixture
async def counting_proxy(irods_server: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy(port=0)
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy.accepted += 1
        proxy.open += 1
        proxy.most_open = max(proxy.most_open, proxy.open)
        up_r, up_w = await asyncio.open_connection(irods_server.host, irods_server.port)
        both = [asyncio.create_task(pipe(reader, up_w)), asyncio.create_task(pipe(up_r, writer))]
        pipes.update(both)
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        for t in both:
            t.cancel()
        writer.close()
        up_w.close()
        proxy.open -= 1

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    yield proxy
    server.close()
    for t in pipes:
        t.cancel()


async def test_many_numbers_open_a_bounded_number_of_connections(
    irods_server: Any, dacs: dict[str, str], counting_proxy: Proxy
) -> None:
    """60 distinct numbers (a sweep of unknown ones, as an attacker would send), asked
    for all at once and again one by one: two connections in all, never more; the cache
    holds at most ``max_entries`` numbers."""
    settings = DacSettings(threads=2, max_entries=10, burst=1000, rate=1000)
    resolver = DacResolver(settings, irods_settings(irods_server, counting_proxy.port))
    numbers = [f"{7_000_000 + i:07d}.01" for i in range(30)]
    try:
        results = await asyncio.gather(
            *(resolver.resolve(n, "user:stgalice") for n in numbers), return_exceptions=True
        )
        assert all(isinstance(r, NotFound) for r in results), results[:3]
        for i in range(30):
            with pytest.raises(NotFound):
                await resolver.resolve(f"{8_000_000 + i:07d}.01", "user:stgalice")
        assert await resolver.resolve(dacs["A"]) == f"{dacs['base']}/a"  # two pages of work
        assert resolver.cached <= 10
    finally:
        resolver.close()
    assert counting_proxy.accepted <= 2 and counting_proxy.most_open <= 2


async def test_lookups_are_throttled_per_principal(irods_server: Any, dacs: dict[str, str]) -> None:
    settings = DacSettings(burst=3, rate=0.01, ttl=60)
    resolver = DacResolver(settings, irods_settings(irods_server))
    try:
        for i in range(3):
            with pytest.raises(NotFound):
                await resolver.resolve(f"{6_000_000 + i:07d}.01", "user:mallory")
        with pytest.raises(Throttled) as e:
            await resolver.resolve("6000099.01", "user:mallory")
        assert e.value.retry_after >= 60
        with pytest.raises(NotFound):  # cached: no lookup, no token needed
            await resolver.resolve("6000000.01", "user:mallory")
        assert await resolver.resolve(dacs["A"], "user:stgalice") == f"{dacs['base']}/a"
    finally:
        resolver.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_dac_burst_is_a_429(make_api: Any, irods_server: Any, dacs: dict[str, str]) -> None:
    api: Api = await make_api(
        irods=irods_settings(irods_server), dac=DacSettings(burst=2, rate=0.01)
    )
    h = api.bearer()
    statuses = []
    for i in range(5):
        r = await api.client.get(f"/v1/dac/project/{5_000_000 + i:07d}.01", headers=h)
        statuses.append(r.status)
    assert statuses == [404, 404, 429, 429, 429]
    assert int(r.headers["Retry-After"]) >= 1
    body = await r.json()
    assert body["status"] == 429 and "try again in" in body["errorMessage"]
    r = await api.client.get(f"/v1/dac/project/{dacs['A']}", headers=api.basic())
    assert r.status == 200  # another principal has its own bucket
