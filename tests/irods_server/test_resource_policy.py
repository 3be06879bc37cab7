"""``minimum_free_space_for_create_in_bytes``, as iRODS 4.3.4's ``voting.cpp``
(``replica_exceeds_resource_free_space``): a create that would leave less than the
minimum of the resource's catalog free space is ``USER_FILE_TOO_LARGE``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import irods.keywords as kw
import pytest
from irods.exception import USER_FILE_TOO_LARGE

from devtools.irods_server.resource_policy import context_value, exceeds_free_space

HOME = "/tempZone/home/rods"


@pytest.fixture
def resc(irods_session: Any, irods_server: Any, unique_name: str) -> Iterator[str]:
    vault = Path(irods_server.data_dir) / f"vault-{unique_name}"
    irods_session.resources.create(unique_name, "unixfilesystem", "localhost", str(vault))
    yield unique_name
    irods_session.resources.remove(unique_name)


def test_puts_over_the_minimum_are_refused_and_under_it_accepted(
    irods_session: Any, resc: str, tmp_path: Path, unique_name: str
) -> None:
    r = irods_session.resources.get(resc)
    r.modify("free_space", "10000")
    r.modify("context", "minimum_free_space_for_create_in_bytes=9000")
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"." * 900)
    big.write_bytes(b"." * 1001)
    opts = {kw.DEST_RESC_NAME_KW: resc}
    with pytest.raises(USER_FILE_TOO_LARGE):
        irods_session.data_objects.put(str(big), f"{HOME}/{unique_name}-big", **opts)
    assert not irods_session.data_objects.exists(f"{HOME}/{unique_name}-big")  # nothing left
    irods_session.data_objects.put(str(small), f"{HOME}/{unique_name}-small", **opts)
    irods_session.data_objects.unlink(f"{HOME}/{unique_name}-small", force=True)
    r.modify("context", "")  # no policy: the big one goes too
    irods_session.data_objects.put(str(big), f"{HOME}/{unique_name}-big", **opts)
    irods_session.data_objects.unlink(f"{HOME}/{unique_name}-big", force=True)


def test_vote_arithmetic() -> None:
    def row(free: str, context: str) -> dict[str, str]:
        return {"free_space": free, "resc_context": context, "resc_name": "r"}

    key = "minimum_free_space_for_create_in_bytes"
    assert context_value(f"a=1;{key}=5", key) == "5"
    assert not exceeds_free_space(row("100", ""), 10**9)  # no policy
    assert not exceeds_free_space(row("100", f"{key}=50"), 50)
    assert exceeds_free_space(row("100", f"{key}=50"), 51)
    assert not exceeds_free_space(row("100", f"{key}=50"), -1)  # size unknown
    assert exceeds_free_space(row("", f"{key}=50"), 1)  # free space unknown
    assert exceeds_free_space(row("100", f"{key}=-1"), 1)  # negative minimum
    assert exceeds_free_space(row("10", f"{key}=50"), 0)  # minimum above free space
