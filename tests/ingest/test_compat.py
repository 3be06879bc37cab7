"""The anchor's 35 example event handlers, run as shipped (import lines changed only).

Each example (``tests/ingest/anchor_examples/``, automated ingest 0.7.0) runs against the
iRODS test server through real workers, RabbitMQ and the job owner's child, and each test
checks what the anchor's own test of that example checks
(``irods_capability_automated_ingest/test/test_irods_sync.py``: the test named in each
docstring), or, where the anchor has none, the example's documented effect. The anchor's
fixed names are kept: its tree of ``NFILES`` files ``0..9`` holding ``i`` times "i", the
resource hierarchy ``regiResc2Root`` (random) > ``regiResc2`` (random) > ``regiResc2a``,
``regiResc2b`` (unixfilesystem), ``--files_per_task 1`` and ``/tmp/a`` of the pre/post job
examples. The anchor's ``failures``/``retries`` Redis keys are the job's counters here
(``None`` in the anchor: no failure; 0 here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from irods.exception import ResourceDoesNotExist

from services.ingest.store import IngestOptions, Job, JobState
from tests.ingest.conftest import IngestHarness

EXAMPLES = Path(__file__).parent / "anchor_examples"
NFILES = 10
ROOT, NONLEAF, LEAF_A, LEAF_B = "regiResc2Root", "regiResc2", "regiResc2a", "regiResc2b"
LEAVES = [LEAF_A, LEAF_B]
DEFAULT = "demoResc"
PRE_POST_FILE = Path("/tmp/a")  # the anchor's pre_job.py/post_job.py write it
#: sha256 of each example as shipped upstream (commit d15b750, v0.7.0)
UPSTREAM_SHA256 = {
    name.removesuffix(".py"): digest
    for digest, name in (
        line.split()
        for line in (EXAMPLES / "UPSTREAM.sha256").read_text().splitlines()
        if line and not line.startswith("#")
    )
}


def upstream_text(text: str) -> str:
    """A vendored example with its import lines as shipped."""
    compat = "from services.ingest.compat"
    text = text.replace(f"{compat} import redis_key", "from .. import redis_key")
    text = text.replace(
        f"{compat}.redis_utils import get_redis\n{compat}.core",
        f"from ..redis_utils import get_redis\n{compat}.core",
    )
    return re.sub(
        r"^from services\.ingest\.compat\.",
        "from irods_capability_automated_ingest.",
        text,
        flags=re.M,
    )


def test_vendored_examples_differ_only_in_imports() -> None:
    vendored = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert vendored == sorted(UPSTREAM_SHA256)
    assert len(vendored) == 35
    for name in vendored:
        text = (EXAMPLES / f"{name}.py").read_text()
        for line in text.splitlines():
            if line.startswith(("from ", "import ")):
                assert "irods_capability_automated_ingest" not in line, (name, line)
        digest = hashlib.sha256(upstream_text(text).encode()).hexdigest()
        assert digest == UPSTREAM_SHA256[name], f"{name}.py differs from upstream beyond imports"


# --- the anchor's set-up ------------------------------------------------------------------


@pytest.fixture(scope="session")
def hierarchy(irods_server: Any) -> list[str]:
    """The anchor's HIERARCHY1 resources (regiResc2Root > regiResc2 > regiResc2a/b)."""
    with irods_server.session() as session:
        try:
            session.resources.get(ROOT)
        except ResourceDoesNotExist:
            base = Path(tempfile.mkdtemp(prefix="stager-compat-vaults-"))
            session.resources.create(ROOT, "random")
            session.resources.create(NONLEAF, "random")
            session.resources.add_child(ROOT, NONLEAF)
            for leaf in LEAVES:
                vault = base / leaf
                vault.mkdir()
                session.resources.create(leaf, "unixfilesystem", host="localhost", path=str(vault))
                session.resources.add_child(NONLEAF, leaf)
    return LEAVES


def create_files(src: Path, nfiles: int = NFILES) -> Path:
    src.mkdir(parents=True, exist_ok=True)
    for i in range(nfiles):
        (src / str(i)).write_text("i" * i)
    return src


