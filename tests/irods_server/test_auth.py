"""Native login (4.3 framework and legacy), wrong passwords, proxy users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import irods.client_configuration as cfg
import irods.exception as ex
import pytest
from irods.message import GeneralAdminRequest, iRODSMessage

from devtools.irods_server.launcher import ServerProcess

CALC = GeneralAdminRequest("calculate-usage")


def admin_call(session: Any, *args: str) -> int:
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=GeneralAdminRequest(*args), int_info=701))
        return int(conn.recv().int_info)


@pytest.fixture
def legacy_auth() -> Iterator[None]:
    with cfg.loadlines(entries=[{"setting": "legacy_auth.force_legacy_auth", "value": True}]):
        yield


@pytest.fixture
def alice(irods_server: ServerProcess) -> Iterator[str]:
    """A rodsuser with password ``alice-pw``, removed afterwards."""
    with irods_server.session() as s:
        admin_call(s, "add", "user", "alice_auth", "rodsuser", "", "")
        s.users.modify("alice_auth", "password", "alice-pw")
        yield "alice_auth"
        admin_call(s, "rm", "user", "alice_auth")


@pytest.mark.parametrize("mode", ["framework", "legacy"])
def test_native_login(irods_server: ServerProcess, mode: str, request: Any) -> None:
    if mode == "legacy":
        request.getfixturevalue("legacy_auth")
    with irods_server.session() as s, s.pool.get_connection() as conn:
        assert len(conn.client_signature) == 32
        assert admin_call(s, "calculate-usage") == 0


@pytest.mark.parametrize("mode", ["framework", "legacy"])
def test_wrong_password_is_cat_invalid_authentication(
    irods_server: ServerProcess, mode: str, request: Any
) -> None:
    if mode == "legacy":
        request.getfixturevalue("legacy_auth")
    session = irods_server.session("rods", "not-the-password")
    with session as s, pytest.raises(ex.CAT_INVALID_AUTHENTICATION) as err:
        s.pool.get_connection()
    assert err.value.code == -826000
    assert "not-the-password" not in str(err.value)


def test_unknown_user_is_rejected(irods_server: ServerProcess) -> None:
    with irods_server.session("nobody_here", "x") as s, pytest.raises(ex.CAT_INVALID_USER):
        s.pool.get_connection()


def test_ordinary_user_logs_in_and_lacks_admin_rights(
    irods_server: ServerProcess, alice: str
) -> None:
    session = irods_server.session(alice, "alice-pw")
    with session as s, pytest.raises(ex.SYS_NO_API_PRIV):
        admin_call(s, "calculate-usage")


def test_admin_proxy_acts_as_client_user(irods_server: ServerProcess, alice: str) -> None:
    # authenticated as rods, acting as alice: alice's (missing) admin rights apply
    session = irods_server.session(client_user=alice)
    with session as s, pytest.raises(ex.SYS_NO_API_PRIV):
        admin_call(s, "calculate-usage")


def test_non_admin_proxy_may_not_act_as_another_user(
    irods_server: ServerProcess, alice: str
) -> None:
    session = irods_server.session(alice, "alice-pw", client_user="rods")
    with session as s, pytest.raises(ex.SYS_PROXYUSER_NO_PRIV):
        s.pool.get_connection()


def test_temporary_password_for_oneself(irods_server: ServerProcess, alice: str) -> None:
    with irods_server.session(alice, "alice-pw") as s, s.pool.get_connection() as conn:
        temp = conn.temp_password()
    assert temp != "alice-pw"
    with irods_server.session(alice, temp) as s, s.pool.get_connection() as conn:
        assert conn.client_signature


def test_temporary_password_for_another_user_needs_admin(
    irods_server: ServerProcess, alice: str
) -> None:
    with irods_server.session() as admin:
        temp = admin.users.temp_password_for_user(alice)
        with pytest.raises(ex.UserDoesNotExist):
            admin.users.temp_password_for_user("nobody_at_all")
    with irods_server.session(alice, temp) as s, s.pool.get_connection() as conn:
        assert conn.client_signature
    session = irods_server.session(alice, "alice-pw")
    with session as s, pytest.raises(ex.CAT_INSUFFICIENT_PRIVILEGE_LEVEL):
        s.users.temp_password_for_user("rods")
