"""The error a handler raises to answer a request with an iRODS error code."""

from __future__ import annotations

from typing import Any

import irods.exception as irods_exc


def code_of(name: str) -> int:
    """The numeric iRODS error code for an error name, e.g. ``CAT_NO_ROWS_FOUND``."""
    cls = getattr(irods_exc, name)
    return int(cls.code)


class IrodsError(Exception):
    """Answer the current request with ``code`` (negative) and an ``RError_PI`` message.

    ``IrodsError("CAT_NO_ROWS_FOUND", "no rows")`` or ``IrodsError(-808000)``. Set
    ``reply_msg`` (a message object) when the error reply must carry a body too, as some
    4.3 APIs answer errors with JSON.

    ``message`` goes to the server's log; the client sees it only with ``sends_text=True``
    (a site where iRODS itself adds the text with ``addRErrorMsg``) or when the
    ``error-text`` leniency is on. A real agent packs an ``RError_PI`` only when the
    request's error stack holds something (``sendApiReply``,
    ``server/core/src/rsApiHandler.cpp``: ``if ( rsComm->rError.len > 0 )``); most errors
    reach python-irodsclient with no text at all (an exception whose ``args`` is
    ``(None,)``).
    """

    reply_msg: Any = None

    def __init__(self, code: int | str, message: str = "", *, sends_text: bool = False) -> None:
        self.sends_text = sends_text
        self.code = code_of(code) if isinstance(code, str) else int(code)
        self.message = message or (code if isinstance(code, str) else f"iRODS error {code}")
        super().__init__(f"{self.code}: {self.message}")


class AgentCrash(Exception):
    """The agent serving this connection dies: the connection is dropped with no reply.

    What a real agent does on a request that makes it dereference an empty statement slot
    (a GenQuery continuation sent on another connection); the client sees a network error.
    """