def recreate_files(src: Path, nfiles: int = NFILES) -> None:
    """The anchor's recreate_files (``i*2+1`` times "i"), a whole second later at least."""
    for i in range(nfiles):
        path = src / str(i)
        before = path.stat().st_mtime
        path.write_text("i" * (i * 2 + 1))
        os.utime(path, (before + 10, before + 10))


def anchor_job(
    ingest: IngestHarness,
    example: str,
    root: Path,
    target: str | None = None,
    source: str | None = None,
    **options: Any,
) -> Job:
    """A job with one of the anchor's examples, as the anchor's tests start it."""
    options.setdefault("owner", ingest.owner.pw_name)
    options.setdefault("files_per_task", 1)
    options.setdefault("log_level", "INFO")
    return Job(
        name=f"{example}.{uuid.uuid4().hex[:8]}",
        root=str(root),
        target=target or ingest.collection,
        handler=source if source is not None else (EXAMPLES / f"{example}.py").read_text(),
        handler_label=f"{example}.py",
        options=IngestOptions(**options),
    )


def failures(job: Job) -> int:
    return job.counters["files_failed"] + job.counters["tasks_failed"]


def read(session: Any, path: str, resource: str | None = None) -> str:
    obj = session.data_objects.get(path)
    replica = next(r for r in obj.replicas if resource is None or r.resource_name == resource)
    with session.data_objects.open(path, "r", **{"rescName": replica.resource_name}) as f:
        return f.read().decode()


def replica_on(obj: Any, resources: list[str]) -> Any:
    return next(r for r in obj.replicas if r.resource_name in resources)


def assert_registered(session: Any, src: Path, coll: str, resources: list[str]) -> None:
    """The anchor's do_assert_register: in place, on the resource, size and mtime."""
    assert session.collections.exists(coll)
    for name in os.listdir(src):
        path = src / name
        obj = session.data_objects.get(f"{coll}/{name}")
        replica = obj.replicas[0]
        assert replica.path == os.path.realpath(path)
        assert replica.resource_name in resources
        assert replica.size == path.stat().st_size
        assert int(obj.modify_time.timestamp()) == int(path.stat().st_mtime)
        assert read(session, f"{coll}/{name}") == path.read_text()


def assert_put(session: Any, src: Path, coll: str, resources: list[str]) -> None:
    """The anchor's do_assert_put: copied into a vault of the resource."""
    for name in os.listdir(src):
        path = src / name
        obj = session.data_objects.get(f"{coll}/{name}")
        replica = obj.replicas[0]
        assert replica.resource_name in resources
        assert replica.path != os.path.realpath(path)
        assert replica.path.endswith(coll.split("/", 2)[2] + "/" + name)
        assert read(session, f"{coll}/{name}") == path.read_text()


# --- register, update, register as replica -------------------------------------------------

REGISTER = [
    # example, resources it lands on (None: every file fails, as in the anchor)
    ("register", [DEFAULT]),  # test_register, test_update
    ("register_with_resc_name", [LEAF_A]),  # test_register_with_resc_name, test_update_...
    ("register_root_with_resc_name", LEAVES),  # test_register_root_with_resc_name
    ("register_non_leaf_non_root_with_resc_name", None),  # hierarchy error
    ("replica_with_resc_name", [LEAF_A]),  # test_register_with_as_replica_event_handler_...
    ("replica_root_with_resc_name", LEAVES),
    ("replica_with_non_leaf_non_root_resc_name", None),
]


