"""The one way to reach iRODS: an account, the session it makes, and iRODS path names.

Every process that talks to iRODS builds its python-irodsclient session here: isync (and
the worker's transfer children through it), the ingest workers and the API's DAC lookup.
TLS (``client_server_policy`` other than ``CS_NEG_REFUSE``) is therefore available to all
of them alike. python-irodsclient is blocking: services call :func:`connect` and use the
session from a bounded thread pool, never on the event loop. :func:`client_environment`
reads the usual iRODS client environment (``irods_environment.json``, ``.irodsA``,
``IRODS_*``) into account fields, for services that fall back to it (ingest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

#: A stager or isync location in iRODS starts with one of these (``irods:/zone/x``).
IRODS_PREFIXES = ("irods:", "i:")

ClientServerPolicy = Literal["CS_NEG_REFUSE", "CS_NEG_DONT_CARE", "CS_NEG_REQUIRE"]
VerifyMode = Literal["cert", "hostname", "none"]


class IrodsAccount(BaseModel):
    """Where and as whom to connect; ``repr`` never shows the password."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = 1247
    user: str
    zone: str
    password: SecretStr = SecretStr("")
    auth_scheme: str = "native"
    client_server_policy: ClientServerPolicy = "CS_NEG_REFUSE"
    ca_file: str | None = None
    verify: VerifyMode = "hostname"
    encryption_algorithm: str = "AES-256-CBC"
    encryption_key_size: int = 32
    encryption_salt_size: int = 8
    encryption_num_hash_rounds: int = 16
    default_resource: str | None = None

    @property
    def home(self) -> str:
        """The user's home collection (where relative iRODS paths start)."""
        return f"/{self.zone}/home/{self.user}"


#: The iRODS client environment's keys (``irods_environment.json``; the same name in upper
#: case is its environment variable, ``IRODS_HOST``…) and the account field each fills.
CLIENT_ENVIRONMENT_KEYS = {
    "irods_host": "host",
    "irods_port": "port",
    "irods_user_name": "user",
    "irods_zone_name": "zone",
    "irods_authentication_scheme": "auth_scheme",
    "irods_client_server_policy": "client_server_policy",
    "irods_ssl_ca_certificate_file": "ca_file",
    "irods_ssl_verify_server": "verify",
    "irods_encryption_algorithm": "encryption_algorithm",
    "irods_encryption_key_size": "encryption_key_size",
    "irods_encryption_salt_size": "encryption_salt_size",
    "irods_encryption_num_hash_rounds": "encryption_num_hash_rounds",
    "irods_default_resource": "default_resource",
}


class ClientEnvironmentError(ValueError):
    """The iRODS client environment (file or ``IRODS_*`` variables) cannot be read."""


def client_environment_file(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """``IRODS_ENVIRONMENT_FILE``, else ``~/.irods/irods_environment.json``; and whether
    it was named explicitly (then it must exist)."""
    explicit = environ.get("IRODS_ENVIRONMENT_FILE")
    if explicit:
        return Path(explicit), True
    return _irods_dir(environ) / "irods_environment.json", False


def _irods_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or os.path.expanduser("~")) / ".irods"


def client_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """:class:`IrodsAccount` fields from the usual iRODS client environment.

    Each ``IRODS_<KEY>`` variable wins over the same key of the environment file
    (``IRODS_ENVIRONMENT_FILE`` or ``~/.irods/irods_environment.json``), as in the iRODS
    clients. The password is ``IRODS_PASSWORD``, else the obfuscated
    ``irods_authentication_file`` (``IRODS_AUTHENTICATION_FILE``, default
    ``~/.irods/.irodsA``) that ``iinit`` writes. Only what is set is returned; raises
    :class:`ClientEnvironmentError` (saying which file) when a file cannot be read.
    """
    environ = os.environ if environ is None else environ
    path, explicit = client_environment_file(environ)
    env: dict[str, Any] = {}
    if path.is_file():
        try:
            env = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ClientEnvironmentError(
                f"cannot read the iRODS environment file {path}: {e}; fix it, or point "
                "IRODS_ENVIRONMENT_FILE elsewhere"
            ) from None
        if not isinstance(env, dict):
            raise ClientEnvironmentError(f"iRODS environment file {path}: not a JSON object")
    elif explicit:
        raise ClientEnvironmentError(
            f"IRODS_ENVIRONMENT_FILE names {path}, which is not a readable file: fix or unset it"
        )
    fields: dict[str, Any] = {}
    for key, name in CLIENT_ENVIRONMENT_KEYS.items():
        value = environ.get(key.upper()) or env.get(key)
        if value is not None and value != "":
            fields[name] = value
    if "auth_scheme" in fields:
        fields["auth_scheme"] = str(fields["auth_scheme"]).lower()
    password = environ.get("IRODS_PASSWORD") or _irods_a(environ, env)
    if password:
        fields["password"] = password
    return fields


