"""S3 as an ingest source, against a real S3-compatible server on loopback (moto's server
mode, with signed requests), our iRODS test server, the real RabbitMQ and in-process workers.

What automated ingest 0.7.0 does and we follow: a source ``/bucket/prefix`` with
``--s3_keypair`` (access key line, secret key line) and the ``--s3_*`` options; an object's
logical path is the target plus its key below the prefix; its physical path (register) is
``/bucket/key``; PUT streams the object into iRODS and checks its ETag (multipart ETags with
``s3_multipart_chunksize_in_mib``); only ``DeleteMode.DO_NOT_DELETE``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from irods.meta import iRODSMeta
from irods.models import Collection, DataObject

from services.api.middleware import error_middleware
from services.ingest import cli, s3
from services.ingest import worker as worker_module
from services.ingest.rest import make_app, principals_allowed
from services.ingest.s3 import ETAG_AVU, EtagCheck, S3Source
from services.ingest.settings import IngestSettings, IngestWorkerSettings
from services.ingest.store import JobState
from shared.errors import InvalidInput, Unauthenticated
from shared.messaging.messages import PrincipalKind
from shared.settings import IngestStoreSettings

MIB = 1024 * 1024


def put(server, bucket: str, key: str, data: bytes, part_size: int | None = None) -> None:
    kwargs = {"part_size": part_size} if part_size else {}
    length = len(data) if not part_size else -1
    server.client.put_object(bucket, key, io.BytesIO(data), length, **kwargs)


def source(server, keypair, **kw) -> S3Source:
    return S3Source(
        keypair=str(keypair),
        endpoint_domain=server.endpoint,
        secure=False,
        **kw,
    )


def read(session, path: str) -> bytes:
    with session.data_objects.open(path, "r") as f:
        return f.read()


# --- without iRODS ------------------------------------------------------------------------


def test_roots_are_bucket_and_folder_prefix():
    assert s3.split_root("/bkt") == ("bkt", "")
    assert s3.split_root("/bkt/") == ("bkt", "")
    assert s3.split_root("/bkt/data/raw/") == ("bkt", "data/raw/")
    assert s3.normal_root("/bkt/data/raw/") == "/bkt/data/raw"
    for bad in ("bkt/x", "/B_ad/x", "/a/x"):
        with pytest.raises(ValueError):
            s3.split_root(bad)


def test_keypair_file_format_and_mode(tmp_path, owner):
    good = tmp_path / "kp"
    good.write_text("AKIDEXAMPLE\nsupersecretvalue123\n")
    os.chmod(good, 0o600)
    assert s3.read_keypair(str(good)) == ("AKIDEXAMPLE", "supersecretvalue123")

    os.chmod(good, 0o644)  # world-readable: refused, naming the file, not its contents
    with pytest.raises(s3.S3Error) as e:
        s3.read_keypair(str(good))
    assert "may be read or written by anyone" in str(e.value) and str(good) in str(e.value)
    assert "supersecretvalue123" not in str(e.value) and "AKIDEXAMPLE" not in str(e.value)

    one = tmp_path / "one"
    one.write_text("supersecretvalue123\n")
    os.chmod(one, 0o600)
    with pytest.raises(s3.S3Error, match="must hold two lines") as e:
        s3.read_keypair(str(one))
    assert "supersecretvalue123" not in str(e.value)
    with pytest.raises(s3.S3Error, match="cannot read"):
        s3.read_keypair(str(tmp_path / "missing"))


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["start", *argv])


def test_cli_takes_the_seeds_s3_options(tmp_path, owner):
    local = IngestWorkerSettings(s3_endpoints=["127.0.0.1:*"])
    kp = tmp_path / "kp"
    kp.write_text("a\nb\n")
    os.chmod(kp, 0o600)
    args = _args(
        "/bkt/some/prefix/",
        "/tempZone/home/rods/x",
        "--s3_keypair",
        str(kp),
        "--s3_endpoint_domain",
        "127.0.0.1:9000",
        "--s3_region_name",
        "eu-west-1",
        "--s3_proxy_url",
        "http://127.0.0.1:3128",
        "--s3_insecure_connection",
        "--s3-multipart-chunksize-in-mib",
        "16",
        "--owner",
        owner.pw_name,
    )
    job = cli.job_from_args(args, local, euid=0)
    assert job.root == "/bkt/some/prefix"
    assert job.options.s3 == S3Source(
        keypair=str(kp),
        endpoint_domain="127.0.0.1:9000",
        region_name="eu-west-1",
        proxy_url="http://127.0.0.1:3128",
        secure=False,
        multipart_chunksize_in_mib=16,
    )
    # the row holds the key pair's path, never its contents
    assert "\nb\n" not in job.model_dump_json()

    defaults = cli.job_from_args(
        _args("/bkt", "/tempZone/x", "--s3_keypair", str(kp), "--owner", owner.pw_name), euid=0
    )
    assert defaults.options.s3 is not None
    assert defaults.options.s3.endpoint_domain == "s3.amazonaws.com"
    assert defaults.options.s3.region_name == "us-east-1"
    assert defaults.options.s3.secure and defaults.options.s3.multipart_chunksize_in_mib == 8

    with pytest.raises(InvalidInput, match="needs --s3_keypair"):
        cli.job_from_args(
            _args("/bkt", "/tempZone/x", "--s3_region_name", "x", "--owner", owner.pw_name), euid=0
        )
    os.chmod(kp, 0o604)
    with pytest.raises(InvalidInput, match="anyone"):
        cli.job_from_args(
            _args("/bkt", "/tempZone/x", "--s3_keypair", str(kp), "--owner", owner.pw_name), euid=0
        )


def test_cli_bad_s3_options_are_usage_errors(tmp_path, owner, capsys):
    kp = tmp_path / "kp"
    kp.write_text("a\nb\n")
    os.chmod(kp, 0o600)
    err = io.StringIO()
    env = cli.Env(stdout=io.StringIO(), stderr=err)
    base = ["start", "/bkt", "/tempZone/x", "--s3_keypair", str(kp), "--owner", owner.pw_name]
    code = cli.main([*base, "--s3_endpoint_domain", "http://127.0.0.1:9000"], env)
    assert code == 2
    assert "no scheme" in err.getvalue() and "Traceback" not in err.getvalue()
    with pytest.raises(SystemExit) as e:  # argparse: 5..5000, as the seed
        cli.main([*base, "--s3_multipart_chunksize_in_mib", "4"], env)
    assert e.value.code == 2


def test_etag_check_recomputes_multipart_etags(s3_server, s3_bucket):
    data = os.urandom(11 * MIB + 123)
    put(s3_server, s3_bucket, "big", data, part_size=5 * MIB)
    put(s3_server, s3_bucket, "small", b"hello")
    etags = {o.object_name: o.etag.strip('"') for o in s3_server.client.list_objects(s3_bucket)}
    assert etags["big"].endswith("-3")
    for key, body in (("big", data), ("small", b"hello")):
        right = EtagCheck(etags[key], 5 * MIB)
        for i in range(0, len(body), 1_000_000):  # pieces that do not align with parts
            right.update(body[i : i + 1_000_000])
        assert right.computed() == etags[key]
    wrong = EtagCheck(etags["big"], 8 * MIB)
    wrong.update(data)
    assert wrong.computed() != etags["big"]


# --- the endpoint allow-list and error texts --------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "secure", "allowed"),
    [
        ("s3.amazonaws.com", True, True),
        ("s3.amazonaws.com:443", True, True),
        ("s3.eu-west-1.amazonaws.com", True, True),
        ("s3.amazonaws.com:8080", True, False),
        ("169.254.169.254", False, False),
        ("127.0.0.1:9000", False, False),
        ("example.org", True, False),
    ],
)
def test_default_allow_list_is_aws_s3_only(endpoint, secure, allowed):
    assert s3.endpoint_allowed(endpoint, s3.DEFAULT_ALLOWED_ENDPOINTS, secure) is allowed


def test_allow_list_patterns_take_ports_and_wildcards():
    allowed = ["minio.lan:9000", "127.0.0.1:*", "*.store.example.org", "[::1]:9000"]
    assert s3.endpoint_allowed("MINIO.lan:9000", allowed)
    assert not s3.endpoint_allowed("minio.lan", allowed)  # the pattern names port 9000
    assert s3.endpoint_allowed("127.0.0.1:1234", allowed)
    assert s3.endpoint_allowed("a.store.example.org", allowed)
    assert not s3.endpoint_allowed("a.store.example.org:8443", allowed)
    assert s3.endpoint_allowed("[::1]:9000", allowed) and not s3.endpoint_allowed("[::1]", allowed)


def test_cli_refuses_endpoints_and_proxies_not_allowed(tmp_path, owner, monkeypatch):
    """``start`` refuses, before it writes a job, an S3 endpoint or proxy the workers may not
    contact (exit 2, one line naming it and the setting)."""
    monkeypatch.delenv("STAGER_INGEST__S3_ENDPOINTS", raising=False)
    kp = tmp_path / "kp"
    kp.write_text("a\nb\n")
    os.chmod(kp, 0o600)
    store = tmp_path / "x.sqlite"
    base = ["start", "/bkt", "/tempZone/x", "--s3_keypair", str(kp), "--owner", owner.pw_name]
    base += ["--db_url", f"sqlite+aiosqlite:///{store}"]
    for extra, refused in (
        (["--s3_endpoint_domain", "169.254.169.254", "--s3_insecure_connection"], "endpoint"),
        (["--s3_proxy_url", "http://10.0.0.1:3128"], "proxy"),
    ):
        err = io.StringIO()
        code = cli.main([*base, *extra], cli.Env(stdout=io.StringIO(), stderr=err))
        text = err.getvalue()
        assert code == 2, text
        assert f"S3 {refused} " in text and "is not allowed" in text
        assert "STAGER_INGEST__S3_ENDPOINTS" in text and "s3.amazonaws.com" in text
        assert text.count("\n") == 1 and "Traceback" not in text
    assert not store.exists()
    # allowed once the operator lists it (STAGER_INGEST__S3_ENDPOINTS)
    monkeypatch.setenv("STAGER_INGEST__S3_ENDPOINTS", json.dumps(["169.254.169.254:80"]))
    args = _args("/bkt", "/tempZone/x", "--s3_keypair", str(kp), "--owner", owner.pw_name)
    args.s3_endpoint_domain, args.s3_insecure_connection = "169.254.169.254", True
    settings = IngestSettings().ingest
    assert settings.s3_endpoints == ["169.254.169.254:80"]
    assert cli.job_from_args(args, settings, euid=0).options.s3 is not None


def test_describe_keeps_the_message_and_drops_secrets():
    secret, access = "s3cr3t" + uuid.uuid4().hex, "AKIA" + uuid.uuid4().hex[:12]
    e = ConnectionError(
        f"HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url:\n"
        f" /b?X-Amz-Credential={access}%2F20261204&X-Amz-Signature=abcdef "
        f"(proxy http://user:{secret}@proxy:3128: Connection refused) key={secret}"
    )
    text = s3._describe(e, (access, secret))
    assert text.startswith("ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=1)")
    assert "Connection refused" in text and "\n" not in text
    assert secret not in text and access not in text and "abcdef" not in text
    assert len(s3._describe(ValueError("x" * 5000))) <= len("ValueError: ") + s3.MESSAGE_LIMIT


async def test_worker_refuses_an_endpoint_not_allowed(
    ingest, s3_server, s3_bucket, tmp_path, owner
):
    """A job written past the CLI (REST, or a store row) whose endpoint the workers' list
    does not hold fails with a clear error; the owner's child never connects."""
    put(s3_server, s3_bucket, "f", b"x")
    kp = s3_server.keypair(tmp_path, owner)
    ingest.policy["s3_endpoints"] = ("s3.amazonaws.com",)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(f"/{s3_bucket}", op="PUT", s3=source(s3_server, kp)))
    assert job.state is JobState.FAILED
    assert job.error.startswith(f"S3 endpoint {s3_server.endpoint} is not allowed: ")
    assert "STAGER_INGEST__S3_ENDPOINTS (s3.amazonaws.com)" in job.error
    assert job.counters["files_created"] == 0


