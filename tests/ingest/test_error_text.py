"""Ingest's log lines for an iRODS error that arrives without message text.

A real agent packs message text only when it added some (``sendApiReply``,
``server/core/src/rsApiHandler.cpp``), so python-irodsclient raises with ``args == (None,)``
and ingest used to log ``file failed error=None``. The exceptions here come from the test
server (strict: no text where iRODS sends none) through unmodified python-irodsclient.
"""

from __future__ import annotations

from typing import Any

import pytest
from irods.exception import iRODSException

from services.ingest.errors import NO_TEXT_HINT, error_text
from services.isync.errors import translate


def _textless(session: Any) -> iRODSException:
    with pytest.raises(iRODSException) as err:
        session.data_objects.open("/tempZone/home/rods/no-such-object", "r")
    assert err.value.args == (None,)
    return err.value


def test_ingest_names_a_textless_irods_error_and_its_code(irods_session: Any) -> None:
    text = error_text(_textless(irods_session))
    assert text == f"iRODS error OBJ_PATH_DOES_NOT_EXIST (-358000): {NO_TEXT_HINT}"
    assert "None" not in text


def test_ingest_keeps_an_errors_own_text() -> None:
    assert error_text(ValueError("disk on fire")) == "disk on fire"
    assert error_text(KeyError(-129000)) == "-129000"
    assert error_text(RuntimeError()) == "RuntimeError (no message)"


def test_isync_translates_a_textless_irods_error_readably(irods_session: Any) -> None:
    """A put to a resource the zone lacks: SYS_RESC_DOES_NOT_EXIST, no text, which isync
    has no class for: its message names the error, its code and what to do."""
    with pytest.raises(iRODSException) as err:
        irods_session.data_objects.open(
            "/tempZone/home/rods/x", "w", destRescName="no-such-resource"
        )
    assert err.value.args == (None,)
    message = str(translate(err.value, "put x"))
    assert message.startswith("put x: iRODS error SYS_RESC_DOES_NOT_EXIST (-78000): try again")
    assert "None" not in message
