"""API authentication and authorisation.

* Service accounts: HTTP basic.  Passwords are stored hashed in settings, format
  ``scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>`` (hashlib.scrypt, 16-byte random salt,
  32-byte hash).  Make one with ``stager hash-password`` (reads the password from
  stdin).  Each account lists the Unix users it may act for (``"*"``: any non-system user).
* Users: OIDC bearer JWT, verified against the provider's JWKS (signature, issuer,
  audience, expiry); the user name comes from a configured claim, never from the request.
* Failed basic logins slow down the address they come from
  (:class:`~services.api.throttle.BasicThrottle`, ``auth.throttle``); a throttled attempt
  is a 429 before its password is checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from services.api.throttle import BasicThrottle, BasicThrottleSettings
from shared.errors import Forbidden, Unauthenticated, Unavailable
from shared.messaging.messages import PrincipalKind, Submitter
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID, USER_NAME_RE, check_name, vet

SCRYPT_LOG2_N = 14
SCRYPT_R = 8
SCRYPT_P = 1
_VERIFY_CACHE_TTL = 300.0
_VERIFY_CACHE_MAX = 1024


def hash_password(password: str, *, log2_n: int = SCRYPT_LOG2_N) -> str:
    """Hash a password for the settings file."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=2**log2_n, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${log2_n}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against an encoded scrypt hash."""
    try:
        scheme, log2_n, r, p, salt_b64, hash_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=2 ** int(log2_n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=2**27,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


class ServiceAccount(BaseModel):
    """A service account: hashed password and the Unix users it may act for."""

    password_hash: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
    act_for: list[str] = Field(default_factory=list)

    def __repr__(self) -> str:
        return f"ServiceAccount(act_for={self.act_for!r})"


class OidcSettings(BaseModel):
    """OIDC provider; ``issuer`` empty disables bearer tokens."""

    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    username_claim: str = "preferred_username"
    #: The claim listing the user's groups (a list of names, or one space-separated
    #: string); read for the admin roles (``services.api.admin``).
    groups_claim: str = "groups"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "RS384", "RS512", "ES256"])
    leeway: float = Field(default=30.0, ge=0)
    jwks_ttl: float = Field(default=600.0, gt=0)

    @field_validator("issuer")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _audience_required(self) -> OidcSettings:
        if self.issuer and not self.audience.strip():
            raise ValueError(
                "STAGER_AUTH__OIDC__AUDIENCE is empty while OIDC is enabled: set it to this "
                "API's client id (tokens for other clients must not be accepted)"
            )
        return self


class AuthSettings(BaseModel):
    """Who may call the API."""

    service_accounts: dict[str, ServiceAccount] = Field(default_factory=dict)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    min_uid: int = Field(default=DEFAULT_MIN_UID, ge=1, description="lowest personal uid")
    max_uid: int = Field(default=DEFAULT_MAX_UID, ge=1, description="highest personal uid")
    check_users: bool = Field(default=True, description="look stagerUser up in the passwd db")
    throttle: BasicThrottleSettings = Field(default_factory=BasicThrottleSettings)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    kind: PrincipalKind
    name: str
    act_for: frozenset[str] = field(default_factory=frozenset)
    #: Groups from the bearer token's ``groups_claim`` (empty for service accounts).
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def submitter(self) -> Submitter:
        """As recorded on a task."""
        return Submitter(kind=self.kind, name=self.name)