async def test_unreachable_endpoint_error_says_why(ingest, s3_server, tmp_path, owner):
    """A network error is described by its type and (sanitized) message, not only its type:
    here a closed port on an allowed endpoint."""
    import socket

    with socket.socket() as sock:  # a free port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    bad = S3Source(keypair=str(kp), endpoint_domain=f"127.0.0.1:{port}", secure=False)
    job = await ingest.run(ingest.configured("/nobucket", op="PUT", s3=bad), limit=90)
    assert job.state is JobState.FAILED
    assert f"at http://127.0.0.1:{port}: MaxRetryError: " in job.error, job.error
    assert "Connection refused" in job.error and "\n" not in job.error
    assert s3_server.secret_key not in job.error and s3_server.access_key not in job.error


# --- end to end ---------------------------------------------------------------------------
# The owner's child runs as ``owner`` (a real Unix user that cannot read the interpreter's
# files when it lives under /root): whatever the S3 client imports lazily must be preloaded
# (services/ingest/child.py PRELOAD_MODULES; ``_strptime`` was the missing one).


async def test_put_from_a_prefix_with_nested_keys_and_multipart(
    ingest, irods_session, s3_server, s3_bucket, tmp_path, owner
):
    big = os.urandom(11 * MIB + 5)  # three 5 MiB parts: more than one chunk
    put(s3_server, s3_bucket, "data/big.bin", big, part_size=5 * MIB)
    put(s3_server, s3_bucket, "data/top.txt", b"top")
    put(s3_server, s3_bucket, "data/a/b/deep.txt", b"deep")
    put(s3_server, s3_bucket, "data/a/mid.txt", b"mid")
    put(s3_server, s3_bucket, "data/a/", b"")  # a folder marker: skipped, as the seed does
    put(s3_server, s3_bucket, "database/not-mine.txt", b"x")  # outside the folder "data"
    put(s3_server, s3_bucket, "other.txt", b"x")
    kp = s3_server.keypair(tmp_path, owner)
    src = source(s3_server, kp, multipart_chunksize_in_mib=5)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(f"/{s3_bucket}/data/", op="PUT", s3=src))
    assert job.state is JobState.COMPLETED, job.error
    c = job.counters
    assert (c["files_created"], c["files_failed"], c["dirs"]) == (4, 0, 3)
    coll = ingest.collection
    assert read(irods_session, f"{coll}/big.bin") == big
    assert read(irods_session, f"{coll}/top.txt") == b"top"
    assert read(irods_session, f"{coll}/a/mid.txt") == b"mid"
    assert read(irods_session, f"{coll}/a/b/deep.txt") == b"deep"
    assert c["bytes"] == len(big) + 3 + 3 + 4
    for gone in ("not-mine.txt", "other.txt", "database", "data"):
        assert not irods_session.data_objects.exists(f"{coll}/{gone}")
    obj = irods_session.data_objects.get(f"{coll}/big.bin")
    listed = {o.object_name: o for o in s3_server.client.list_objects(s3_bucket, "data/")}
    assert obj.metadata.get_one(ETAG_AVU).value == listed["data/big.bin"].etag.strip('"')

    # PUT never looks at an existing object again: a second pass skips everything
    again = await ingest.rerun(job)
    assert again.counters["files_skipped"] == 4 and again.counters["files_created"] == 0


