"""The connection loop: handshake, framing limits, dispatch errors, concurrency, restart."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import irods.exception as ex
import pytest
from irods.api_number import api_number
from irods.message import GeneralAdminRequest, StartupPack, iRODSMessage

from devtools.irods_server.launcher import ServerProcess


def api_call(session: Any, api: int, msg: Any = None) -> int:
    """Send one raw API request on a pooled connection; returns ``intInfo``."""
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=msg, int_info=api))
        return int(conn.recv().int_info)


def raw_connect(srv: ServerProcess) -> socket.socket:
    """A plain socket that has done the startup handshake (no negotiation)."""
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    pack = StartupPack(("rods", srv.zone), ("rods", srv.zone))
    sock.sendall(iRODSMessage("RODS_CONNECT", msg=pack).pack())
    reply = iRODSMessage.recv(sock)
    assert reply.msg_type == "RODS_VERSION"
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_handshake_without_negotiation_reports_4_3(irods_session: Any) -> None:
    with irods_session.pool.get_connection() as conn:
        assert conn.server_version == (4, 3, 4)
        assert type(conn.socket) is socket.socket


def test_handshake_with_negotiation_settles_on_tcp(irods_server: ServerProcess) -> None:
    opts = {
        "irods_client_server_negotiation": "request_server_negotiation",
        "irods_client_server_policy": "CS_NEG_REFUSE",
    }
    with irods_server.session(**opts) as s, s.pool.get_connection() as conn:
        assert type(conn.socket) is socket.socket
        assert conn.server_version == (4, 3, 4)


def test_tls_required_by_client_fails_without_server_certificate(
    irods_server: ServerProcess,
) -> None:
    opts = {
        "irods_client_server_negotiation": "request_server_negotiation",
        "irods_client_server_policy": "CS_NEG_REQUIRE",
    }
    with irods_server.session(**opts) as s, pytest.raises(ex.NetworkException):
        s.pool.get_connection()


def test_unknown_api_is_a_clean_error_and_the_connection_lives_on(irods_session: Any) -> None:
    with irods_session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", int_info=99999))
        with pytest.raises(ex.SYS_UNMATCHED_API_NUM):
            conn.recv()
        conn.send(
            iRODSMessage(
                "RODS_API_REQ",
                msg=GeneralAdminRequest("calculate-usage"),
                int_info=api_number["GENERAL_ADMIN_AN"],
            )
        )
        assert conn.recv().int_info == 0


def test_bad_message_body_is_an_error_reply_not_a_crash(irods_session: Any) -> None:
    with irods_session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=None, int_info=api_number["GENERAL_ADMIN_AN"]))
        with pytest.raises(ex.iRODSException):
            conn.recv()
    assert api_call(irods_session, 701, GeneralAdminRequest("calculate-usage")) == 0


def test_api_before_authentication_is_refused(irods_server: ServerProcess) -> None:
    sock = raw_connect(irods_server)
    try:
        msg = GeneralAdminRequest("calculate-usage")
        sock.sendall(iRODSMessage("RODS_API_REQ", msg=msg, int_info=701).pack())
        reply = iRODSMessage.recv(sock)
        assert reply.int_info == ex.SYS_NO_API_PRIV.code
    finally:
        sock.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x05hello",  # header that is not a MsgHeader_PI
        struct.pack(">i", 1 << 30),  # header length beyond the limit
        iRODSMessage.pack_header("RODS_API_REQ", 0, 0, 1 << 40, 701),  # huge bs
        iRODSMessage.pack_header("RODS_NONSENSE", 0, 0, 0, 0),  # unknown frame type
    ],
    ids=["not-xml", "header-too-long", "bs-too-large", "unknown-type"],
)
def test_malformed_frame_closes_only_that_connection(
    irods_server: ServerProcess, irods_session: Any, garbage: bytes
) -> None:
    assert api_call(irods_session, 701, GeneralAdminRequest("calculate-usage")) == 0
    sock = raw_connect(irods_server)
    try:
        sock.sendall(garbage)
        assert closed_by_peer(sock)
    finally:
        sock.close()
    # the pooled connection opened before still works
    assert api_call(irods_session, 701, GeneralAdminRequest("calculate-usage")) == 0


def test_garbage_instead_of_startup_pack_closes(irods_server: ServerProcess) -> None:
    sock = socket.create_connection((irods_server.host, irods_server.port), timeout=10)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert closed_by_peer(sock)
    finally:
        sock.close()


def test_disconnect_closes_cleanly(irods_server: ServerProcess) -> None:
    sock = raw_connect(irods_server)
    try:
        sock.sendall(iRODSMessage("RODS_DISCONNECT").pack())
        assert closed_by_peer(sock)
    finally:
        sock.close()


def test_many_concurrent_clients(irods_server: ServerProcess) -> None:
    def one(_: int) -> int:
        with irods_server.session() as s:
            return api_call(s, 701, GeneralAdminRequest("calculate-usage"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(32)))
    assert results == [0] * 32


def test_restart_keeps_catalog(irods_server_factory: Any) -> None:
    srv = irods_server_factory()
    with srv.session() as s:
        api_call(s, 701, GeneralAdminRequest("add", "user", "keeper", "rodsuser", "", ""))
        s.users.modify("keeper", "password", "keeper-pw")
    port = srv.port
    srv.restart()
    assert srv.port == port
    with srv.session("keeper", "keeper-pw") as s, s.pool.get_connection() as conn:
        assert conn.server_version == (4, 3, 4)
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        homes = {r[0] for r in db.execute("SELECT coll_name FROM r_coll_main")}
        users = [r[0] for r in db.execute("SELECT user_name FROM r_user_main")]
    finally:
        db.close()
    assert {"/tempZone/home/keeper", "/tempZone/trash/home/keeper"} <= homes
    assert users.count("rods") == 1  # bootstrapped once only


def test_fresh_install_layout(irods_server_factory: Any) -> None:
    srv = irods_server_factory()
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        colls = {
            r[0]: r[1] for r in db.execute("SELECT coll_name, coll_owner_name FROM r_coll_main")
        }
        resc = db.execute(
            "SELECT resc_type_name, resc_def_path FROM r_resc_main WHERE resc_name = 'demoResc'"
        ).fetchone()
        public_read = db.execute(
            "SELECT a.access_type_id FROM r_objt_access a JOIN r_coll_main c"
            " ON a.object_id = c.coll_id JOIN r_user_main u ON a.user_id = u.user_id"
            " WHERE c.coll_name = '/tempZone/home/public' AND u.user_name = 'public'"
        ).fetchone()
    finally:
        db.close()
    for path in (
        "/tempZone",
        "/tempZone/home",
        "/tempZone/home/rods",
        "/tempZone/home/public",
        "/tempZone/trash/home/public",
        "/tempZone/trash/home/rods",
    ):
        assert colls[path] == "rods"
    assert resc == ("unixfilesystem", str(srv.data_dir / "vault" / "demoResc"))
    assert public_read == (1200,)  # own, as setup_catalog (scripts/irods/database_connect.py)


def test_fixture_irods_user_gives_a_working_ordinary_user(irods_user: Any) -> None:
    name, session = irods_user()
    with session.pool.get_connection() as conn:
        assert conn.account.client_user == name
    with pytest.raises(ex.SYS_NO_API_PRIV):
        api_call(session, 701, GeneralAdminRequest("calculate-usage"))
    # leftovers in the home collection must not break the fixture's cleanup
    session.collections.create(f"/tempZone/home/{name}/left/over")
    session.data_objects.create(f"/tempZone/home/{name}/left.txt")


def test_fixture_irods_env_dir_configures_a_client_environment(irods_env_dir: Any) -> None:
    from irods.helpers import make_session

    env = (irods_env_dir / ".irods" / "irods_environment.json").read_text()
    assert '"irods_user_name": "rods"' in env
    with make_session() as s:
        assert api_call(s, 701, GeneralAdminRequest("calculate-usage")) == 0


@pytest.mark.parametrize("threads", [1, 0], ids=["single-stream", "parallel"])
def test_large_transfers_round_trip_intact(
    irods_session: Any, tmp_path: Any, unique_name: str, threads: int
) -> None:
    # 40 MiB: above the client's 32 MiB single-stream limit, so threads=0 goes parallel
    src = tmp_path / "src.bin"
    block = os.urandom(1 << 20)
    src.write_bytes(b"".join(block[i:] + block[:i] for i in range(40)))
    path = f"/tempZone/home/rods/{unique_name}"
    irods_session.data_objects.put(str(src), path, num_threads=threads)
    dst = tmp_path / "dst.bin"
    irods_session.data_objects.get(path, str(dst), num_threads=threads)
    irods_session.data_objects.unlink(path, force=True)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_pipelined_frames_after_a_large_byte_stream(irods_server: ServerProcess) -> None:
    # the large bs is received straight into a buffer; what follows must not be lost
    sock = raw_connect(irods_server)
    try:
        big = iRODSMessage("RODS_API_REQ", bs=os.urandom(3 << 20), int_info=701).pack()
        small = iRODSMessage("RODS_API_REQ", int_info=701).pack()
        sock.sendall(big + small + big + small)
        replies = [iRODSMessage.recv(sock).int_info for _ in range(4)]
        assert replies == [ex.SYS_NO_API_PRIV.code] * 4
    finally:
        sock.close()


def test_hostile_xml_in_startup_pack_closes_only_that_connection(
    irods_server: ServerProcess, irods_session: Any
) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><StartupPack_PI>&b;</StartupPack_PI>'
    )
    sock = socket.create_connection((irods_server.host, irods_server.port), timeout=10)
    try:
        sock.sendall(iRODSMessage.pack_header("RODS_CONNECT", len(bomb), 0, 0, 0) + bomb)
        assert closed_by_peer(sock)
    finally:
        sock.close()
    assert api_call(irods_session, 701, GeneralAdminRequest("calculate-usage")) == 0


async def test_handler_crash_answers_an_error_and_the_connection_lives_on(
    tmp_path: Any,
) -> None:
    from irods.session import iRODSSession

    from devtools.irods_server.__main__ import build_state
    from devtools.irods_server.dispatch import HANDLERS, api
    from devtools.irods_server.server import start

    @api(99998)
    async def crash(session: Any, req: Any) -> Any:
        raise RuntimeError("handler bug")

    state = build_state(tmp_path / "data")
    server = await start(state, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def client() -> int:
        with iRODSSession(
            host="127.0.0.1", port=port, user="rods", password="rods", zone="tempZone"
        ) as s:
            with s.pool.get_connection() as conn:
                conn.send(iRODSMessage("RODS_API_REQ", int_info=99998))
                with pytest.raises(ex.SYS_LIBRARY_ERROR):
                    conn.recv()
            return api_call(s, 701, GeneralAdminRequest("calculate-usage"))

    try:
        assert await asyncio.to_thread(client) == 0
    finally:
        HANDLERS.pop(99998, None)
        server.close()
        await server.wait_closed()
        state.catalog.close()
