"""Pure logic: compatibility rules, classification, excludes, names, handler loading."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from services.ingest.diff import Action, Replica, classify
from services.ingest.errors import HandlerError
from services.ingest.handlers import EventHandler
from services.ingest.scanner import Excludes, logical_name, scan_dir, walk
from services.ingest.tasks import DirTask, FileBatchTask, FileItem, decode_task, from_wire, to_wire
from shared.ingest.utils import DeleteMode, Operation, delete_mode_is_compatible_with_operation

HANDLERS = Path(__file__).parent / "handlers"


def test_delete_mode_rules_match_the_seed():
    ok = {
        (o, m)
        for o in Operation
        for m in DeleteMode
        if delete_mode_is_compatible_with_operation(m, o)
    }
    assert ok == {
        (Operation.NO_OP, DeleteMode.DO_NOT_DELETE),
        (Operation.REGISTER_SYNC, DeleteMode.DO_NOT_DELETE),
        (Operation.REGISTER_SYNC, DeleteMode.UNREGISTER),
        (Operation.REGISTER_AS_REPLICA_SYNC, DeleteMode.DO_NOT_DELETE),
        (Operation.REGISTER_AS_REPLICA_SYNC, DeleteMode.UNREGISTER),
        (Operation.PUT, DeleteMode.DO_NOT_DELETE),
        (Operation.PUT_SYNC, DeleteMode.DO_NOT_DELETE),
        (Operation.PUT_SYNC, DeleteMode.TRASH),
        (Operation.PUT_SYNC, DeleteMode.NO_TRASH),
        (Operation.PUT_APPEND, DeleteMode.DO_NOT_DELETE),
        (Operation.PUT_APPEND, DeleteMode.TRASH),
        (Operation.PUT_APPEND, DeleteMode.NO_TRASH),
    }


R = Replica(0, "demoResc", "/data/f", 10, 1000)
VAULT = Replica(0, "demoResc", "/vault/f", 10, 1000)


@pytest.mark.parametrize(
    ("replicas", "size", "mtime", "op", "expected"),
    [
        ([], 10, 1000.5, Operation.REGISTER_SYNC, Action.CREATE),
        ([R], 10, 1000.9, Operation.REGISTER_SYNC, Action.SKIP),  # whole seconds
        ([R], 11, 1000, Operation.REGISTER_SYNC, Action.MODIFY),
        ([R], 10, 1001, Operation.REGISTER_SYNC, Action.MODIFY),
        ([VAULT], 99, 5, Operation.PUT, Action.SKIP),  # PUT never touches what exists
        ([VAULT], 10, 1000, Operation.PUT_SYNC, Action.SKIP),
        ([VAULT], 12, 1000, Operation.PUT_SYNC, Action.MODIFY),
        ([VAULT], 12, 1000, Operation.PUT_APPEND, Action.MODIFY),
        ([VAULT], 10, 1000, Operation.NO_OP, Action.SKIP),
    ],
)
def test_classify(replicas, size, mtime, op, expected):
    assert classify(replicas, size, mtime, op, "/data/f") is expected


def test_classify_register_as_replica_looks_under_the_resource():
    put = Replica(0, "demoResc", "/vault/f", 10, 1000)
    mine = Replica(1, "root;leaf", "/data/f", 10, 1000)
    op = Operation.REGISTER_AS_REPLICA_SYNC
    assert classify([put], 10, 1000, op, "/data/f", "root") is Action.MODIFY  # add replica
    assert classify([put, mine], 10, 1000, op, "/data/f", "root") is Action.SKIP
    assert classify([put, mine], 10, 1000, op, "/data/f", "leaf") is Action.SKIP
    assert classify([put, mine], 11, 1000, op, "/data/f", "root") is Action.MODIFY
    assert classify([put, mine], 10, 1000, op, "/data/f", "root", force=True) is Action.MODIFY


def test_excludes(tmp_path):
    for name in ("keep", "skip.tmp", "5"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "cache").mkdir()
    os.symlink(tmp_path / "keep", tmp_path / "ln")
    ex = Excludes.build(["link"], [r".*\.tmp$", str(tmp_path / "5")], [r".*/cache$"])
    listing = scan_dir(str(tmp_path), ex)
    assert sorted(e.name for e in listing.entries) == ["keep", "sub"]
    assert listing.excluded == 4
    assert Excludes.build(["directory"]).excluded("/x", "directory")


@pytest.mark.parametrize(("types", "names"), [(["file"], []), ([], ["(unclosed"])])
def test_bad_excludes_say_what_is_wrong(types, names):
    with pytest.raises(ValueError, match=r"unknown file type|invalid regular expression"):
        Excludes.build(types, names)


def test_unreadable_entries_are_reported_not_listed(tmp_path):
    (tmp_path / "ok").write_text("x")
    bad = tmp_path / "bad"
    bad.write_text("x")
    bad.chmod(0)
    listing = scan_dir(str(tmp_path), Excludes())
    assert [e.name for e in listing.entries] == ["ok"]
    assert listing.unreadable == [str(bad)]
    bad.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_walk_covers_the_tree(tmp_path):
    for d in ("a", "a/b", "c"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f").write_text("x")
    seen = {p for p, _ in walk(str(tmp_path), Excludes())}
    assert seen == {str(tmp_path), *(str(tmp_path / d) for d in ("a", "a/b", "c"))}


def test_logical_names():
    bad = os.fsdecode(b"caf\xe9")
    name, reason = logical_name("/d/" + bad, bad, None)
    assert reason == "UnicodeEncodeError" and name.startswith("irods_UnicodeEncodeError_")
    assert logical_name("/d/ok", "ok", None) == ("ok", None)
    # a base64 with "/" (here from "?" bytes) must not split the name
    slashy = os.fsdecode(b"/d/\xff??")
    name, _ = logical_name(slashy, slashy[3:], None)
    assert "/" not in name and name.endswith("L2Qv_z8_")


def test_non_utf8_paths_survive_the_wire():
    path = os.fsdecode(b"/d/caf\xe9")
    text, b64 = to_wire(path)
    assert b64 is not None and from_wire(text, b64) == path
    task = FileBatchTask(
        task_id="t",
        job="j",
        generation=1,
        dir_path="/d",
        collection="/z/c",
        items=[
            FileItem(
                name=text, name_b64=b64, logical="x", size=1, mtime=1, ctime=1, action="create"
            )
        ],
    )
    back = decode_task(task.model_dump_json().encode())
    assert isinstance(back, FileBatchTask) and back.items[0].os_name == path
    assert isinstance(
        decode_task(
            DirTask(task_id="t", job="j", generation=1, path="/d", collection="/z")
            .model_dump_json()
            .encode()
        ),
        DirTask,
    )


def test_handler_loading():
    handler, _ = EventHandler.from_file(str(HANDLERS / "put.py"))
    assert handler.operation(None, {}) is Operation.PUT
    assert handler.delete_mode({}) is DeleteMode.DO_NOT_DELETE
    assert handler.max_retries(None, {}) == 0 and handler.timeout(None, {}) == 3600
    default = EventHandler.from_source(None)
    assert default.operation(None, {}) is Operation.REGISTER_SYNC


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "syntax error line 1"),
        ("x = 1\n", "defines no class 'event_handler'"),
        ("raise RuntimeError('boom')\n", "failed to load: boom"),
    ],
)
def test_bad_handler_sources(source, message):
    with pytest.raises(HandlerError, match=message):
        EventHandler.from_source(source, "h.py")


TIMEOUT_HOOK = """
from shared.ingest.core import Core