async def test_put_sync_follows_size_lastmodified_and_etag(
    ingest, irods_session, s3_server, s3_bucket, tmp_path, owner
):
    for i in range(3):
        put(s3_server, s3_bucket, f"k{i}", b"v%d" % i)
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    job = ingest.configured(f"/{s3_bucket}", op="PUT_SYNC", s3=source(s3_server, kp))
    first = await ingest.run(job)
    assert first.counters["files_created"] == 3, first.error
    obj = irods_session.data_objects.get(f"{ingest.collection}/k1")
    listed = {o.object_name: o for o in s3_server.client.list_objects(s3_bucket)}
    assert obj.modify_time == datetime.fromtimestamp(
        int(listed["k1"].last_modified.timestamp()), UTC
    )

    unchanged = await ingest.rerun(job)
    assert (unchanged.counters["files_skipped"], unchanged.counters["files_modified"]) == (3, 0)

    # a same-size rewrite: caught by the ETag even when size and second agree
    put(s3_server, s3_bucket, "k1", b"W1")
    # simulate "same second": the object's mtime matches the new LastModified
    new = next(o for o in s3_server.client.list_objects(s3_bucket) if o.object_name == "k1")
    irods_session.data_objects.touch(
        f"{ingest.collection}/k1", seconds_since_epoch=int(new.last_modified.timestamp())
    )
    second = await ingest.rerun(job)
    assert second.counters["files_modified"] == 1 and second.counters["files_skipped"] == 2
    assert read(irods_session, f"{ingest.collection}/k1") == b"W1"

    # an ETag the listing does not match (object rewritten behind us): re-put
    irods_session.metadata.set(DataObject, f"{ingest.collection}/k2", iRODSMeta(ETAG_AVU, "0" * 32))
    third = await ingest.rerun(job)
    assert third.counters["files_modified"] == 1
    obj2 = irods_session.data_objects.get(f"{ingest.collection}/k2")
    assert obj2.metadata.get_one(ETAG_AVU).value == hashlib.md5(b"v2").hexdigest()


