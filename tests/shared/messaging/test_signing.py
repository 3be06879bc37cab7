"""Message signatures: what verifies, and each way a forged or altered message fails."""

from __future__ import annotations

import dataclasses
import time

import pytest
from pydantic import SecretStr

from shared.crypto import generate_keypair
from shared.errors import ConfigError
from shared.messaging.signing import (
    HDR_SIG,
    HDR_SIGNER,
    HDR_TS,
    Gate,
    MessageRejected,
    ReplayGuard,
    Role,
    Signer,
    Verifier,
    generate,
    load_private,
    load_publics,
)
from shared.settings import SigningSettings

BODY = b'{"v":1,"task_id":"t1"}'


def pair(role: Role) -> tuple[Signer, bytes]:
    private_pem, public_pem = generate()
    return Signer(role, load_private(private_pem)), public_pem


API, API_PUB = pair(Role.API)
WORKER, WORKER_PUB = pair(Role.WORKER)
VERIFIER = Verifier({Role.API: load_publics(API_PUB), Role.WORKER: load_publics(WORKER_PUB)})


def sign(signer: Signer = API, body: bytes = BODY, **kw: object) -> dict[str, object]:
    props: dict[str, object] = {"type_": "stager.task", "message_id": "m1"}
    props.update(kw)
    return signer.headers(body, **props)  # type: ignore[arg-type]


def check(headers: object, body: bytes = BODY, **kw: object) -> object:
    props: dict[str, object] = {
        "type_": "stager.task",
        "message_id": "m1",
        "accept": [Role.API],
    }
    props.update(kw)
    return VERIFIER.verify(body, headers, **props)  # type: ignore[arg-type]


def reason(headers: object, body: bytes = BODY, **kw: object) -> str:
    with pytest.raises(MessageRejected) as info:
        check(headers, body, **kw)
    return info.value.reason


def test_a_signed_message_verifies_and_names_its_role() -> None:
    got = check(sign())
    assert got.role is Role.API  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": BODY.replace(b"t1", b"t2")}, "bad_signature"),
        ({"type_": "stager.control"}, "bad_signature"),
        ({"message_id": "m2"}, "bad_signature"),
        ({"reply_to": "attacker-queue"}, "bad_signature"),
        ({"correlation_id": "c9"}, "bad_signature"),
    ],
)
def test_any_change_to_body_or_properties_breaks_the_signature(
    change: dict[str, object], expected: str
) -> None:
    assert reason(sign(), **change) == expected  # type: ignore[arg-type]


def test_unsigned_and_malformed_headers_are_rejected() -> None:
    assert reason({}) == "unsigned"
    assert reason(None) == "unsigned"
    h = sign()
    assert reason({**h, HDR_TS: "123"}) == "malformed"
    assert reason({**h, HDR_SIG: "!!!"}) == "malformed"
    assert reason({**h, HDR_TS: int(h[HDR_TS]) + 1}) == "bad_signature"  # type: ignore[call-overload]


def test_a_role_not_accepted_for_the_type_is_rejected_even_with_a_good_signature() -> None:
    assert reason(sign(WORKER)) == "role"


def test_a_key_that_is_not_trusted_is_rejected() -> None:
    rogue, _ = pair(Role.API)
    assert reason(sign(rogue)) == "unknown_key"
    # claiming a trusted signer name with a rogue key's signature fails the signature
    h = sign(rogue)
    assert reason({**h, HDR_SIGNER: f"api.{API.kid}"}) == "bad_signature"


def test_stale_and_future_messages_are_rejected_when_asked() -> None:
    old = sign(now=time.time() - 3600)
    assert check(old) is not None  # no max_age: age does not matter
    assert reason(old, max_age=600) == "stale"
    assert reason(sign(now=time.time() + 3600)) == "future"


def test_a_replayed_message_id_is_rejected_by_the_guard() -> None:
    guard = ReplayGuard(max_entries=2)
    check(sign(), replay=guard)
    assert reason(sign(), replay=guard) == "replay"


def test_rotation_two_trusted_keys_of_one_role_both_verify() -> None:
    new, new_pub = pair(Role.API)
    both = Verifier({Role.API: load_publics(API_PUB + new_pub)})
    for signer in (API, new):
        assert both.verify(
            BODY, sign(signer), type_="stager.task", message_id="m1", accept=[Role.API]
        )


def test_settings_say_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="STAGER_SIGNING__KEY"):
        SigningSettings().signer(Role.API)
    with pytest.raises(ConfigError, match="STAGER_SIGNING__API_KEYS"):
        SigningSettings().verifier(Role.API)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        SigningSettings(key=SecretStr("not a key")).signer(Role.API)
    rsa_pem, rsa_pub = generate_keypair(2048)
    with pytest.raises(ConfigError, match="not an Ed25519 private key"):
        SigningSettings(key=SecretStr(rsa_pem.decode())).signer(Role.API)
    with pytest.raises(ConfigError, match="STAGER_SIGNING__WORKER_KEYS: not an Ed25519"):
        SigningSettings(worker_keys=rsa_pub.decode()).verifier()


def test_the_signing_keys_fixture_gives_each_role_a_working_settings(
    signing_keys: object,
) -> None:
    from tests.conftest import SigningKeys

    assert isinstance(signing_keys, SigningKeys)
    api = signing_keys.settings(Role.API)
    headers = api.signer(Role.API).headers(BODY, type_="t", message_id="m")
    worker_view = signing_keys.settings(Role.WORKER).verifier(Role.API)
    assert worker_view.verify(BODY, headers, type_="t", message_id="m", accept=[Role.API])
    with pytest.raises(MessageRejected):
        worker_view.verify(BODY, headers, type_="t", message_id="m", accept=[Role.WORKER])


@dataclasses.dataclass
class _Incoming:
    """The properties of an aio-pika incoming message the gate reads."""

    body: bytes
    headers: dict[str, object]
    type: str | None = "stager.task"
    message_id: str | None = "m1"
    correlation_id: str | None = None
    reply_to: str | None = None


def test_the_gate_admits_what_verifies_and_counts_the_rest_under_its_own_labels() -> None:
    counted: list[tuple[str, str]] = []
    gate = Gate(VERIFIER, lambda type_, reason: counted.append((type_, reason)))
    good = _Incoming(BODY, sign())
    assert gate.admit(good, type_="stager.task", accept=[Role.API]) is not None
    # a signed message of another type, re-published to this queue, is not this type
    other = _Incoming(BODY, sign(type_="stager.control"), type="stager.control")
    assert gate.admit(other, type_="stager.task", accept=[Role.API]) is None
    # the sender's type never becomes a label (no unbounded label values)
    junk = _Incoming(BODY, {}, type="x" * 500)
    assert gate.admit(junk, type_="stager.task", accept=[Role.API]) is None
    assert gate.admit(_Incoming(BODY, {}), type_="stager.task", accept=[Role.API]) is None
    assert counted == [
        ("stager.task", "type"),
        ("stager.task", "type"),
        ("stager.task", "unsigned"),
    ]