@pytest.mark.parametrize(("example", "resources"), REGISTER)
async def test_register_examples(ingest, irods_session, tmp_path, hierarchy, example, resources):
    """test_register*/test_update*: registered in place; a rewrite updates size and mtime."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, example, src))
    if resources is None:
        assert failures(job) == NFILES, job.counters
        return
    assert job.state is JobState.COMPLETED and failures(job) == 0, (job.error, job.counters)
    assert job.counters["retries"] == 0
    assert_registered(irods_session, src, ingest.collection, resources)
    recreate_files(src)
    again = await ingest.run(anchor_job(ingest, example, src))
    assert failures(again) == 0 and again.counters["files_modified"] == NFILES, again.counters
    assert_registered(irods_session, src, ingest.collection, resources)


@pytest.mark.parametrize(
    ("example", "resources"),
    [
        ("replica_with_resc_name", [LEAF_A]),  # test_register_as_replica_with_resc_name
        ("replica_root_with_resc_name", LEAVES),  # test_register_as_replica_root_with_...
        ("replica_with_non_leaf_non_root_resc_name", None),  # hierarchy error
    ],
)
async def test_register_as_replica_examples(
    ingest, irods_session, tmp_path, hierarchy, example, resources
):
    """test_register_as_replica_*: after a put, a second replica registered in place."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    put = await ingest.run(anchor_job(ingest, "put", src))
    assert failures(put) == 0, put.counters
    recreate_files(src)
    job = await ingest.run(anchor_job(ingest, example, src))
    if resources is None:
        assert failures(job) == NFILES, job.counters
        return
    assert failures(job) == 0, job.counters
    for name in os.listdir(src):
        path, logical = src / name, f"{ingest.collection}/{name}"
        obj = irods_session.data_objects.get(logical)
        assert len(obj.replicas) == 2
        mine = replica_on(obj, resources)
        other = next(r for r in obj.replicas if r is not mine)
        assert mine.path == str(path.resolve()) != other.path
        assert mine.size == len(path.read_text()) != other.size
        assert read(irods_session, logical, mine.resource_name) == path.read_text()
        assert read(irods_session, logical, other.resource_name) != path.read_text()


# --- put, sync, append ----------------------------------------------------------------------

PUTS = [
    # example, resources (None: every file fails, DIRECT_CHILD_ACCESS), second pass updates
    ("put", [DEFAULT], False),  # test_put, test_no_sync
    ("put_with_resc_name", None, False),  # test_put_with_resc_name
    ("put_root_with_resc_name", LEAVES, False),  # test_put_root_..., test_no_sync_root_...
    ("put_non_leaf_non_root_with_resc_name", None, False),
    ("sync", [DEFAULT], True),  # test_sync
    ("sync_with_resc_name", None, True),  # "identical to test_put_with_resc_name"
    ("sync_root_with_resc_name", LEAVES, True),  # test_sync_root_with_resc_name
    ("sync_non_leaf_non_root_with_resc_name", None, True),
    ("sync_retry", [DEFAULT], True),  # PUT_SYNC with max_retries 3 (documented effect)
    ("append", [DEFAULT], True),  # test_append
    ("append_with_resc_name", None, True),
    ("append_root_with_resc_name", LEAVES, True),  # test_append_root_with_resc_name
    ("append_non_leaf_non_root_with_resc_name", None, True),
]


@pytest.mark.parametrize(("example", "resources", "updates"), PUTS)
async def test_put_examples(
    ingest, irods_session, tmp_path, hierarchy, example, resources, updates
):
    """test_put*/test_sync*/test_append*/test_no_sync*: copied; the second pass (files
    rewritten) updates the objects for PUT_SYNC and PUT_APPEND, not for PUT."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, example, src))
    if resources is None:
        assert failures(job) == NFILES, job.counters
        return
    assert job.state is JobState.COMPLETED and failures(job) == 0, (job.error, job.counters)
    assert_put(irods_session, src, ingest.collection, resources)
    old = {name: (src / name).read_text() for name in os.listdir(src)}
    recreate_files(src)
    again = await ingest.run(anchor_job(ingest, example, src))
    assert failures(again) == 0 and again.counters["retries"] == 0, again.counters
    if updates:
        assert_put(irods_session, src, ingest.collection, resources)
    else:  # test_no_sync: the objects keep their first content
        for name, text in old.items():
            assert read(irods_session, f"{ingest.collection}/{name}") == text
            assert read(irods_session, f"{ingest.collection}/{name}") != (src / name).read_text()


# --- hooks, retries, timeouts, jobs -----------------------------------------------------------


async def test_no_op(ingest, irods_session, tmp_path):
    """test_no_op: no failure, no retry; NO_OP creates nothing."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, "no_op", src))
    assert job.state is JobState.COMPLETED and failures(job) == 0 and job.counters["retries"] == 0
    for name in os.listdir(src):
        assert not irods_session.data_objects.exists(f"{ingest.collection}/{name}")