async def test_put_append_fetches_only_the_new_bytes(
    ingest, irods_session, s3_server, s3_bucket, tmp_path, owner
):
    put(s3_server, s3_bucket, "log", b"0123456789")
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    job = ingest.configured(f"/{s3_bucket}", op="PUT_APPEND", s3=source(s3_server, kp))
    assert (await ingest.run(job)).counters["files_created"] == 1
    put(s3_server, s3_bucket, "log", b"0123456789abc")
    irods_session.data_objects.touch(f"{ingest.collection}/log", seconds_since_epoch=1)
    again = await ingest.rerun(job)
    assert again.counters["files_modified"] == 1
    assert again.counters["bytes"] == 3  # a ranged GET from the object's size
    assert read(irods_session, f"{ingest.collection}/log") == b"0123456789abc"


async def test_register_into_an_s3_resource(
    ingest, irods_session, s3_server, s3_bucket, tmp_path, owner
):
    resc = f"s3resc{uuid.uuid4().hex[:8]}"
    irods_session.resources.create(resc, "s3", "localhost", f"/{s3_bucket}")
    try:
        put(s3_server, s3_bucket, "in/x/one.dat", b"1" * 10)
        put(s3_server, s3_bucket, "in/two.dat", b"22")
        kp = s3_server.keypair(tmp_path, owner)
        await ingest.start(1)
        job = ingest.configured(
            f"/{s3_bucket}/in", op="REGISTER_SYNC", resource=resc, s3=source(s3_server, kp)
        )
        first = await ingest.run(job)
        assert first.state is JobState.COMPLETED, first.error
        assert first.counters["files_created"] == 2 and first.counters["bytes"] == 0
        listed = {
            o.object_name: o for o in s3_server.client.list_objects(s3_bucket, recursive=True)
        }
        obj = irods_session.data_objects.get(f"{ingest.collection}/x/one.dat")
        rep = obj.replicas[0]
        assert (rep.path, rep.resource_name, obj.size) == (f"/{s3_bucket}/in/x/one.dat", resc, 10)
        mtime = int(listed["in/x/one.dat"].last_modified.timestamp())
        assert obj.modify_time == datetime.fromtimestamp(mtime, UTC)

        put(s3_server, s3_bucket, "in/x/one.dat", b"1" * 25)  # grown: size updated (API 622)
        second = await ingest.rerun(job)
        assert second.counters["files_modified"] == 1 and second.counters["files_skipped"] == 1
        assert irods_session.data_objects.get(f"{ingest.collection}/x/one.dat").size == 25
    finally:  # registered replicas first (their "files" are objects in the bucket)
        rows = irods_session.query(Collection.name, DataObject.name).filter(
            DataObject.resource_name == resc
        )
        for row in list(rows):
            irods_session.data_objects.unregister(f"{row[Collection.name]}/{row[DataObject.name]}")
        irods_session.resources.remove(resc)


