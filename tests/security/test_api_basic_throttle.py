"""Password guessing against a service account over HTTP basic, from real distinct
source addresses (127.0.0.x) to the real API app: the guessing address is slowed to a
429 with Retry-After after a few failures (its throttled tries cost no scrypt), while the
real client, from another address, still logs in; an account under attack from many
addresses gives each one fewer free tries, and an address that has not failed still
gets in with the right password."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.api.conftest import (  # noqa: F401 - fixtures
    SERVICE,
    SERVICE_PW,
    Api,
    api,
    keypair,
    make_api,
    oidc,
    oidc_key,
)

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

From = Callable[[str], AbstractAsyncContextManager[aiohttp.ClientSession]]


@pytest.fixture
def from_address() -> From:
    @asynccontextmanager
    async def session(address: str) -> AsyncIterator[aiohttp.ClientSession]:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as s:
            yield s

    return session


async def _get(stager: Api, s: aiohttp.ClientSession, password: str) -> tuple[int, Any, str]:
    headers = stager.basic(SERVICE, password)
    async with s.get(stager.client.make_url("/v1/jobs"), headers=headers) as r:
        return r.status, r.headers.get("Retry-After"), await r.text()


async def test_guessing_is_throttled_the_real_client_is_not(
    api: Api,  # noqa: F811
    from_address: From,
) -> None:
    statuses = []
    async with from_address("127.0.0.2") as attacker:
        start = time.monotonic()
        for i in range(50):
            status, retry_after, text = await _get(api, attacker, f"guess-{i}")
            statuses.append(status)
            if status == 429:
                assert int(retry_after) >= 1 and "try again in" in text
                assert "guess" not in text
        elapsed = time.monotonic() - start
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 45
        # the right password does not help the guessing address while it waits
        assert (await _get(api, attacker, SERVICE_PW))[0] == 429
    assert elapsed < 10  # 45 refusals without 45 scrypt checks
    async with from_address("127.0.0.3") as real_client:
        assert (await _get(api, real_client, SERVICE_PW))[0] == 200
    r = await api.client.get("/v1/jobs", headers=api.basic())  # from 127.0.0.1
    assert r.status == 200


async def test_an_account_under_attack_from_many_addresses(
    make_api: Any,  # noqa: F811
    from_address: From,
) -> None:
    stager: Api = await make_api()
    for n in range(10, 20):  # ten addresses, five guesses each: 50 failures, the alarm
        async with from_address(f"127.0.0.{n}") as s:
            for i in range(5):
                assert (await _get(stager, s, f"guess-{n}-{i}"))[0] == 401
    async with from_address("127.0.0.30") as s:  # one free failure now, not five
        assert (await _get(stager, s, "guess"))[0] == 401
        assert (await _get(stager, s, "guess-again"))[0] == 429
    async with from_address("127.0.0.31") as s:  # has not failed: gets in
        assert (await _get(stager, s, SERVICE_PW))[0] == 200


async def test_behind_a_proxy_the_forwarded_address_counts(make_api: Any) -> None:  # noqa: F811
    """With ``trust_forwarded_for`` the last X-Forwarded-For entry is the address; the
    addresses of one IPv6 /64 count as one (a host can use all of them), and the
    header is ignored unless trusted."""
    from services.api.keys import SETTINGS
    from services.api.throttle import BasicThrottleSettings

    plain: Api = await make_api()
    for i in range(5):  # untrusted: the header changes nothing, the peer is the address
        headers = {**plain.basic(SERVICE, "wrong"), "X-Forwarded-For": f"192.0.2.{i}"}
        assert (await plain.client.get("/v1/jobs", headers=headers)).status == 401
    headers = {**plain.basic(), "X-Forwarded-For": "192.0.2.99"}
    assert (await plain.client.get("/v1/jobs", headers=headers)).status == 429
    auth = plain.app[SETTINGS].auth.model_copy(
        update={"throttle": BasicThrottleSettings(trust_forwarded_for=True)}
    )
    stager: Api = await make_api(auth=auth)

    async def attempt(forwarded: str, password: str) -> int:
        headers = {**stager.basic(SERVICE, password), "X-Forwarded-For": forwarded}
        r = await stager.client.get("/v1/jobs", headers=headers)
        return r.status

    hosts = [f"10.9.8.7, 2001:db8:1:2::{i:x}" for i in range(1, 6)]
    assert [await attempt(h, "wrong") for h in hosts] == [401] * 5
    assert await attempt("2001:db8:1:2::ffff", SERVICE_PW) == 429  # the same /64
    assert await attempt("2001:db8:1:3::1", SERVICE_PW) == 200  # another /64
    assert await attempt("192.0.2.1, 127.0.0.1", SERVICE_PW) == 200