class event_handler(Core):
    @staticmethod
    def timeout(hdlr_mod, logger, meta):
        return meta["limit"]
"""


def test_the_limit_of_a_task_hook_then_job_option_then_3600():
    """automated ingest 0.7.0 (``custom_event_handler.timeout``): the handler's
    ``timeout(hdlr, logger, meta)``, else 3600, the ``soft_time_limit`` of every task. The
    job's ``timeout`` option stands in for 3600; the hook wins over it."""
    assert EventHandler.from_source(None).timeout(None, {}) == 3600
    assert EventHandler.from_source(None, timeout=12.5).timeout(None, {}) == 12.5
    hooked = EventHandler.from_source(TIMEOUT_HOOK, "t.py", timeout=12.5)
    assert hooked.timeout(None, {"limit": 7}) == 7


def test_bad_character_map_is_refused():
    with pytest.raises(HandlerError, match="single characters"):
        EventHandler.from_file(str(HANDLERS / "bad_charmap.py"))


def test_missing_handler_file():
    with pytest.raises(HandlerError, match="cannot read event handler"):
        EventHandler.from_file("/nonexistent/handler.py")


def test_child_replies_are_data_the_worker_checks():
    """What an owner's child sends back is parsed and checked, never trusted as more."""
    import pydantic

    from services.ingest.child import Reply
    from services.ingest.owners import ChildFailed, check_children
    from services.ingest.store import Job
    from services.ingest.tasks import DirTask, child_id

    with pytest.raises(pydantic.ValidationError, match="unknown counters"):
        Reply.model_validate_json('{"id": 1, "counts": {"__class__": 1}}')
    with pytest.raises(pydantic.ValidationError, match="negative"):
        Reply.model_validate_json('{"id": 1, "counts": {"files_created": -5}}')
    job = Job(name="j", root="/r", target="/z/c", generation=3)
    parent = DirTask(task_id="p", job="j", generation=3, path="/r", collection="/z/c")

    def child(tid: str, **kw: Any) -> DirTask:
        base: dict[str, Any] = {
            "task_id": tid,
            "job": "j",
            "generation": 3,
            "path": "/r/a",
            "collection": "/z/c/a",
        }
        return DirTask(**{**base, **kw})

    check_children(job, parent, [child(child_id("p", 0)), child(child_id("p", 1))])
    for bad in (
        child("forged"),
        child(child_id("p", 0), job="other"),
        child(child_id("p", 0), generation=2),
    ):
        with pytest.raises(ChildFailed, match="not this task's child"):
            check_children(job, parent, [bad])
