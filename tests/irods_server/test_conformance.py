"""The conformance runner: skip list, per-test results, the summary line."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from pathlib import Path

import irods.test
import pytest

from devtools.irods_server import conformance, conformance_sandbox
from devtools.irods_server.launcher import REPO_ROOT

KINDS = ("needs the rule engine", "not a real-zone pass", "not implemented yet")


def test_skip_list_entries_all_have_reasons() -> None:
    skips = conformance.load_skips()
    assert skips, "the skip list should not be empty"
    for test_id, reason in skips.items():
        assert test_id.split(".")[0] in conformance.MODULES
        assert reason.startswith(KINDS), f"{test_id}: reason of an unknown kind: {reason}"


def test_runner_covers_every_module_of_the_real_zone_list() -> None:
    real = conformance.load_real_zone_passes()
    assert len(real) == 275
    assert {t.split(".")[0] for t in real} == set(conformance.MODULES)
    assert len(conformance.MODULES) == 22


def test_real_zone_passes_are_skipped_only_for_the_rule_engine_or_as_unimplemented() -> None:
    """A test that passes on a real zone may not be skipped as 'not a real-zone pass'."""
    skips = conformance.load_skips()
    for tid in conformance.load_real_zone_passes():
        parts = tid.split(".")
        keys = [tid, ".".join(parts[:2]), parts[0]]
        reason = next((skips[k] for k in keys if k in skips), None)
        if reason is not None:
            assert not reason.startswith("not a real-zone pass"), tid


def test_compare_with_real_zone() -> None:
    real = ["m.C.a", "m.C.b", "m.C.c", "m.C.d", "other.C.x"]
    outcomes = {"m.C.a": "passed", "m.C.b": "skipped", "m.C.c": "failed"}
    fared, missing = conformance.compare_with_real_zone(outcomes, ["m"], real)
    assert fared == {"passed": 1, "skipped": 1, "failed": 1, "not run": 1}
    assert missing == ["m.C.c", "m.C.d"]


def test_skip_list_without_reason_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "skips.toml"
    bad.write_text('[skip]\n"file_test.X.test_y" = ""\n')
    with pytest.raises(ValueError, match="reason"):
        conformance.load_skips(bad)


def test_apply_skips_and_json_results(tmp_path: Path) -> None:
    class Sample(unittest.TestCase):  # defined here so that pytest does not collect it
        def test_a(self) -> None:
            pass

        def test_b(self) -> None:
            self.fail("boom")

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Sample)
    first = next(conformance._iter_tests(suite))
    tid = conformance.short_id(first)
    conformance.apply_skips(suite, {tid: "listed on purpose"})
    out = tmp_path / "r.jsonl"
    with open(out, "w") as f:
        suite.run(conformance.JsonResult(f, timeout=30))
    rows = {r["id"].rsplit(".", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["test_a"]["outcome"] == "skipped"
    assert rows["test_a"]["detail"] == "listed on purpose"
    assert rows["test_b"]["outcome"] == "failed"


def test_module_skip_entry_skips_every_class_of_the_module(tmp_path: Path) -> None:
    class Sample(unittest.TestCase):
        def test_a(self) -> None:
            pass

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Sample)
    module = conformance.short_id(next(conformance._iter_tests(suite))).split(".")[0]
    conformance.apply_skips(suite, {module: "not implemented yet: everything"})
    out = tmp_path / "r.jsonl"
    with open(out, "w") as f:
        suite.run(conformance.JsonResult(f, timeout=30))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["skipped"]


def test_each_module_gets_a_fresh_server_and_home() -> None:
    """The first module deletes ~/.irods/.irodsA and leaves a user and an object behind;
    the second passes only if it sees none of that (a shared HOME or server fails it)."""
    cmd = [sys.executable, "-m", "devtools.irods_server.conformance", "--retries", "0"]
    cmd += ["--package", "tests.irods_server.conformance_probe", "--no-skips"]
    proc = subprocess.run(
        [*cmd, "--modules", "breaks_env", "checks_env"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "breaks_env: 1 passed, 0 failed, 0 skipped" in proc.stdout
    assert "checks_env: 1 passed, 0 failed, 0 skipped" in proc.stdout


def test_runs_a_prc_module_against_a_fresh_server() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devtools.irods_server.conformance", "--modules", "file_test"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "conformance against the test server presenting as iRODS 4.3.4 (the default)"
    assert re.fullmatch(r"file_test: \d+ passed, 0 failed, \d+ skipped \(\d+s\)", lines[1])
    assert (
        lines[2]
        == "real-zone passes of these modules: 4; here 4 passed, 0 skipped with a reason, 0 neither"
    )
    m = re.fullmatch(r"(\d+) passed, (\d+) failed, (\d+) skipped \(1 modules, \d+s\)", lines[-1])
    assert m is not None and int(m.group(1)) >= 4 and m.group(2) == "0"
    assert proc.returncode == 0


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to run as an account)")


def _run_probes(modules: list[str], *extra: str, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", "devtools.irods_server.conformance", "--retries", "0"]
    cmd += ["--package", "tests.irods_server.conformance_probe", "--no-skips", *extra]
    proc = subprocess.run(
        [*cmd, "--modules", *modules],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@needs_root
def test_modules_run_as_the_account_with_a_tmp_of_their_own() -> None:
    """Run as root, the module runs as the unprivileged account (its .irodsA readable and
    valid for it), does not see a root-owned entry of the machine's /tmp, and what it
    leaves in its /tmp is not in the machine's afterwards; what it writes into
    python-irodsclient's test-data (as pool_test does) does not reach the installed one."""
    tag = uuid.uuid4().hex[:12]
    foreign = Path("/tmp") / f"conformance-probe-foreign-{tag}"
    leftover = Path("/tmp") / f"conformance-probe-leftover-{tag}"
    foreign.mkdir()
    env = dict(os.environ)
    env.update(
        CONFORMANCE_PROBE_ACCOUNT=conformance_sandbox.RUN_AS,
        CONFORMANCE_PROBE_FOREIGN=foreign.name,
        CONFORMANCE_PROBE_LEFTOVER=leftover.name,
    )
    try:
        out = _run_probes(["checks_account"], env=env)
    finally:
        foreign.rmdir()
    assert "checks_account: 1 passed, 0 failed, 0 skipped" in out
    assert not leftover.exists()
    assert not (Path(irods.test.__file__).parent / "test-data" / leftover.name).exists()
    assert pwd.getpwnam(conformance_sandbox.RUN_AS).pw_uid != 0


