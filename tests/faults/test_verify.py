"""faults/verify: the campaign's checks catch planted bad state (and pass on good state).

Each bad thing is made for real on the iRODS test server (through python-irodsclient) or
on local disk, next to jobs that are fine, and the verifier must name exactly the bad ones.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from faults.campaign import Fault, Result
from faults.plan import JobPlan
from faults.verify import check_transfers, table


def _row(task_id: str, title: str, status: str) -> dict[str, Any]:
    return {"id": task_id, "data": {"title": title}, "status": {"status": status}}


def _upload(session: Any, root: str, key: str, data: bytes, stored: bytes | None = None) -> JobPlan:
    """A completed upload of one file: its source's digest is ``data``'s, the object in
    iRODS holds ``stored`` (default: the same bytes)."""
    job = JobPlan(key, "upload", "small", f"/src/{key}/file.dat", f"irods:{root}/up/{key}")
    job.landing = f"{root}/up/{key}"
    job.files["file.dat"] = (len(data), hashlib.sha256(data).hexdigest())
    session.collections.create(job.landing)
    with session.data_objects.open(f"{job.landing}/file.dat", "w") as fh:
        fh.write(data if stored is None else stored)
    return job


def _download(session: Any, root: str, key: str, data: bytes, local: Path) -> JobPlan:
    job = JobPlan(key, "download", "small", f"irods:{root}/src/{key}/file.dat", "")
    session.collections.create(f"{root}/src/{key}")
    with session.data_objects.open(f"{root}/src/{key}/file.dat", "w") as fh:
        fh.write(data)
    target = local / key
    target.mkdir(parents=True)
    (target / "file.dat").write_bytes(data)
    job.dst, job.landing = str(target / "file.dat"), str(target)
    job.files["file.dat"] = (len(data), hashlib.sha256(data).hexdigest())
    return job


@pytest.fixture
def root(irods_session: Any, unique_name: str) -> Any:
    path = f"/tempZone/home/rods/verify-{unique_name}"
    irods_session.collections.create(path)
    yield path
    irods_session.collections.remove(path, recurse=True, force=True)


def _good(irods_session: Any, root: str, tmp_path: Path) -> Result:
    jobs = [
        _upload(irods_session, root, "j0-ok-up", b"fine upload\n" * 100),
        _download(irods_session, root, "j1-ok-dl", b"fine download\n" * 50, tmp_path),
    ]
    final = {j.key: [_row(f"id-{j.key}", j.key, "completed")] for j in jobs}
    return Result(jobs=jobs, faults=[], final=final)


def test_good_state_passes(irods_session: Any, root: str, tmp_path: Path) -> None:
    result = _good(irods_session, root, tmp_path)
    assert check_transfers(result, irods_session, root, {("id-j0-ok-up", 1): [1.0]}) == []


def test_each_planted_fault_is_reported(irods_session: Any, root: str, tmp_path: Path) -> None:
    result = _good(irods_session, root, tmp_path)
    s = irods_session
    # 1. a leftover hidden part object next to a completed upload
    part = _upload(s, root, "j2-part-up", b"with a part\n")
    with s.data_objects.open(f"{part.landing}/.file.dat.isync-part", "w") as fh:
        fh.write(b"half of it")
    # 2. an object whose content differs from its source (same size)
    differs = _upload(s, root, "j3-differs-up", b"A" * 4096, stored=b"B" * 4096)
    # 3. a job that never reached a final state
    stuck = _upload(s, root, "j4-stuck-up", b"never finished\n")
    # 4. a job completed twice by the workers (two task.end completed of one run)
    twice = _upload(s, root, "j5-twice-up", b"done twice\n")
    # 5. a download that left its local part file behind
    dl = _download(s, root, "j6-partial-dl", b"partial\n", tmp_path)
    (Path(dl.landing) / ".file.dat.isync-part").write_bytes(b"x")
    # 6. an object under the upload root that belongs to no job
    s.collections.create(f"{root}/up/nobody")
    with s.data_objects.open(f"{root}/up/nobody/stray.dat", "w") as fh:
        fh.write(b"stray")
    for job, state in ((part, "completed"), (differs, "completed"), (stuck, "active")):
        result.final[job.key] = [_row(f"id-{job.key}", job.key, state)]
    result.final[twice.key] = [_row("id-twice", twice.key, "completed")]
    result.final[dl.key] = [_row(f"id-{dl.key}", dl.key, "completed")]
    # 7. a job submitted and never stored
    lost = JobPlan("j7-lost-up", "upload", "small", "/nowhere", f"irods:{root}/up/j7-lost-up")
    lost.landing = f"{root}/up/j7-lost-up"
    result.jobs += [part, differs, stuck, twice, dl, lost]
    now = time.time()
    result.faults = [Fault("worker SIGKILL", 0.5, wall=now + 1.0)]
    completions = {("id-j0-ok-up", 1): [now], ("id-twice", 1): [now, now + 2.5]}

    v = check_transfers(result, s, root, completions)
    text = "\n".join(v)
    expected = [
        f"{part.landing}/.file.dat.isync-part: part object left behind",
        "j3-differs-up: file.dat does not match its source's sha256",
        "j4-stuck-up (id-j4-stuck-up): not final: active",
        "j5-twice-up (id-twice run 1): ran to completion 2 times, 2.5 s apart "
        "(faults between: worker SIGKILL)",
        f"j6-partial-dl: part file {dl.landing}/.file.dat.isync-part left behind",
        f"{root}/up/nobody/stray.dat: object of no job",
        "j7-lost-up: lost (no job with this title in GET /v1/jobs)",
    ]
    for line in expected:
        assert line in v, f"not reported: {line}\n--- got:\n{text}"
    # the part object is also an unexpected object of a completed job; nothing else
    assert set(v) - set(expected) == {
        f"j2-part-up: unexpected object {part.landing}/.file.dat.isync-part"
    }, text
    # the good jobs are never named
    assert "j0-ok-up" not in text and "j1-ok-dl" not in text


def test_table_shows_in_flight_per_injection() -> None:
    job = JobPlan("j0-small-up", "upload", "small", "/a", "irods:/b")
    f1 = Fault("worker SIGKILL", 0.1, at=3.0, target="worker1", affected={"t1"}, in_flight=9)
    f2 = Fault("worker SIGKILL", 0.6, at=9.5, target="worker2", in_flight=4)
    result = Result(
        jobs=[job], faults=[f1, f2], final={job.key: [_row("t1", job.key, "completed")]}
    )
    out = table(result)
    row = next(line for line in out.splitlines() if line.startswith("worker SIGKILL"))
    assert row.split()[2:5] == ["2", "9/4", "1"], row
    assert "1 completed" in row
    assert any(line.split()[:2] == ["transfer", "9.5"] for line in out.splitlines()), out
