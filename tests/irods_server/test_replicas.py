"""Replicas, checksums and registration (``api_replicas``); driven by the unmodified
python-irodsclient."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.manager.data_object_manager import Server_Checksum_Warning
from irods.message import RErrorStack

from tests.irods_server.resources import remove_resource


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_replicate_write_stales_and_trim(irods_session: Any, coll: str, second_resc: str) -> None:
    path = f"{coll}/repl"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"v1")
    irods_session.data_objects.replicate(path, second_resc)
    obj = irods_session.data_objects.get(path)
    assert sorted((r.resource_name, r.status) for r in obj.replicas) == sorted(
        [
            ("demoResc", "1"),
            (second_resc, "1"),
        ]
    )
    with irods_session.data_objects.open(path, "w", **{kw.DEST_RESC_NAME_KW: second_resc}) as f:
        f.write(b"v2")
    statuses = {r.resource_name: r.status for r in irods_session.data_objects.get(path).replicas}
    assert statuses == {"demoResc": "0", second_resc: "1"}
    irods_session.data_objects.trim(path, **{kw.COPIES_KW: 1})  # the stale one goes
    remaining = irods_session.data_objects.get(path).replicas
    assert [r.resource_name for r in remaining] == [second_resc]
    irods_session.data_objects.unlink(path, force=True)


def test_replicate_to_hierarchy_root_lands_on_leaf(
    irods_session: Any, coll: str, unique_name: str, tmp_path: Path
) -> None:
    root, leaf = f"root_{unique_name}", f"leaf_{unique_name}"
    irods_session.resources.create(leaf, "unixfilesystem", "localhost", str(tmp_path / "leaf"))
    irods_session.resources.create(root, "passthru")
    irods_session.resources.add_child(root, leaf)
    path = f"{coll}/hier"
    try:
        irods_session.data_objects.create(path)
        irods_session.data_objects.replicate(path, root)
        hiers = sorted(r.resc_hier for r in irods_session.data_objects.get(path).replicas)
        assert hiers == sorted(["demoResc", f"{root};{leaf}"])
        with pytest.raises(ex.DIRECT_CHILD_ACCESS):
            irods_session.data_objects.open(f"{coll}/direct", "w", **{kw.RESC_NAME_KW: leaf})
    finally:  # the hierarchy must not outlive the test on the shared server
        if irods_session.data_objects.exists(path):
            irods_session.data_objects.unlink(path, force=True)
        irods_session.resources.remove_child(root, leaf)
        irods_session.resources.remove(root)
        remove_resource(irods_session, leaf)


def test_checksum_and_verification(irods_session: Any, coll: str, second_resc: str) -> None:
    path = f"{coll}/sum"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    assert irods_session.data_objects.chksum(path) == sha2(b"abcd")
    assert irods_session.data_objects.get(path).checksum == sha2(b"abcd")
    irods_session.data_objects.replicate(path, second_resc)
    irods_session.data_objects.modDataObjMeta(
        {"objPath": path, "rescName": second_resc}, {"chksum": ""}
    )
    errors = RErrorStack()
    with pytest.raises(Server_Checksum_Warning):
        irods_session.data_objects.chksum(path, r_error=errors, **{kw.VERIFY_CHKSUM_KW: ""})
    assert len(errors) == 1
    assert "No checksum available for replica [1]" in errors[0].message


def test_put_with_register_checksum(irods_session: Any, coll: str, tmp_path: Path) -> None:
    src = tmp_path / "c"
    src.write_bytes(b"checked")
    irods_session.data_objects.put(str(src), f"{coll}/c", **{kw.REG_CHKSUM_KW: ""})
    assert irods_session.data_objects.get(f"{coll}/c").checksum == sha2(b"checked")


def test_register_and_register_as_replica(
    irods_session: Any, coll: str, second_resc: str, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"registered")
    two.write_bytes(b"registered")
    path = f"{coll}/reg"
    irods_session.data_objects.register(str(one), path, **{kw.VERIFY_CHKSUM_KW: ""})
    obj = irods_session.data_objects.get(path)
    assert (obj.size, obj.replicas[0].path) == (10, str(one))
    assert obj.checksum == sha2(b"registered")
    irods_session.data_objects.register(
        str(two), path, **{kw.REG_REPL_KW: "", kw.RESC_NAME_KW: second_resc}
    )
    obj = irods_session.data_objects.get(path)
    assert sorted(r.path for r in obj.replicas) == sorted([str(one), str(two)])
    irods_session.data_objects.unregister(path)
    assert not irods_session.data_objects.exists(path)
    assert one.exists() and two.exists()


def test_verification_reports_as_do_verification(
    irods_session: Any, coll: str, second_resc: str
) -> None:
    """``do_verification`` (``server/api/src/rsDataObjChksum.cpp``): CHECK_VERIFICATION_RESULTS
    with a JSON list of ``{severity, error_code, message}``, nothing stored; a stale
    replica is skipped with an "info" entry, a corrupted file is an "error", a size that
    differs from the catalog's an "error" too; verify with force is
    USER_INCOMPATIBLE_PARAMS."""
    path = f"{coll}/v"
    with irods_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"abcd")
    assert irods_session.data_objects.chksum(path, **{kw.VERIFY_CHKSUM_KW: ""}) == ""
    irods_session.data_objects.replicate(path, second_resc)
    irods_session.data_objects.modDataObjMeta(
        {"objPath": path, "rescName": second_resc}, {"replStatus": 0}
    )

    def findings(**opts: str) -> list[tuple[str, int, str]]:
        errors = RErrorStack()
        with pytest.raises(Server_Checksum_Warning) as err:
            irods_session.data_objects.chksum(
                path, r_error=errors, **{kw.VERIFY_CHKSUM_KW: "", **opts}
            )
        return [(e["severity"], e["error_code"], e["message"]) for e in err.value.response]

    assert findings() == [("info", 0, "INFO: Number of replicas skipped: 1")]
    phys = irods_session.data_objects.get(path).replicas[0].path
    Path(phys).write_bytes(b"abce")  # same size, other bytes
    assert ("error", -314000) in [(s, c) for s, c, _ in findings()]
    Path(phys).write_bytes(b"abcdef")
    assert ("error", -401000) in [(s, c) for s, c, _ in findings()]
    with pytest.raises(ex.USER_INCOMPATIBLE_PARAMS):
        irods_session.data_objects.chksum(path, **{kw.VERIFY_CHKSUM_KW: "", kw.FORCE_CHKSUM_KW: ""})
