"""``stager``: the operator CLI as an operator runs it (a real subprocess per command)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services.api.auth import verify_password
from shared.crypto import Binding, Opener, Sealer, key_id, load_public_key

REPO = Path(__file__).resolve().parents[1]


def stager(*args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_every_command() -> None:
    code, out, err = stager("--help")
    assert code == 0 and err == ""
    for command in ("ingest", "genkey", "hash-password"):
        assert command in out


def test_genkey_writes_a_private_key_0600_and_prints_its_id(tmp_path: Path) -> None:
    code, out, err = stager("genkey", str(tmp_path / "k"), "--bits", "2048")
    assert code == 0, err
    priv, pub = tmp_path / "k" / "private.pem", tmp_path / "k" / "public.pem"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert out == key_id(load_public_key(pub.read_bytes())) + "\n"
    bound = Binding(stager_user="alice", dr_user="alice@example.org")
    envelope = Sealer.from_pem([pub.read_bytes()]).seal("x", bound)
    assert Opener.from_pem([priv.read_bytes()]).open(envelope, bound).get_secret_value() == "x"


def test_genkey_refuses_to_overwrite_an_existing_key_and_keeps_it(tmp_path: Path) -> None:
    code, _, err = stager("genkey", str(tmp_path / "k"), "--bits", "2048")
    assert code == 0, err
    before = (tmp_path / "k" / "private.pem").read_bytes()
    code, out, err = stager("genkey", str(tmp_path / "k"), "--bits", "2048")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "exists" in err and "Traceback" not in err, err
    assert (tmp_path / "k" / "private.pem").read_bytes() == before


def test_genkey_private_key_is_0600_even_when_an_old_0644_file_was_moved_away(
    tmp_path: Path,
) -> None:
    """The old behaviour kept a pre-existing file's mode: a key written into a planted
    0644 file stayed world-readable. Now the file must not exist, and a planted symlink
    is refused too (O_EXCL | O_NOFOLLOW)."""
    keys = tmp_path / "k"
    keys.mkdir()
    (keys / "private.pem").symlink_to(tmp_path / "elsewhere")
    code, _, err = stager("genkey", str(keys), "--bits", "2048")
    assert code == 1 and "exists" in err
    assert not (tmp_path / "elsewhere").exists()


def test_genkey_signing_writes_a_role_key_pair_that_signs_and_verifies(tmp_path: Path) -> None:
    from shared.messaging import signing

    code, out, err = stager("genkey", "--signing", "worker", str(tmp_path / "s"))
    assert code == 0, err
    priv, pub = tmp_path / "s" / "worker.key", tmp_path / "s" / "worker.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    key = signing.load_publics(pub.read_text())[0]
    assert out == signing.key_id(key) + "\n"
    signer = signing.Signer(signing.Role.WORKER, signing.load_private(priv.read_bytes()))
    headers = signer.headers(b"{}", type_="t", message_id="m")
    verifier = signing.Verifier({signing.Role.WORKER: [key]})
    ok = verifier.verify(b"{}", headers, type_="t", message_id="m", accept=[signing.Role.WORKER])
    assert ok.role is signing.Role.WORKER


def test_genkey_where_nothing_can_be_written_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, out, err = stager("genkey", str(blocker / "keys"), "--bits", "2048")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("stager genkey: cannot write"), err
    assert str(blocker / "keys") in err and "Traceback" not in err


def test_hash_password_reads_stdin_and_prints_a_verifiable_hash() -> None:
    code, out, err = stager("hash-password", stdin="pw-from-stdin\n")
    assert code == 0, err
    assert out.endswith("\n") and verify_password("pw-from-stdin", out.strip())


def test_usage_errors_are_one_line_and_exit_2() -> None:
    for args, stdin, expected in [
        ((), "", "stager: the following arguments are required: COMMAND"),
        (("nope",), "", "stager: argument COMMAND: invalid choice: 'nope'"),
        (("genkey",), "", "stager genkey: the following arguments are required: DIR"),
        (("genkey", "d", "--bits", "many"), "", "stager genkey: argument --bits: invalid int"),
        (("hash-password", "extra"), "", "stager: unrecognized arguments: extra"),
        (("hash-password",), "\n", "stager hash-password: empty password on stdin"),
    ]:
        code, out, err = stager(*args, stdin=stdin)
        assert (code, out) == (2, ""), (args, code, out, err)
        assert err.count("\n") == 1 and err.startswith(expected), (args, err)


def test_ingest_is_handed_to_the_ingest_cli() -> None:
    code, out, err = stager("ingest", "--help")
    assert code == 0 and out.startswith("usage: stager ingest"), err
    code, out, err = stager("ingest", "nope")
    assert code == 2 and "stager ingest: error: argument command: invalid choice" in err


def test_make_up_and_stager_ingest_use_the_same_store_from_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12: ``stager ingest`` run outside the repository root made a new empty store.
    The store ``make up`` gives the API and the ingest worker (its default ``.local/``) is
    the one the CLI opens without ``STAGER_INGEST__DB_URL``, from any directory."""
    from scripts import up
    from shared.settings import DEFAULT_INGEST_STORE, IngestStoreSettings

    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
    monkeypatch.setattr(os, "environ", env)
    monkeypatch.chdir("/")
    cli_store = IngestStoreSettings().db_url
    args = up.parse_args([])
    stack = up.Stack(local=args.local_dir.resolve(), ephemeral=False, workers=1, grace=1.0)
    stack.configure_ingest()
    assert env["STAGER_INGEST__DB_URL"] == cli_store
    assert cli_store == f"sqlite+aiosqlite:///{DEFAULT_INGEST_STORE}"