class JwksCache:
    """Fetches and caches the provider's signing keys (discovery → jwks_uri)."""

    def __init__(self, settings: OidcSettings, session: aiohttp.ClientSession) -> None:
        self._s = settings
        self._session = session
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _jwks_url(self) -> str:
        if self._s.jwks_url:
            return self._s.jwks_url
        url = f"{self._s.issuer}/.well-known/openid-configuration"
        async with self._session.get(url) as resp:
            resp.raise_for_status()
            doc = await resp.json(content_type=None)
        return str(doc["jwks_uri"])

    async def _refresh(self) -> None:
        url = await self._jwks_url()
        async with self._session.get(url) as resp:
            resp.raise_for_status()
            doc = await resp.json(content_type=None)
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in doc.get("keys", []):
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[str(jwk.get("kid", ""))] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue
        self._keys = keys
        self._fetched = time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; refetches when stale or unknown (at most every 10 s)."""
        age = time.monotonic() - self._fetched
        if kid not in self._keys or age > self._s.jwks_ttl:
            async with self._lock:
                age = time.monotonic() - self._fetched
                if (kid not in self._keys and age > 10.0) or age > self._s.jwks_ttl:
                    try:
                        await self._refresh()
                    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as e:
                        if not self._keys:
                            raise Unavailable(
                                "cannot fetch the identity provider's keys; try again later"
                            ) from e
        found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated("bearer token is signed with an unknown key; log in again")
        return found


class Authenticator:
    """Turns an ``Authorization`` header into a Principal."""

    def __init__(self, settings: AuthSettings, jwks: JwksCache | None) -> None:
        self.settings = settings
        self._jwks = jwks
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}
        self.throttle = BasicThrottle(settings.throttle)

    async def authenticate_request(self, request: web.Request) -> Principal:
        """The caller of ``request`` (its Authorization header, from its address)."""
        return await self.authenticate(
            request.headers.get("Authorization"), client=self.client_address(request)
        )

    def client_address(self, request: web.Request) -> str:
        """The address failed logins are counted against: the peer, or behind a proxy
        that sets it (``auth.throttle.trust_forwarded_for``) the last X-Forwarded-For.
        An IPv6 address counts as its /64 (one host can use all of it)."""
        address = request.remote or ""
        if self.settings.throttle.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
            address = forwarded[:64] or address
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    async def authenticate(self, header: str | None, *, client: str = "") -> Principal:
        """Validate the header; raises Unauthenticated with what to fix, Throttled when
        ``client`` (an address) failed too often."""
        if not header:
            raise Unauthenticated(
                "missing Authorization header: use HTTP basic (service account) "
                "or a bearer token from the identity provider"
            )
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return await self._basic(value.strip(), client)
        if scheme == "bearer":
            return await self._bearer(value.strip())
        raise Unauthenticated("unsupported Authorization scheme: use Basic or Bearer")

    async def _basic(self, value: str, client: str) -> Principal:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated(
                "malformed basic credentials: send base64(user:password)"
            ) from None
        name, sep, password = decoded.partition(":")
        self.throttle.check(name, client)  # before any scrypt is spent
        account = self.settings.service_accounts.get(name)
        bad = Unauthenticated("wrong service account name or password")
        if not sep or account is None:
            # Spend comparable time so account names cannot be probed by timing.
            await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
            self.throttle.failed(None, client)
            raise bad
        token = hmac.new(self._cache_key, decoded.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        if self._verified.get(token, 0.0) < now:
            ok = await asyncio.to_thread(verify_password, password, account.password_hash)
            if not ok:
                self.throttle.failed(name, client)
                raise bad
            if len(self._verified) >= _VERIFY_CACHE_MAX:
                self._verified.clear()
            self._verified[token] = now + _VERIFY_CACHE_TTL
        self.throttle.succeeded(name, client)
        return Principal(PrincipalKind.SERVICE, name, frozenset(account.act_for))

    async def _bearer(self, token: str) -> Principal:
        oidc = self.settings.oidc
        if not oidc.issuer or self._jwks is None:
            raise Unauthenticated("bearer tokens are not accepted here: use HTTP basic")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed bearer token: send the JWT as issued") from None
        if header.get("alg") not in oidc.algorithms:
            raise Unauthenticated(f"bearer token algorithm must be one of {oidc.algorithms}")
        key = await self._jwks.key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=oidc.algorithms,
                audience=oidc.audience,
                issuer=oidc.issuer,
                leeway=oidc.leeway,
                options={"require": ["exp", "iss", "sub", "aud"], "verify_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("bearer token has expired: log in again") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"bearer token is not for this service: request audience {oidc.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"bearer token issuer must be {oidc.issuer!r}") from None
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"invalid bearer token ({type(e).__name__})") from None
        name = claims.get(oidc.username_claim)
        if not isinstance(name, str) or not _user_ok(name):
            raise Unauthenticated(
                f"bearer token has no usable {oidc.username_claim!r} claim (a Unix user name)"
            )
        return Principal(
            PrincipalKind.USER, name, frozenset({name}), _groups(claims.get(oidc.groups_claim))
        )


def _groups(value: Any) -> frozenset[str]:
    """A groups claim as a set of names (a list of strings, or one space-separated string)."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(g for g in value if isinstance(g, str))
    return frozenset()


def _user_ok(name: str) -> bool:
    return re.fullmatch(USER_NAME_RE, name) is not None


_DUMMY_HASH = hash_password("not-a-password", log2_n=SCRYPT_LOG2_N)


def authorize_stager_user(principal: Principal, user: str, settings: AuthSettings) -> None:
    """Raise unless ``principal`` may run a transfer as Unix ``user``."""
    if principal.kind == PrincipalKind.USER and user != principal.name:
        raise Forbidden(f"stagerUser must be your own user name {principal.name!r}, not {user!r}")
    if principal.kind == PrincipalKind.SERVICE and not (
        user in principal.act_for or "*" in principal.act_for
    ):
        raise Forbidden(
            f"service account {principal.name!r} may not act for {user!r}; "
            "ask an administrator to add the user to its act_for list"
        )
    check_system_user(user, settings)


def check_system_user(user: str, settings: AuthSettings) -> None:
    """Refuse root and nobody and, when ``check_users`` is set, unknown, system, no-login
    accounts and uids outside ``[min_uid, max_uid]``.

    The rule is :func:`shared.unix_users.vet` (the worker applies it again before it
    starts a child); ``check_users=False`` is for an API host that has no user database.
    """
    if settings.check_users:
        vet(user, settings.min_uid, max_uid=settings.max_uid)
    else:
        check_name(user)
