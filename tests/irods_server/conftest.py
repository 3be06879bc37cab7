"""Fixtures shared by the test server's data-object tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.irods_server.resources import remove_resource

HOME = "/tempZone/home/rods"


@contextmanager
def scratch_collection(session: Any, name: str) -> Iterator[str]:
    """Collection ``name`` under rods's home, made for the block and removed (forced) after."""
    path = f"{HOME}/{name}"
    session.collections.create(path)
    yield path
    session.collections.remove(path, force=True)


@pytest.fixture
def coll(irods_session: Any, unique_name: str) -> Iterator[str]:
    with scratch_collection(irods_session, unique_name) as path:
        yield path


@pytest.fixture
def second_resc(irods_session: Any, unique_name: str, tmp_path: Path) -> Iterator[str]:
    """A second unixfilesystem root resource with its own vault; afterwards the objects
    with a replica on it are unlinked and the resource removed (nothing leaks into the
    session's shared server). Ask for it before opening any object: python-irodsclient
    reconnects after a resource create."""
    name = f"r_{unique_name}"
    vault = tmp_path / "vault2"
    vault.mkdir()
    irods_session.resources.create(name, "unixfilesystem", "localhost", str(vault))
    yield name
    remove_resource(irods_session, name)
