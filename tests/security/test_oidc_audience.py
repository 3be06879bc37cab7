"""OIDC audience, attacked through the real API app and a real OIDC provider (discovery and
JWKS over HTTP): a token the same provider issued to another client, or with no ``aud`` at
all, is refused (401) on every route that takes a bearer token; the API's own token works.
An API whose OIDC audience is left empty does not start (issue 9: it was not checked)."""

from __future__ import annotations

import time

import jwt
import pytest

from services.api.settings import ApiSettings
from tests.api.conftest import (  # noqa: F401 - fixtures
    ALICE,
    Api,
    api,
    job,
    keypair,
    make_api,
    oidc,
    oidc_key,
)


def _without_aud(stager: Api, user: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": stager.oidc.issuer,
        "sub": f"sub-{user}",
        "iat": now,
        "exp": now + 300,
        "preferred_username": user,
    }
    tok = jwt.encode(claims, stager.oidc.key, algorithm="RS256", headers={"kid": stager.oidc.kid})
    return {"Authorization": f"Bearer {tok}"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_tokens_for_other_clients_or_none_are_refused(api: Api) -> None:  # noqa: F811
    other_client = api.bearer(ALICE, aud="another-app-of-the-same-provider")
    for headers in (other_client, _without_aud(api, ALICE)):
        r = await api.client.post("/v1/job", json=job(stagerUser=ALICE), headers=headers)
        assert r.status == 401, await r.text()
        r = await api.client.get("/v1/jobs", headers=headers)
        assert r.status == 401, await r.text()
        r = await api.client.get("/v1/dir", params={"path": "/tmp"}, headers=headers)
        assert r.status == 401, await r.text()
    assert await api.queued() == []  # nothing was submitted

    # the legitimate path: a token for this API
    r = await api.client.post("/v1/job", json=job(stagerUser=ALICE), headers=api.bearer(ALICE))
    assert r.status == 200, await r.text()
    assert len(await api.queued()) == 1


def test_oidc_without_an_audience_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the API starts from (its environment), not a hand-built object."""
    monkeypatch.setenv("STAGER_AUTH__OIDC__ISSUER", "https://idp.example.org")
    monkeypatch.setenv("STAGER_AUTH__OIDC__AUDIENCE", " ")
    with pytest.raises(ValueError, match="AUDIENCE is empty while OIDC is enabled"):
        ApiSettings()
    monkeypatch.setenv("STAGER_AUTH__OIDC__AUDIENCE", "stager-api")
    assert ApiSettings().auth.oidc.audience == "stager-api"
