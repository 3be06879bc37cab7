"""`isync --help` and usage errors answer before the transfer engine is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import services.isync
from tests.isync.conftest import REPO

_PROBE = """
import io, json, sys
from services.isync.cli import main
from services.isync.environment import Environment
out, err = io.StringIO(), io.StringIO()
code = main(sys.argv[1:], Environment(stdout=out, stderr=err, environ={}))
heavy = sorted(m for m in ("irods", "irods.session", "services.isync.engine") if m in sys.modules)
slow = sorted(m for m in ("pydantic", "pydantic_core", "shared.errors") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "slow": slow, "out": out.getvalue()[:40]}))
"""


def _probe(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_help_does_not_import_the_engine() -> None:
    result = _probe("--help")
    assert result["code"] == 0
    assert str(result["out"]).startswith("usage: isync")
    assert result["heavy"] == []


def test_help_does_not_import_pydantic() -> None:
    # pydantic's import is most of what `isync --help` would cost (84 -> 56 ms median)
    result = _probe("--help")
    assert result["code"] == 0
    assert result["slow"] == []


def test_exit_codes_the_cli_spells_out_match_exit_status() -> None:
    from services.isync import cli
    from shared.errors import ExitStatus

    assert cli._SUCCESS == ExitStatus.SUCCESS
    assert cli._INTERRUPTED == ExitStatus.INTERRUPTED


def test_usage_error_does_not_import_the_engine() -> None:
    result = _probe("--streams", "nope", "a", "i:b")
    assert result["code"] == 2
    assert result["heavy"] == []


def test_public_names_still_resolve() -> None:
    for name in services.isync.__all__:
        assert getattr(services.isync, name) is not None


#: What a plain put never needs: the progress bar (-P), settings, logging, crypto (an
#: envelope password), the services' web and broker stacks. Each costs start-up time.
_NOT_FOR_A_PUT = (
    "rich",
    "pydantic_settings",
    "structlog",
    "cryptography",
    "aiohttp",
    "aio_pika",
    "sqlalchemy",
)

_PUT_PROBE = """
import gc, io, json, os, sys
from services.isync.cli import main
from services.isync.environment import Environment
err = io.StringIO()
code = main(sys.argv[2:], Environment(stdout=io.StringIO(), stderr=err, environ=dict(os.environ)))
extra = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
gc_state = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
print(json.dumps({"code": code, "extra": extra, "err": err.getvalue(), "gc": gc_state}))
"""


def _put_probe(src: Path, dst: str, environ: dict[str, str]) -> dict[str, Any]:
    """One plain put by `main` in a fresh interpreter; what it imported and the gc state."""
    done = subprocess.run(
        [sys.executable, "-c", _PUT_PROBE, ",".join(_NOT_FOR_A_PUT), str(src), dst],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
        cwd=REPO,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, result["err"]
    return result


def test_plain_put_imports_only_what_it_needs(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str
) -> None:
    # pydantic itself is on this path (shared.irods' account and isync's models are
    # pydantic models); this pins the rest of what a put must not grow into
    irods_session.collections.create(coll)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1024)
    result = _put_probe(src, f"i:{coll}/f.bin", isync_environ)
    assert result["extra"] == [], result
    assert irods_session.data_objects.get(f"{coll}/f.bin").size == 1024


def test_engine_imports_run_without_the_collector_then_it_runs_again(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str
) -> None:
    # what the imports made is frozen (never scanned again); collection is back on after
    irods_session.collections.create(coll)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1024)
    gc_state = _put_probe(src, f"i:{coll}/f.bin", isync_environ)["gc"]
    assert gc_state["enabled"] is True, gc_state
    assert gc_state["frozen"] > 10_000, gc_state  # the engine's modules and their objects
