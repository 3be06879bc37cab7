"""The UI's relying party against the real provider (npm oidc-provider): the code flow with
PKCE through the provider's form, the ID token's nonce checked, refresh, end session."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from pydantic import SecretStr

from devtools.oidc.launcher import Account, Client, OidcProvider, OidcSetupError
from services.ui.oidc import OidcClient
from services.ui.sessions import PendingLogin
from services.ui.settings import UiOidcSettings
from shared.errors import Unauthenticated

REDIRECT = "http://127.0.0.1:9/auth/callback"
SECRET = "ui-secret-for-oidc-client-tests"
PASSWORD = "Bob-idp-Pa55"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    client = Client("stager-ui", SECRET, [REDIRECT], ["http://127.0.0.1:9/auth/logged-out"])
    try:
        provider = OidcProvider(
            accounts={"bob": Account(PASSWORD, "stgbob", "Bob")}, clients=[client]
        ).start()
    except OidcSetupError as e:
        pytest.fail(str(e))
    yield provider
    provider.stop()


@pytest.fixture
async def rp(idp: OidcProvider) -> AsyncIterator[OidcClient]:
    settings = UiOidcSettings(
        issuer=idp.issuer, client_id="stager-ui", client_secret=SecretStr(SECRET)
    )
    async with aiohttp.ClientSession() as http:
        yield OidcClient(settings, http, REDIRECT)


async def browser_login(url: str, issuer: str) -> dict[str, list[str]]:
    """What a browser does: follow to the provider's form, post it, follow to the redirect."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(10):
            async with http.get(url, allow_redirects=False) as r:
                if r.status in (302, 303):
                    url = r.headers["Location"]
                    url = url if url.startswith("http") else issuer + url
                    continue
                assert r.status == 200 and 'name="password"' in await r.text()
                break
        form = {"login": "bob", "password": PASSWORD}
        async with http.post(url + "/login", data=form, allow_redirects=False) as r:
            url = r.headers["Location"]
        for _ in range(10):
            url = url if url.startswith("http") else issuer + url
            if url.startswith(REDIRECT):
                return parse_qs(urlparse(url).query)
            async with http.get(url, allow_redirects=False) as r:
                url = r.headers["Location"]
    raise AssertionError("no redirect back")


async def test_code_flow_nonce_refresh_and_end_session(rp: OidcClient, idp: OidcProvider) -> None:
    url, pending = await rp.authorize_url("/")
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [pending.state]
    assert query["nonce"] == [pending.nonce] and "code_verifier" not in query
    back = await browser_login(url, idp.issuer)
    assert back["state"] == [pending.state]
    identity, tokens = await rp.exchange(back["code"][0], pending)
    assert identity.user == "stgbob" and identity.name == "Bob"
    assert tokens.refresh_token and tokens.id_token
    refreshed = await rp.refresh(tokens)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.id_token  # kept for the logout hint
    end = await rp.end_session_url(tokens.id_token, "http://127.0.0.1:9/auth/logged-out")
    assert end is not None and end.startswith(f"{idp.issuer}/session/end")
    assert "id_token_hint=" in end


async def test_an_id_token_for_another_login_is_refused(rp: OidcClient, idp: OidcProvider) -> None:
    url, pending = await rp.authorize_url("/")
    back = await browser_login(url, idp.issuer)
    with pytest.raises(Unauthenticated, match="nonce"):
        await rp.exchange(back["code"][0], replace(pending, nonce="another-login"))


async def test_a_wrong_verifier_or_a_used_code_is_refused(
    rp: OidcClient, idp: OidcProvider
) -> None:
    url, pending = await rp.authorize_url("/")
    back = await browser_login(url, idp.issuer)
    code = back["code"][0]
    with pytest.raises(Unauthenticated, match="refused"):
        await rp.exchange(code, PendingLogin(pending.state, pending.nonce, "x" * 64))
    url, pending = await rp.authorize_url("/")
    back = await browser_login(url, idp.issuer)
    await rp.exchange(back["code"][0], pending)
    with pytest.raises(Unauthenticated):
        await rp.exchange(back["code"][0], pending)  # a code works once
