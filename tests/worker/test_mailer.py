"""Notification mails: recipients, both parts, escaping, and a real SMTP round trip."""

from __future__ import annotations

from services.worker.mailer import Mailer, SmtpSettings, completion_mail, failure_mail
from tests.worker.conftest import task_message


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
