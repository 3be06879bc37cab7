"""Creating under a collection the user cannot see, as a real iRODS 5.0.2 zone answered
(issue 14): SYS_INVALID_INPUT_PARAM with ``validate_logical_path``'s message
(``server/core/src/dataObjOpr.cpp``, called from ``server/api/src/rsCollCreate.cpp``), not a
permission error; a collection the user sees but may not write stays
CAT_NO_ACCESS_PERMISSION."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import irods.exception as ex
import pytest
from irods.access import iRODSAccess


def test_a_collection_under_an_invisible_one_is_sys_invalid_input_param(
    irods_user: Callable[..., tuple[str, Any]],
) -> None:
    owner, bob = irods_user()
    _, alice = irods_user()
    hidden = f"/tempZone/home/{owner}/hidden"
    bob.collections.create(hidden)
    for target in (f"{hidden}/sub", f"{hidden}/a/b"):
        with pytest.raises(ex.SYS_INVALID_INPUT_PARAM) as err:
            alice.collections.create(target, recurse=target.endswith("/b"))
        assert "a valid zone name does not appear at the root of the object path" in str(err.value)
    assert [c.name for c in bob.collections.get(hidden).subcollections] == []


def test_a_visible_but_read_only_collection_is_permission_denied(
    irods_user: Callable[..., tuple[str, Any]],
) -> None:
    owner, bob = irods_user()
    alice_name, alice = irods_user()
    shared = f"/tempZone/home/{owner}/shared"
    bob.collections.create(shared)
    bob.acls.set(iRODSAccess("read", shared, alice_name))
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.collections.create(f"{shared}/sub")
    bob.acls.set(iRODSAccess("write", shared, alice_name))
    alice.collections.create(f"{shared}/sub")
    assert alice.collections.get(f"{shared}/sub").name == "sub"
