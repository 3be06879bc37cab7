"""The hand-packed wire calls against the test server, including error replies."""

import os

import pytest
from irods.exception import CAT_NO_ROWS_FOUND, OBJ_PATH_DOES_NOT_EXIST, iRODSException

from services.isync import wire


def test_open_write_seek_read_close(irods_session, coll):
    irods_session.collections.create(coll)
    path = f"{coll}/a & <b> é.bin"
    data = os.urandom(300_000)
    conn = irods_session.pool.get_connection()
    try:
        fd = wire.open_object(
            conn, path, wire.O_WRONLY | wire.O_CREAT | wire.O_TRUNC, {}, len(data)
        )
        assert wire.write(conn, fd, memoryview(data)) == len(data)
        wire.close(conn, fd)
        fd = wire.open_object(conn, path, wire.O_RDONLY)
        wire.seek(conn, fd, 1000)
        buf = memoryview(bytearray(500))
        assert wire.read_into(conn, fd, buf) == 500
        assert bytes(buf) == data[1000:1500]
        wire.close(conn, fd)
    finally:
        conn.release()
    assert irods_session.data_objects.get(path).size == len(data)


def test_error_reply_raises_the_irods_exception(irods_session, coll):
    conn = irods_session.pool.get_connection()
    try:
        with pytest.raises(iRODSException) as info:
            wire.open_object(conn, f"{coll}/missing", wire.O_RDONLY)
        assert isinstance(info.value, OBJ_PATH_DOES_NOT_EXIST | CAT_NO_ROWS_FOUND)
        # the connection is still usable after an error reply
        wire.make_collection(conn, coll)
    finally:
        conn.release()
    assert irods_session.collections.exists(coll)


def test_reads_larger_and_smaller_than_the_reply_scratch(irods_session, coll):
    """Payloads partly in the first recv, then straight into the caller's buffer."""
    irods_session.collections.create(coll)
    path = f"{coll}/big.bin"
    data = os.urandom(3 * 64 * 1024 + 17)
    with irods_session.data_objects.open(path, "w") as fh:
        fh.write(data)
    conn = irods_session.pool.get_connection()
    try:
        fd = wire.open_object(conn, path, wire.O_RDONLY)
        buf = memoryview(bytearray(len(data) + 100))
        got = bytearray()
        for size in (10, 64 * 1024, len(data)):  # inside, at and beyond the scratch size
            n = wire.read_into(conn, fd, buf[:size])
            got += buf[:n]
        assert wire.read_into(conn, fd, buf) == 0
        wire.close(conn, fd)
    finally:
        conn.release()
    assert bytes(got) == data
