"""Credential envelope: RSA-OAEP (SHA-256) wraps a fresh AES-256-GCM key; the envelope is
bound to the job it was sealed for.

Format (one ASCII string, safe in JSON, URLs and logs-free by construction)::

    stgenv2.<kid>.<binding>.<wrapped key>.<nonce>.<ciphertext+tag>

* ``kid``: first 16 hex digits of SHA-256 over the public key's DER SubjectPublicKeyInfo;
  it names the key pair, so keys can rotate (workers hold several private keys).
* ``binding``: who the secret may be used for, in clear (base64url of canonical JSON,
  :class:`Binding`): the ``stagerUser``, the ``drUser`` and, for a job a service account
  submits, that account's name. Anyone holding public keys (the API) can read and check
  it; nobody can change it without breaking the GCM tag.
* ``wrapped key``: the 32-byte AES key encrypted with RSA-OAEP, MGF1-SHA-256, SHA-256.
* ``nonce``: 12 random bytes; ``ciphertext+tag``: AES-256-GCM of the UTF-8 secret, with
  ``stgenv2.<kid>.<binding>`` as associated data (neither key id nor binding can be
  swapped).
* Binary parts are base64url without padding.

Public keys seal (ui-backend, api); private keys open (workers only). ``check`` lets a
holder of public keys reject malformed, truncated, unknown-key or wrongly bound envelopes
up front; ``open`` checks the binding again before it decrypts, and a bit-flipped
envelope (or a binding edited in clear) is caught by the GCM tag.

The unbound format ``stgenv1`` is refused with a message saying to seal again: such an
envelope could be replayed in any other user's job.

Operators make a key pair with ``stager genkey DIR``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shared.errors import DecryptError, EnvelopeError

PREFIX = "stgenv2"
#: Envelope formats no longer accepted, and why.
_RETIRED = {"stgenv1": "is bound to no user or job"}
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_SECRET_BYTES = 4096
_KID_RE = re.compile(r"^[0-9a-f]{16}$")
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_CLAIM_RE = re.compile(r"^stgenv[0-9]+\.")
MAX_BINDING_CHARS = 2048


class Binding(BaseModel):
    """Who an envelope may be used for: the job's Unix user, its repository account and,
    when a service account submits the job, that account's name (``None`` when users
    submit their own jobs). Compared field by field, exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stager_user: str = Field(min_length=1, max_length=256)
    dr_user: str = Field(min_length=1, max_length=256)
    submitter: str | None = Field(default=None, min_length=1, max_length=256)

    def encode(self) -> str:
        """The binding part of an envelope (canonical JSON, base64url)."""
        doc = {"d": self.dr_user, "s": self.stager_user, "u": self.submitter}
        return _b64e(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    @classmethod
    def decode(cls, text: str) -> Binding:
        """Read a binding part back (EnvelopeError when it is not one)."""
        if len(text) > MAX_BINDING_CHARS:
            raise EnvelopeError("credential envelope: binding is too long (tampered?)")
        raw = _b64d(text, "binding")
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict) or set(doc) != {"d", "s", "u"}:
                raise ValueError("keys")
            return cls(stager_user=doc["s"], dr_user=doc["d"], submitter=doc["u"])
        except (UnicodeDecodeError, ValueError, ValidationError) as e:
            raise EnvelopeError("credential envelope: binding is not readable (tampered?)") from e

    def differences(self, other: Binding) -> list[str]:
        """Human-readable fields in which ``self`` (sealed) differs from ``other`` (job)."""
        out = []
        for field, label in (
            ("stager_user", "stagerUser"),
            ("dr_user", "drUser"),
            ("submitter", "submitter"),
        ):
            sealed, wanted = getattr(self, field), getattr(other, field)
            if sealed != wanted:
                out.append(f"{label} {_show(sealed)} (this job: {_show(wanted)})")
        return out


