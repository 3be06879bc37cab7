"""The worker end to end on real RabbitMQ with stand-in transfer jobs (tests/worker/jobs.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from email.message import Message

import pytest
from pydantic import SecretStr

from services.worker.credentials import RepoCredential
from shared.crypto import Binding, Sealer, generate_keypair
from shared.messaging import broker
from shared.unix_users import UserRefused
from tests.worker.conftest import signed_task, task_message

SERVICE = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}


def _parts(mail: Message) -> dict[str, str]:
    out = {}
    for part in mail.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode()
    return out


async def test_completes_and_mails_the_user(start_worker, unix_user, smtp) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="succeed",
        service_credentials=SERVICE,
        smtp={"host": smtp.host, "port": smtp.port, "admins": ["admin@example.org"]},
    )
    msg = task_message(user.pw_name)
    await w.submit(msg)
    done = await w.events.until(msg.task_id, {"completed", "retry", "archived"})
    assert done.state == "completed" and done.attempt == 1
    assert w.events.states(msg.task_id) == [("active", 1), ("completed", 1)]
    seqs = [e.seq for e in w.events.events if e.task_id == msg.task_id]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    await smtp.wait(1)
    rcpt, mail = smtp.messages[0]
    assert rcpt == ["user@example.org"] and mail["Cc"] is None
    assert "completed" in mail["Subject"] and "test job" in mail["Subject"]
    parts = _parts(mail)
    assert set(parts) == {"text/plain", "text/html"}
    for body in parts.values():
        assert msg.task_id in body and "/tmp/src" in body and "irods:/tempZone/home/svc/dst" in body
    assert "svc-pw" not in str(mail)


async def test_retries_with_backoff_then_archives_and_mails_admins(
    start_worker, unix_user, smtp
) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="fail",
        service_credentials=SERVICE,
        smtp={"host": smtp.host, "port": smtp.port, "admins": ["admin@example.org"]},
    )
    msg = task_message(user.pw_name)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"archived", "completed"})
    assert final.state == "archived" and final.attempt == 3
    assert "did not answer" in (final.error or "")
    assert w.events.states(msg.task_id) == [
        ("active", 1),
        ("retry", 1),
        ("active", 2),
        ("retry", 2),
        ("active", 3),
        ("archived", 3),
    ]
    ev = [e for e in w.events.events if e.task_id == msg.task_id and e.progress is None]
    # backoff: 0.3 s after attempt 1, 0.6 s after attempt 2 (delay queues, then redelivery)
    gap1 = (ev[2].at - ev[1].at).total_seconds()
    gap2 = (ev[4].at - ev[3].at).total_seconds()
    assert gap1 >= 0.28 and gap2 >= 0.58  # at least the delay (processing adds jitter)
    assert ev[1].next_at is not None and ev[1].next_at > ev[1].at
    await smtp.wait(1)
    rcpt, mail = smtp.messages[0]
    assert sorted(rcpt) == ["admin@example.org", "user@example.org"]
    assert mail["To"] == "user@example.org" and mail["Cc"] == "admin@example.org"
    assert "FAILED" in mail["Subject"]
    parts = _parts(mail)
    assert "did not answer" in parts["text/plain"] and "did not answer" in parts["text/html"]
    assert "3 attempt" in parts["text/plain"]


async def test_permission_denied_is_reported_and_not_retried(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(transfer_kind="fail_permanent", service_credentials=SERVICE)
    msg = task_message(user.pw_name)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"archived", "completed", "retry"})
    assert final.state == "archived" and final.attempt == 1
    assert "Permission denied" in (final.error or "") and "/tmp/src" in (final.error or "")


@pytest.mark.parametrize("who", ["root", "daemon"])
async def test_root_and_system_users_are_refused_without_retry(start_worker, who) -> None:
    w = await start_worker(transfer_kind="succeed", service_credentials=SERVICE)
    msg = task_message(who)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"archived", "completed", "retry"})
    assert final.state == "archived" and final.attempt == 1
    assert who in (final.error or "")


async def test_uids_above_max_uid_are_refused_by_worker_and_fork_server(
    start_worker, unix_user
) -> None:
    """``max_uid`` is the API's rule (``auth.max_uid``), applied by the worker too."""
    user = unix_user()
    w = await start_worker(
        transfer_kind="succeed", service_credentials=SERVICE, max_uid=user.pw_uid - 1
    )
    msg = task_message(user.pw_name)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"archived", "completed", "retry"})
    assert final.state == "archived" and final.attempt == 1
    assert f"uid {user.pw_uid} > {user.pw_uid - 1}" in (final.error or "")
    # the fork server applies the same bound (a worker that skipped its own check)
    server = await w.worker.forkserver()
    with pytest.raises(UserRefused, match="not a personal account"):
        await server.spawn("succeed", user.pw_name, {})
    # within the bound, the same user runs
    await w.worker.close()
    ok = await start_worker(
        transfer_kind="succeed", service_credentials=SERVICE, max_uid=user.pw_uid
    )
    again = task_message(user.pw_name)
    await ok.submit(again)
    async with asyncio.timeout(30):  # both event logs consume the one events queue
        while not (  # noqa: ASYNC110 - filled by the consumers
            done := [
                e.state
                for e in w.events.events + ok.events.events
                if e.task_id == again.task_id and e.state in ("completed", "archived")
            ]
        ):
            await asyncio.sleep(0.05)
    assert done == ["completed"]


