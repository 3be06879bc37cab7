"""Messages: Go field names, aliases, path rules, versioned bodies, secrets never serialised
in plaintext."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.api.views import JobInput
from shared.messaging.messages import (
    ControlMessage,
    DirListReply,
    PrincipalKind,
    Submitter,
    TaskEvent,
    TaskMessage,
    TaskSpec,
    TaskState,
)

BASE = {
    "title": "t",
    "stagerUser": "stgalice",
    "drUser": "u",
    "srcURL": "/project/a",
    "dstURL": "irods:/zone/a",
}


def test_plaintext_password_is_never_dumped() -> None:
    job = JobInput.model_validate({**BASE, "drPass": "hunter2-secret"})
    assert "hunter2-secret" not in repr(job)
    assert "hunter2-secret" not in job.model_dump_json()
    assert "hunter2-secret" not in str(job.model_dump())
    assert job.drPass is not None and job.drPass.get_secret_value() == "hunter2-secret"


def test_sealed_spec_refuses_plaintext() -> None:
    with pytest.raises(ValidationError):
        TaskSpec.model_validate({**BASE, "drPass": "hunter2-secret"})


def test_email_alias_and_defaults() -> None:
    job = JobInput.model_validate({**BASE, "stagerEmail": "a@b.org"})
    assert (
        job.stagerUserEmail == "a@b.org" and job.timeout is None
    )  # absent: the API stores its finite default
    assert job.direction == "upload"
    down = JobInput.model_validate({**BASE, "srcURL": "i:/zone/a", "dstURL": "/project/a"})
    assert down.direction == "download"


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"srcURL": "rel/a"}, "relative"),
        ({"srcURL": "/a/../b"}, "'..'"),
        ({"dstURL": "/project/b"}, "both local"),
        ({"srcURL": "irods:/z/b"}, "both iRODS"),
        ({"srcURL": "/a\x00b"}, "NUL"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_rejections_say_what_to_fix(over: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as e:
        JobInput.model_validate({**BASE, **over})
    assert needle in str(e.value)


def test_amqp_bodies_are_versioned() -> None:
    spec = TaskSpec.model_validate(BASE)
    msg = TaskMessage(
        task_id="x", submitter=Submitter(kind=PrincipalKind.USER, name="stgalice"), task=spec
    )
    for body in (
        msg,
        TaskEvent(task_id="x", attempt=1, seq=0, state=TaskState.ACTIVE),
        ControlMessage(task_id="x"),
        DirListReply(ok=True),
    ):
        assert body.model_dump()["v"] == 1
        assert type(body).model_validate_json(body.model_dump_json()) == body
    with pytest.raises(ValidationError):
        ControlMessage.model_validate({"v": 2, "task_id": "x"})


def test_a_file_error_without_a_kind_is_other_and_an_unknown_kind_is_refused() -> None:
    """Reports stored or sent before kinds existed still parse; a new kind must be added to
    the vocabulary (shared.errors.FileErrorKind) before anyone may send it."""
    from shared.messaging.messages import FileError, TaskReport

    old = TaskEvent.model_validate(
        {
            "task_id": "x",
            "attempt": 1,
            "seq": 0,
            "state": "archived",
            "report": {"file_errors": [{"path": "/p/a", "error": "/p/a: permission denied"}]},
        }
    )
    assert old.report is not None and old.report.file_errors[0].kind == "other"
    new = TaskReport(file_errors=[FileError(path="/p/a", error="e", kind="checksum_mismatch")])
    again = TaskReport.model_validate_json(new.model_dump_json())
    assert again.file_errors[0].kind == "checksum_mismatch"
    with pytest.raises(ValidationError, match="kind"):
        FileError.model_validate({"path": "/p/a", "error": "e", "kind": "gremlins"})
