"""Credential envelope: round trip, rotation, tamper detection, CLI."""

from __future__ import annotations

import base64

import pytest

from shared.crypto import Opener, Sealer, generate_keypair, key_id, load_public_key
from shared.errors import DecryptError, EnvelopeError
from shared.messaging.messages import ENVELOPE_RE, TaskSpec

SECRET = "correct horse battery staple ✓"


@pytest.fixture(scope="module")
def keys() -> list[tuple[bytes, bytes]]:
    return [generate_keypair(2048), generate_keypair(2048)]


def _flip(envelope: str, part: int) -> str:
    parts = envelope.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
    raw[len(raw) // 2] ^= 0x01
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def test_round_trip_and_format(keys: list[tuple[bytes, bytes]]) -> None:
    sealer = Sealer.from_pem([keys[0][1]])
    env = sealer.seal(SECRET)
    import re

    assert re.match(ENVELOPE_RE, env) and SECRET not in env
    assert env.split(".")[1] == sealer.kid == key_id(load_public_key(keys[0][1]))
    assert sealer.seal(SECRET) != env  # fresh key and nonce every time
    assert sealer.check(env) == env
    assert Opener.from_pem([keys[0][0]]).open(env).get_secret_value() == SECRET
    TaskSpec(title="t", stagerUser="stgalice", drUser="u", srcURL="/a", dstURL="i:/b", drPass=env)


def test_rotation(keys: list[tuple[bytes, bytes]]) -> None:
    old = Sealer.from_pem([keys[0][1]]).seal(SECRET)
    new_sealer = Sealer.from_pem([keys[1][1], keys[0][1]])  # new key first, old still known
    new = new_sealer.seal(SECRET)
    assert new_sealer.check(old) and new.split(".")[1] != old.split(".")[1]
    both = Opener.from_pem([keys[0][0], keys[1][0]])
    assert both.open(old).get_secret_value() == both.open(new).get_secret_value() == SECRET
    with pytest.raises(DecryptError, match="no private key"):
        Opener.from_pem([keys[0][0]]).open(new)


@pytest.mark.parametrize("part", [2, 3, 4])
def test_bit_flips_are_detected(keys: list[tuple[bytes, bytes]], part: int) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET)
    with pytest.raises(DecryptError) as e:
        Opener.from_pem([keys[0][0]]).open(_flip(env, part))
    assert SECRET not in str(e.value)


def test_key_id_is_bound(keys: list[tuple[bytes, bytes]]) -> None:
    env = Sealer.from_pem([keys[0][1]]).seal(SECRET)
    other_kid = key_id(load_public_key(keys[1][1]))
    swapped = env.replace(env.split(".")[1], other_kid)
    with pytest.raises(DecryptError):
        Opener.from_pem([keys[0][0], keys[1][0]]).open(swapped)


def test_check_rejects_malformed(keys: list[tuple[bytes, bytes]]) -> None:
    sealer = Sealer.from_pem([keys[0][1]])
    env = sealer.seal(SECRET)
    p = env.split(".")
    bad = [
        "stgenv1.x",
        "stgenv2." + ".".join(p[1:]),
        ".".join([p[0], "ZZ" * 8, *p[2:]]),
        ".".join([*p[:2], p[2][:-6], *p[3:]]),
        ".".join([*p[:4], p[4][:8]]),
        ".".join([*p[:2], "%%%", *p[3:]]),
        Sealer.from_pem([keys[1][1]]).seal(SECRET),
    ]
    for b in bad:
        with pytest.raises(EnvelopeError):
            sealer.check(b)