async def test_timeout(ingest, tmp_path):
    """test_timeout: a 2 s pre_data_obj_create with a 1 s timeout fails every file."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, "timeout", src))
    assert job.counters["files_failed"] == NFILES, job.counters


async def test_no_retry(ingest, tmp_path):
    """test_no_retry: the first call of each file raises and nothing retries it."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, "no_retry", src))
    assert job.counters["files_failed"] == NFILES, job.counters
    assert job.counters["retries"] == 0


async def test_retry(ingest, tmp_path):
    """test_retry: each file fails once (its get_redis count is 0), is retried once and
    then succeeds: no failure, NFILES retries, the count kept in the job store."""
    src = create_files(tmp_path / "a")
    await ingest.start(2)
    job = await ingest.run(anchor_job(ingest, "retry", src))
    assert job.counters["files_failed"] == 0, job.counters
    assert job.counters["retries"] == NFILES


@pytest.fixture
def pre_post_file() -> Any:
    PRE_POST_FILE.unlink(missing_ok=True)
    yield PRE_POST_FILE
    PRE_POST_FILE.unlink(missing_ok=True)


async def test_pre_job(ingest, tmp_path, pre_post_file):
    """test_pre_job: pre_job ran once (its file holds exactly "pre_job")."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    await ingest.run(anchor_job(ingest, "pre_job", src))
    assert pre_post_file.read_text().splitlines(keepends=True) == ["pre_job"]


async def test_post_job(ingest, tmp_path, pre_post_file):
    """test_post_job: several workers, post_job once (the file holds one "post_job")."""
    src = create_files(tmp_path / "a")
    await ingest.start(3)
    await ingest.run(anchor_job(ingest, "post_job", src))
    assert pre_post_file.read_text().splitlines(keepends=True) == ["post_job"]


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_statistics(ingest, tmp_path):
    """statistics.py (no anchor test; documented effect): pre_job stores t0 under the
    job's key, post_job logs the job's failures, retries and elapsed time to the job log.
    (In the anchor, post_job raised TypeError: t0 came back from Redis as bytes.)"""
    src = create_files(tmp_path / "a")
    log = tmp_path / "job.log"
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, "statistics", src, log_filename=str(log)))
    assert job.state is JobState.COMPLETED, job.error
    ends = [line for line in log_lines(log) if line["event"] == "post_job"]
    assert len(ends) == 1, log.read_text()
    end = ends[0]
    assert end["job_name"] == job.name
    assert end["failures"] is None and end["retries"] is None  # the anchor's "none yet"
    assert 0 <= end["time_elasped"] < 3600
    assert end["level"] == "info" and end["logger"] == "irods_sync" and "@timestamp" in end


async def test_metadata(ingest, irods_session, tmp_path):
    """metadata.py (test_adding_metadata_..._issue_100 uses it): each object gets
    ``filesystem::mode``; a modified file's AVU is set to its new mode.

    The new mode must leave the file readable by the job's owner (another Unix user
    than the one writing the tree here; the anchor's worker reads as the tree's owner):
    a mode of 0600 made it unreadable, so it was skipped, not modified (0604 here)."""
    src = create_files(tmp_path / "a")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, "metadata", src))
    assert failures(job) == 0, job.counters
    for name in os.listdir(src):
        obj = irods_session.data_objects.get(f"{ingest.collection}/{name}")
        assert obj.metadata.get_one("filesystem::mode").value == str((src / name).stat().st_mode)
    os.chmod(src / "3", 0o604)
    recreate_files(src)
    again = await ingest.run(anchor_job(ingest, "metadata", src))
    assert failures(again) == 0, again.counters
    assert again.counters["files_unreadable"] == 0, again.counters
    assert again.counters["files_modified"] == NFILES, again.counters
    obj = irods_session.data_objects.get(f"{ingest.collection}/3")
    assert obj.metadata.get_one("filesystem::mode").value == str((src / "3").stat().st_mode)


async def test_register_with_peps(ingest, tmp_path):
    """test_create_peps, test_modify_peps: every hook's line is in the job's log file
    (--log_filename), once each."""
    src = create_files(tmp_path / "a")
    log = tmp_path / "peps.log"
    coll = ingest.collection
    await ingest.start(1)
    first = await ingest.run(anchor_job(ingest, "register_with_peps", src, log_filename=str(log)))
    assert failures(first) == 0, first.counters
    text = log.read_text()
    files = [f"{coll}/{i}" for i in range(NFILES)]
    for msg in [
        *(f"pre_data_obj_create:[{f}]" for f in files),
        *(f"post_data_obj_create:[{f}]" for f in files),
        f"pre_coll_create:[{coll}]",
        f"post_coll_create:[{coll}]",
    ]:
        assert text.count(msg) == 1, msg
    recreate_files(src)
    second = await ingest.run(anchor_job(ingest, "register_with_peps", src, log_filename=str(log)))
    assert failures(second) == 0, second.counters
    text = log.read_text()
    for msg in [
        *(f"pre_data_obj_modify:[{f}]" for f in files),
        *(f"post_data_obj_modify:[{f}]" for f in files),
        f"pre_coll_modify:[{coll}]",
        f"post_coll_modify:[{coll}]",
    ]:
        assert text.count(msg) == 1, msg


def with_operation(example: str, op: str) -> str:
    """The anchor test's create_event_handler_for_operation_from_base_event_handler."""
    text = (EXAMPLES / f"{example}.py").read_text()
    return re.sub(r"= Operation\.REGISTER_SYNC", f"= Operation.{op}", text)


