"""TLS: negotiation to SSL with a throwaway certificate, native and PAM logins over it."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Iterator
from typing import Any

import irods.client_configuration as cfg
import irods.exception as ex
import pytest
from irods.connection import Connection
from irods.meta import AVUOperation, iRODSMeta
from irods.models import DataObject, DataObjectMeta

from devtools.irods_server.launcher import ServerProcess


def connected_over_tls(session: Any) -> bool:
    with session.pool.get_connection() as conn:
        return isinstance(conn.socket, ssl.SSLSocket)


def test_negotiates_tls_and_logs_in_natively(tls_irods_server: ServerProcess) -> None:
    with tls_irods_server.session(**tls_irods_server.tls_options()) as s:
        assert connected_over_tls(s)


def test_client_refusing_tls_gets_plain_tcp(tls_irods_server: ServerProcess) -> None:
    opts = {
        **tls_irods_server.tls_options(),
        "irods_client_server_policy": "CS_NEG_REFUSE",
    }
    with tls_irods_server.session(**opts) as s:
        assert not connected_over_tls(s)


def test_client_rejects_an_untrusted_certificate(
    tls_irods_server: ServerProcess, tmp_path: Any
) -> None:
    from devtools.irods_server.launcher import make_self_signed_cert

    other_ca, _ = make_self_signed_cert(tmp_path)
    opts = {**tls_irods_server.tls_options(), "irods_ssl_ca_certificate_file": str(other_ca)}
    with tls_irods_server.session(**opts) as s, pytest.raises(ssl.SSLError):
        s.pool.get_connection()


def test_pam_password_login_over_tls(tls_irods_server: ServerProcess) -> None:
    opts = {**tls_irods_server.tls_options(), "authentication_scheme": "pam_password"}
    with tls_irods_server.session(**opts) as s:
        # the server hands back a temporary password, valid for a native login
        temp = s.pam_pw_negotiated
        assert connected_over_tls(s)
    assert len(temp) == 1 and temp[0] != tls_irods_server.admin_password
    with tls_irods_server.session("rods", temp[0], **tls_irods_server.tls_options()) as s:
        assert connected_over_tls(s)


def test_pam_password_wrong_password(tls_irods_server: ServerProcess) -> None:
    opts = {**tls_irods_server.tls_options(), "authentication_scheme": "pam_password"}
    session = tls_irods_server.session("rods", "wrong-pam-pw", **opts)
    with session as s, pytest.raises(ex.PAM_AUTH_PASSWORD_FAILED):
        s.pool.get_connection()


@pytest.fixture
def legacy_pam(request: Any) -> Iterator[None]:
    entries = [
        {"setting": "legacy_auth.force_legacy_auth", "value": True},
        {"setting": "legacy_auth.pam.force_use_of_dedicated_pam_api", "value": request.param},
    ]
    with cfg.loadlines(entries=entries):
        yield


@pytest.mark.parametrize("legacy_pam", [False, True], indirect=True, ids=["api1201", "api725"])
def test_legacy_pam_login_over_tls(tls_irods_server: ServerProcess, legacy_pam: None) -> None:
    opts = {**tls_irods_server.tls_options(), "authentication_scheme": "pam"}
    with tls_irods_server.session(**opts) as s:
        assert connected_over_tls(s)


@pytest.mark.parametrize("legacy_pam", [True], indirect=True, ids=["api725"])
def test_server_refuses_pam_without_tls(
    irods_server: ServerProcess, legacy_pam: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Connection, "DISALLOWING_PAM_PLAINTEXT", False)
    session = irods_server.session(authentication_scheme="pam")
    with session as s, pytest.raises(ex.SYS_NOT_ALLOWED):
        s.pool.get_connection()


def test_data_round_trip_over_tls(tls_irods_server: ServerProcess, tmp_path: Any) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    path = "/tempZone/home/rods/tls-round-trip.bin"
    with tls_irods_server.session(**tls_irods_server.tls_options()) as s:
        assert connected_over_tls(s)
        s.data_objects.put(str(src), path, num_threads=1)
        s.data_objects.get(path, str(tmp_path / "dst.bin"), num_threads=1)
        s.data_objects.unlink(path, force=True)
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()


# -- large messages over TLS (regression: the server must not drop the connection) -----------

MiB = 1 << 20


def _sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("size", "threads"),
    [(128 * 1024 + 1, 1), (MiB, 1), (MiB, 0), (40 * MiB, 1), (40 * MiB, 4)],
    ids=["128KiB+1", "1MiB", "1MiB-default", "40MiB-single", "40MiB-parallel"],
)
def test_large_object_put_get_over_tls(
    tls_irods_server: ServerProcess, tmp_path: Any, size: int, threads: int
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    dst = tmp_path / "dst.bin"
    path = f"/tempZone/home/rods/tls-large-{size}-{threads}.bin"
    with tls_irods_server.session(**tls_irods_server.tls_options()) as s:
        assert connected_over_tls(s)
        s.data_objects.put(str(src), path, num_threads=threads)
        assert s.data_objects.get(path).size == size
        s.data_objects.get(path, str(dst), num_threads=threads)
        s.data_objects.unlink(path, force=True)
    assert dst.stat().st_size == size
    assert _sha256(dst) == _sha256(src)


def test_large_genquery_request_and_reply_over_tls(tls_irods_server: ServerProcess) -> None:
    path = "/tempZone/home/rods/tls-large-query.txt"
    values = [f"{i:04d}" + "v" * 1500 for i in range(400)]  # ~600 KiB of reply rows
    with tls_irods_server.session(**tls_irods_server.tls_options()) as s:
        obj = s.data_objects.create(path)
        try:
            ops = [AVUOperation(operation="add", avu=iRODSMeta(f"k{v[:4]}", v)) for v in values]
            obj.metadata.apply_atomic_operations(*ops)  # a ~600 KiB request message
            query = s.query(DataObjectMeta.value).filter(DataObject.name == obj.name)
            got = sorted(row[DataObjectMeta.value] for row in query.get_results())
            assert got == values
            # a ~256 KiB condition value in the request: no match, the connection survives
            big = s.query(DataObject.name).filter(DataObject.name == "x" * (256 * 1024))
            assert list(big) == []
            assert s.data_objects.get(path).name == obj.name
        finally:
            s.data_objects.unlink(path, force=True)
