"""User DNs: ``iadmin aua/rua`` (API 701 ``modify user addAuth/rmAuth``) into
``R_USER_AUTH``, read back through GenQuery ``USER_DN`` (python-irodsclient's
``user.dn``), as iRODS 4.3.4's ``db_mod_user_op`` (plugins/database/src/db_plugin.cpp)."""

from __future__ import annotations

from typing import Any

import pytest
from irods.exception import CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, SYS_NO_API_PRIV
from irods.models import User, UserAuth


def test_add_and_remove_dns(irods_session: Any, unique_name: str) -> None:
    user = irods_session.users.create(unique_name, "rodsuser")
    try:
        assert user.dn == []
        user.modify("addAuth", "/C=NL/O=Example/CN=one")
        user.modify("addAuth", "/C=NL/O=Example/CN=two")
        assert sorted(irods_session.users.get(unique_name).dn) == [
            "/C=NL/O=Example/CN=one",
            "/C=NL/O=Example/CN=two",
        ]
        with pytest.raises(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME):
            user.modify("addAuth", "/C=NL/O=Example/CN=one")
        user.modify("rmAuth", "/C=NL/O=Example/CN=one")
        assert irods_session.users.get(unique_name).dn == ["/C=NL/O=Example/CN=two"]
    finally:
        irods_session.users.remove(unique_name)
    rows = irods_session.query(UserAuth.user_dn).filter(
        UserAuth.user_dn == "/C=NL/O=Example/CN=two"
    )
    assert len(rows.all()) == 0  # removing the user removes its DNs


def test_attack_a_rodsuser_cannot_give_itself_a_dn(irods_user: Any) -> None:
    name, user = irods_user()
    with pytest.raises(SYS_NO_API_PRIV):
        user.users.modify(name, "addAuth", "/CN=admin")
    assert len(user.query(User.name, UserAuth.user_dn).filter(User.name == name).all()) == 0
