"""``stager ingest``: the CLI as a user runs it (subprocess), workers in the test loop."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

import pytest

from services.ingest.cli import Env, main
from services.ingest.store import JobState, JobStore
from tests.ingest.conftest import HANDLERS, make_tree

REPO = Path(__file__).resolve().parents[2]


async def stager(ingest, *args: str) -> tuple[int, str, str]:
    """``stager ingest ARGS`` as root, which names the job's owner (``start``)."""
    env = {
        **os.environ,
        **ingest.env(),
        "STAGER_INGEST__DB_URL": f"sqlite+aiosqlite:///{ingest.tmp}/ingest.sqlite",
    }
    if args[0] == "start":
        args = (*args, "--owner", ingest.owner.pw_name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "ingest",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_start_synchronous_with_seed_spellings(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 7)
    await ingest.start(2)
    code, out, err = await stager(
        ingest,
        "start",
        str(src),
        ingest.collection,
        "--job_name",
        "cli-sync",
        "--event_handler",
        str(HANDLERS / "register.py"),
        "--files_per_task",
        "2",
        "--synchronous",
        "--progress",
        "--log_level",
        "INFO",
    )
    assert code == 0, err
    assert out.splitlines()[0] == "cli-sync"
    assert "7/7 files" in err
    assert irods_session.data_objects.exists(f"{ingest.collection}/6")
    code, out, _ = await stager(ingest, "list")
    assert code == 0
    listed = json.loads(out)  # the anchor's fields (tests/ingest/test_parity_cli.py)
    assert [j["job_name"] for j in listed["singlepass"]] == ["cli-sync"]
    assert listed["singlepass"][0]["state"] == "completed"
    code, out, _ = await stager(ingest, "list", "--json")
    assert json.loads(out)["jobs"][0]["counters"]["files_created"] == 7


async def test_synchronous_exits_non_zero_when_a_file_failed(ingest, tmp_path):
    src = make_tree(tmp_path / "src", 3)
    marks = tmp_path / "marks"
    marks.mkdir()
    ingest.give(marks)
    await ingest.start(1)
    code, _, err = await stager(
        ingest,
        "start",
        str(src),
        ingest.collection,
        "--job-name",
        "cli-fail",
        "--event-handler",
        str(HANDLERS / "configurable.py"),
        "--append-json",
        json.dumps({"fail_once_dir": str(marks)}),
        "--synchronous",
    )
    assert code == 1
    assert "3 file(s)" in err


async def test_bad_target_zone_fails_clearly(ingest, tmp_path):
    src = make_tree(tmp_path / "src", 1)
    await ingest.start(1)
    code, _, err = await stager(
        ingest, "start", str(src), "/invalidZone/home/rods/x", "--synchronous"
    )
    assert code == 1
    assert "zone 'invalidZone' does not exist" in err
    assert "Traceback" not in err


async def test_periodic_stop_and_watch(ingest, tmp_path):
    """``-i N --synchronous`` returns at once (as the anchor); ``watch`` of a periodic job
    returns when the pass it follows ends (the anchor's waited until the job was stopped)."""
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    code, out, err = await stager(
        ingest,
        "start",
        str(src),
        ingest.collection,
        "-i",
        "2",
        "--job_name",
        "cli-periodic",
        "--synchronous",
    )
    assert code == 0 and "does not wait for a periodic job" in err
    await ingest.wait("cli-periodic", passes=1)
    code, _, err = await stager(ingest, "watch", "cli-periodic")
    assert code == 0, err
    job = await ingest.store.get("cli-periodic")
    assert job.passes >= 2 and job.state in (JobState.WAITING, JobState.RUNNING)
    code, out, _ = await stager(ingest, "stop", "cli-periodic")
    assert code == 0 and json.loads(out)["state"] == "stopped"
    code, _, err = await stager(ingest, "watch", "cli-periodic")
    assert code == 0 and "was stopped" in err
    assert (await ingest.store.get("cli-periodic")).state is JobState.STOPPED
    code, _, err = await stager(ingest, "stop", "no-such-job")
    assert code == 4 and "no ingest job named 'no-such-job'" in err


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Env(out, err))
    return code, out.getvalue(), err.getvalue()


