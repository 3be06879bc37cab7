"""The contract between the connection loop and the API handlers.

Every API handler is an ``async def handler(session: Session, req: Request) -> Reply``
registered in the table by API number with ``@api(NUMBER)``. The connection loop in
``server.py`` reads a frame, looks the API number up in :data:`HANDLERS`, calls the
handler, and writes the :class:`Reply`. A handler signals an iRODS error by raising
:class:`~tests.irods_server.errors.IrodsError`; the loop turns it into a reply with
``intInfo`` = the code and an ``RError_PI``. Any other exception becomes
``SYS_INTERNAL_ERR``-style error reply for that request only; the connection survives.

Handler modules (``api_*.py``) are imported by ``server.py`` so that their
``@api`` decorators run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .state import ServerState

T = TypeVar("T")


@dataclass
class Request:
    """One API request as it arrived: the API number, main message XML and byte stream."""

    api: int
    msg: bytes = b""
    bs: bytes = b""

    def parse(self, cls: type[T]) -> T:
        """Unpack the main message with a python-irodsclient message class."""
        obj = cls()
        obj.unpack(ET.fromstring(self.msg.replace(b"\0", b"")))  # type: ignore[attr-defined]
        return obj


@dataclass
class Reply:
    """What the handler answers: ``int_info`` (>= 0), an optional message and bytes.

    ``msg`` is a python-irodsclient ``Message`` (packed with ``.pack()``) or raw XML bytes.
    """

    int_info: int = 0
    msg: Any = None
    bs: bytes = b""


@dataclass
class UserInfo:
    """The authenticated (client) user of a connection."""

    name: str
    zone: str
    id: int
    type: str  # "rodsadmin" | "rodsuser" | "groupadmin"

    @property
    def is_admin(self) -> bool:
        return self.type == "rodsadmin"


@dataclass
class Session:
    """Per-connection state, handed to every handler."""

    state: ServerState
    proxy_user: str = ""
    proxy_zone: str = ""
    client_user: str = ""
    client_zone: str = ""
    user: UserInfo | None = None  # set once authentication succeeded
    tls: bool = False
    # open data object descriptors of this connection (L1 descriptor -> handle object)
    fds: dict[int, Any] = field(default_factory=dict)
    # scratch space for multi-step exchanges (e.g. the auth challenge)
    scratch: dict[str, Any] = field(default_factory=dict)

    def require_user(self) -> UserInfo:
        from .errors import IrodsError

        if self.user is None:
            raise IrodsError("CAT_INVALID_AUTHENTICATION", "not authenticated")
        return self.user


Handler = Callable[[Session, Request], Awaitable[Reply]]
HANDLERS: dict[int, Handler] = {}


def api(number: int) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of API ``number``."""

    def register(fn: Handler) -> Handler:
        if number in HANDLERS:
            raise RuntimeError(f"API {number} registered twice")
        HANDLERS[number] = fn
        return fn

    return register