async def test_register_on_a_filesystem_resource_stats_the_path(
    ingest, irods_session, s3_server, s3_bucket, tmp_path, owner
):
    """The test server, like a unixfilesystem resource, cannot find /bucket/key: the file
    fails readably (register into an S3 resource instead)."""
    put(s3_server, s3_bucket, "f", b"x")
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    job = await ingest.run(
        ingest.configured(f"/{s3_bucket}", op="REGISTER_SYNC", s3=source(s3_server, kp))
    )
    assert job.counters["files_failed"] == 1 and job.counters["files_created"] == 0


async def test_bad_credentials_fail_the_job_readably_and_secrets_stay_out(
    ingest, s3_server, s3_bucket, tmp_path, owner, capfd, monkeypatch
):
    put(s3_server, s3_bucket, "f", b"x")
    secret = "wrongSECRET" + uuid.uuid4().hex
    bad = tmp_path / "bad-keypair"
    bad.write_text(f"{s3_server.access_key}\n{secret}\n")
    os.chown(bad, owner.pw_uid, owner.pw_gid)
    os.chmod(bad, 0o600)
    published: list[str] = []
    original = worker_module.publish_tasks

    async def recording(channel, names, tasks, signer):
        published.extend(t.model_dump_json() for t in tasks)
        return await original(channel, names, tasks, signer)

    monkeypatch.setattr(worker_module, "publish_tasks", recording)
    await ingest.start(1)
    job = await ingest.run(
        ingest.configured(f"/{s3_bucket}", op="PUT", s3=source(s3_server, bad), log_level="debug")
    )
    assert job.state is JobState.FAILED
    assert f"bucket {s3_bucket!r} cannot be read" in job.error
    assert "SignatureDoesNotMatch" in job.error or "AccessDenied" in job.error
    # the secret is in no store row, task message, error text or log line
    row = (await ingest.store.get(job.name)).model_dump_json()
    out, err = capfd.readouterr()
    assert published, "the root task was published"
    for text in (row, job.error, out, err, *published):
        assert secret not in text
    assert s3_server.secret_key not in row

    # the right key pair, unknown access key: also readable, also no secret
    unknown = tmp_path / "unknown-keypair"
    unknown.write_text(f"AKIA{uuid.uuid4().hex[:16].upper()}\n{secret}\n")
    os.chown(unknown, owner.pw_uid, owner.pw_gid)
    os.chmod(unknown, 0o600)
    job2 = await ingest.run(
        ingest.configured(f"/{s3_bucket}", op="PUT", s3=source(s3_server, unknown))
    )
    assert job2.state is JobState.FAILED and "cannot be read" in job2.error
    assert secret not in job2.error


