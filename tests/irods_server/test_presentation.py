"""The server presents itself as iRODS 4.3.4 (default) or 5.0.2, with the differences a
client sees (``presentation.py``; iRODS source at the tags 4.3.4 and 5.0.2:
``lib/api/include/irods/apiNumberData.h``, ``plugins/api/include/irods/plugins/api/
api_plugin_number_data.h``, ``lib/core/include/irods/rodsGenQuery.h``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from irods.exception import CAT_UNKNOWN_TABLE, SYS_UNMATCHED_API_NUM
from irods.message import iRODSMessage
from irods.models import DataObject

from devtools.irods_server import presentation
from devtools.irods_server.launcher import REPO_ROOT, ServerProcess

HOME = "/tempZone/home/rods"


def call_api(session: Any, number: int) -> None:
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", int_info=number))
        conn.recv()


def test_default_presents_as_4_3_4(irods_session: Any) -> None:
    assert irods_session.server_version == (4, 3, 4)
    irods_session.data_objects.create(f"{HOME}/pres434")
    try:
        # DataObject.access_time is a 5.0 column: a 4.3.4 catalog has no COL_D_ACCESS_TIME
        with pytest.raises(CAT_UNKNOWN_TABLE):
            irods_session.query(DataObject.access_time).filter(DataObject.name == "pres434").all()
        obj = irods_session.data_objects.get(f"{HOME}/pres434")
        assert not hasattr(obj, "access_time")  # python-irodsclient asks only a 5.x server
        with pytest.raises(SYS_UNMATCHED_API_NUM):  # UPDATE_REPLICA_ACCESS_TIME_AN: 5.0 only
            call_api(irods_session, 10224)
    finally:
        irods_session.data_objects.unlink(f"{HOME}/pres434", force=True)


def test_presents_as_5_0_2(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", presents="5.0.2") as srv, srv.session() as s:
        assert s.server_version == (5, 0, 2)
        s.data_objects.create(f"{HOME}/pres502")
        obj = s.data_objects.get(f"{HOME}/pres502")  # reads DataObject.access_time on 5.x
        assert obj.access_time == obj.modify_time
        assert obj.replicas[0].access_time == obj.replicas[0].modify_time


def test_environment_variable_picks_the_presentation(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(presentation.ENV_VAR, "5.0.2")
    with ServerProcess(tmp_path / "data") as srv, srv.session() as s:
        assert s.server_version == (5, 0, 2)


def test_unknown_presentation_is_refused_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "devtools.irods_server", "--data", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--presents", "4.2.8"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "invalid choice: '4.2.8'" in proc.stderr
    with pytest.raises(ValueError, match=r"choose one of 4\.3\.4, 5\.0\.2"):
        presentation.use("4.2.8")
