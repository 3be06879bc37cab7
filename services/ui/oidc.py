"""The UI as an OIDC relying party: the authorization code flow with PKCE, ``state`` and
``nonce``, the ID token checked (signature by the provider's JWKS, issuer, audience, expiry,
nonce), refresh, and the provider's end-session URL for logout.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt

from services.ui.sessions import PendingLogin, Tokens
from services.ui.settings import UiOidcSettings
from shared.errors import ConfigError, Unauthenticated, Unavailable
from shared.logging import get_logger

log = get_logger("stager.ui")


@dataclass(frozen=True)
class Identity:
    """Who logged in, read from the checked ID token."""

    user: str
    name: str


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """Talks to the provider named by ``settings.issuer`` (discovery read once)."""

    def __init__(
        self, settings: UiOidcSettings, http: aiohttp.ClientSession, redirect_uri: str
    ) -> None:
        if not settings.issuer:
            raise ConfigError(
                "STAGER_OIDC__ISSUER is not set: give the identity provider's issuer URL"
            )
        if not settings.client_secret.get_secret_value():
            raise ConfigError(
                "STAGER_OIDC__CLIENT_SECRET is not set: give the UI's client secret (or file:/path)"
            )
        self.settings = settings
        self.http = http
        self.redirect_uri = redirect_uri
        self._meta: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_at = 0.0

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached)."""
        if self._meta is None:
            url = f"{self.settings.issuer}/.well-known/openid-configuration"
            meta = await self._get_json(url)
            if meta.get("issuer", "").rstrip("/") != self.settings.issuer:
                raise ConfigError(
                    f"the provider at {self.settings.issuer} names another issuer "
                    f"({meta.get('issuer')!r}): fix STAGER_OIDC__ISSUER"
                )
            self._meta = meta
        return self._meta

    async def authorize_url(self, next_path: str) -> tuple[str, PendingLogin]:
        """Where to send the browser, and what the callback must match."""
        meta = await self.metadata()
        verifier, challenge = pkce_pair()
        pending = PendingLogin(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=verifier,
            next_path=next_path,
        )
        params = {
            "client_id": self.settings.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": self.settings.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(params)}", pending

    async def exchange(self, code: str, pending: PendingLogin) -> tuple[Identity, Tokens]:
        """Trade the code for tokens; the ID token must carry ``pending.nonce``."""
        body = await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": pending.verifier,
            }
        )
        claims = await self.check_id_token(str(body.get("id_token", "")), pending.nonce)
        user = claims.get(self.settings.username_claim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(
                f"the identity provider did not say who you are ({self.settings.username_claim} "
                "missing): ask the helpdesk to map your account to a user"
            )
        name = claims.get("name")
        return Identity(user, name if isinstance(name, str) else user), _tokens(body, None)

    async def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens from the refresh token (Unauthenticated when there is none or the
        provider refuses it: the user must log in again)."""
        if not tokens.refresh_token:
            raise Unauthenticated("your login has expired: log in again")
        body = await self._token(
            {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        )
        return _tokens(body, tokens)

    async def end_session_url(self, id_token: str, post_logout_uri: str) -> str | None:
        """The provider's logout URL for this session (None if it has none)."""
        meta = await self.metadata()
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": post_logout_uri,
            "client_id": self.settings.client_id,
        }
        return f"{endpoint}?{urlencode(params)}"

    async def check_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Claims of a valid ID token for this client with this nonce."""
        if not id_token:
            raise Unauthenticated("the identity provider sent no ID token: log in again")
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = await self._key(kid)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "PS256"],
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"the ID token is not valid ({e}): log in again") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated("the ID token is for another login (nonce): log in again")
        return claims

    async def _key(self, kid: str | None) -> Any:
        for attempt in range(2):
            if self._jwks is None or attempt == 1:
                if attempt == 1 and time.monotonic() - self._jwks_at < 10:
                    break  # a key we just fetched does not contain it: no refetch storm
                meta = await self.metadata()
                self._jwks = jwt.PyJWKSet.from_dict(await self._get_json(meta["jwks_uri"]))
                self._jwks_at = time.monotonic()
            for k in self._jwks.keys:
                if kid is None or k.key_id == kid:
                    return k.key
        raise Unauthenticated("the ID token is signed with an unknown key: log in again")

    async def _token(self, data: dict[str, str]) -> dict[str, Any]:
        meta = await self.metadata()
        auth = aiohttp.encode_basic_auth(
            self.settings.client_id, self.settings.client_secret.get_secret_value()
        )
        headers = {"Authorization": auth}
        try:
            async with self.http.post(meta["token_endpoint"], data=data, headers=headers) as r:
                body = await r.json(content_type=None)
                if r.status in (400, 401):
                    error = body.get("error", "") if isinstance(body, dict) else ""
                    log.info("ui.oidc.token_refused", status=r.status, error=error)
                    raise Unauthenticated(
                        f"the identity provider refused the login ({error or r.status}): "
                        "log in again"
                    )
                if r.status != 200 or not isinstance(body, dict):
                    raise Unavailable(f"the identity provider answered {r.status}; try again later")
                return body
        except aiohttp.ClientError as e:
            raise Unavailable(
                f"the identity provider cannot be reached ({type(e).__name__}); try again"
            ) from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self.http.get(url) as r:
                if r.status != 200:
                    raise Unavailable(f"the identity provider answered {r.status} for {url}")
                body = await r.json(content_type=None)
        except aiohttp.ClientError as e:
            raise Unavailable(
                f"the identity provider cannot be reached ({type(e).__name__}); try again"
            ) from None
        if not isinstance(body, dict):
            raise Unavailable(f"the identity provider sent no JSON object for {url}")
        return body


def _tokens(body: dict[str, Any], old: Tokens | None) -> Tokens:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise Unauthenticated("the identity provider sent no access token: log in again")
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
    return Tokens(
        access_token=access,
        id_token=str(body.get("id_token") or (old.id_token if old else "")),
        refresh_token=body.get("refresh_token") or (old.refresh_token if old else None),
        expires_at=time.time() + lifetime,
    )