def _show(value: str | None) -> str:
    return "none (a user's own job)" if value is None else repr(value)


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str, what: str) -> bytes:
    if not _B64_RE.match(text):
        raise EnvelopeError(f"credential envelope: {what} is not base64url; send it unchanged")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise EnvelopeError(f"credential envelope: {what} is not base64url") from e


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """Key id of a public key (16 hex digits)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def generate_keypair(bits: int = 3072) -> tuple[bytes, bytes]:
    """A new RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Parse a PEM public key (or take the public half of a private PEM)."""
    if b"PRIVATE KEY" in pem:
        return load_private_key(pem).public_key()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


class _Parts:
    """An envelope taken apart (nothing decrypted)."""

    __slots__ = ("aad", "binding", "data", "kid", "nonce", "wrapped")

    def __init__(self, envelope: str) -> None:
        parts = envelope.split(".")
        retired = _RETIRED.get(parts[0])
        if retired is not None:
            raise EnvelopeError(
                f"credential envelope {parts[0]} {retired} and is no longer accepted: "
                f"seal drPass again for this job ({PREFIX}), or send it as plaintext"
            )
        if len(parts) != 6 or parts[0] != PREFIX:
            raise EnvelopeError(
                f"credential envelope must look like {PREFIX}.<kid>.<binding>.<key>.<nonce>."
                "<data>; send drPass as produced by the sealer, or as plaintext"
            )
        self.kid = parts[1]
        if not _KID_RE.match(self.kid):
            raise EnvelopeError("credential envelope: key id must be 16 lowercase hex digits")
        self.binding = Binding.decode(parts[2])
        self.wrapped = _b64d(parts[3], "wrapped key")
        self.nonce = _b64d(parts[4], "nonce")
        self.data = _b64d(parts[5], "data")
        if len(self.nonce) != NONCE_BYTES:
            raise EnvelopeError(f"credential envelope: nonce must be {NONCE_BYTES} bytes")
        if len(self.data) < TAG_BYTES + 1 or len(self.data) > MAX_SECRET_BYTES + TAG_BYTES:
            raise EnvelopeError("credential envelope: data has an impossible length (truncated?)")
        self.aad = ".".join(parts[:3]).encode("ascii")

    def expect(self, binding: Binding) -> None:
        """EnvelopeError naming what differs when the envelope is bound to another job."""
        diff = self.binding.differences(binding)
        if diff:
            raise EnvelopeError(
                "credential envelope (drPass) was sealed for another job: "
                + "; ".join(diff)
                + ". Seal the password for this job's stagerUser and drUser, or send it "
                "as plaintext"
            )


def is_envelope(value: str) -> bool:
    """True when ``value`` claims to be an envelope of any format (``stgenvN.``): such a
    value is checked as one, never sealed as if it were a password."""
    return bool(_CLAIM_RE.match(value))


def binding_of(envelope: str) -> Binding:
    """The binding an envelope declares (read in clear, not yet authenticated: only
    :meth:`Opener.open` proves it). Raises EnvelopeError."""
    return _Parts(envelope).binding


class Sealer:
    """Seals secrets with the first public key; checks envelopes against all of them."""

    def __init__(self, public_keys: Iterable[rsa.RSAPublicKey]) -> None:
        keys = list(public_keys)
        if not keys:
            raise ValueError("Sealer needs at least one public key")
        self._current = keys[0]
        self._kid = key_id(keys[0])
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_pem(cls, pems: Iterable[bytes]) -> Sealer:
        """Build from PEM texts (public or private)."""
        return cls(load_public_key(p) for p in pems)

    @property
    def kid(self) -> str:
        """Key id new envelopes are sealed for."""
        return self._kid

    def seal(self, secret: str | SecretStr, binding: Binding) -> str:
        """Seal ``secret`` into an envelope usable only for ``binding``."""
        plain = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        data = plain.encode("utf-8")
        if len(data) > MAX_SECRET_BYTES:
            raise EnvelopeError(f"secret longer than {MAX_SECRET_BYTES} bytes")
        aes_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        head = f"{PREFIX}.{self._kid}.{binding.encode()}"
        ct = AESGCM(aes_key).encrypt(nonce, data, head.encode("ascii"))
        wrapped = self._current.encrypt(aes_key, _oaep())
        return ".".join((head, _b64e(wrapped), _b64e(nonce), _b64e(ct)))

    def check(self, envelope: str, expect: Binding) -> str:
        """Reject a malformed, truncated, unknown-key envelope or one bound to another
        job than ``expect``; return it unchanged."""
        parts = _Parts(envelope)
        key = self._keys.get(parts.kid)
        if key is None:
            raise EnvelopeError(
                f"credential envelope is sealed for unknown key id {parts.kid}; "
                "seal drPass with the stager's current public key"
            )
        if len(parts.wrapped) != (key.key_size + 7) // 8:
            raise EnvelopeError("credential envelope: wrapped key has the wrong length (tampered?)")
        if int.from_bytes(parts.wrapped, "big") >= key.public_numbers().n:
            raise EnvelopeError("credential envelope: wrapped key is invalid (tampered?)")
        parts.expect(expect)
        return envelope


class Opener:
    """Opens envelopes with any of several private keys (rotation)."""

    def __init__(self, private_keys: Iterable[rsa.RSAPrivateKey]) -> None:
        self._keys = {key_id(k.public_key()): k for k in private_keys}
        if not self._keys:
            raise ValueError("Opener needs at least one private key")

    @classmethod
    def from_pem(cls, pems: Iterable[bytes]) -> Opener:
        """Build from PEM private keys."""
        return cls(load_private_key(p) for p in pems)

    def open(self, envelope: str, expect: Binding) -> SecretStr:
        """Decrypt an envelope bound to ``expect``; raises DecryptError (its message
        carries no secret) when it is malformed, bound to another job, for a key this
        opener lacks, or tampered."""
        try:
            parts = _Parts(envelope)
            parts.expect(expect)  # before any private-key operation
        except EnvelopeError as e:
            raise DecryptError(e.message) from None
        key = self._keys.get(parts.kid)
        if key is None:
            raise DecryptError(f"no private key for key id {parts.kid}")
        try:
            aes_key = key.decrypt(parts.wrapped, _oaep())
            plain = AESGCM(aes_key).decrypt(parts.nonce, parts.data, parts.aad)
        except (ValueError, InvalidTag):
            raise DecryptError("credential envelope fails its integrity check") from None
        try:
            return SecretStr(plain.decode("utf-8", errors="strict"))
        except UnicodeDecodeError:
            raise DecryptError("credential envelope holds no UTF-8 text") from None
