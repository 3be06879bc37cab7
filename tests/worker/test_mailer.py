"""Notification mails: recipients, both parts, escaping, and a real SMTP round trip."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import SecretStr

from services.worker.credentials import RepoCredential
from services.worker.mailer import Mailer, SmtpSettings, completion_mail, failure_mail
from shared.messaging.messages import TaskMessage
from tests.worker.conftest import RunningWorker, task_message


def _spec(email: str | None = "ann@example.org"):
    msg = task_message("ann", email=email)
    return msg.task.model_copy(update={"title": "scan <b>&</b> more"})


def test_failure_mail_goes_to_user_with_admins_in_cc() -> None:
    s = SmtpSettings(host="x", admins=["a1@example.org", "a2@example.org"])
    mail = failure_mail(s, "job-1", _spec(), "1 of 2 files failed: /p/x: permission denied", 5)
    assert mail is not None
    assert mail["To"] == "ann@example.org" and mail["Cc"] == "a1@example.org, a2@example.org"
    text_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "permission denied" in text and "5 attempt(s)" in text and "job-1" in text
    assert "scan &lt;b&gt;&amp;&lt;/b&gt; more" in html and "<b>&</b>" not in html


def test_failure_without_user_email_goes_to_admins_and_completion_to_nobody() -> None:
    s = SmtpSettings(host="x", admins=["ops@example.org"])
    mail = failure_mail(s, "job-2", _spec(email=None), "boom", 1)
    assert mail is not None and mail["To"] == "ops@example.org" and mail["Cc"] is None
    assert completion_mail(s, "job-2", _spec(email=None), {}) is None
    assert failure_mail(SmtpSettings(host="x"), "job-2", _spec(email=None), "boom", 1) is None


async def test_mail_is_sent_over_smtp(smtp) -> None:
    s = SmtpSettings(host=smtp.host, port=smtp.port, sender="stager@example.org")
    mail = completion_mail(s, "job-3", _spec(), {"files_transferred": 7, "files_total": 7})
    assert await Mailer(s).send(mail) is True
    await smtp.wait(1)
    rcpt, got = smtp.messages[0]
    assert rcpt == ["ann@example.org"] and got["From"] == "stager@example.org"
    assert "7 transferred" in got.get_payload()[0].get_payload(decode=True).decode()


async def test_mail_off_without_host() -> None:
    assert (
        await Mailer(SmtpSettings()).send(completion_mail(SmtpSettings(), "j", _spec(), {}))
        is False
    )


# --- the worker: a mail that cannot be built or sent never fails or re-runs the task -----

SERVICE = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failures(w: RunningWorker, stage: str) -> float:
    value = w.worker.metrics.registry.get_sample_value(
        "stager_worker_mail_failures_total", {"stage": stage}
    )
    return value or 0.0


async def _settled_once(w: RunningWorker, msg: TaskMessage, state: str) -> None:
    await w.events.until(msg.task_id, {state})
    await asyncio.sleep(1.0)  # a requeued (re-run) task would have started again by now
    finals = [s for s, _ in w.events.states(msg.task_id) if s != "active"]
    starts = [s for s, _ in w.events.states(msg.task_id) if s == "active"]
    assert (finals[-1:], len(starts)) == ([state], len(finals)), w.events.states(msg.task_id)


async def test_a_title_with_cr_lf_from_an_old_row_is_mailed_on_one_line(
    start_worker, unix_user, smtp
) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="succeed",
        service_credentials=SERVICE,
        smtp={"host": smtp.host, "port": smtp.port},
    )
    msg = task_message(user.pw_name)
    msg = msg.model_copy(
        update={"task": msg.task.model_copy(update={"title": "scan\r\nBcc: evil@example.org"})}
    )
    await w.submit(msg)
    await _settled_once(w, msg, "completed")
    await smtp.wait(1)
    rcpt, mail = smtp.messages[0]
    assert rcpt == ["user@example.org"]  # no injected recipient
    assert mail["Bcc"] is None and "scan Bcc: evil@example.org" in mail["Subject"]
    assert w.events.states(msg.task_id) == [("active", 1), ("completed", 1)]


@pytest.mark.parametrize(
    ("transfer_kind", "final"), [("succeed", "completed"), ("fail_permanent", "archived")]
)
async def test_smtp_down_is_counted_and_the_task_settles_once(
    start_worker, unix_user, transfer_kind: str, final: str
) -> None:
    """SMTP down for the completion mail and for the failure mail alike."""
    user = unix_user()
    w = await start_worker(
        transfer_kind=transfer_kind,
        service_credentials=SERVICE,
        smtp={"host": "127.0.0.1", "port": _free_port(), "timeout": 2},
    )
    msg = task_message(user.pw_name)
    await w.submit(msg)
    await _settled_once(w, msg, final)
    assert w.events.states(msg.task_id) == [("active", 1), (final, 1)]
    assert _failures(w, "send") == 1


async def test_a_mail_that_cannot_be_built_is_counted_and_the_transfer_is_not_rerun(
    start_worker, unix_user, smtp
) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="succeed",
        service_credentials=SERVICE,
        # a sender no header can carry (a mis-set value): building the mail raises
        smtp={"host": smtp.host, "port": smtp.port, "sender": "stager@example.org\r\nX: y"},
    )
    msg = task_message(user.pw_name)
    await w.submit(msg)
    await _settled_once(w, msg, "completed")
    assert w.events.states(msg.task_id) == [("active", 1), ("completed", 1)]
    assert _failures(w, "build") == 1 and not smtp.messages