async def test_missing_bucket_and_unreadable_keypair_fail_the_job(
    ingest, s3_server, tmp_path, owner
):
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    missing = f"nobucket-{uuid.uuid4().hex[:8]}"
    job = await ingest.run(ingest.configured(f"/{missing}/x", op="PUT", s3=source(s3_server, kp)))
    assert job.state is JobState.FAILED
    assert job.error == f"S3 bucket {missing!r} does not exist at {s3_server.endpoint}"

    os.chmod(kp, 0o644)  # the owner's child refuses it too (not only the CLI)
    job2 = await ingest.run(ingest.configured(f"/{missing}", op="PUT", s3=source(s3_server, kp)))
    assert job2.state is JobState.FAILED and "may be read or written by anyone" in job2.error


async def test_delete_modes_other_than_do_not_delete_are_refused(
    ingest, s3_server, s3_bucket, tmp_path, owner
):
    kp = s3_server.keypair(tmp_path, owner)
    await ingest.start(1)
    job = await ingest.run(
        ingest.configured(
            f"/{s3_bucket}", op="PUT_SYNC", delete="NO_TRASH", s3=source(s3_server, kp)
        )
    )
    assert job.state is JobState.FAILED
    assert "S3 bucket syncs do not support DeleteMode" in job.error


# --- over REST ----------------------------------------------------------------------------


