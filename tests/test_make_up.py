"""``make up`` (``python -m scripts.up``): the printed example really runs a job, SIGINT
leaves no process behind, and ``--ephemeral``'s clean-up leaves no queue behind.
Ephemeral ports, a temp ``.local``, a real Unix user, the real RabbitMQ."""

from __future__ import annotations

import base64
import functools
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from scripts.up import (
    DEMO_DIR,
    READY_LINE,
    REPO,
    UiPlan,
    clean_up_broker,
    ensure_secrets,
    ensure_signing_keys,
    ui_banner,
)
from services.worker.settings import WorkerSettings
from shared.messaging import broker
from shared.messaging.topology import (
    ROUTE_NORMAL,
    ROUTE_PRIORITY,
    Names,
    Topology,
    declare_ingest_queues,
    declare_topology,
    retry_delays,
)
from tests.security.test_broker_users import as_user, connect_as_user

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd and setuid")


@dataclass
class Up:
    """A running ``scripts.up`` and everything it printed so far."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def drain(self) -> None:
        """Read stdout to the end (the stack blocks if nobody reads)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(READY_LINE):
                self.ready.set()
        self.ready.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def field(self, name: str) -> str:
        ready = next(x for x in self.lines if x.startswith(READY_LINE))
        parts = dict(p.split("=", 1) for p in ready[len(READY_LINE) :].split())
        return parts[name]


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (None when gone), so a reused pid is not mistaken."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def _descendants(root: int) -> dict[int, str | None]:
    """Every live process below ``root``, with its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str | None] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = _start_time(pid)
        todo += children.get(pid, [])
    return found


@pytest.fixture
def unix_user() -> Iterator[pwd.struct_passwd]:
    name = "stgup" + uuid.uuid4().hex[:8]
    subprocess.run(
        ["useradd", "-M", "-U", "-s", "/bin/bash", "-K", "UID_MIN=20000", name],
        check=True,
        capture_output=True,
    )
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stager-make-up-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def up(work_dir: Path) -> Iterator[Up]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
    cmd = [sys.executable, "-m", "scripts.up", "--ephemeral", "--grace", "5"]
    proc = subprocess.Popen(
        [*cmd, "--local-dir", str(work_dir / "local")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = Up(proc)
    reader = threading.Thread(target=run.drain, daemon=True)
    reader.start()
    try:
        yield run
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)


def _request(
    url: str, password: str, body: dict[str, Any] | None = None, method: str | None = None
) -> dict[str, Any]:
    token = base64.b64encode(f"streamer:{password}".encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - our own loopback http URL
        url, data=data, method=method or ("GET" if data is None else "POST")
    )
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - our own loopback URL
            result: dict[str, Any] = json.load(r)
            return result
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method or 'request'} {url}: {e.code} {e.read()!r}") from None


def _printed_body(lines: list[str]) -> dict[str, Any]:
    """The JSON of the curl example's ``-d '...'``."""
    line = next(x.strip() for x in lines if x.strip().startswith("-d '"))
    body: dict[str, Any] = json.loads(line[len("-d '") : line.rindex("'")])
    return body


