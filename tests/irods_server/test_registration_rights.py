"""Who may register physical paths and call 622 modDataObjMeta, as a default 4.3.4 zone.

Each test drives the server with unmodified python-irodsclient as a real rodsuser, a
rodsadmin, or a rodsadmin proxy acting for a rodsuser (the ingest's ``as_user`` session).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import irods.keywords as kw
import pytest
from irods.exception import SYS_NO_API_PRIV

from devtools.irods_server.launcher import ServerProcess

ZONE = "tempZone"


@pytest.fixture
def proxied(irods_server: ServerProcess) -> Iterator[Callable[[str], Any]]:
    """``proxied(user)``: a session authenticated as rods acting for ``user``."""
    made: list[Any] = []

    def make(user: str) -> Any:
        s = irods_server.session(client_user=user, client_zone=ZONE)
        made.append(s)
        return s

    yield make
    for s in made:
        s.cleanup()


def _file(tmp_path: Path, name: str = "f", data: bytes = b"registered") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def test_a_rodsuser_may_not_register_a_path(
    irods_user: Callable[..., tuple[str, Any]], tmp_path: Path
) -> None:
    """``chkFilePathPerm`` (``server/core/src/fileOpr.cpp``) with the shipped
    ``disallowPathReg`` policy (``packaging/core.re.template``): PATH_REG_NOT_ALLOWED,
    -129000, which python-irodsclient 3.3 only knows as a KeyError; nothing registered."""
    name, alice = irods_user()
    target = f"/{ZONE}/home/{name}/reg"
    with pytest.raises(KeyError) as err:
        alice.data_objects.register(str(_file(tmp_path)), target)
    assert err.value.args == (-129000,)
    assert not alice.data_objects.exists(target)


def test_a_rodsuser_may_not_bypass_the_check_with_no_chk_file_perm(
    irods_user: Callable[..., tuple[str, Any]], tmp_path: Path
) -> None:
    """``rs_register_physical_path`` (``plugins/api/src/register_physical_path.cpp``):
    noChkFilePerm from a proxy below LOCAL_PRIV_USER_AUTH is SYS_NO_API_PRIV."""
    name, alice = irods_user()
    target = f"/{ZONE}/home/{name}/reg"
    with pytest.raises(SYS_NO_API_PRIV):
        alice.data_objects.register(str(_file(tmp_path)), target, **{kw.NO_CHK_FILE_PERM_KW: ""})
    assert not alice.data_objects.exists(target)


def test_a_rodsadmin_proxy_registers_for_a_user_with_no_chk_file_perm(
    irods_user: Callable[..., tuple[str, Any]],
    proxied: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    """The one way a rodsuser's object gets a registered path on a default zone: a
    rodsadmin proxy (the ingest account) sending noChkFilePerm; without it the proxied
    client is still a rodsuser (``getchkPathPerm`` looks at the *client* user)."""
    name, alice = irods_user()
    as_alice = proxied(name)
    src = _file(tmp_path)
    target = f"/{ZONE}/home/{name}/reg"
    with pytest.raises(KeyError):
        as_alice.data_objects.register(str(src), target)
    as_alice.data_objects.register(str(src), target, **{kw.NO_CHK_FILE_PERM_KW: ""})
    obj = alice.data_objects.get(target)
    assert (obj.owner_name, obj.replicas[0].path, obj.size) == (name, str(src), 10)


def test_a_rodsadmin_registers_without_a_keyword(irods_session: Any, tmp_path: Path) -> None:
    """``getchkPathPerm``: a LOCAL_PRIV_USER_AUTH client is not checked."""
    target = f"/{ZONE}/home/rods/{tmp_path.name}-reg"
    irods_session.data_objects.register(str(_file(tmp_path)), target)
    assert irods_session.data_objects.get(target).size == 10
    irods_session.data_objects.unregister(target)


def test_mod_data_obj_meta_is_off_the_allowlist_for_a_non_admin_client(
    irods_user: Callable[..., tuple[str, Any]],
    proxied: Callable[[str], Any],
    tmp_path: Path,
    irods_session: Any,
) -> None:
    """``client_api_allowlist.cpp``: MOD_DATA_OBJ_META_AN is commented out of the list,
    and ``chkApiPermission`` (``server/core/src/rsApiHandler.cpp``) refuses it to a
    client that is not a rodsadmin, also behind a rodsadmin proxy (SYS_NO_API_PRIV);
    the owner's own object is unchanged. A rodsadmin client may."""
    name, alice = irods_user()
    target = f"/{ZONE}/home/{name}/obj"
    src = _file(tmp_path)
    alice.data_objects.put(str(src), target)
    for client in (alice, proxied(name)):
        with pytest.raises(SYS_NO_API_PRIV):
            client.data_objects.modDataObjMeta({"objPath": target}, {"dataModify": 1500000000})
    assert alice.data_objects.get(target).modify_time.timestamp() != 1500000000
    irods_session.data_objects.modDataObjMeta({"objPath": target}, {"dataModify": 1500000000})
    assert alice.data_objects.get(target).modify_time.timestamp() == 1500000000
    alice.data_objects.touch(target, seconds_since_epoch=1600000000)  # touch is allowed
    assert alice.data_objects.get(target).modify_time.timestamp() == 1600000000


def test_leniencies_restore_the_old_answers(
    irods_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The documented switch (``leniency.py``): ``path-registration,api-allowlist``."""
    srv = irods_server_factory()
    srv.stop()
    srv.lenient = "path-registration,api-allowlist"
    srv.start()
    with srv.session() as admin:
        admin.users.create("lenient", "rodsuser")
        admin.users.modify("lenient", "password", "pw")
    with srv.session("lenient", "pw") as user:
        target = f"/{ZONE}/home/lenient/reg"
        user.data_objects.register(str(_file(tmp_path)), target)
        user.data_objects.modDataObjMeta({"objPath": target}, {"dataModify": 1500000000})
        assert user.data_objects.get(target).modify_time.timestamp() == 1500000000


def test_an_unknown_leniency_is_refused(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", lenient="no-such-thing")
    with pytest.raises(RuntimeError, match="unknown --lenient name"):
        srv.start()
