"""Credential envelope: round trip, binding, rotation, tamper detection, retired format."""

from __future__ import annotations

import base64
import json
import re

import pytest

from shared.crypto import (
    Binding,
    Opener,
    Sealer,
    binding_of,
    generate_keypair,
    is_envelope,
    key_id,
    load_public_key,
)
from shared.errors import DecryptError, EnvelopeError
from shared.messaging.messages import (
    ENVELOPE_RE,
    PrincipalKind,
    Submitter,
    TaskSpec,
    credential_binding,
)

SECRET = "correct horse battery staple ✓"
ALICE = Binding(stager_user="stgalice", dr_user="alice@ru.nl")
ALICE_VIA_SVC = Binding(stager_user="stgalice", dr_user="alice@ru.nl", submitter="streamer")


@pytest.fixture(scope="module")
def keys() -> list[tuple[bytes, bytes]]:
    return [generate_keypair(2048), generate_keypair(2048)]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _flip(envelope: str, part: int) -> str:
    parts = envelope.split(".")
    raw = bytearray(_unb64(parts[part]))
    raw[len(raw) // 2] ^= 0x01
    parts[part] = _b64(bytes(raw))
    return ".".join(parts)


def _rebind(envelope: str, binding: Binding) -> str:
    """The envelope with its clear binding replaced (what an attacker can do)."""
    parts = envelope.split(".")
    parts[2] = binding.encode()
    return ".".join(parts)


def test_round_trip_and_format(keys: list[tuple[bytes, bytes]]) -> None:
    sealer = Sealer.from_pem([keys[0][1]])
    env = sealer.seal(SECRET, ALICE)
    assert re.match(ENVELOPE_RE, env) and SECRET not in env
    assert env.startswith("stgenv2.") and is_envelope(env)
    assert env.split(".")[1] == sealer.kid == key_id(load_public_key(keys[0][1]))
    assert sealer.seal(SECRET, ALICE) != env  # fresh key and nonce every time
    assert sealer.check(env, ALICE) == env
    assert Opener.from_pem([keys[0][0]]).open(env, ALICE).get_secret_value() == SECRET
    TaskSpec(title="t", stagerUser="stgalice", drUser="u", srcURL="/a", dstURL="i:/b", drPass=env)


def test_binding_is_visible_in_clear(keys: list[tuple[bytes, bytes]]) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE_VIA_SVC)
    assert binding_of(env) == ALICE_VIA_SVC
    doc = json.loads(_unb64(env.split(".")[2]))
    assert doc == {"s": "stgalice", "d": "alice@ru.nl", "u": "streamer"}


def test_binding_rule_for_users_and_service_accounts() -> None:
    user = Submitter(kind=PrincipalKind.USER, name="stgalice")
    svc = Submitter(kind=PrincipalKind.SERVICE, name="streamer")
    assert credential_binding("stgalice", "alice@ru.nl", user) == ALICE
    assert credential_binding("stgalice", "alice@ru.nl", svc) == ALICE_VIA_SVC


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (Binding(stager_user="stgbob", dr_user="alice@ru.nl"), "stagerUser 'stgalice'"),
        (Binding(stager_user="stgalice", dr_user="bob@ru.nl"), "drUser 'alice@ru.nl'"),
        (ALICE_VIA_SVC, "submitter none"),
        (Binding(stager_user="stgalice", dr_user="alice@ru.nl", submitter="other"), "submitter"),
    ],
)
def test_another_jobs_binding_is_refused_by_check_and_open(
    keys: list[tuple[bytes, bytes]], other: Binding, named: str
) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE)
    with pytest.raises(EnvelopeError, match="sealed for another job") as e:
        Sealer.from_pem([keys[0][1]]).check(env, other)
    assert named in e.value.message and "plaintext" in e.value.message
    with pytest.raises(DecryptError, match="sealed for another job") as d:
        Opener.from_pem([keys[0][0]]).open(env, other)
    assert SECRET not in str(d.value)


