"""The ingest against the test server presenting as iRODS 4.3.4 and as 5.0.2
(``devtools/irods_server/presentation.py``; issue 14: "the stager is tested against
both"): PUT_SYNC and REGISTER_SYNC as another user (``as_user``: registration through the
rodsadmin proxy with noChkFilePerm, mtimes stamped with touch) create every file and a
second pass skips every unchanged one; a changed file is put again (PUT_SYNC), its new
bytes appended (PUT_APPEND; the one replica left good, as a close that wrote leaves it,
``rsDataObjClose.cpp``), or, for
REGISTER_SYNC, fails with the one line naming the zone setting (a default zone refuses a
proxied rodsuser 622, ``client_api_allowlist.cpp``); and once the worker stops, its owner
child has logged out every connection (a real agent logs errors for each one that is not,
``server/core/src/rsApiHandler.cpp``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from tests.ingest.conftest import append, make_tree


@pytest.fixture(scope="module", params=["4.3.4", "5.0.2"])
def irods_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """This module's own server of each presentation (the session's is 4.3.4)."""
    data = tmp_path_factory.mktemp(f"presents_{request.param}") / "data"
    with ServerProcess(data, presents=request.param) as srv:
        yield srv


@pytest.mark.parametrize("op", ["PUT_SYNC", "PUT_APPEND", "REGISTER_SYNC"])
async def test_sync_as_user_against_each_presentation(
    op, ingest, irods_server, irods_session, irods_user, tmp_path: Path
):
    with irods_server.session() as s:
        assert ".".join(map(str, s.server_version)) == irods_server.presents
    before = irods_server.unclean_disconnects()
    name, user_session = irods_user()
    target = f"/tempZone/home/{name}/synced"
    src = make_tree(tmp_path / "src", 12, depth=1)
    await ingest.start(1)
    job = ingest.configured(src, op=op, as_user=name)
    job.target = target
    job = await ingest.run(job)
    assert job.counters["files_created"] == 12 and job.counters["files_failed"] == 0, job.counters
    if op == "PUT_APPEND":
        append(src / "2", b" appended")
    else:
        (src / "2").write_text("changed content")
    again = await ingest.rerun(job)
    c = again.counters
    if op != "REGISTER_SYNC":
        assert (c["files_failed"], c["files_modified"], c["files_skipped"]) == (0, 1, 11), c
        with user_session.data_objects.open(f"{target}/2", "r") as f:
            assert f.read() == (b"ii appended" if op == "PUT_APPEND" else b"changed content")
        [replica] = user_session.data_objects.get(f"{target}/2").replicas
        assert (replica.status, replica.size) == ("1", 11 if op == "PUT_APPEND" else 15)
    else:
        assert (c["files_failed"], c["files_modified"], c["files_skipped"]) == (1, 0, 11), c
    assert user_session.data_objects.get(f"{target}/5").owner_name == name
    await ingest.stop()  # the owner's child exits at end of file, after logging out
    await asyncio.sleep(0.5)  # the server logs a connection after it sees the socket close
    assert irods_server.unclean_disconnects() == before
    if op != "REGISTER_SYNC":
        irods_session.collections.remove(target, recurse=True, force=True)
    else:
        irods_session.collections.unregister(target, recurse=True)