@needs_root
def test_make_up_runs_the_printed_example_and_stops_cleanly(
    up: Up, unix_user: pwd.struct_passwd, work_dir: Path, request: pytest.FixtureRequest
) -> None:
    assert up.ready.wait(50), up.text[-3000:]
    assert up.proc.poll() is None, up.text[-3000:]
    api, irods, local = up.field("api"), up.field("irods"), Path(up.field("local"))
    assert f"{api}/v1/docs" in up.text and f"{api}/metrics" in up.text
    password_file = local / "streamer.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()

    # the printed example, with our own user, source and target
    src = work_dir / "src"
    src.mkdir(mode=0o700)
    (src / "hello.txt").write_bytes(b"hello from make up\n")
    for p in (src, src / "hello.txt"):
        os.chown(p, unix_user.pw_uid, unix_user.pw_gid)  # only the user (and root) can read
    coll = f"/tempZone/home/rods/{uuid.uuid4().hex[:10]}"
    body = _printed_body(up.lines)
    assert set(body) == {"title", "stagerUser", "drUser", "srcURL", "dstURL"}
    body |= {"stagerUser": unix_user.pw_name, "srcURL": f"{src}/", "dstURL": f"irods:{coll}"}
    job = _request(f"{api}/v1/job", password, body)
    deadline = time.monotonic() + 30
    while job["status"]["status"] not in ("completed", "archived"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = _request(f"{api}/v1/job/{job['id']}", password)
    assert job["status"]["status"] == "completed", job

    from irods.session import iRODSSession

    host, port = irods.rsplit(":", 1)
    account = {"host": host, "port": int(port), "user": "rods", "password": "rods"}
    with (
        iRODSSession(**account, zone="tempZone") as s,
        s.data_objects.open(f"{coll}/hello.txt", "r") as fh,
    ):
        assert fh.read() == b"hello from make up\n"

    # the printed ingest example: a folder under make up's one allowed ingest root is
    # registered by the ingest worker; the user's folder outside it is refused
    assert f"{api}/v1/ingest/demo" in up.text
    target = f"/tempZone/home/rods/ingest-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AssertionError, match="not under an allowed ingest root"):
        _request(
            f"{api}/v1/ingest/demo",
            password,
            {"root": str(src), "target": target, "owner": unix_user.pw_name},
            "PUT",
        )
    demo = Path(DEMO_DIR) / uuid.uuid4().hex[:10]
    demo.mkdir(parents=True)
    request.addfinalizer(lambda: shutil.rmtree(demo, ignore_errors=True))
    (demo / "hello.txt").write_bytes(b"hello from make up\n")
    ingest = _request(  # the job reads the folder as its owner, the Unix user
        f"{api}/v1/ingest/demo",
        password,
        {"root": str(demo), "target": target, "owner": unix_user.pw_name},
        "PUT",
    )
    deadline = time.monotonic() + 30
    while ingest["state"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, ingest
        time.sleep(0.2)
        ingest = _request(f"{api}/v1/ingest/demo", password)
    assert ingest["state"] == "completed", ingest
    with iRODSSession(**account, zone="tempZone") as s:
        obj = s.data_objects.get(f"{target}/hello.txt")
        assert obj.size == len(b"hello from make up\n")

    # broker identity: each service on its own user of this run's vhost, nobody as guest;
    # the local user can log in as guest there no more than read the secrets
    prefix = up.field("prefix")
    vhost = f"stager-{prefix}"
    users = {f"{vhost}-{role}" for role in ("api", "worker", "ingest")}
    connections = _rabbitmqctl("list_connections", "user", "vhost")
    ours = {tuple(line.split("\t")) for line in connections if line.endswith("\t" + vhost)}
    assert {user for user, _ in ours} == users, connections
    guest_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    assert connect_as_user(unix_user, guest_url).startswith("refused")
    secret_files = [local / f"broker-{prefix}" / f"{r}.password" for r in ("api", "worker")]
    secret_files += [local / "signing" / f"{r}.key" for r in ("api", "worker", "ingest")]
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert as_user(unix_user, functools.partial(_read, path)) == "denied", path

    before = _descendants(up.proc.pid)
    argvs = [Path(f"/proc/{p}/cmdline").read_text().split("\0") for p in before]
    modules = {argv[argv.index("-m") + 1] for argv in argvs if "-m" in argv}
    services = {
        "devtools.irods_server",
        "services.api",
        "services.worker",
        "services.worker.forkserver",
        "services.ingest",
    }
    assert services <= modules, modules
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(30) == 0, up.text[-3000:]
    alive = {p for p, started in before.items() if started and _start_time(p) == started}
    assert not alive, f"left behind: {alive}"
    assert password not in up.text
    assert vhost not in _rabbitmqctl("list_vhosts")  # --ephemeral removed it, users too
    assert not users & set(_rabbitmqctl("list_users"))
    assert not (local / f"broker-{prefix}").exists()


def test_signing_keys_are_made_once_then_reused(work_dir: Path) -> None:
    local = work_dir / "local"
    local.mkdir()
    root = ensure_signing_keys(local)
    first = {p.name: p.read_bytes() for p in root.iterdir()}
    assert sorted(first) == [
        f"{r}.{e}" for r in ("api", "ingest", "worker") for e in ("key", "pub")
    ]
    assert ensure_signing_keys(local) == root
    assert {p.name: p.read_bytes() for p in root.iterdir()} == first
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for role in ("api", "ingest", "worker"):
        assert stat.S_IMODE((root / f"{role}.key").stat().st_mode) == 0o600


def _rabbitmqctl(*args: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("\t")[0] if args[0] != "list_connections" else line
            for line in out.splitlines()]  # fmt: skip


def _read(path: Path) -> str:
    try:
        path.read_bytes()
    except PermissionError:
        return "denied"
    return "read"


def test_secrets_are_made_once_then_reused(work_dir: Path) -> None:
    local = work_dir / "local"
    first = ensure_secrets(local)
    pem = (first.keys_dir / "private.pem").read_bytes()
    password = first.password_file.read_text()
    second = ensure_secrets(local)
    assert (second.keys_dir / "private.pem").read_bytes() == pem
    assert second.password_file.read_text() == password and len(password.strip()) >= 24
    assert stat.S_IMODE((first.keys_dir / "private.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(first.password_file.stat().st_mode) == 0o600
    from services.api.auth import verify_password

    assert verify_password(password.strip(), second.password_hash)


def _rabbitmq_queues(prefix: str) -> list[str] | None:
    """The broker's queues of ``prefix`` per ``rabbitmqctl`` (None: no rabbitmqctl here)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    out = subprocess.run(
        [ctl, "-q", "list_queues", "name"], check=True, capture_output=True, text=True
    ).stdout
    return [q for q in out.split() if q.startswith(prefix + ".")]


async def _existing(url: str, queues: list[str]) -> list[str]:
    """Those of ``queues`` a passive declare finds."""
    found = []
    conn = await broker.connect(url, name="test-up-cleanup")
    try:
        for name in queues:
            channel = await conn.channel()  # a failed passive declare closes the channel
            try:
                await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                continue
            found.append(name)
            await channel.close()
    finally:
        await conn.close()
    return found


async def _delete(url: str, queues: list[str]) -> None:
    conn = await broker.connect(url, name="test-up-cleanup")
    try:
        channel = await conn.channel()
        for name in queues:
            await channel.queue_delete(name)
    finally:
        await conn.close()


async def test_ephemeral_clean_up_leaves_no_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = "up" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("STAGER_BROKER__PREFIX", prefix)
    settings = WorkerSettings()
    url = settings.broker.url.get_secret_value()
    names = Names(prefix)
    delays = sorted(retry_delays(settings.retry.delays()))
    # named here, not taken from Topology.queue_names(): that list is what is under test
    expected = [
        f"{prefix}.tasks",
        f"{prefix}.tasks.priority",
        f"{prefix}.tasks.dead",
        f"{prefix}.events",
        f"{prefix}.rpc.dir",
        *(f"{prefix}.retry.{r}.{d}" for r in (ROUTE_NORMAL, ROUTE_PRIORITY) for d in delays),
        f"{prefix}.ingest.dirs",
        f"{prefix}.ingest.files",
    ]
    # what the API, the workers and the ingest workers declare when they start
    topology = Topology(
        names=names, delivery_limit=settings.delivery_limit, retry_delays_ms=frozenset(delays)
    )
    conn = await broker.connect(url, name="test-up-declare")
    try:
        channel = await conn.channel()
        await declare_topology(channel, topology)
        await declare_ingest_queues(channel, topology)
    finally:
        await conn.close()
    assert await _existing(url, expected) == expected
    listed = _rabbitmq_queues(prefix)
    assert listed is None or sorted(listed) == sorted(expected)

    try:
        await clean_up_broker()

        assert await _existing(url, expected) == []
        assert _rabbitmq_queues(prefix) in (None, [])
    finally:  # whatever the clean-up missed, so a failure leaves nothing either
        await _delete(url, expected)


def test_the_banner_lists_the_admin_accounts() -> None:
    plan = UiPlan(
        url="http://127.0.0.1:8083",
        issuer="http://127.0.0.1:1",
        webdav="http://127.0.0.1:8084",
        accounts_file=Path("/r/.local/oidc/accounts.txt"),
        logins=["admin", "alice", "bob", "helpdesk"],
    )
    lines = ui_banner(plan)
    assert "(log in as alice or bob: cat /r/.local/oidc/accounts.txt;" in lines[0]
    assert lines[1] == (
        "  Admin    http://127.0.0.1:8083/admin   (log in as admin (administrator), "
        "helpdesk (read-only administrator); same file)"
    )
    assert lines[2].startswith("  OIDC     http://127.0.0.1:1")
