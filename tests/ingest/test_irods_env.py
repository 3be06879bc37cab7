"""The ingest workers' iRODS account from the usual iRODS client environment (issue 13, 8).

As automated ingest (python-irodsclient reading ``irods_environment.json``), a worker with
no ``STAGER_IRODS__*`` settings connects with what ``IRODS_ENVIRONMENT_FILE`` (or
``~/.irods/irods_environment.json``), its ``.irodsA`` and ``IRODS_*`` variables say, and
the authentication scheme there is the one python-irodsclient logs in with. Per field,
``STAGER_IRODS__*`` > ``IRODS_*`` > the file > the built-in default.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from services.ingest.settings import IngestSettings
from services.ingest.store import JobState
from shared.errors import ConfigError
from shared.irods import connect, session_kwargs
from tests.ingest.conftest import make_tree


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No iRODS settings from the test's own environment; ``HOME`` is a fresh directory."""
    for name in list(os.environ):
        if name.startswith(("STAGER_IRODS__", "IRODS_", "STAGER_INGEST__CLIENT")):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


def write_env(home: Path, password: str | None = None, **env: Any) -> Path:
    irods = home / ".irods"
    irods.mkdir(parents=True, exist_ok=True)
    path = irods / "irods_environment.json"
    path.write_text(json.dumps(env))
    if password is not None:
        from irods.password_obfuscation import encode

        (irods / ".irodsA").write_text(encode(password))
    return path


# --- precedence (no server) ----------------------------------------------------------------


def test_home_environment_file_and_irods_a_fill_the_account(clean_env: Path) -> None:
    write_env(
        clean_env,
        password="from-irodsA",
        irods_host="irods.example.org",
        irods_port=1300,
        irods_user_name="alice",
        irods_zone_name="labZone",
        irods_authentication_scheme="PAM_PASSWORD",
        irods_client_server_policy="CS_NEG_REQUIRE",
        irods_ssl_verify_server="cert",
        irods_ssl_ca_certificate_file="/etc/ssl/ca.pem",
        irods_default_resource="fastResc",
    )
    account = IngestSettings().irods.account()
    assert (account.host, account.port, account.user, account.zone) == (
        "irods.example.org",
        1300,
        "alice",
        "labZone",
    )
    assert account.password.get_secret_value() == "from-irodsA"
    assert account.auth_scheme == "pam_password"
    assert account.client_server_policy == "CS_NEG_REQUIRE"
    assert (account.verify, account.ca_file, account.default_resource) == (
        "cert",
        "/etc/ssl/ca.pem",
        "fastResc",
    )
    kwargs = session_kwargs(account)  # what python-irodsclient gets
    assert kwargs["authentication_scheme"] == "pam_password"
    assert kwargs["client_server_policy"] == "CS_NEG_REQUIRE"
    assert kwargs["ssl_ca_certificate_file"] == "/etc/ssl/ca.pem"


def test_precedence_stager_over_irods_variables_over_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_env(
        clean_env / "elsewhere",
        password="file-pw",
        irods_host="file-host",
        irods_port=1300,
        irods_user_name="file-user",
        irods_zone_name="fileZone",
    )
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(path))
    monkeypatch.setenv("IRODS_USER_NAME", "var-user")
    monkeypatch.setenv("IRODS_PORT", "1400")
    monkeypatch.setenv("IRODS_PASSWORD", "var-pw")
    monkeypatch.setenv("STAGER_IRODS__PORT", "1500")
    s = IngestSettings().irods
    assert (s.host, s.port, s.user, s.zone) == ("file-host", 1500, "var-user", "fileZone")
    assert s.password.get_secret_value() == "var-pw"
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", "stager-pw")
    assert IngestSettings().irods.password.get_secret_value() == "stager-pw"
    assert "stager-pw" not in repr(IngestSettings())


def test_built_in_defaults_without_any_environment(clean_env: Path) -> None:
    s = IngestSettings().irods
    assert (s.host, s.port, s.user, s.zone, s.auth_scheme) == (
        "127.0.0.1",
        1247,
        "rods",
        "tempZone",
        "native",
    )


