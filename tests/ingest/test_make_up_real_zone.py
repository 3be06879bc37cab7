"""Issue 13 item 9: ``make up`` with ``STAGER_IRODS__HOST`` (a real zone, docs/make-up.md).

With an account for the ingest worker (``STAGER_IRODS__PASSWORD``) ``make up`` starts an
ingest worker, which logs in with the same ``STAGER_IRODS__*`` as everything else (no
``STAGER_INGEST__IRODS__*``); without one it starts none and forces
``STAGER_INGEST__WORKERS=false``, so the API refuses ingest jobs with 503 (the REST side:
``tests/ingest/test_parity_cli.py::test_the_api_refuses_ingest_jobs_without_a_worker``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.up import Stack
from services.api.settings import ApiSettings
from services.ingest.settings import IngestSettings


@pytest.fixture
def real_zone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The caller's environment for a real zone; nothing from the test's own iRODS set-up."""
    for name in list(os.environ):
        if name.startswith(("STAGER_IRODS__", "IRODS_", "STAGER_INGEST")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.irods of the test machine
    monkeypatch.setenv("STAGER_IRODS__HOST", "irods.zone.example.org")
    monkeypatch.setenv("STAGER_IRODS__ZONE", "realZone")
    monkeypatch.setenv("STAGER_IRODS__USER", "ingester")
    return tmp_path


def _stack(local: Path) -> Stack:
    stack = Stack(local=local, ephemeral=False, workers=1, grace=1.0)
    stack.test_irods = "STAGER_IRODS__HOST" not in os.environ  # as Stack.configure does
    return stack


def test_with_a_password_an_ingest_worker_starts_on_the_same_account(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", "secret")
    stack = _stack(real_zone_env)
    assert stack.configure_ingest() is True
    assert os.environ["STAGER_INGEST__WORKERS"] == "true"
    assert ApiSettings().ingest.workers is True  # the API accepts ingest jobs
    worker = IngestSettings()  # what `python -m services.ingest` reads
    assert (worker.irods.host, worker.irods.zone, worker.irods.user) == (
        "irods.zone.example.org",
        "realZone",
        "ingester",
    )
    assert worker.irods.password.get_secret_value() == "secret"


def test_without_a_password_no_worker_and_the_api_refuses(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGER_INGEST__WORKERS", "true")  # even if the caller said so
    stack = _stack(real_zone_env)
    assert stack.configure_ingest() is False
    assert os.environ["STAGER_INGEST__WORKERS"] == "false"
    assert ApiSettings().ingest.workers is False


def test_irods_password_counts_as_the_ingest_workers_credential(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As automated ingest's sessions, the ingest worker logs in with ``IRODS_PASSWORD`` when
    no ``STAGER_IRODS__PASSWORD`` is set (``services.ingest.settings``): make up starts it."""
    monkeypatch.setenv("IRODS_PASSWORD", "from-irods-env")
    stack = _stack(real_zone_env)
    assert stack.configure_ingest() is True
    assert os.environ["STAGER_INGEST__WORKERS"] == "true"
    assert IngestSettings().irods.password.get_secret_value() == "from-irods-env"


def test_an_iinit_irodsa_counts_as_the_ingest_workers_credential(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/.irods/.irodsA`` written by ``iinit`` (python-irodsclient's obfuscation, as
    ``iinit`` writes it for this uid) is the password the worker logs in with."""
    from irods.password_obfuscation import encode

    irods_dir = real_zone_env / ".irods"
    irods_dir.mkdir()
    (irods_dir / ".irodsA").write_text(encode("from-iinit"))
    stack = _stack(real_zone_env)
    assert stack.configure_ingest() is True
    assert os.environ["STAGER_INGEST__WORKERS"] == "true"
    assert IngestSettings().irods.password.get_secret_value() == "from-iinit"


def test_no_client_environment_means_irodsa_does_not_count(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``STAGER_INGEST__CLIENT_ENVIRONMENT=false``: the worker would not read ``.irodsA``,
    so make up starts none (and the API refuses ingest jobs)."""
    from irods.password_obfuscation import encode

    (real_zone_env / ".irods").mkdir()
    (real_zone_env / ".irods" / ".irodsA").write_text(encode("from-iinit"))
    monkeypatch.setenv("IRODS_PASSWORD", "ignored-too")
    monkeypatch.setenv("STAGER_INGEST__CLIENT_ENVIRONMENT", "false")
    stack = _stack(real_zone_env)
    assert stack.configure_ingest() is False
    assert ApiSettings().ingest.workers is False
    assert IngestSettings().irods.password.get_secret_value() == ""


def test_an_unreadable_irods_environment_stops_make_up_saying_which_file(
    real_zone_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = real_zone_env / "env.json"
    bad.write_text("{not json")
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(bad))
    with pytest.raises(SystemExit, match=f"up: cannot read the iRODS environment file {bad}"):
        _stack(real_zone_env).configure_ingest()
