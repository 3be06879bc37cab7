"""Fixtures shared by the test server's data-object tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

HOME = "/tempZone/home/rods"


@pytest.fixture
def coll(irods_session: Any, unique_name: str) -> Iterator[str]:
    path = f"{HOME}/{unique_name}"
    irods_session.collections.create(path)
    yield path
    irods_session.collections.remove(path, force=True)
