"""Notification mail: completion to the user; final failure to the user, admins in cc.

Every mail has a text and an HTML part; header text never carries control characters
(an old job's title may). Building and sending failures are reported to the caller (the
runner builds and sends inside its error handling: logged and counted, never fatal to the
task).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
from pydantic import BaseModel, Field

from shared.messaging.messages import TaskSpec
from shared.settings import FileSecret


class SmtpSettings(BaseModel):
    """Where and how to send mail; no ``host`` means mail is off."""

    host: str | None = None
    port: int = 25
    sender: str = "data-stager@localhost"
    admins: list[str] = Field(default_factory=list)
    starttls: bool = False
    use_tls: bool = False
    username: str | None = None
    password: FileSecret | None = None
    timeout: float = Field(default=10.0, gt=0)
    subject_prefix: str = "[data stager]"


def _one_line(text: str) -> str:
    """Header text with control characters (CR/LF from an old job's title) as spaces."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _rows(spec: TaskSpec, task_id: str, extra: Mapping[str, str]) -> list[tuple[str, str]]:
    rows = [
        ("Job", task_id),
        ("Title", spec.title),
        ("Source", spec.srcURL),
        ("Destination", spec.dstURL),
        ("Run as", spec.stagerUser),
        ("Repository user", spec.drUser),
    ]
    return rows + list(extra.items())


def _compose(
    settings: SmtpSettings,
    *,
    to: list[str],
    cc: list[str],
    subject: str,
    lead: str,
    rows: list[tuple[str, str]],
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = _one_line(f"{settings.subject_prefix} {subject}")
    msg["Message-ID"] = make_msgid(domain="data-stager")
    width = max(len(k) for k, _ in rows)
    text = lead + "\n\n" + "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows) + "\n"
    msg.set_content(text)
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    body = (
        f"<html><body><p>{html.escape(lead)}</p>"
        f"<table cellpadding='4'>{cells}</table></body></html>"
    )
    msg.add_alternative(body, subtype="html")
    return msg


def completion_mail(
    settings: SmtpSettings, task_id: str, spec: TaskSpec, summary: Mapping[str, object]
) -> EmailMessage | None:
    """The "your job completed" mail, or None when the task has no email address."""
    if not spec.stagerUserEmail:
        return None
    extra = {
        "Files": (
            f"{summary.get('files_transferred', 0)} transferred, "
            f"{summary.get('files_skipped', 0)} unchanged, of {summary.get('files_total', 0)}"
        ),
        "Bytes sent": str(summary.get("bytes_sent", 0)),
    }
    return _compose(
        settings,
        to=[spec.stagerUserEmail],
        cc=[],
        subject=f"completed: {spec.title}",
        lead=f"Your data-stager job {task_id!s} completed.",
        rows=_rows(spec, task_id, extra),
    )


def failure_mail(
    settings: SmtpSettings, task_id: str, spec: TaskSpec, error: str, attempts: int
) -> EmailMessage | None:
    """The final-failure mail (user, admins in cc); None when nobody is to be told."""
    to = [spec.stagerUserEmail] if spec.stagerUserEmail else list(settings.admins)
    cc = list(settings.admins) if spec.stagerUserEmail else []
    if not to:
        return None
    extra = {"Attempts": str(attempts), "Error": error}
    return _compose(
        settings,
        to=to,
        cc=cc,
        subject=f"FAILED: {spec.title}",
        lead=(
            f"Your data-stager job {task_id} failed after {attempts} attempt(s) and was "
            "archived. It can be restarted once the cause is fixed."
        ),
        rows=_rows(spec, task_id, extra),
    )


class Mailer:
    """Sends composed mails through the configured SMTP server."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.host)

    async def send(self, msg: EmailMessage | None) -> bool:
        """Send ``msg``; False when mail is off or there is nothing to send."""
        if msg is None or not self.enabled:
            return False
        s = self.settings
        await aiosmtplib.send(
            msg,
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            start_tls=s.starttls,
            use_tls=s.use_tls,
            timeout=s.timeout,
        )
        return True
