"""shared.irods: the one way every process opens an iRODS session (real test server)."""

from __future__ import annotations

import pytest
from irods.exception import CAT_INVALID_AUTHENTICATION
from pydantic import SecretStr

from shared.irods import IrodsAccount, connect, is_irods_path, session_kwargs, strip_prefix
from shared.settings import IrodsSettings


def _account(srv, **over) -> IrodsAccount:
    fields = {
        "host": srv.host,
        "port": srv.port,
        "zone": srv.zone,
        "user": srv.admin_user,
        "password": SecretStr(srv.admin_password),
    }
    return IrodsAccount(**{**fields, **over})


def test_plain_account_asks_for_no_tls_and_hides_the_password() -> None:
    acc = IrodsAccount(host="h", user="u", zone="z", password=SecretStr("s3cret"))
    kwargs = session_kwargs(acc)
    assert kwargs["password"] == "s3cret" and "s3cret" not in repr(acc)
    assert "client_server_policy" not in kwargs and "client_user" not in kwargs


def test_tls_and_proxy_options() -> None:
    acc = IrodsAccount(
        host="h",
        user="rods",
        zone="z",
        client_server_policy="CS_NEG_REQUIRE",
        ca_file="/etc/ca.pem",
        verify="cert",
        default_resource="fast",
    )
    kwargs = session_kwargs(acc, proxy_for=("z", "alice"))
    assert kwargs["client_server_negotiation"] == "request_server_negotiation"
    assert kwargs["client_server_policy"] == "CS_NEG_REQUIRE"
    assert kwargs["ssl_ca_certificate_file"] == "/etc/ca.pem"
    assert kwargs["ssl_verify_server"] == "cert"
    assert kwargs["default_resource"] == "fast"
    assert (kwargs["client_zone"], kwargs["client_user"]) == ("z", "alice")


def test_settings_give_the_same_account_with_tls() -> None:
    s = IrodsSettings(
        host="irods.example",
        port=1250,
        user="svc",
        password=SecretStr("pw"),
        client_server_policy="CS_NEG_REQUIRE",
        ca_file="/ca.pem",
        verify="cert",
    )
    acc = s.account()
    assert (acc.host, acc.port, acc.user, acc.zone) == ("irods.example", 1250, "svc", "tempZone")
    assert acc.password.get_secret_value() == "pw"
    assert session_kwargs(acc)["ssl_ca_certificate_file"] == "/ca.pem"


def test_connect_checks_the_password_now(irods_server) -> None:
    with connect(_account(irods_server), check=True, timeout=5) as session:
        assert session.collections.get(f"/{irods_server.zone}/home").path.endswith("/home")
    with pytest.raises(CAT_INVALID_AUTHENTICATION):
        connect(_account(irods_server, password=SecretStr("wrong")), check=True)


def test_proxy_session_acts_as_the_user(irods_server, irods_user) -> None:
    name, user_session = irods_user()
    user_session.cleanup()
    with connect(_account(irods_server), proxy_for=(irods_server.zone, name)) as session:
        home = f"/{irods_server.zone}/home/{name}"
        session.collections.create(f"{home}/made-by-proxy")
        obj = session.collections.get(f"{home}/made-by-proxy")
        assert obj.owner_name == name


def test_irods_path_prefixes() -> None:
    assert is_irods_path("irods:/z/x") and is_irods_path("i:rel")
    assert not is_irods_path("/project/x")
    assert strip_prefix("irods:/z/x") == "/z/x" and strip_prefix("/p") == "/p"
