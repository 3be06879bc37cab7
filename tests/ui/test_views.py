"""How the page's requests become API jobs, and how API jobs are shown."""

from __future__ import annotations

from typing import Any

import pytest

from services.ui.sessions import Repository, Session
from services.ui.views import Transfer, build_jobs, isync_command, job_view, paged
from shared.errors import InvalidInput, Unauthenticated


def session(with_repo: bool = True) -> Session:
    s = Session(id_hash="h", csrf="c", created=0, expires=1, user="stgalice")
    if with_repo:
        s.repository = Repository(user="u1", envelope="stgenv2.k.b.w.n.c")
    return s


def test_one_job_per_item_with_the_envelope_and_the_irods_prefix() -> None:
    up = Transfer(
        direction="upload", sources=["/p/data/a.txt", "/p/data/sub/"], destination="/z/home/u1/in"
    )
    jobs = build_jobs(session(), up)
    assert [(j["srcURL"], j["dstURL"]) for j in jobs] == [
        ("/p/data/a.txt", "irods:/z/home/u1/in/"),
        ("/p/data/sub", "irods:/z/home/u1/in/"),  # a folder lands as DEST/sub
    ]
    assert {j["stagerUser"] for j in jobs} == {"stgalice"} and jobs[0]["drUser"] == "u1"
    assert {j["drPass"] for j in jobs} == {"stgenv2.k.b.w.n.c"}
    down = Transfer(direction="download", sources=["irods:/z/home/u1/in/sub"], destination="/p/x")
    (job,) = build_jobs(session(), down)
    assert (job["srcURL"], job["dstURL"]) == ("irods:/z/home/u1/in/sub", "/p/x/")
    assert job["title"] == "sub"


def test_jobs_need_the_repository_login_and_sane_paths() -> None:
    t = Transfer(direction="upload", sources=["/p/a"], destination="/z")
    with pytest.raises(Unauthenticated, match="repository"):
        build_jobs(session(with_repo=False), t)
    with pytest.raises(InvalidInput, match="absolute"):
        build_jobs(session(), Transfer(direction="upload", sources=["p/a"], destination="/z"))
    with pytest.raises(InvalidInput, match="root folder"):
        build_jobs(session(), Transfer(direction="upload", sources=["/"], destination="/z"))
    assert (
        build_jobs(
            session(), Transfer(direction="upload", sources=["/p/../etc/x"], destination="/z")
        )[0]["srcURL"]
        == "/etc/x"
    )  # normalised; the worker runs it as the user anyway


def test_progress_counts_bytes_and_never_failed_files_as_done() -> None:
    api: dict[str, Any] = {
        "id": "j1",
        "timestamps": {"createdAt": 10, "completedAt": -62135596800, "lastFailedAt": 20},
        "data": {"title": "t", "srcURL": "/a", "dstURL": "irods:/b"},
        "status": {
            "status": "active",
            "attempts": 2,
            "progress": {
                "total": 4,
                "processed": 1,
                "failed": 2,
                "bytesTotal": 1000,
                "bytesDone": 250,
                "rate": 50.0,
                "eta": 15.0,
            },
        },
    }
    v = job_view(api)
    assert v["percent"] == 25.0 and v["files"] == {"total": 4, "done": 1, "failed": 2}
    assert v["updated"] == 20 and not v["final"] and v["eta"] == 15.0
    api["status"]["progress"] = {"total": 4, "processed": 1, "failed": 3}
    assert job_view(api)["percent"] == 25.0  # files only: 1 of 4, the failed ones are not done
    api["status"]["status"] = "completed"
    assert job_view(api)["restartable"] and job_view(api)["final"]


def test_isync_command_is_shell_quoted() -> None:
    cmd = isync_command("/p/<img src=x>.txt", "irods:/z/it's here/")
    assert cmd == "isync -r -K -P '/p/<img src=x>.txt' 'irods:/z/it'\"'\"'s here/'"


def test_pages_list_folders_first() -> None:
    entries = [
        {"name": n, "type": t} for n, t in [("b", "regular"), ("A", "dir"), ("a", "regular")]
    ]
    page = paged("/x", entries, 1, 1)
    assert page["total"] == 3 and [e["name"] for e in page["entries"]] == ["a"]
    assert paged("/", entries, 0, 10)["parent"] is None


def test_failed_files_show_a_hint_for_their_kind() -> None:
    from services.ui.views import FILE_ERROR_HINTS
    from shared.errors import FILE_ERROR_KINDS

    assert set(FILE_ERROR_HINTS) == set(FILE_ERROR_KINDS)
    assert len(set(FILE_ERROR_HINTS.values())) == len(FILE_ERROR_HINTS)  # each its own
    errors = [
        {"path": "/p/a", "error": "irods:/z/a: checksum mismatch", "kind": "checksum_mismatch"},
        {"path": "/p/b", "error": "old report, no kind"},
        {"path": "/p/c", "error": "from a newer API", "kind": "gremlins"},
    ]
    api = {"id": "j", "data": {}, "status": {"status": "archived", "fileErrors": errors}}
    shown = job_view(api)["fileErrors"]
    assert [e["kind"] for e in shown] == ["checksum_mismatch", "other", "other"]
    assert shown[0]["hint"] == FILE_ERROR_HINTS["checksum_mismatch"]
    assert "copy it anew" in shown[0]["hint"] and shown[1]["hint"] == FILE_ERROR_HINTS["other"]
    assert job_view({"id": "j", "status": {}})["fileErrors"] is None  # the list view has none
