"""Where the iRODS account comes from (environment, irods_environment.json, .irodsA) and
how a session is opened with it (through shared.irods, translated into isync errors)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from services.isync.errors import AuthenticationError, UsageError, translate
from shared.irods import (
    IrodsAccount,
    client_environment_file,
    connect,
    irods_a_path,
    read_irods_a,
)

_VERIFY = {"cert": "cert", "hostname": "hostname", "none": "none"}


def _read_password_file(path: str, delete: bool) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            password = fh.readline().rstrip("\r\n")
    except OSError as e:
        raise AuthenticationError(
            f"cannot read IRODS_PASSWORD_FILE {path}: {e.strerror}: check the path and that"
            " you may read it"
        ) from e
    if delete:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return password


def _open_envelope(envelope: str, environ: Mapping[str, str], dr_user: str) -> str:
    """Open an envelope bound to this Unix user and iRODS account (any submitter)."""
    keys_dir = environ.get("STAGER_PRIVATE_KEYS_DIR")
    if not keys_dir:
        raise AuthenticationError(
            "IRODS_PASSWORD_ENVELOPE needs STAGER_PRIVATE_KEYS_DIR: set it to the directory"
            " of the private keys"
        )
    import pwd

    from shared import crypto  # lazy: only workers holding private keys need it
    from shared.errors import DecryptError, EnvelopeError

    try:
        me = pwd.getpwuid(os.getuid()).pw_name
        submitter = crypto.binding_of(envelope).submitter
        expect = crypto.Binding(stager_user=me, dr_user=dr_user, submitter=submitter)
        pems = [p.read_bytes() for p in sorted(Path(keys_dir).glob("*.pem"))]
        return crypto.Opener.from_pem(pems).open(envelope, expect).get_secret_value()
    except (DecryptError, EnvelopeError) as e:
        raise AuthenticationError(
            f"cannot open the credential envelope: {e.message}: seal the password again"
        ) from e
    except Exception as e:
        raise AuthenticationError(
            "cannot open the credential envelope: seal the password again for this key"
        ) from e


def _irods_a(environ: Mapping[str, str], env: Mapping[str, Any]) -> str:
    path = irods_a_path(environ, env)
    try:
        return read_irods_a(path)
    except OSError as e:
        raise AuthenticationError(
            f"cannot read {path}: {e.strerror}: check the path and that you may read it"
        ) from e


def _password(
    environ: Mapping[str, str], env: Mapping[str, Any], delete_file: bool, user: str
) -> str:
    if "IRODS_PASSWORD" in environ:
        return environ["IRODS_PASSWORD"]
    if environ.get("IRODS_PASSWORD_FILE"):
        return _read_password_file(environ["IRODS_PASSWORD_FILE"], delete_file)
    if environ.get("IRODS_PASSWORD_ENVELOPE"):
        return _open_envelope(environ["IRODS_PASSWORD_ENVELOPE"], environ, user)
    return _irods_a(environ, env)


def load_account(
    environ: Mapping[str, str] | None = None, delete_password_file: bool = False
) -> IrodsAccount:
    """The account from IRODS_* variables, falling back to irods_environment.json + .irodsA."""
    environ = os.environ if environ is None else environ
    env: dict[str, Any] = {}
    path, _ = client_environment_file(environ)
    if path.is_file():
        try:
            env = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path}: not valid JSON: fix or remove the file") from e

    def pick(var: str, key: str, default: Any = None) -> Any:
        return environ.get(var) or env.get(key, default)

    host, user, zone = (
        pick("IRODS_HOST", "irods_host"),
        pick("IRODS_USER_NAME", "irods_user_name"),
        pick("IRODS_ZONE_NAME", "irods_zone_name"),
    )
    if not (host and user and zone):
        raise UsageError(
            "no iRODS connection settings: set IRODS_HOST, IRODS_USER_NAME and IRODS_ZONE_NAME "
            f"(or create {path})"
        )
    password = _password(environ, env, delete_password_file, str(user))
    if not password:
        raise AuthenticationError(
            "no iRODS password: set IRODS_PASSWORD or IRODS_PASSWORD_FILE, or run iinit"
        )
    verify = str(pick("IRODS_SSL_VERIFY_SERVER", "irods_ssl_verify_server", "hostname"))
    try:
        return IrodsAccount(
            host=host,
            port=int(pick("IRODS_PORT", "irods_port", 1247)),
            user=user,
            zone=zone,
            password=SecretStr(password),
            auth_scheme=str(
                pick("IRODS_AUTHENTICATION_SCHEME", "irods_authentication_scheme", "native")
            ),
            client_server_policy=pick(
                "IRODS_CLIENT_SERVER_POLICY", "irods_client_server_policy", "CS_NEG_REFUSE"
            ),
            ca_file=pick("IRODS_SSL_CA_CERTIFICATE_FILE", "irods_ssl_ca_certificate_file"),
            verify=_VERIFY.get(verify, "hostname"),  # type: ignore[arg-type]
            encryption_algorithm=pick(
                "IRODS_ENCRYPTION_ALGORITHM", "irods_encryption_algorithm", "AES-256-CBC"
            ),
            encryption_key_size=int(
                pick("IRODS_ENCRYPTION_KEY_SIZE", "irods_encryption_key_size", 32)
            ),
            encryption_salt_size=int(
                pick("IRODS_ENCRYPTION_SALT_SIZE", "irods_encryption_salt_size", 8)
            ),
            encryption_num_hash_rounds=int(
                pick("IRODS_ENCRYPTION_NUM_HASH_ROUNDS", "irods_encryption_num_hash_rounds", 16)
            ),
            default_resource=pick("IRODS_DEFAULT_RESOURCE", "irods_default_resource"),
        )
    except (ValidationError, ValueError) as e:
        raise UsageError(
            "invalid iRODS connection settings (port, TLS policy or key sizes):"
            " fix them in the environment or irods_environment.json"
        ) from e


def open_session(account: IrodsAccount) -> Any:
    """A logged-in iRODSSession (one connection made now, so bad credentials fail early)."""
    try:
        session = connect(account, timeout=300, check=True)
    except Exception as e:
        raise translate(e, f"connecting to {account.host}:{account.port} as {account.user}") from e
    return session
