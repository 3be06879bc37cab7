"""``stager ingest`` usage errors say what happened and what to do (issue 12)."""

from __future__ import annotations

import io
import json

from services.ingest.cli import Env, main


def _run(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Env(out, err))
    return code, err.getvalue()


def test_a_missing_root_and_bad_append_json_say_what_to_give(tmp_path, owner, monkeypatch):
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    db = ["--db-url", f"sqlite+aiosqlite:///{tmp_path}/x.sqlite", "--owner", owner.pw_name]
    code, err = _run("start", str(tmp_path / "nope"), "/tempZone/home/rods/x", *db)
    assert code == 2
    assert "is not a directory: give the path of an existing directory" in err
    code, err = _run("start", str(tmp_path), "/tempZone/x", "--append_json", "{nope", *db)
    assert code == 2 and "--append_json is not JSON" in err and "give a JSON object" in err
    assert "Traceback" not in err
