"""Message authenticity: every AMQP message a receiver acts on is signed by its producer.

The broker is not a trust boundary. Whoever can publish to it (a misconfigured permission,
a leaked broker password, a local user on a host where ``guest`` still works) must not be
able to make a root worker run anything. So each producer *role* holds an Ed25519 private
key, every receiver holds the public keys of the roles it accepts a message type from, and
a message that does not verify is dropped (and counted by the receiver).

What is signed: the role and key id of the signer, the message type, ``message_id``,
``correlation_id`` and ``reply_to`` (a listing cannot be redirected), the signing time and
the whole body, each length-prefixed so no two inputs serialise alike. The signature and its
metadata travel in AMQP headers, so bodies are unchanged::

    x-stager-signer: "<role>.<kid>"     x-stager-ts: <ms since epoch>
    x-stager-sig:    base64url(Ed25519 signature)

* ``kid``: first 16 hex digits of SHA-256 over the raw public key; several public keys per
  role may be trusted at once (rotation: add the new key everywhere, then switch signers).
* Freshness: :meth:`Verifier.verify` takes a ``max_age`` for message types whose replay
  would matter (controls, listings); :class:`ReplayGuard` remembers the ids it has seen.
* Which roles may send which type is the receiver's call, made at the call site
  (``accept=``), so it is visible next to the handler.
* Receivers use a :class:`Gate`: it verifies, and for a message that fails it logs one
  line and counts it (``stager_messages_rejected_total{type,reason}``) so the caller can
  ack it without acting.

Operators make a key pair with ``stager genkey --signing ROLE DIR``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from prometheus_client import CollectorRegistry, Counter

from shared.errors import StagerError
from shared.logging import get_logger

HDR_SIGNER = "x-stager-signer"
HDR_TS = "x-stager-ts"
HDR_SIG = "x-stager-sig"
#: Domain separation: a signature made for anything else never verifies here.
DOMAIN = b"stager-msg-v1"
#: How far in the future a signing time may be (clock skew between hosts).
MAX_SKEW_S = 120.0
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")

log = get_logger("stager.signing")


class Role(StrEnum):
    """Who produced a message."""

    API = "api"
    WORKER = "worker"
    INGEST = "ingest"


class MessageRejected(StagerError):
    """A message failed verification; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"message rejected ({reason}): {detail}")
        self.reason = reason


def key_id(public_key: Ed25519PublicKey) -> str:
    """Key id of a signing public key (16 hex digits)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private(pem: bytes | str) -> Ed25519PrivateKey:
    """Parse an unencrypted PEM Ed25519 private key."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError("not a PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key (make one with stager genkey --signing)")
    return key


