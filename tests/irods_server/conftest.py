"""Fixtures shared by the test server's data-object tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOME = "/tempZone/home/rods"


@pytest.fixture
def coll(irods_session: Any, unique_name: str) -> Iterator[str]:
    path = f"{HOME}/{unique_name}"
    irods_session.collections.create(path)
    yield path
    irods_session.collections.remove(path, force=True)


@pytest.fixture
def second_resc(irods_session: Any, unique_name: str, tmp_path: Path) -> Iterator[str]:
    """A second unixfilesystem root resource with its own vault."""
    name = f"r_{unique_name}"
    vault = tmp_path / "vault2"
    vault.mkdir()
    irods_session.resources.create(name, "unixfilesystem", "localhost", str(vault))
    yield name
