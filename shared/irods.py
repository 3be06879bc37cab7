"""The one way to reach iRODS: an account, the session it makes, and iRODS path names.

Every process that talks to iRODS builds its python-irodsclient session here: isync (and
the worker's transfer children through it), the ingest workers and the API's DAC lookup.
TLS (``client_server_policy`` other than ``CS_NEG_REFUSE``) is therefore available to all
of them alike. python-irodsclient is blocking: services call :func:`connect` and use the
session from a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

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
