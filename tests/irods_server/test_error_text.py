"""Error replies carry message text only where iRODS adds some, as a real agent answers.

``sendApiReply`` (``server/core/src/rsApiHandler.cpp``) packs an ``RError_PI`` only when
the request's error stack is not empty (``if ( rsComm->rError.len > 0 )``); python-irodsclient
then raises an exception whose ``args`` is ``(None,)`` (``irods/connection.py`` ``recv``:
no error part -> ``err_msg = None``). Driven with unmodified python-irodsclient. The text
iRODS does add (``validate_logical_path``, ``addRErrorMsg``) is still sent:
``test_visibility.py::test_a_collection_under_an_invisible_one_is_sys_invalid_input_param``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from irods.exception import OBJ_PATH_DOES_NOT_EXIST, iRODSException

from devtools.irods_server.launcher import ServerProcess

ZONE = "tempZone"


def _open_missing(session: Any) -> iRODSException:
    with pytest.raises(iRODSException) as err:
        session.data_objects.open(f"/{ZONE}/home/rods/no-such-object", "r")
    return err.value


def test_an_error_reply_carries_no_text_by_default(irods_session: Any) -> None:
    """A read-open of a missing object: OBJ_PATH_DOES_NOT_EXIST with no message text."""
    exc = _open_missing(irods_session)
    assert isinstance(exc, OBJ_PATH_DOES_NOT_EXIST)
    assert exc.args == (None,)
    assert exc.server_msg.error in (b"", None)


def test_the_error_text_leniency_sends_every_message(
    irods_server_factory: Callable[..., ServerProcess],
) -> None:
    """``--lenient error-text`` (``leniency.py``): every error reply carries its text."""
    srv = irods_server_factory()
    srv.stop()
    srv.lenient = "error-text"
    srv.start()
    with srv.session() as admin:
        exc = _open_missing(admin)
    assert isinstance(exc, OBJ_PATH_DOES_NOT_EXIST)
    assert exc.args[0]