def test_each_presentation_runs_the_suite() -> None:
    """--presents 4.3.4 5.0.2: the probe is skipped below iRODS 5 and passes on 5.0.2 (its
    access time read through the 5.0 column), counted per presentation and in total."""
    out = _run_probes(["needs_five"], "--presents", "4.3.4", "5.0.2").splitlines()
    first = out.index("conformance against the test server presenting as iRODS 4.3.4")
    second = out.index("conformance against the test server presenting as iRODS 5.0.2")
    assert out[first + 1].startswith("needs_five: 0 passed, 0 failed, 1 skipped")
    assert out[second + 1].startswith("needs_five: 1 passed, 0 failed, 0 skipped")
    assert out[-1] == "total: 1 passed, 0 failed, 1 skipped"


def test_an_unknown_presentation_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        conformance.parse_args(["--presents", "4.3.4", "4.2.11"])
    assert exc.value.code == 2
    assert "--presents 4.2.11: choose from 4.3.4, 5.0.2" in capsys.readouterr().err


def test_a_terminated_run_stops_its_module_and_server_and_cleans_up() -> None:
    """SIGTERM in the middle of a module: the runner stops the module's child and its
    server, removes its directories, and exits 143."""
    cmd = [sys.executable, "-m", "devtools.irods_server.conformance", "--retries", "0"]
    cmd += ["--package", "tests.irods_server.conformance_probe", "--modules", "sleeps"]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    roots = [Path("/var/tmp"), Path(tempfile.gettempdir())]
    started: list[Path] = []
    deadline = time.monotonic() + 60
    while not started and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        started = [m for r in roots for m in r.glob("irods-conformance-*/sleeps/work/started")]
    assert started, "the probe module never started"
    run_dir = started[0].parents[2]
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "terminated by signal 15; stopped" in err
    assert not run_dir.exists()
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert left.stdout == "", f"processes of the run still running: {left.stdout}"