class _Manager:
    """A data-manager service account that may start jobs as ``owner``."""

    kind = PrincipalKind.SERVICE
    name = "manager"

    def __init__(self, owner: str) -> None:
        self.act_for = frozenset({owner})


async def _rest_client(db_url: str, owner: str) -> TestClient:
    async def authenticate(request: web.Request) -> _Manager:
        if request.headers.get("Authorization") != "Bearer manager":
            raise Unauthenticated("missing Authorization header")
        return _Manager(owner)

    app = web.Application(middlewares=[error_middleware])
    handlers = str(Path(__file__).parent / "handlers")
    settings = IngestStoreSettings(
        db_url=db_url,
        allowed_roots=["/nowhere"],
        handler_dir=handlers,
        s3_endpoints=["127.0.0.1:*"],  # the tests' S3 server, as the workers' setting
    )
    authorize = principals_allowed(authenticate, ["manager"])
    app.add_subapp("/v1/ingest", make_app(db_url=db_url, authorize=authorize, settings=settings))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


REST = {"Authorization": "Bearer manager"}


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ({"s3_keypair": "relative/kp"}, "s3_keypair", "must be absolute"),
        ({"s3_region_name": "eu-west-1"}, "s3_region_name", "needs s3_keypair"),
        ({"s3_insecure_connection": True}, "s3_insecure_connection", "needs s3_keypair"),
        (
            {"s3_keypair": "/k", "s3_endpoint_domain": "http://h:9000"},
            "s3_endpoint_domain",
            "no scheme",
        ),
        (
            {"s3_keypair": "/k", "s3_multipart_chunksize_in_mib": 4},
            "s3_multipart_chunksize_in_mib",
            "greater than or equal to 5",
        ),
        (
            {"s3_keypair": "/k", "s3_proxy_url": "http://u:pw-SECRET@proxy:3128"},
            "s3_proxy_url",
            "leave credentials out",
        ),
        ({"s3_keypair": "/k", "s3_proxy_url": "ftp://proxy"}, "s3_proxy_url", "http://host"),
        ({"s3_keypair": "/k", "root": "/B_ad"}, "root", "not a valid bucket name"),
        ({"s3_keypair": "/k", "s3_access_key": "AKIA"}, "s3_access_key", "Extra inputs"),
        # the operator's allow-list (STAGER_INGEST__S3_ENDPOINTS), checked at submission
        (
            {"s3_keypair": "/k", "s3_endpoint_domain": "169.254.169.254"},
            "s3_endpoint_domain",
            "S3 endpoint 169.254.169.254 is not allowed: the ingest workers may contact only "
            "the S3 endpoints in STAGER_INGEST__S3_ENDPOINTS (127.0.0.1:*): use one of those, "
            "or ask the operator to add it",
        ),
        ({"s3_keypair": "/k"}, "s3_endpoint_domain", "S3 endpoint s3.amazonaws.com is not"),
        (
            {
                "s3_keypair": "/k",
                "s3_endpoint_domain": "127.0.0.1:9000",
                "s3_proxy_url": "http://10.0.0.1:3128",
            },
            "s3_proxy_url",
            "S3 proxy 10.0.0.1:3128 is not allowed",
        ),
    ],
)
async def test_rest_bad_s3_options_are_400s_naming_the_field(tmp_path, owner, extra, field, says):
    client = await _rest_client(f"sqlite+aiosqlite:///{tmp_path}/rest.sqlite", owner.pw_name)
    try:
        body = {"root": "/bkt", "target": "/tempZone/home/rods/x", "owner": owner.pw_name}
        r = await client.put("/v1/ingest/bad", json={**body, **extra}, headers=REST)
        text = await r.text()
        assert r.status == 400, text
        problem = json.loads(text)
        assert says in text
        assert field in {e["field"] for e in problem["errors"]}, problem
        assert "pw-SECRET" not in text and "Traceback" not in text
    finally:
        await client.close()


