"""The worker's settings: nested models read from ``STAGER_…__…``, declared once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.isync import TransferOptions
from services.worker.settings import WorkerSettings


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGER_CHILDREN__LINGER", "0")
    monkeypatch.setenv("STAGER_CHILDREN__MAX_TASKS", "7")
    monkeypatch.setenv("STAGER_RETRY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("STAGER_TRANSFER__STREAMS", "2")
    s = WorkerSettings()
    assert (s.children.linger, s.children.max_tasks, s.children.max_idle) == (0, 7, 16)
    assert s.retry.max_attempts == 3 and s.retry.delays() == [10.0, 30.0]
    # one field set: the worker's other transfer defaults stay
    assert s.transfer.streams == 2 and s.transfer.recursive and s.transfer.verify_checksum


def test_transfer_defaults_are_isync_options_with_the_workers_defaults() -> None:
    options = TransferOptions(**WorkerSettings().transfer.model_dump(mode="json"))
    assert options.recursive and options.verify_checksum
    assert options.model_dump(
        exclude={"recursive", "verify_checksum"}
    ) == TransferOptions().model_dump(exclude={"recursive", "verify_checksum"})


def test_invalid_retry_and_transfer_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGER_RETRY__MAX_DELAY", "1")  # below base_delay (10)
    with pytest.raises(ValidationError, match="max_delay"):
        WorkerSettings()
    monkeypatch.delenv("STAGER_RETRY__MAX_DELAY")
    monkeypatch.setenv("STAGER_TRANSFER__STREAMS", "33")
    with pytest.raises(ValidationError, match="streams"):
        WorkerSettings()


def test_child_login_and_uid_range_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAGER_CHILDREN__UMASK", "027")
    monkeypatch.setenv("STAGER_CHILDREN__ENV", '{"REQUESTS_CA_BUNDLE": "/etc/ssl/site.pem"}')
    monkeypatch.setenv("STAGER_MAX_UID", "50000")
    s = WorkerSettings()
    assert (s.children.umask_value, s.children.env) == (
        0o027,
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/site.pem"},
    )
    assert (s.min_uid, s.max_uid, s.children.linger) == (1000, 50000, 5.0)
    monkeypatch.setenv("STAGER_CHILDREN__UMASK", "77")
    with pytest.raises(ValidationError, match="three octal digits"):
        WorkerSettings()
