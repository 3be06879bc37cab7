"""Each connection knows the resources that existed when it connected, as a real agent.

A real agent loads the resource list once when it starts (``resc_mgr.init_from_catalog``
in ``initServerInfo``, ``server/core/src/initServer.cpp``), so a connection opened before a
resource was created answers ``SYS_RESC_DOES_NOT_EXIST`` for it (seen on a 5.0.2 zone:
issue 14); python-irodsclient's ``resources.create`` closes its own session's connections
for that reason. Driven with unmodified python-irodsclient.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from irods.exception import SYS_RESC_DOES_NOT_EXIST

from devtools.irods_server.launcher import ServerProcess

HOME = "/tempZone/home/rods"


def _put(session: Any, path: str, resource: str) -> None:
    with session.data_objects.open(path, "w", destRescName=resource) as f:
        f.write(b"data")


def _made_after_connect(srv: ServerProcess, tmp_path: Path, name: str) -> Any:
    """A session whose connection is open, then a resource ``name`` made by another."""
    early = srv.session()
    early.collections.get(HOME)  # its connection (its agent) exists now
    vault = tmp_path / name
    vault.mkdir()
    with srv.session() as admin:
        admin.resources.create(name, "unixfilesystem", "localhost", str(vault))
    return early


def test_a_resource_made_after_connect_is_unknown_to_that_connection(
    irods_server: ServerProcess, tmp_path: Path, unique_name: str
) -> None:
    name = f"late_{unique_name}"
    early = _made_after_connect(irods_server, tmp_path, name)
    try:
        with pytest.raises(SYS_RESC_DOES_NOT_EXIST):
            _put(early, f"{HOME}/{name}-early", name)
        early.cleanup()  # fresh connections: a new agent loads the list again
        _put(early, f"{HOME}/{name}-fresh", name)
        assert early.data_objects.get(f"{HOME}/{name}-fresh").replicas[0].resource_name == name
    finally:
        early.cleanup()
        with irods_server.session() as admin:
            admin.data_objects.unlink(f"{HOME}/{name}-fresh", force=True)
            admin.resources.remove(name)


def test_the_resource_snapshot_leniency_sees_every_resource(
    irods_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """``--lenient resource-snapshot`` (``leniency.py``): the old answer."""
    srv = irods_server_factory()
    srv.stop()
    srv.lenient = "resource-snapshot"
    srv.start()
    early = _made_after_connect(srv, tmp_path, "late")
    try:
        _put(early, f"{HOME}/x", "late")
    finally:
        early.cleanup()