def avus(session: Any, coll: str) -> list[tuple[str, str, str]]:
    items = session.collections.get(coll).metadata.items()
    return sorted((m.name, m.value, m.units) for m in items)


def append_to_files(src: Path) -> None:
    """The anchor tests' ``f.write(f"updating file {i}")`` to every file."""
    for i in range(NFILES):
        with open(src / str(i), "a") as f:
            f.write(f"updating file {i}")


@pytest.mark.parametrize("op", ["REGISTER_SYNC", "PUT", "PUT_SYNC", "PUT_APPEND"])
async def test_coll_create_pre_and_post(ingest, irods_session, tmp_path, op):
    """test_coll_create: the parent of the created target gets exactly the pre and post AVUs."""
    src = create_files(tmp_path / "a")
    parent = ingest.collection
    irods_session.collections.create(parent)
    target = f"{parent}/{op}"
    await ingest.start(1)
    source = with_operation("coll_create_pre_and_post", op)
    job = await ingest.run(anchor_job(ingest, "coll_create_pre_and_post", src, target, source))
    assert failures(job) == 0, job.counters
    assert avus(irods_session, parent) == sorted(
        [("pre_coll_create", target, op), ("post_coll_create", target, op)]
    )


@pytest.mark.parametrize("op", ["REGISTER_SYNC", "PUT_SYNC", "PUT_APPEND"])
async def test_coll_modify_pre_and_post(ingest, irods_session, tmp_path, op):
    """test_coll_modify: an existing target gets the pre/post AVUs of each of two jobs."""
    src = create_files(tmp_path / "a")
    target = f"{ingest.collection}/{op}"
    irods_session.collections.create(target)
    await ingest.start(1)
    source = with_operation("coll_modify_pre_and_post", op)
    first = await ingest.run(anchor_job(ingest, "coll_modify_pre_and_post", src, target, source))
    assert failures(first) == 0, first.counters
    assert len(avus(irods_session, target)) == 2
    append_to_files(src)
    update = anchor_job(ingest, "coll_modify_pre_and_post", src, target, source, ignore_cache=True)
    second = await ingest.run(update)
    assert failures(second) == 0, second.counters
    names = (first.name, second.name)
    assert avus(irods_session, target) == sorted(
        (f"{when}_coll_modify", name, op) for when in ("pre", "post") for name in names
    )