async def test_task_without_drpass_from_a_user_is_refused(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(transfer_kind="succeed", service_credentials=SERVICE)
    msg = task_message(user.pw_name, service=None)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"archived", "completed", "retry"})
    assert final.state == "archived" and "drPass" in (final.error or "")


def _user_processes(uid: int) -> list[int]:
    """Live (not zombie) processes of ``uid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return pids


async def _no_user_processes(uid: int) -> bool:
    """True once ``uid`` has no live process (SIGKILL delivery takes a moment)."""
    for _ in range(50):
        if not _user_processes(uid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_timeout_kills_the_process_group(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="slow", service_credentials=SERVICE, retry={"max_attempts": 1}
    )
    msg = task_message(user.pw_name, timeout=1)
    t0 = time.monotonic()
    await w.submit(msg)
    await w.events.until(msg.task_id, {"active"})
    for _ in range(100):  # the child and its grandchild run as the user
        if len(_user_processes(user.pw_uid)) >= 2:
            break
        await asyncio.sleep(0.02)
    assert len(_user_processes(user.pw_uid)) >= 2
    final = await w.events.until(msg.task_id, {"archived", "completed"})
    elapsed = time.monotonic() - t0
    assert final.state == "archived" and "timed out" in (final.error or "")
    assert 1.0 <= elapsed < 6
    assert await _no_user_processes(user.pw_uid)  # grandchild (sleep 300) went with the group


async def test_noprogress_kills_when_only_heartbeats_arrive(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="stall", service_credentials=SERVICE, retry={"max_attempts": 1}
    )
    stalled = task_message(user.pw_name, timeout_noprogress=1)
    await w.submit(stalled)
    final = await w.events.until(stalled.task_id, {"archived", "completed"})
    assert final.state == "archived" and "no progress" in (final.error or "")
    assert await _no_user_processes(user.pw_uid)


@pytest.mark.parametrize("kind", ["slow", "stubborn"])
async def test_cancel_stops_the_transfer_within_two_seconds(
    start_worker, unix_user, kind: str
) -> None:
    user = unix_user()
    # default grace (1 s): SIGTERM first, SIGKILL for a child that ignores it
    w = await start_worker(transfer_kind=kind, service_credentials=SERVICE, cancel_grace=1.0)
    msg = task_message(user.pw_name)
    await w.submit(msg)
    await w.events.until(msg.task_id, {"active"})
    t0 = time.monotonic()
    await w.cancel(msg.task_id)
    final = await w.events.until(msg.task_id, {"cancelled", "completed", "archived", "retry"})
    elapsed = time.monotonic() - t0
    print(f"cancel → cancelled event ({kind}): {elapsed * 1000:.0f} ms")
    assert final.state == "cancelled" and elapsed < 2.0
    assert await _no_user_processes(user.pw_uid)


async def test_drpass_envelope_is_opened_by_the_worker_only(
    start_worker, unix_user, tmp_path, capfd
) -> None:
    user = unix_user()
    private, public = generate_keypair(2048)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "current.pem").write_bytes(private)
    password = "Tr1cky-" + uuid.uuid4().hex
    digest = hashlib.sha256(password.encode()).hexdigest()
    w = await start_worker(
        transfer_kind="check_secret",
        private_keys_dir=keys,
        children={"env": {"TEST_SECRET_SHA256": digest}},
    )
    bound = Binding(stager_user=user.pw_name, dr_user="svc")
    envelope = Sealer.from_pem([public]).seal(password, bound)
    msg = task_message(user.pw_name, service=None, drPass=envelope)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"completed", "archived", "retry"})
    assert final.state == "completed", final.error
    assert password not in msg.model_dump_json()  # only the envelope is queued
    assert all(password not in e.model_dump_json() for e in w.events.events)
    out, err = capfd.readouterr()
    assert password not in out and password not in err  # nor logged, by worker or child


async def test_priority_tasks_overtake_queued_bulk_tasks(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(transfer_kind="brief", service_credentials=SERVICE, concurrency=1)
    bulk = [task_message(user.pw_name) for _ in range(3)]
    for m in bulk:
        await w.submit(m)
    await w.events.until(bulk[0].task_id, {"active"})
    urgent = task_message(user.pw_name)
    await w.submit(urgent, route="priority")
    for m in [*bulk, urgent]:
        await w.events.until(m.task_id, {"completed"})
    starts = [e.task_id for e in w.events.events if e.state == "active" and e.progress is None]
    assert starts[:2] == [bulk[0].task_id, urgent.task_id]


async def test_task_dead_lettered_by_the_broker_is_archived(start_worker, unix_user, smtp) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="succeed",
        service_credentials=SERVICE,
        smtp={"host": smtp.host, "port": smtp.port, "admins": ["ops@example.org"]},
    )
    msg = task_message(user.pw_name)
    dead_x = await w.amqp.channel.get_exchange(w.amqp.names.dead_exchange)
    await broker.publish(dead_x, signed_task(msg), "")
    final = await w.events.until(msg.task_id, {"archived", "completed"})
    assert final.state == "archived" and "abandoned" in (final.error or "")
    await smtp.wait(1)
    assert smtp.messages[0][1]["Cc"] == "ops@example.org"


async def test_cancel_before_delivery_drops_the_task(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(transfer_kind="succeed", service_credentials=SERVICE)
    msg = task_message(user.pw_name)
    await asyncio.sleep(0.05)  # the task was issued before the cancel arrives
    await w.cancel(msg.task_id)
    await asyncio.sleep(0.3)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"cancelled", "completed"})
    assert final.state == "cancelled"
    assert w.events.states(msg.task_id) == [("cancelled", 1)]


async def test_graceful_shutdown_requeues_instead_of_failing(start_worker, unix_user) -> None:
    user = unix_user()
    first = await start_worker(transfer_kind="medium", service_credentials=SERVICE)
    msg = task_message(user.pw_name)
    await first.submit(msg)
    await first.events.until(msg.task_id, {"active"})
    await first.worker.close()
    assert await _no_user_processes(user.pw_uid)
    second = await start_worker(transfer_kind="medium", service_credentials=SERVICE)
    # both event logs consume the one events queue: look at their union
    async with asyncio.timeout(30):
        while not any(  # noqa: ASYNC110 - filled by the consumers
            e.task_id == msg.task_id and e.state in ("completed", "archived")
            for e in first.events.events + second.events.events
        ):
            await asyncio.sleep(0.05)
    events = sorted(first.events.events + second.events.events, key=lambda e: e.seq)
    assert [e.state for e in events if e.task_id == msg.task_id][-1] == "completed"
    states = first.events.states(msg.task_id) + second.events.states(msg.task_id)
    assert ("retry", 1) not in states and ("completed", 1) in states