def test_fallback_can_be_turned_off(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(clean_env, irods_host="file-host")
    monkeypatch.setenv("STAGER_INGEST__CLIENT_ENVIRONMENT", "false")
    assert IngestSettings().irods.host == "127.0.0.1"


def test_bad_environment_file_is_a_clear_config_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_env(clean_env)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"irods_environment\.json"):
        IngestSettings()
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(clean_env / "absent.json"))
    with pytest.raises(ConfigError, match=r"IRODS_ENVIRONMENT_FILE names .*absent\.json"):
        IngestSettings()
    monkeypatch.delenv("IRODS_ENVIRONMENT_FILE")
    path.write_text(json.dumps({"irods_port": "not-a-port"}))
    with pytest.raises(ConfigError, match="port"):
        IngestSettings()


# --- against the test server ---------------------------------------------------------------


async def test_worker_configured_only_by_irods_environment_json(
    ingest, irods_server, irods_session, clean_env, monkeypatch, tmp_path
):
    """A worker whose account is only the env file and .irodsA (as iinit leaves them)."""
    env_file = irods_server.write_env(tmp_path / "rods-home")
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(env_file))
    monkeypatch.setenv("HOME", str(tmp_path / "rods-home"))
    ingest.account = IngestSettings().irods.account()
    assert ingest.account.port == irods_server.port
    assert ingest.account.password.get_secret_value() == irods_server.admin_password
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src))
    assert job.state is JobState.COMPLETED, job.error
    assert job.counters["files_created"] == 3, job.counters
    names = {o.name for o in irods_session.collections.get(ingest.collection).data_objects}
    assert names == {"0", "1", "2"}


def tls_env(server: Any, ca: Path, **extra: Any) -> dict[str, Any]:
    opts = server.tls_options()
    return {
        "irods_host": server.host,
        "irods_port": server.port,
        "irods_user_name": "rods",
        "irods_zone_name": server.zone,
        "irods_client_server_negotiation": "request_server_negotiation",
        "irods_client_server_policy": "CS_NEG_REQUIRE",
        "irods_ssl_ca_certificate_file": str(ca),
        "irods_ssl_verify_server": "cert",
        "irods_encryption_algorithm": opts["irods_encryption_algorithm"],
        "irods_encryption_key_size": opts["irods_encryption_key_size"],
        "irods_encryption_num_hash_rounds": opts["irods_encryption_num_hash_rounds"],
        "irods_encryption_salt_size": opts["irods_encryption_salt_size"],
        **extra,
    }


def test_pam_password_scheme_from_the_file_reaches_python_irodsclient(tls_irods_server, clean_env):
    """The scheme is the one PRC logs in with: a PAM login returns a temporary password
    (``pam_pw_negotiated``) and a wrong password is refused by PAM, not natively."""
    import irods.exception as ex

    write_env(
        clean_env,
        password=tls_irods_server.admin_password,
        **tls_env(
            tls_irods_server, tls_irods_server.tls_cert, irods_authentication_scheme="pam_password"
        ),
    )
    account = IngestSettings().irods.account()
    assert account.auth_scheme == "pam_password"
    session = connect(account)  # pam_pw_negotiated logs in on a new connection
    try:
        temp = session.pam_pw_negotiated  # once: a second call reuses the connection
        assert len(temp) == 1 and temp[0] and temp[0] != tls_irods_server.admin_password
    finally:
        session.cleanup()
    wrong = account.model_copy(update={"password": account.password.__class__("wrong")})
    with pytest.raises(ex.PAM_AUTH_PASSWORD_FAILED):
        connect(wrong, check=True).cleanup()


async def test_ingest_job_over_tls_with_pam_from_the_environment_file(
    ingest, tls_irods_server, clean_env, tmp_path
):
    """The whole path: worker settings from the file (pam_password, TLS required) → the
    owner's child, whose sessions log in over TLS; the files land on the TLS server.
    (That the child's logins use PAM is not visible here: the test server's PAM accepts
    the same password; the test above shows the scheme reaches python-irodsclient.)"""
    ca = tmp_path / "ca.pem"  # where the job's owner (the child's user) can read it
    shutil.copy(tls_irods_server.tls_cert, ca)
    os.chmod(ca, 0o644)
    write_env(
        clean_env,
        password=tls_irods_server.admin_password,
        **tls_env(tls_irods_server, ca, irods_authentication_scheme="pam_password"),
    )
    ingest.account = IngestSettings().irods.account()
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src))
    assert job.state is JobState.COMPLETED, job.error
    assert job.counters["files_created"] == 2, job.counters
    with tls_irods_server.session(**tls_irods_server.tls_options()) as s:
        names = {o.name for o in s.collections.get(ingest.collection).data_objects}
    assert names == {"0", "1"}
