"""The development OIDC provider (devtools/oidc, npm oidc-provider pinned): the code flow with
PKCE through its own login form, and the API accepting the access token it issues."""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
import pytest

from devtools.oidc.launcher import Account, Client, OidcProvider, OidcSetupError
from services.api.auth import Authenticator, AuthSettings, JwksCache, OidcSettings
from shared.errors import Unauthenticated

REDIRECT = "http://127.0.0.1:9/auth/callback"
CLIENT = Client("stager-ui", "ui-secret-for-tests", [REDIRECT], ["http://127.0.0.1:9/"])
PASSWORD = "Alice-idp-Pa55"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    try:
        provider = OidcProvider(
            accounts={"alice": Account(PASSWORD, "stgalice", "Alice")}, clients=[CLIENT]
        ).start()
    except OidcSetupError as e:
        pytest.fail(str(e))
    yield provider
    provider.stop()


async def _login(idp: OidcProvider, password: str) -> tuple[int, dict]:
    """Authorize → the provider's login form → code → tokens. (status of the form POST, tokens)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "client_id": CLIENT.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile offline_access",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
    }
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        url = f"{idp.issuer}/auth?{urlencode(params)}"
        for _ in range(10):
            async with http.get(url, allow_redirects=False) as r:
                if r.status in (302, 303):
                    url = r.headers["Location"]
                    assert not url.startswith(REDIRECT), url
                    url = url if url.startswith("http") else idp.issuer + url
                    continue
                assert r.status == 200, await r.text()
                form_html = await r.text()
                break
        assert 'name="password"' in form_html
        async with http.post(
            url + "/login", data={"login": "alice", "password": password}, allow_redirects=False
        ) as r:
            if r.status != 303 and r.status != 302:
                return r.status, {}
            url = r.headers["Location"]
        for _ in range(10):
            url = url if url.startswith("http") else idp.issuer + url
            if url.startswith(REDIRECT):
                break
            async with http.get(url, allow_redirects=False) as r:
                assert r.status in (302, 303), (url, (await r.text())[-600:])
                url = r.headers["Location"]
        query = parse_qs(urlparse(url).query)
        assert query["state"] == [state]
        basic = {"Authorization": aiohttp.encode_basic_auth(CLIENT.client_id, CLIENT.client_secret)}
        data = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        async with http.post(f"{idp.issuer}/token", data=data, headers=basic) as r:
            assert r.status == 200, await r.text()
            tokens = await r.json()
        # refresh works (offline_access)
        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        async with http.post(f"{idp.issuer}/token", data=data, headers=basic) as r:
            assert r.status == 200, await r.text()
            tokens["refreshed"] = await r.json()
        return 303, tokens


async def test_code_flow_with_pkce_gives_a_token_the_api_accepts(idp: OidcProvider) -> None:
    status, tokens = await _login(idp, PASSWORD)
    assert status == 303 and tokens["id_token"] and tokens["access_token"]
    settings = AuthSettings(oidc=OidcSettings(issuer=idp.issuer, audience="stager-api"))
    async with aiohttp.ClientSession() as http:
        auth = Authenticator(settings, JwksCache(settings.oidc, http))
        for token in (tokens["access_token"], tokens["refreshed"]["access_token"]):
            principal = await auth.authenticate(f"Bearer {token}")
            assert principal.name == "stgalice"  # the account's Unix user
        # the ID token is for the client, not the API: refused as a bearer
        with pytest.raises(Unauthenticated):
            await auth.authenticate(f"Bearer {tokens['id_token']}")


async def test_wrong_password_is_refused_by_the_login_form(idp: OidcProvider) -> None:
    status, tokens = await _login(idp, "not-the-password")
    assert status == 401 and tokens == {}