def test_usage_errors_are_clear(tmp_path, owner, monkeypatch):
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    db = ["--db-url", f"sqlite+aiosqlite:///{tmp_path}/x.sqlite", "--owner", owner.pw_name]
    code, _, err = run_main("start", str(tmp_path / "nope"), "/tempZone/home/rods/x", *db)
    assert code == 2 and "is not a directory" in err
    bad = tmp_path / "bad.py"
    bad.write_text("class event_handler(:\n")
    code, _, err = run_main("start", str(tmp_path), "/tempZone/x", "--event_handler", str(bad), *db)
    assert code == 2 and "syntax error line 1" in err
    code, _, err = run_main("start", str(tmp_path), "/", *db)
    assert code == 2 and "Root may only contain collections which represent zones" in err
    code, _, err = run_main(
        "start", str(tmp_path), "/tempZone/x", "--exclude_file_type", "file", *db
    )
    assert code == 2 and "unknown file type" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("given", "instead"),
    [
        (["--profile"], "Prometheus metrics"),
        (["--profile_filename", "p.log"], "Prometheus metrics"),
        (["--profile-when", "H"], "Prometheus metrics"),
        (["--profile_interval", "2"], "Prometheus metrics"),
        (["--profile_level", "INFO"], "Prometheus metrics"),
        (["--redis_host", "r"], "--db_url"),
        (["--redis-port", "6380"], "--db_url"),
        (["--redis_db", "1"], "--db_url"),
        (["--list_dir"], "omit it"),
        (["--scan_dir_list"], "omit it"),
    ],
)
def test_unimplemented_anchor_options_are_refused(tmp_path, owner, monkeypatch, given, instead):
    """An anchor option this ingest does not implement is a usage error (exit 2, one line,
    naming it and what to use instead), never accepted and ignored; no job is written."""
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    store = tmp_path / "x.sqlite"
    db = ["--db-url", f"sqlite+aiosqlite:///{store}", "--owner", owner.pw_name]
    code, out, err = run_main("start", str(tmp_path), "/tempZone/x", *given, *db)
    name = given[0].lstrip("-").replace("-", "_")
    assert code == 2, err
    assert err.startswith(f"stager ingest: --{name} is not supported: ") and instead in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == "" and not store.exists()


def test_start_rechecks_roots_and_owner(tmp_path, owner, monkeypatch, unix_user):
    """The CLI applies the workers' rules before it writes a job: the root under the
    allowed prefixes (symlinks resolved), and an owner that is a personal account."""
    db = ["--db-url", f"sqlite+aiosqlite:///{tmp_path}/x.sqlite"]
    target = "/tempZone/home/rods/x"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/root")
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(allowed)]))
    as_owner = ["--owner", owner.pw_name]
    code, _, err = run_main("start", "/root", target, *db, *as_owner)
    assert code == 2 and "root /root is not under an allowed ingest root" in err
    code, _, err = run_main("start", str(allowed / "escape"), target, *db, *as_owner)
    assert code == 2 and "(resolved: /root)" in err
    code, _, err = run_main("start", str(allowed), target, *db)
    assert code == 2 and "name the Unix user the job runs as with --owner" in err
    code, _, err = run_main("start", str(allowed), target, *db, "--owner", "root")
    assert code == 5 and "root" in err
    nologin = unix_user(login_shell="/usr/sbin/nologin")
    code, _, err = run_main("start", str(allowed), target, *db, "--owner", nologin.pw_name)
    assert code == 5 and "no-login account" in err
    code, out, err = run_main("start", str(allowed), target, *db, *as_owner, "--job_name", "ok")
    assert code == 0 and out == "ok\n", err
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps(["/"]))
    code, _, err = run_main("start", str(allowed), target, *db, *as_owner)
    assert code == 2 and "'/' would allow every directory" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "given",
    [["--restart_queue", "mine"], ["--path-queue", "p2"], ["--file_queue", "fast"]],
)
def test_own_queue_names_are_refused_saying_what_to_do_instead(tmp_path, owner, monkeypatch, given):
    """automated ingest 0.7.0 routes a job's tasks to the celery queues it names
    (``irods_sync start --restart_queue/--path_queue/--file_queue``, defaults restart, path,
    file) for workers started with ``-Q``. Here every worker of a job store consumes the
    same pair of queues, so another name is a usage error (exit 2) that says how to give
    jobs their own workers; the defaults are accepted. No job is written."""
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    store = tmp_path / "x.sqlite"
    db = ["--db-url", f"sqlite+aiosqlite:///{store}", "--owner", owner.pw_name]
    code, out, err = run_main("start", str(tmp_path), "/tempZone/x", *given, *db)
    name = given[0].lstrip("-").replace("-", "_")
    assert code == 2, err
    assert err.startswith(f"stager ingest: --{name} {given[1]}: a job cannot have its own queues")
    assert "STAGER_INGEST__DB_URL and STAGER_BROKER__PREFIX" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == "" and not store.exists()
    defaults = ["--restart_queue", "restart", "--path_queue", "path", "--file_queue", "file"]
    code, out, err = run_main("start", str(tmp_path), "/tempZone/x", *defaults, *db)
    assert code == 0, err


def test_timeout_option_is_stored(tmp_path, owner, monkeypatch):
    """``--timeout`` (the anchor's before its handler hook replaced it): the job's limit
    for a handler without ``timeout()``; not a positive number: exit 2."""
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    url = f"sqlite+aiosqlite:///{tmp_path}/x.sqlite"
    db = ["--db-url", url, "--owner", owner.pw_name]
    code, _, err = run_main("start", str(tmp_path), "/tempZone/x", "--timeout", "0", *db)
    assert code == 2 and "timeout" in err and "Traceback" not in err, err
    code, _, err = run_main(
        "start", str(tmp_path), "/tempZone/x", "--timeout", "90", "--job_name", "t", *db
    )
    assert code == 0, err

    async def stored() -> float | None:
        store = await JobStore.open(url)
        try:
            return (await store.get("t")).options.timeout
        finally:
            await store.close()

    assert asyncio.run(stored()) == 90
