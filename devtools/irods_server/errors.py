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
    """

    reply_msg: Any = None

    def __init__(self, code: int | str, message: str = "") -> None:
        self.code = code_of(code) if isinstance(code, str) else int(code)
        self.message = message or (code if isinstance(code, str) else f"iRODS error {code}")
        super().__init__(f"{self.code}: {self.message}")


class AgentCrash(Exception):
    """The agent serving this connection dies: the connection is dropped with no reply.

    What a real agent does on a request that makes it dereference an empty statement slot
    (a GenQuery continuation sent on another connection); the client sees a network error.
    """