def load_publics(pem: bytes | str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM text (one or more concatenated blocks)."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    end = "-----END PUBLIC KEY-----"
    blocks = [b + end for b in text.split(end) if "-----BEGIN PUBLIC KEY-----" in b]
    if not blocks:
        raise ValueError("no PEM public key found (expected -----BEGIN PUBLIC KEY-----)")
    keys = []
    for block in blocks:
        key = serialization.load_pem_public_key(block.strip().encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key (make one with stager genkey --signing)")
        keys.append(key)
    return keys


def _signed_bytes(
    signer: str,
    ts_ms: int,
    type_: str,
    message_id: str,
    correlation_id: str,
    reply_to: str,
    body: bytes,
) -> bytes:
    parts = [
        DOMAIN,
        signer.encode(),
        str(ts_ms).encode(),
        type_.encode(),
        message_id.encode(),
        correlation_id.encode(),
        reply_to.encode(),
        body,
    ]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not text or not _B64_RE.match(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs this process's messages as ``role``."""

    def __init__(self, role: Role, private_key: Ed25519PrivateKey) -> None:
        self.role = role
        self._key = private_key
        self.kid = key_id(private_key.public_key())
        self._signer = f"{role.value}.{self.kid}"

    def headers(
        self,
        body: bytes,
        *,
        type_: str,
        message_id: str,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The three signature headers for a message with these properties."""
        ts_ms = int((time.time() if now is None else now) * 1000)
        data = _signed_bytes(
            self._signer,
            ts_ms,
            type_,
            message_id,
            correlation_id or "",
            reply_to or "",
            body,
        )
        return {HDR_SIGNER: self._signer, HDR_TS: ts_ms, HDR_SIG: _b64e(self._key.sign(data))}


@dataclass(frozen=True)
class Verified:
    """What a verified message says about its origin."""

    role: Role
    kid: str
    signed_at: float  # seconds since the epoch


class ReplayGuard:
    """Remembers recently seen ``(signer, message_id)`` pairs, bounded in count."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max = max_entries

    def check_and_add(self, signer: str, message_id: str) -> bool:
        """True the first time a pair is seen, False for a replay."""
        key = (signer, message_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True


class Verifier:
    """Checks signatures against the trusted public keys of each role."""

    def __init__(self, trusted: Mapping[Role, Iterable[Ed25519PublicKey]]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for role, keys in trusted.items():
            for key in keys:
                self._keys[f"{role.value}.{key_id(key)}"] = key

    def roles(self) -> set[Role]:
        """The roles this verifier has at least one key for."""
        return {Role(s.split(".", 1)[0]) for s in self._keys}

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, Any] | None,
        *,
        type_: str | None,
        message_id: str | None,
        accept: Iterable[Role],
        correlation_id: str | None = None,
        reply_to: str | None = None,
        max_age: float | None = None,
        replay: ReplayGuard | None = None,
        now: float | None = None,
    ) -> Verified:
        """Verify one message; raises :class:`MessageRejected` saying why it is not trusted."""
        hdrs = dict(headers or {})
        signer, ts_raw, sig_raw = hdrs.get(HDR_SIGNER), hdrs.get(HDR_TS), hdrs.get(HDR_SIG)
        if signer is None or ts_raw is None or sig_raw is None:
            raise MessageRejected("unsigned", "no signature headers")
        if isinstance(signer, bytes):
            signer = signer.decode("utf-8", "replace")
        if isinstance(sig_raw, bytes):
            sig_raw = sig_raw.decode("ascii", "replace")
        if not isinstance(signer, str) or not isinstance(sig_raw, str):
            raise MessageRejected("malformed", "signature headers have the wrong type")
        if not isinstance(ts_raw, int) or isinstance(ts_raw, bool):
            raise MessageRejected("malformed", "signing time is not an integer")
        role_name = signer.split(".", 1)[0]
        allowed = {r.value for r in accept}
        if role_name not in allowed:
            raise MessageRejected(
                "role", f"{type_ or '?'} messages are not accepted from {role_name!r}"
            )
        key = self._keys.get(signer)
        if key is None:
            raise MessageRejected("unknown_key", f"no trusted key {signer!r}")
        try:
            sig = _b64d(sig_raw)
        except (binascii.Error, ValueError):
            raise MessageRejected("malformed", "signature is not base64url") from None
        data = _signed_bytes(
            signer,
            ts_raw,
            type_ or "",
            message_id or "",
            correlation_id or "",
            reply_to or "",
            body,
        )
        try:
            key.verify(sig, data)
        except InvalidSignature:
            raise MessageRejected(
                "bad_signature", f"signature by {signer!r} does not verify"
            ) from None
        signed_at = ts_raw / 1000.0
        clock = time.time() if now is None else now
        if signed_at > clock + MAX_SKEW_S:
            raise MessageRejected("future", "signed in the future (clock skew?)")
        if max_age is not None and clock - signed_at > max_age:
            raise MessageRejected(
                "stale", f"signed {clock - signed_at:.0f}s ago (limit {max_age:.0f}s)"
            )
        if replay is not None and not replay.check_and_add(signer, message_id or ""):
            raise MessageRejected("replay", f"message {message_id!r} was seen before")
        return Verified(Role(role_name), signer.split(".", 1)[1], signed_at)


def verify_incoming(
    verifier: Verifier,
    message: Any,
    *,
    accept: Iterable[Role],
    max_age: float | None = None,
    replay: ReplayGuard | None = None,
) -> Verified:
    """:meth:`Verifier.verify` for an ``aio_pika`` incoming message."""
    return verifier.verify(
        message.body,
        message.headers,
        type_=message.type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        accept=accept,
        max_age=max_age,
        replay=replay,
    )


#: ``on_reject(type, reason)``: count one rejected message (labels are ours, never the
#: sender's: the expected type of the queue and a fixed reason word).
RejectCounter = Callable[[str, str], None]


class Gate:
    """What every consumer runs first: verify, or log + count and say "drop it".

    ``admit`` returns the :class:`Verified` origin, or ``None`` for a message the caller
    must settle without acting on (ack: a forged message is never requeued). The ``type``
    of the message must be the one the consumer expects (a signed control message
    re-published to the task queue does not pass as a task).
    """

    def __init__(self, verifier: Verifier, on_reject: RejectCounter) -> None:
        self.verifier = verifier
        self.on_reject = on_reject

    def admit(
        self,
        message: Any,
        *,
        type_: str,
        accept: Iterable[Role],
        max_age: float | None = None,
        replay: ReplayGuard | None = None,
    ) -> Verified | None:
        try:
            if message.type != type_:
                raise MessageRejected("type", f"expected a {type_} message")
            return verify_incoming(
                self.verifier, message, accept=accept, max_age=max_age, replay=replay
            )
        except MessageRejected as e:
            self.reject(message, type_, e)
            return None

    def reject(self, message: Any, type_: str, error: MessageRejected) -> None:
        """Log and count a message refused for ``error`` (callers' own checks too)."""
        log.warning(
            "message.rejected",
            type=type_,
            reason=error.reason,
            detail=error.message,
            message_id=str(message.message_id or "")[:80],
        )
        self.on_reject(type_, error.reason)


def rejected_counter(registry: CollectorRegistry) -> Counter:
    """``stager_messages_rejected_total{type,reason}``: what a :class:`Gate` dropped. One
    definition for every process that verifies messages (API, worker, ingest worker)."""
    return Counter(
        "stager_messages_rejected",
        "AMQP messages dropped because they failed verification (forged, stale, replayed)",
        ["type", "reason"],
        registry=registry,
    )