def test_a_binding_edited_in_clear_fails_the_integrity_check(
    keys: list[tuple[bytes, bytes]],
) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE)
    bob = Binding(stager_user="stgbob", dr_user="bob@ru.nl")
    forged = _rebind(env, bob)
    assert Sealer.from_pem([keys[0][1]]).check(forged, bob) == forged  # looks fine in clear
    with pytest.raises(DecryptError, match="integrity"):
        Opener.from_pem([keys[0][0]]).open(forged, bob)  # but the GCM tag covers it


def test_rotation(keys: list[tuple[bytes, bytes]]) -> None:
    old = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE)
    new_sealer = Sealer.from_pem([keys[1][1], keys[0][1]])  # new key first, old still known
    new = new_sealer.seal(SECRET, ALICE)
    assert new_sealer.check(old, ALICE) and new.split(".")[1] != old.split(".")[1]
    assert new.split(".")[1] == key_id(load_public_key(keys[1][1]))
    both = Opener.from_pem([keys[0][0], keys[1][0]])
    assert both.open(old, ALICE).get_secret_value() == SECRET
    assert both.open(new, ALICE).get_secret_value() == SECRET
    with pytest.raises(DecryptError, match="no private key"):
        Opener.from_pem([keys[0][0]]).open(new, ALICE)
    with pytest.raises(EnvelopeError, match="unknown key id"):
        Sealer.from_pem([keys[1][1]]).check(old, ALICE)  # old key retired at the API


@pytest.mark.parametrize("part", [3, 4, 5])
def test_bit_flips_are_detected(keys: list[tuple[bytes, bytes]], part: int) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE)
    with pytest.raises(DecryptError) as e:
        Opener.from_pem([keys[0][0]]).open(_flip(env, part), ALICE)
    assert SECRET not in str(e.value)


def test_key_id_is_bound(keys: list[tuple[bytes, bytes]]) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE)
    other_kid = key_id(load_public_key(keys[1][1]))
    swapped = env.replace(env.split(".")[1], other_kid)
    with pytest.raises(DecryptError):
        Opener.from_pem([keys[0][0], keys[1][0]]).open(swapped, ALICE)


def test_unbound_v1_envelopes_are_refused_with_a_clear_message(
    keys: list[tuple[bytes, bytes]],
) -> None:
    parts = Sealer.from_pem([keys[0][1]]).seal(SECRET, ALICE).split(".")
    v1 = ".".join(["stgenv1", parts[1], *parts[3:]])
    assert is_envelope(v1) and re.match(ENVELOPE_RE, v1)  # stored v1 tasks still load
    with pytest.raises(EnvelopeError, match="stgenv1 is bound to no user") as e:
        Sealer.from_pem([keys[0][1]]).check(v1, ALICE)
    assert "seal drPass again" in e.value.message
    with pytest.raises(DecryptError, match="no longer accepted"):
        Opener.from_pem([keys[0][0]]).open(v1, ALICE)


def test_check_rejects_malformed(keys: list[tuple[bytes, bytes]]) -> None:
    sealer = Sealer.from_pem([keys[0][1]])
    env = sealer.seal(SECRET, ALICE)
    p = env.split(".")
    bad = [
        "stgenv2.x",
        "stgenv3." + ".".join(p[1:]),
        ".".join([p[0], "ZZ" * 8, *p[2:]]),
        ".".join([*p[:2], _b64(b"not json"), *p[3:]]),
        ".".join([*p[:2], _b64(b'{"s":"a","d":"b"}'), *p[3:]]),
        ".".join([*p[:2], _b64(b'{"s":"","d":"b","u":null}'), *p[3:]]),
        ".".join([*p[:2], "A" * 3000, *p[3:]]),
        ".".join([*p[:3], p[3][:-6], *p[4:]]),
        ".".join([*p[:5], p[5][:8]]),
        ".".join([*p[:3], "%%%", *p[4:]]),
        Sealer.from_pem([keys[1][1]]).seal(SECRET, ALICE),
    ]
    for b in bad:
        with pytest.raises(EnvelopeError):
            sealer.check(b, ALICE)