def irods_a_path(environ: Mapping[str, str], env: Mapping[str, Any]) -> Path:
    """The authentication file ``iinit`` writes: ``IRODS_AUTHENTICATION_FILE``, the
    environment file's ``irods_authentication_file``, else ``~/.irods/.irodsA``."""
    name = environ.get("IRODS_AUTHENTICATION_FILE") or env.get("irods_authentication_file")
    return Path(name) if name else _irods_dir(environ) / ".irodsA"


def read_irods_a(path: Path) -> str:
    """The password obfuscated in ``path`` ("" when there is no such file); raises
    ``OSError`` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return ""
    from irods.password_obfuscation import decode

    return str(decode(text))


def _irods_a(environ: Mapping[str, str], env: Mapping[str, Any]) -> str:
    """The password ``iinit`` left obfuscated in the authentication file ("" if none)."""
    path = irods_a_path(environ, env)
    try:
        return read_irods_a(path)
    except OSError as e:
        raise ClientEnvironmentError(f"cannot read {path}: {e.strerror}") from None


def session_kwargs(
    account: IrodsAccount, *, proxy_for: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``iRODSSession`` (TLS included when the account asks for it).

    ``proxy_for=(zone, user)`` makes a proxied session: the account authenticates (it must
    be a rodsadmin) and iRODS then checks every access as that user.
    """
    kwargs: dict[str, Any] = {
        "host": account.host,
        "port": account.port,
        "user": account.user,
        "zone": account.zone,
        "password": account.password.get_secret_value(),
        "authentication_scheme": account.auth_scheme,
    }
    if account.client_server_policy != "CS_NEG_REFUSE":
        kwargs.update(
            client_server_negotiation="request_server_negotiation",
            client_server_policy=account.client_server_policy,
            encryption_algorithm=account.encryption_algorithm,
            encryption_key_size=account.encryption_key_size,
            encryption_salt_size=account.encryption_salt_size,
            encryption_num_hash_rounds=account.encryption_num_hash_rounds,
            ssl_verify_server=account.verify,
        )
        if account.ca_file:
            kwargs["ssl_ca_certificate_file"] = account.ca_file
    if account.default_resource:
        kwargs["default_resource"] = account.default_resource
    if proxy_for is not None:
        kwargs["client_zone"], kwargs["client_user"] = proxy_for
    return kwargs


def connect(
    account: IrodsAccount,
    *,
    proxy_for: tuple[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
) -> Any:
    """An ``iRODSSession`` for ``account``.

    ``timeout`` sets the session's socket timeout in seconds; ``check=True`` opens one
    connection now so that a wrong password or an unreachable server fails here rather
    than at first use. Errors are python-irodsclient's own: each caller translates them
    into its own vocabulary (isync's exit statuses, the API's 503).
    """
    from irods.session import iRODSSession

    session = iRODSSession(**session_kwargs(account, proxy_for=proxy_for))
    try:
        if timeout is not None:
            session.connection_timeout = timeout
        if check:
            session.pool.get_connection().release()
    except BaseException:
        session.cleanup()
        raise
    return session


def is_irods_path(text: str) -> bool:
    """True when ``text`` names an iRODS location (``irods:`` or ``i:`` prefix)."""
    return text.startswith(IRODS_PREFIXES)


def strip_prefix(text: str) -> str:
    """The path part of a location (the ``irods:``/``i:`` prefix removed)."""
    for prefix in IRODS_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