def test_openapi_describes_the_s3_fields():
    from services.api.openapi import INGEST_OPERATIONS, api_spec

    spec = api_spec(INGEST_OPERATIONS, title="t", version="0")
    props = spec["components"]["schemas"]["IngestRequest"]["properties"]
    for name in (
        "s3_keypair",
        "s3_endpoint_domain",
        "s3_region_name",
        "s3_proxy_url",
        "s3_insecure_connection",
        "s3_multipart_chunksize_in_mib",
    ):
        assert name in props, name
        assert props[name].get("description"), name
    assert props["s3_multipart_chunksize_in_mib"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 5,
        "maximum": 5000,
    }


async def test_rest_s3_job_end_to_end(ingest, irods_session, s3_server, s3_bucket, tmp_path, owner):
    """PUT /v1/ingest/{name} (YAML, as the anchor's REST API took) with an S3 source; the
    workers run it as the owner; GET shows the key pair's path and never the keys."""
    big = os.urandom(6 * MIB + 7)  # two 5 MiB parts
    put(s3_server, s3_bucket, "in/big.bin", big, part_size=5 * MIB)
    put(s3_server, s3_bucket, "in/sub/small.txt", b"small")
    kp = s3_server.keypair(tmp_path, owner)
    client = await _rest_client(f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite", owner.pw_name)
    try:
        body = (
            f"root: /{s3_bucket}/in\n"
            f"target: {ingest.collection}\n"
            f"owner: {owner.pw_name}\n"
            f"s3_keypair: {kp}\n"
            f"s3_endpoint_domain: '{s3_server.endpoint}'\n"
            "s3_insecure_connection: true\n"
            "s3_multipart_chunksize_in_mib: 5\n"
            "event_handler: configurable\n"
            "append_json: {op: PUT}\n"
        )
        headers = {**REST, "Content-Type": "application/x-yaml"}
        r = await client.put("/v1/ingest/s3rest", data=body, headers=headers)
        assert r.status == 201, await r.text()
        await ingest.start(1)
        job = await ingest.wait("s3rest")
        assert job.state is JobState.COMPLETED, job.error
        assert job.counters["files_created"] == 2 and job.counters["files_failed"] == 0
        assert read(irods_session, f"{ingest.collection}/big.bin") == big
        assert read(irods_session, f"{ingest.collection}/sub/small.txt") == b"small"
        r = await client.get("/v1/ingest/s3rest", headers=REST)
        view = await r.text()
        assert json.loads(view)["options"]["s3"]["keypair"] == str(kp)
        assert s3_server.secret_key not in view and s3_server.access_key not in view

        # a key-pair file the owner cannot read: the job fails with one clear error
        os.chown(kp, 0, 0)
        os.chmod(kp, 0o600)
        r = await client.put("/v1/ingest/s3rest2", data=body, headers=headers)
        assert r.status == 201, await r.text()
        failed = await ingest.wait("s3rest2")
        assert failed.state is JobState.FAILED
        assert failed.error == f"cannot read the S3 key-pair file {kp}: Permission denied"
    finally:
        await client.close()


async def test_rest_allowed_endpoint_is_accepted_and_the_api_reads_the_workers_setting(
    tmp_path, owner, monkeypatch
):
    """The API and the workers read the one STAGER_INGEST__S3_ENDPOINTS (shared settings):
    what the API accepts, the workers may contact."""
    from services.api.settings import ApiSettings
    from services.ingest.settings import IngestSettings

    monkeypatch.setenv("STAGER_INGEST__S3_ENDPOINTS", '["minio.lan:9000"]')
    assert ApiSettings().ingest.s3_endpoints == ["minio.lan:9000"]
    assert IngestSettings().ingest.s3_endpoints == ["minio.lan:9000"]
    client = await _rest_client(f"sqlite+aiosqlite:///{tmp_path}/rest.sqlite", owner.pw_name)
    try:
        body = {"root": "/bkt", "target": "/tempZone/home/rods/x", "owner": owner.pw_name}
        body |= {"s3_keypair": "/k", "s3_endpoint_domain": "127.0.0.1:9000"}
        r = await client.put("/v1/ingest/ok", json=body, headers=REST)
        assert r.status == 201, await r.text()
    finally:
        await client.close()