@pytest.mark.parametrize(
    "op", ["REGISTER_SYNC", "REGISTER_AS_REPLICA_SYNC", "PUT", "PUT_SYNC", "PUT_APPEND"]
)
async def test_data_obj_create_pre_and_post(ingest, irods_session, tmp_path, hierarchy, op):
    """test_data_obj_create: the collection gets a pre and a post AVU per created object."""
    src = create_files(tmp_path / "a")
    target = f"{ingest.collection}/{op}"
    irods_session.collections.create(target)
    await ingest.start(1)
    source = with_operation("data_obj_create_pre_and_post", op)
    job = await ingest.run(anchor_job(ingest, "data_obj_create_pre_and_post", src, target, source))
    assert failures(job) == 0, job.counters
    assert avus(irods_session, target) == sorted(
        (f"{when}_data_obj_create", f"{target}/{i}", op)
        for when in ("pre", "post")
        for i in range(NFILES)
    )


@pytest.mark.parametrize("op", ["REGISTER_SYNC", "PUT_SYNC", "PUT_APPEND"])
async def test_data_obj_modify_pre_and_post(ingest, irods_session, tmp_path, op):
    """test_data_obj_modify: no modify AVU after the first job; one pre and one post per
    object after the files were appended to and a second job ran (--ignore_cache)."""
    src = create_files(tmp_path / "a")
    target = f"{ingest.collection}/{op}"
    irods_session.collections.create(target)
    await ingest.start(1)
    source = with_operation("data_obj_modify_pre_and_post", op)
    first = await ingest.run(
        anchor_job(ingest, "data_obj_modify_pre_and_post", src, target, source)
    )
    assert failures(first) == 0, first.counters
    assert avus(irods_session, target) == []
    append_to_files(src)
    update = anchor_job(
        ingest, "data_obj_modify_pre_and_post", src, target, source, ignore_cache=True
    )
    second = await ingest.run(update)
    assert failures(second) == 0, second.counters
    assert avus(irods_session, target) == sorted(
        (f"{when}_data_obj_modify", f"{target}/{i}", op)
        for when in ("pre", "post")
        for i in range(NFILES)
    )


@pytest.mark.parametrize(
    ("example", "put"), [("put_using_char_map", True), ("register_using_char_map", False)]
)
async def test_char_map_examples(ingest, irods_session, tmp_path, example, put):
    """test_irods_sync's character_map tests (Test_irods_sync_UnicodeEncodeError_and_char_map):
    every non-alphanumeric character of a name becomes "_", the original path is kept in
    the ``irods::automated_ingest::character_map`` AVU, and the content arrives.

    The AVU holds the base64 of the source's absolute path, as the anchor stores it and
    its ``assert_metadata_annotation`` reads it (value ``b64encode(abspath)``, units
    ``python3.base64.b64encode(full_path_of_source_file)``)."""
    src = tmp_path / "a"
    src.mkdir()
    odd = src / "my file-1.txt"
    odd.write_text("hello")
    await ingest.start(1)
    job = await ingest.run(anchor_job(ingest, example, src))
    assert failures(job) == 0, job.counters
    coll = irods_session.collections.get(ingest.collection)
    (obj,) = coll.data_objects
    assert re.fullmatch(r"[A-Za-z0-9_]+", obj.name), obj.name
    assert obj.name.startswith("my_file_1_txt")
    avu = obj.metadata.get_one("irods::automated_ingest::character_map")
    expected = base64.b64encode(str(odd.absolute()).encode("utf8", "surrogateescape"))
    assert avu.value == expected.decode()
    assert avu.units == "python3.base64.b64encode(full_path_of_source_file)"
    assert base64.b64decode(avu.value).decode() == str(odd)
    assert read(irods_session, obj.path) == "hello"
    replica = obj.replicas[0]
    assert (replica.path == str(odd)) is not put
