"""The repository credential of a task: its own envelope, or its service account's.

A ``drPass`` envelope is opened only here, in the worker, with any of the private
keys found in the keys directory (several for rotation), and only for the job it was
sealed for: its binding must name the (signed) task's ``stagerUser``, ``drUser`` and
service-account submitter (``shared.messaging.messages.credential_binding``), checked
before any private-key operation and authenticated by the envelope's GCM tag. A service-account task
without ``drPass`` uses the credential configured for that account (the more
specific ``<account>/<drUser>`` entry first, for accounts serving several
organisational units).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from shared.crypto import Opener
from shared.errors import ConfigError, DecryptError, ErrorKind, StagerError
from shared.messaging.messages import PrincipalKind, TaskMessage, credential_binding
from shared.settings import FileSecret


class RepoCredential(BaseModel):
    """A repository (iRODS) account a service account transfers with."""

    user: str
    password: FileSecret


class CredentialError(StagerError):
    """No usable repository credential for a task (never retried)."""

    kind = ErrorKind.INVALID
    title = "no repository credential"


def load_opener(keys_dir: Path | None) -> Opener | None:
    """An opener holding every ``*.pem`` private key in ``keys_dir`` (rotation: keep old
    keys there until no queued envelope uses them)."""
    if keys_dir is None:
        return None
    try:
        pems = [p.read_bytes() for p in sorted(keys_dir.glob("*.pem"))]
        private = [pem for pem in pems if b"PRIVATE KEY" in pem]  # public keys may sit beside
        return Opener.from_pem(private) if private else None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load private keys from {keys_dir}: {type(e).__name__}") from e


def resolve(
    msg: TaskMessage,
    opener: Opener | None,
    service_credentials: Mapping[str, RepoCredential],
) -> tuple[str, str]:
    """(repository user, password) for ``msg``; raises CredentialError."""
    spec = msg.task
    if spec.drPass:
        if opener is None:
            raise CredentialError("this worker holds no private key to open the drPass envelope")
        expect = credential_binding(spec.stagerUser, spec.drUser, msg.submitter)
        try:
            return spec.drUser, opener.open(spec.drPass, expect).get_secret_value()
        except DecryptError as e:
            raise CredentialError(f"drPass cannot be opened: {e.message}") from None
    who = msg.submitter
    if who.kind is PrincipalKind.SERVICE:
        cred = service_credentials.get(f"{who.name}/{spec.drUser}") or service_credentials.get(
            who.name
        )
        if cred is None:
            raise CredentialError(
                f"service account {who.name!r} has no repository credential configured "
                "on the worker and the task has no drPass"
            )
        return cred.user, cred.password.get_secret_value()
    raise CredentialError("the task has no drPass: give the repository password")
