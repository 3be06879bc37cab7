"""kill -9 in the middle of a large put or get, then rerun: only missing ranges move."""

import base64
import hashlib
import json
import os
import signal
from pathlib import Path

from tests.isync.conftest import spawn

MiB = 1024 * 1024
SIZE = 48 * MiB
SLOW = ["--json", "--bwlimit", "16M", "--buffer-size", "1M", "-N", "4"]


def kill_after_progress(args, environ, at_least: int) -> int:
    """Start the CLI, SIGKILL it once --json shows `at_least` bytes done; return bytes seen."""
    proc = spawn(args, environ)
    seen = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["type"] == "progress":
                seen = event["bytes_done"]
                if seen >= at_least:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the transfer finished before it was killed"
    return seen


def rerun_report(run_isync, tmp_path, *args):
    report = tmp_path / "report.json"
    result = run_isync("--report", str(report), *args)
    assert result.code == 0, result.stderr
    (outcome,) = json.loads(report.read_text())["outcomes"]
    return outcome


def test_killed_put_resumes(tmp_path, isync_environ, run_isync, irods_session, coll):
    src = tmp_path / "big.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    state = str(tmp_path / "journals")
    args = [*SLOW, "--resume-dir", state, str(src), f"i:{coll}/"]
    seen = kill_after_progress(args, isync_environ, 12 * MiB)
    assert seen < SIZE
    assert not irods_session.data_objects.exists(f"{coll}/big.bin")  # never looks complete
    assert irods_session.data_objects.exists(f"{coll}/.big.bin.isync-part")

    outcome = rerun_report(run_isync, tmp_path, "-K", "--resume-dir", state, str(src), f"i:{coll}/")
    assert outcome["outcome"] == "transferred" and outcome["resumed"] is True
    print(f"put: killed after {seen} bytes; rerun re-sent {outcome['bytes_sent']} of {SIZE}")
    assert 0 < outcome["bytes_sent"] <= SIZE - seen + 4 * MiB
    obj = irods_session.data_objects.get(f"{coll}/big.bin")
    assert obj.size == SIZE
    with obj.open("r") as fh:
        assert fh.read() == data
    assert not irods_session.data_objects.exists(f"{coll}/.big.bin.isync-part")
    assert not list(Path(state).glob("*.json"))


def test_killed_get_resumes(tmp_path, isync_environ, run_isync, coll):
    src = tmp_path / "big.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    assert run_isync(str(src), f"i:{coll}/").code == 0
    dst = tmp_path / "down" / "big.bin"
    dst.parent.mkdir()
    seen = kill_after_progress(
        [*SLOW, "-K", f"i:{coll}/big.bin", str(dst)], isync_environ, 12 * MiB
    )
    assert not dst.exists()  # never looks complete
    assert Path(f"{dst}.isync-part").exists() and Path(f"{dst}.isync-partial").exists()

    outcome = rerun_report(run_isync, tmp_path, "-K", f"i:{coll}/big.bin", str(dst))
    assert outcome["outcome"] == "transferred" and outcome["resumed"] is True
    print(f"get: killed after {seen} bytes; rerun re-sent {outcome['bytes_sent']} of {SIZE}")
    assert 0 < outcome["bytes_sent"] <= SIZE - seen + 4 * MiB
    assert dst.read_bytes() == data
    assert outcome["checksum"] == "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert not Path(f"{dst}.isync-part").exists() and not Path(f"{dst}.isync-partial").exists()


def test_sigint_stops_cleanly_with_130_and_resumes(tmp_path, isync_environ, run_isync, coll):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    state = str(tmp_path / "journals")
    proc = spawn([*SLOW, "--resume-dir", state, str(src), f"i:{coll}/"], isync_environ)
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "progress" and event["bytes_done"] >= 8 * MiB:
            proc.send_signal(signal.SIGINT)
            break
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    outcome = rerun_report(run_isync, tmp_path, "--resume-dir", state, str(src), f"i:{coll}/")
    assert outcome["resumed"] is True and outcome["bytes_sent"] < SIZE
