"""Fixtures for the API tests: real RabbitMQ (private topology prefix), SQLite and
PostgreSQL (a temporary database per session), a real OIDC/JWKS HTTP server, real Unix
users, and the app built through ``create_app``."""

from __future__ import annotations

import base64
import functools
import io
import json
import pwd
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from services.api.app import create_app
from services.api.auth import AuthSettings, OidcSettings, ServiceAccount, hash_password
from services.api.settings import ApiSettings
from shared.crypto import generate_keypair
from shared.logging import configure
from shared.messaging import broker
from shared.messaging.signing import Role
from shared.messaging.topology import TYPE_DIRLIST, TYPE_EVENT, Names, Topology, delete_topology
from shared.settings import BrokerSettings, IrodsSettings
from tests.conftest import AMQP_URL, signing_key_set

#: What workers sign with in these tests (the test app trusts it).
WORKER_SIGNER = signing_key_set().signer(Role.WORKER)


def worker_event(body: bytes, message_id: str = "t") -> aio_pika.Message:
    """A task event as a worker publishes it: signed as role worker."""
    return broker.make_message(body, message_id=message_id, type_=TYPE_EVENT, signer=WORKER_SIGNER)


def worker_reply(body: bytes, message_id: str, correlation_id: str | None) -> aio_pika.Message:
    """A directory-listing reply as a worker publishes it: signed as role worker."""
    return broker.make_message(
        body,
        message_id=message_id,
        type_=TYPE_DIRLIST,
        correlation_id=correlation_id,
        signer=WORKER_SIGNER,
    )


ALICE, BOB = "stgalice", "stgbob"
SERVICE, SERVICE_PW = "streamer", "svc-Pa55word-for-tests"
WIDE, WIDE_PW = "ingestor", "wide-Pa55word-for-tests"
DR_PASS = "Dr-Pa55w0rd-MUST-NOT-LEAK"
AUDIENCE = "stager-api"


@pytest.fixture(scope="session")
def keypair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM), 2048 bits to keep tests quick."""
    return generate_keypair(2048)


@dataclass
class Oidc:
    """A real OIDC provider: discovery + JWKS over HTTP, tokens signed with its key."""

    issuer: str
    key: rsa.RSAPrivateKey
    kid: str = "test-key-1"

    def token(self, user: str, *, aud: str = AUDIENCE, exp_in: float = 300, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"sub-{user}",
            "aud": aud,
            "iat": now,
            "exp": now + int(exp_in),
            "preferred_username": user,
            **extra,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def oidc_key() -> rsa.RSAPrivateKey:
    """The provider's signing key (generated once: RSA generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def oidc(oidc_key: rsa.RSAPrivateKey) -> AsyncIterator[Oidc]:
    """Serve ``/.well-known/openid-configuration`` and ``/jwks`` on a free port."""
    key = oidc_key
    holder: dict[str, str] = {}

    async def discovery(_r: web.Request) -> web.Response:
        return web.json_response(
            {"issuer": holder["issuer"], "jwks_uri": holder["issuer"] + "/jwks"}
        )

    async def jwks(_r: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid="test-key-1", use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    holder["issuer"] = f"http://127.0.0.1:{port}"
    yield Oidc(issuer=holder["issuer"], key=key)
    await runner.cleanup()


@dataclass
class Api:
    """The running app and helpers to talk to it and peek at its queues."""

    client: TestClient
    app: web.Application
    names: Names
    oidc: Oidc
    logs: io.StringIO
    amqp: aio_pika.abc.AbstractRobustConnection
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def basic(name: str = SERVICE, password: str = SERVICE_PW) -> dict[str, str]:
        raw = base64.b64encode(f"{name}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def bearer(self, user: str = ALICE, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.oidc.token(user, **kw)}"}

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take every ready message off ``queue``."""
        channel = await self.amqp.channel()
        q = await channel.declare_queue(queue, passive=True)
        out = []
        while (msg := await q.get(no_ack=True, fail=False)) is not None:
            out.append(msg)
        await channel.close()
        return out

    async def queued(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Release held tasks now, then take everything off both task queues."""
        from services.api.keys import DISPATCHER

        await self.app[DISPATCHER].run_once()
        return await self.drain(self.names.tasks_queue) + await self.drain(
            self.names.priority_queue
        )


def job(**over: Any) -> dict[str, Any]:
    """A valid upload job for ALICE."""
    body: dict[str, Any] = {
        "title": "acquisition 1",
        "stagerUser": ALICE,
        "stagerUserEmail": "alice@example.org",
        "drUser": "alice@ru.nl",
        "drPass": DR_PASS,
        "srcURL": "/project/3010000.01/raw/sub-01",
        "dstURL": "irods:/tempZone/home/alice/raw/sub-01",
        "timeout": 0,
        "timeout_noprogress": 600,
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


@functools.cache
def _hash(password: str) -> str:
    return hash_password(password)


def api_settings(
    db_url: str, prefix: str, public_pem: bytes, issuer: str, **over: Any
) -> ApiSettings:
    """Settings for a test app (dispatcher and consumer run; iRODS off unless asked)."""
    base: dict[str, Any] = dict(
        database_url=db_url,
        public_keys=[public_pem.decode()],
        broker=BrokerSettings(url=SecretStr(AMQP_URL), prefix=prefix),
        irods=IrodsSettings(enabled=False),
        auth=AuthSettings(
            service_accounts={
                SERVICE: ServiceAccount(password_hash=_hash(SERVICE_PW), act_for=[ALICE]),
                WIDE: ServiceAccount(password_hash=_hash(WIDE_PW), act_for=["*"]),
            },
            oidc=OidcSettings(issuer=issuer, audience=AUDIENCE),
        ),
        dir_timeout=3.0,
        run_retention=False,
        signing=signing_key_set().settings(Role.API),
    )
    base.update(over)
    return ApiSettings(**base)


@pytest.fixture
async def make_api(
    db_url: str,
    keypair: tuple[bytes, bytes],
    oidc: Oidc,
    unix_user: Callable[..., pwd.struct_passwd],
    amqp_url: str,
    unique_prefix: str,
    tmp_path: Any,
) -> AsyncIterator[Any]:
    """Factory: ``await make_api(**settings_overrides) -> Api`` on the test's broker prefix,
    with ALICE and BOB present as Unix users; all closed afterwards."""
    unix_user(ALICE)
    unix_user(BOB)
    made: list[tuple[TestClient, Names]] = []
    amqp = await aio_pika.connect_robust(amqp_url)

    async def make(**over: Any) -> Api:
        prefix = unique_prefix
        logs = io.StringIO()
        configure("debug", json=True, stream=logs)
        over.setdefault(
            "ingest", {"db_url": f"sqlite+aiosqlite:///{tmp_path}/ingest-{prefix}.sqlite"}
        )
        settings = api_settings(db_url, prefix, keypair[1], oidc.issuer, **over)
        app = create_app(settings)
        client = TestClient(TestServer(app))
        await client.start_server()
        names = Names(prefix)
        made.append((client, names))
        return Api(client=client, app=app, names=names, oidc=oidc, logs=logs, amqp=amqp)

    yield make
    for client, names in made:
        await client.close()
        channel = await amqp.channel()
        await delete_topology(channel, Topology(names=names))
        await channel.close()
    await amqp.close()


@pytest.fixture
async def api(make_api: Any) -> Api:
    """An app with default test settings."""
    return await make_api()
