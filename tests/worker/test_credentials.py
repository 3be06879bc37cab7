"""Which repository credential a task uses: its envelope (rotated keys) or its service's."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.worker.credentials import CredentialError, RepoCredential, load_opener, resolve
from shared.crypto import Binding, Sealer, generate_keypair
from tests.worker.conftest import task_message

ALICE_OWN = Binding(stager_user="alice", dr_user="svc")
ALICE_VIA_STREAMER = Binding(stager_user="alice", dr_user="svc", submitter="streamer")


@pytest.fixture(scope="module")
def keys() -> list[tuple[bytes, bytes]]:
    return [generate_keypair(2048) for _ in range(3)]


def _keys_dir(tmp_path, pairs) -> None:
    for i, (private, public) in enumerate(pairs):
        (tmp_path / f"k{i}.pem").write_bytes(private)
        (tmp_path / f"k{i}.pub.pem").write_bytes(public)


def test_envelope_opens_with_any_rotated_key(tmp_path, keys) -> None:
    _keys_dir(tmp_path, keys[:2])
    opener = load_opener(tmp_path)
    for _, public in keys[:2]:
        envelope = Sealer.from_pem([public]).seal("pa55-word", ALICE_OWN)
        msg = task_message("alice", drPass=envelope, service=None)
        assert resolve(msg, opener, {}) == ("svc", "pa55-word")


def test_envelope_for_an_unknown_key_or_tampered_is_refused(tmp_path, keys) -> None:
    _keys_dir(tmp_path, keys[:1])
    opener = load_opener(tmp_path)
    foreign = Sealer.from_pem([keys[2][1]]).seal("pw", ALICE_VIA_STREAMER)
    with pytest.raises(CredentialError, match="no private key") as e:
        resolve(task_message("alice", drPass=foreign), opener, {})
    assert "pw" not in str(e.value).replace("drPass", "")
    good = Sealer.from_pem([keys[0][1]]).seal("pw", ALICE_VIA_STREAMER)
    head, body = good.rsplit(".", 1)
    tampered = head + "." + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(CredentialError, match="integrity"):
        resolve(task_message("alice", drPass=tampered), opener, {})


def test_service_account_without_drpass_uses_its_configured_credential() -> None:
    creds = {
        "streamer": RepoCredential(user="svc-default", password=SecretStr("a")),
        "streamer/svc": RepoCredential(user="svc", password=SecretStr("b")),
    }
    assert resolve(task_message("alice", service="streamer"), None, creds) == ("svc", "b")
    del creds["streamer/svc"]
    assert resolve(task_message("alice"), None, creds) == ("svc-default", "a")
    with pytest.raises(CredentialError, match="no repository credential configured"):
        resolve(task_message("alice", service="other"), None, creds)


def test_user_without_drpass_is_refused() -> None:
    with pytest.raises(CredentialError, match="give the repository password"):
        resolve(task_message("alice", service=None), None, {})


def test_worker_without_keys_cannot_open(tmp_path, keys) -> None:
    assert load_opener(tmp_path) is None
    envelope = Sealer.from_pem([keys[0][1]]).seal("pw", ALICE_VIA_STREAMER)
    with pytest.raises(CredentialError, match="no private key"):
        resolve(task_message("alice", drPass=envelope), None, {})


def test_envelope_bound_to_another_job_is_refused_before_opening(tmp_path, keys) -> None:
    _keys_dir(tmp_path, keys[:1])
    opener = load_opener(tmp_path)
    envelope = Sealer.from_pem([keys[0][1]]).seal("pw", ALICE_OWN)
    assert resolve(task_message("alice", drPass=envelope, service=None), opener, {})[1] == "pw"
    for msg in (
        task_message("bob", drPass=envelope, service=None),  # another user's job
        task_message("alice", drPass=envelope, service="streamer"),  # via a service account
    ):
        with pytest.raises(CredentialError, match="sealed for another job"):
            resolve(msg, opener, {})
