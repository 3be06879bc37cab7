"""The contract between the connection loop and the API handlers.

Every API handler is an ``async def handler(session: Session, req: Request) -> Reply``
registered in the table by API number with ``@api(NUMBER)``. The connection loop in
``server.py`` reads a frame, looks the API number up in :data:`HANDLERS`, calls the
handler, and writes the :class:`Reply`. A handler signals an iRODS error by raising
:class:`~devtools.irods_server.errors.IrodsError`; the loop turns it into a reply with
``intInfo`` = the code and an ``RError_PI``. Any other exception is answered with
``SYS_LIBRARY_ERROR`` for that request only; the connection survives.

``server.load_handlers`` imports ``auth.py`` and every ``api_*.py`` module of the package
so that their ``@api`` decorators run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import defusedxml.ElementTree as SafeET
from irods.message import Message, quasixml
from irods.message import property_types as pt

if TYPE_CHECKING:
    from .state import ServerState

T = TypeVar("T")


def _fromstring(raw: bytes) -> ET.Element:
    """Parse a request's XML. Without ``<!`` (no DOCTYPE, so no entity can be declared)
    the C parser is as safe as defusedxml and much faster; anything else goes through
    defusedxml."""
    if b"<!" in raw:
        return SafeET.fromstring(raw)
    return ET.fromstring(raw)  # noqa: S314 - no DOCTYPE: nothing defusedxml would refuse


# how unpack() fills each property of a message class: (name, kind, extra)
_STR, _INT, _STRS, _INTS, _SUB, _OTHER = range(6)
_PLANS: dict[type, list[tuple[str, int, Any]]] = {}


def _plan(cls: type) -> list[tuple[str, int, Any]]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = []
        for name, prop in cls._ordered_properties:  # type: ignore[attr-defined]
            kind, extra = _OTHER, prop
            if isinstance(prop, pt.SubmessageProperty):
                kind, extra = _SUB, prop.message_cls
            elif type(prop) is pt.StringProperty:
                kind = _STR
            elif type(prop) in (pt.IntegerProperty, pt.LongProperty):
                kind = _INT
            elif type(prop) is pt.ArrayProperty and type(prop.prop) is pt.StringProperty:
                kind = _STRS
            elif type(prop) is pt.ArrayProperty and type(prop.prop) in (
                pt.IntegerProperty,
                pt.LongProperty,
            ):
                kind = _INTS
            plan.append((name, kind, extra))
        _PLANS[cls] = plan
    return plan


def unpack(obj: Any, root: Any) -> None:
    """``obj.unpack(root)`` of a python-irodsclient message, the same values (and the same
    exceptions on bad input) at a fraction of the cost: the request parser is on the path
    of every call. Classes with their own ``unpack`` keep it."""
    cls = type(obj)
    if cls.unpack is not Message.unpack:
        obj.unpack(root)
        return
    values = obj._values
    for name, kind, extra in _plan(cls):
        if kind == _STR:
            el = root.find(name)
            values[name] = None if el is None else el.text
        elif kind == _INT:
            el = root.find(name)
            values[name] = None if el is None else int(el.text)
        elif kind == _STRS:
            values[name] = [el.text for el in root.findall(name)]
        elif kind == _INTS:
            values[name] = [int(el.text) for el in root.findall(name)]
        elif kind == _SUB:
            el = root.find(name)
            if el is None:
                values[name] = None
            else:
                sub = extra()
                unpack(sub, el)
                values[name] = sub
        else:
            values[name] = extra.unpack(root.findall(name))


@dataclass
class Request:
    """One API request as it arrived: the API number, main message XML and byte stream.

    A large ``bs`` (a write's data) is a ``memoryview`` into a per-connection buffer that
    is reused for the next request: use it during the handler call (``os.pwrite`` takes it
    as is), copy it (``bytes(req.bs)``) to keep it.
    """

    api: int
    msg: bytes = b""
    bs: bytes | memoryview = b""

    def parse(self, cls: type[T]) -> T:
        """Unpack the main message with a python-irodsclient message class.

        XML that a strict parser rejects (e.g. control characters in names) is retried
        with python-irodsclient's quasi-XML parser; still unreadable input raises
        ``IrodsError("USER_PACKSTRUCT_INPUT_ERR")``.
        """
        from .errors import IrodsError

        obj = cls()
        raw = self.msg.replace(b"\0", b"")
        try:
            root: Any = _fromstring(raw)
        except ET.ParseError:
            try:
                root = quasixml.fromstring(raw.decode("utf-8", "surrogateescape"))
            except Exception as e:
                raise IrodsError("USER_PACKSTRUCT_INPUT_ERR", "unreadable message") from e
        except Exception as e:
            raise IrodsError("USER_PACKSTRUCT_INPUT_ERR", "unreadable message") from e
        unpack(obj, root)
        return obj


@dataclass
class Reply:
    """What the handler answers: ``int_info`` (>= 0), an optional message and bytes.

    ``msg`` is a python-irodsclient ``Message`` (packed with ``.pack()``) or raw XML bytes.
    """

    int_info: int = 0
    msg: Any = None
    bs: bytes | bytearray | memoryview = b""


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
    proxy_is_admin: bool = False  # the authenticated (proxy) user is a rodsadmin
    tls: bool = False
    # scratch space for multi-step exchanges (e.g. the auth challenge)
    scratch: dict[str, Any] = field(default_factory=dict)
    # the resource names this connection's agent loaded when it started (a real agent reads
    # the resource list once, ``resc_mgr.init_from_catalog`` in ``initServerInfo``,
    # server/core/src/initServer.cpp); None: not loaded (every catalog resource is known)
    resources: frozenset[str] | None = None

    def buffer(self, size: int) -> memoryview:
        """A reusable per-connection buffer of ``size`` bytes for a reply's ``bs`` (e.g.
        ``os.preadv(fd, [view], pos)``): valid until the reply has been sent, so
        large reads cost no fresh allocation."""
        buf = self.scratch.get("_reply_buffer")
        if not isinstance(buf, bytearray) or len(buf) < size:
            buf = self.scratch["_reply_buffer"] = bytearray(size)
        return memoryview(buf)[:size]

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


DisconnectHook = Callable[[Session], None]
DISCONNECT_HOOKS: list[DisconnectHook] = []


def on_disconnect(fn: DisconnectHook) -> DisconnectHook:
    """Register ``fn`` to run when a connection closes (e.g. release open replicas)."""
    DISCONNECT_HOOKS.append(fn)
    return fn
