"""The ingest against the test server presenting as iRODS 4.3.4 and as 5.0.2
(``devtools/irods_server/presentation.py``; issue 14: "the stager is tested against
both"): PUT_SYNC and REGISTER_SYNC as another user (``as_user``: registration through the
rodsadmin proxy with noChkFilePerm, mtimes stamped with touch) create every file and a
second pass skips every unchanged one; a changed file is put again (PUT_SYNC), or, for
REGISTER_SYNC, fails with the one line naming the zone setting (a default zone refuses a
proxied rodsuser 622, ``client_api_allowlist.cpp``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from tests.ingest.conftest import make_tree


@pytest.fixture(scope="module", params=["4.3.4", "5.0.2"])
def irods_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """This module's own server of each presentation (the session's is 4.3.4)."""
    data = tmp_path_factory.mktemp(f"presents_{request.param}") / "data"
    with ServerProcess(data, presents=request.param) as srv:
        yield srv


@pytest.mark.parametrize("op", ["PUT_SYNC", "REGISTER_SYNC"])
async def test_sync_as_user_against_each_presentation(
    op, ingest, irods_server, irods_session, irods_user, tmp_path: Path
):
    with irods_server.session() as s:
        assert ".".join(map(str, s.server_version)) == irods_server.presents
    name, user_session = irods_user()
    target = f"/tempZone/home/{name}/synced"
    src = make_tree(tmp_path / "src", 12, depth=1)
    await ingest.start(1)
    job = ingest.configured(src, op=op, as_user=name)
    job.target = target
    job = await ingest.run(job)
    assert job.counters["files_created"] == 12 and job.counters["files_failed"] == 0, job.counters
    (src / "2").write_text("changed content")
    again = await ingest.rerun(job)
    c = again.counters
    if op == "PUT_SYNC":
        assert (c["files_failed"], c["files_modified"], c["files_skipped"]) == (0, 1, 11), c
        with user_session.data_objects.open(f"{target}/2", "r") as f:
            assert f.read() == b"changed content"
    else:
        assert (c["files_failed"], c["files_modified"], c["files_skipped"]) == (1, 0, 11), c
    assert user_session.data_objects.get(f"{target}/5").owner_name == name
    if op == "PUT_SYNC":
        irods_session.collections.remove(target, recurse=True, force=True)
    else:
        irods_session.collections.unregister(target, recurse=True)
