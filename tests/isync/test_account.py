import json
import os

import pytest

from services.isync.account import load_account
from services.isync.errors import AuthenticationError, UsageError
from shared.irods import session_kwargs

BASE = {"IRODS_HOST": "h", "IRODS_PORT": "1250", "IRODS_USER_NAME": "u", "IRODS_ZONE_NAME": "z"}


def test_from_variables_and_password_redacted():
    acc = load_account({**BASE, "IRODS_PASSWORD": "s3cret", "HOME": "/nonexistent"})
    assert (acc.host, acc.port, acc.user, acc.zone, acc.home) == ("h", 1250, "u", "z", "/z/home/u")
    assert acc.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(acc)
    assert "ssl_ca_certificate_file" not in session_kwargs(acc)


def test_password_file_read_and_deleted(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    environ = {**BASE, "IRODS_PASSWORD_FILE": str(pw), "HOME": str(tmp_path)}
    assert load_account(environ).password.get_secret_value() == "from-file"
    assert pw.exists()
    load_account(environ, delete_password_file=True)
    assert not pw.exists()


def test_environment_file_and_irods_a(tmp_path):
    from irods.password_obfuscation import encode

    irods = tmp_path / ".irods"
    irods.mkdir()
    (irods / "irods_environment.json").write_text(
        json.dumps(
            {
                "irods_host": "eh",
                "irods_port": 1999,
                "irods_user_name": "eu",
                "irods_zone_name": "ez",
                "irods_client_server_policy": "CS_NEG_REQUIRE",
                "irods_ssl_ca_certificate_file": "/ca.pem",
                "irods_ssl_verify_server": "cert",
            }
        )
    )
    (irods / ".irodsA").write_text(encode("envpw"))
    acc = load_account({"HOME": str(tmp_path)})
    assert (acc.host, acc.port, acc.user, acc.zone) == ("eh", 1999, "eu", "ez")
    assert acc.password.get_secret_value() == "envpw"
    kw = session_kwargs(acc)
    assert kw["client_server_policy"] == "CS_NEG_REQUIRE"
    assert kw["ssl_ca_certificate_file"] == "/ca.pem"
    assert kw["ssl_verify_server"] == "cert"


def test_missing_settings_and_password(tmp_path):
    with pytest.raises(UsageError, match="IRODS_HOST"):
        load_account({"HOME": str(tmp_path)})
    with pytest.raises(AuthenticationError, match="no iRODS password"):
        load_account({**BASE, "HOME": str(tmp_path)})


def test_sealed_envelope(tmp_path):
    crypto = pytest.importorskip("shared.crypto")
    private, public = crypto.generate_keypair(bits=2048)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k1.pem").write_bytes(private)
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    sealer = crypto.Sealer.from_pem([public])
    envelope = sealer.seal("sealed-pw", crypto.Binding(stager_user=me, dr_user="u"))
    environ = {
        **BASE,
        "HOME": str(tmp_path),
        "IRODS_PASSWORD_ENVELOPE": envelope,
        "STAGER_PRIVATE_KEYS_DIR": str(keys),
    }
    assert load_account(environ).password.get_secret_value() == "sealed-pw"
    with pytest.raises(AuthenticationError, match="envelope"):
        load_account({**environ, "IRODS_PASSWORD_ENVELOPE": envelope[:-4] + "AAAA"})
    other = sealer.seal("sealed-pw", crypto.Binding(stager_user=me, dr_user="someone-else"))
    with pytest.raises(AuthenticationError, match="drUser 'someone-else'"):
        load_account({**environ, "IRODS_PASSWORD_ENVELOPE": other})
