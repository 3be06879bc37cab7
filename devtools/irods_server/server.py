"""The asyncio server and its per-connection loop.

One connection: ``StartupPack_PI`` → optional client-server negotiation (``CS_NEG_PI``) →
``Version_PI`` → (TLS upgrade and the client's encryption-parameter and shared-secret
headers, when negotiated) → API requests dispatched through
:data:`~devtools.irods_server.dispatch.HANDLERS` until ``RODS_DISCONNECT`` or EOF.

Each request runs in one catalog transaction, committed after it (also after an
:class:`IrodsError`); an unexpected exception rolls it back, is logged, and answers
``SYS_LIBRARY_ERROR``. A malformed frame closes that connection only, and so does an
:class:`AgentCrash` (a request that kills a real agent, e.g. a GenQuery continuation
naming an empty statement slot): no reply, the client sees the connection dropped. An ``IrodsError``
with a ``reply_msg`` attribute (a message object or XML bytes) sends that message along
with the error, as some iRODS APIs do (e.g. the JSON of replica truncate).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib
import logging
import pkgutil
import signal
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import defusedxml.ElementTree as SafeET
from irods.message import ClientServerNegotiation, VersionResponse

from . import allowlist, leniency, presentation, wire
from .dispatch import DISCONNECT_HOOKS, HANDLERS, Reply, Request, Session
from .errors import AgentCrash, IrodsError, code_of
from .state import API_VERSION, ServerState

log = logging.getLogger("irods_server")

# iRODS's SYS_INTERNAL_ERR (-154000) is unknown to python-irodsclient (it fails with a
# KeyError on it), so a handler's unexpected exception is answered with SYS_LIBRARY_ERROR
INTERNAL_ERROR = code_of("SYS_LIBRARY_ERROR")
REQUEST_NEGOTIATION = "request_server_negotiation"
# APIs a client may call before it has authenticated
PRE_AUTH_APIS = frozenset({110000, 703, 704, 725, 1201, 700})
# read/write/lseek of an open descriptor: no catalog statement, so no transaction
IO_APIS = frozenset({674, 675, 676})
# handler modules: auth plus every api_*.py of the package (handler_modules)
CORE_HANDLER_MODULES = ("auth",)


def handler_modules() -> list[str]:
    """Names of the handler modules in this package."""
    pkg_dir = Path(__file__).parent
    found = [m.name for m in pkgutil.iter_modules([str(pkg_dir)]) if m.name.startswith("api_")]
    return [*CORE_HANDLER_MODULES, *sorted(found)]


def load_handlers(names: Iterable[str] | None = None) -> list[str]:
    """Import handler modules so their ``@api`` decorators register; a module that is
    missing or broken is logged and skipped, never fatal. Returns the names loaded."""
    loaded = []
    for name in names if names is not None else handler_modules():
        try:
            importlib.import_module(f"{__package__}.{name}")
        except Exception:
            log.exception("handler module %s not loaded", name)
        else:
            loaded.append(name)
    return loaded


def error_reply_body(code: int, message: str) -> bytes:
    """An ``RError_PI`` carrying one message (the XML python-irodsclient's ``Error``
    message class packs, built directly: errors are frequent, e.g. every stat of a new
    name)."""
    return (
        f"<RError_PI><count>1</count><RErrMsg_PI><status>{int(code)}</status>"
        f"<msg>{html.escape(message, quote=False)}</msg></RErrMsg_PI></RError_PI>"
    ).encode()


def _text(root: ET.Element, tag: str) -> str:
    el = root.find(tag)
    return (el.text or "") if el is not None else ""


class Connection:
    """The protocol loop of one client connection."""

    def __init__(self, state: ServerState, channel: wire.Channel) -> None:
        self.state = state
        self.ch = channel
        self.session = Session(state=state)
        self.peer = channel.peer()
        self.session.scratch["client_addr"] = self.peer.rsplit(":", 1)[0]  # tickets' hosts

    async def run(self) -> None:
        try:
            await self.startup()
            await self.serve_requests()
        except (wire.FrameError, ET.ParseError) as e:
            log.warning("closing %s: %s", self.peer, e)
        except EOFError:
            pass
        except AgentCrash as e:
            log.warning("agent for %s dies: %s", self.peer, e)
        except (ConnectionError, ssl.SSLError) as e:
            log.info("connection %s lost: %s", self.peer, e, exc_info=log.isEnabledFor(10))
        except Exception:
            log.exception("closing %s after an unexpected error", self.peer)
        finally:
            await self.close()

    async def close(self) -> None:
        for hook in DISCONNECT_HOOKS:
            try:
                hook(self.session)
            except Exception:
                log.exception("disconnect hook %s failed", getattr(hook, "__name__", hook))
        self.ch.close()

    # -- handshake ------------------------------------------------------------------------

    async def startup(self) -> None:
        frame = await wire.read_frame(self.ch)
        if frame.type != "RODS_CONNECT":
            raise wire.FrameError(f"expected RODS_CONNECT, got {frame.type!r}")
        pack = SafeET.fromstring(frame.msg.replace(b"\0", b""))
        if pack.tag != "StartupPack_PI":
            raise wire.FrameError("expected StartupPack_PI")
        s = self.session
        s.proxy_user, s.proxy_zone = _text(pack, "proxyUser"), _text(pack, "proxyRcatZone")
        s.client_user, s.client_zone = _text(pack, "clientUser"), _text(pack, "clientRcatZone")
        s.client_user = s.client_user or s.proxy_user
        s.proxy_zone = s.proxy_zone or self.state.zone
        s.client_zone = s.client_zone or s.proxy_zone
        use_ssl = False
        if REQUEST_NEGOTIATION in _text(pack, "option"):
            use_ssl = await self.negotiate()
        version = VersionResponse(
            status=0,
            relVersion=presentation.current().rel_version,
            apiVersion=API_VERSION,
            reconnPort=0,
            reconnAddr="",
            cookie=400,
        )
        wire.write_frame(self.ch, "RODS_VERSION", version)
        if use_ssl:  # no await before the upgrade: the client's TLS hello must not be read
            await self.start_tls()
        else:
            await self.ch.drain()

    async def negotiate(self) -> bool:
        """Answer the client's negotiation request; True when the result is TLS."""
        policy = "CS_NEG_DONT_CARE" if self.state.ssl_context is not None else "CS_NEG_REFUSE"
        wire.write_frame(self.ch, "RODS_CS_NEG_T", ClientServerNegotiation(status=1, result=policy))
        await self.ch.drain()
        frame = await wire.read_frame(self.ch)
        if frame.type != "RODS_CS_NEG_T":
            raise wire.FrameError(f"expected RODS_CS_NEG_T, got {frame.type!r}")
        result = _text(SafeET.fromstring(frame.msg.replace(b"\0", b"")), "result")
        if "CS_NEG_FAILURE" in result:
            raise EOFError
        if "CS_NEG_USE_SSL" in result:
            if self.state.ssl_context is None:
                raise wire.FrameError("client chose TLS but the server has no certificate")
            return True
        return False

    async def start_tls(self) -> None:
        """Upgrade to TLS, then read the client's encryption settings and shared secret."""
        assert self.state.ssl_context is not None
        await self.ch.start_tls(self.state.ssl_context)
        self.session.tls = True
        # header-only frame: type = algorithm, lengths = key size, salt size, hash rounds
        await wire.read_header(self.ch)
        mtype, key_len, _, _, _ = await wire.read_header(self.ch)
        if mtype != "SHARED_SECRET" or not 0 <= key_len <= 1024:
            raise wire.FrameError("expected the SHARED_SECRET header")
        await self.ch.read_exactly(key_len)

    # -- requests -------------------------------------------------------------------------

    async def serve_requests(self) -> None:
        while True:
            frame = await wire.read_frame(self.ch)
            if frame.type == "RODS_DISCONNECT":
                return
            if frame.type != "RODS_API_REQ":
                raise wire.FrameError(f"unexpected message type {frame.type!r}")
            await self.answer(Request(api=frame.int_info, msg=frame.msg, bs=frame.bs))

    async def answer(self, req: Request) -> None:
        try:
            reply = await self.call(req)
        except IrodsError as e:
            self.commit()
            await wire.send_frame(
                self.ch,
                "RODS_API_REPLY",
                getattr(e, "reply_msg", None),
                error=error_reply_body(e.code, e.message),
                int_info=e.code,
            )
        except AgentCrash:
            with contextlib.suppress(Exception):
                self.state.catalog.rollback()
            raise
        except Exception as e:
            log.exception("API %d failed", req.api)
            with contextlib.suppress(Exception):
                self.state.catalog.rollback()
            await wire.send_frame(
                self.ch,
                "RODS_API_REPLY",
                error=error_reply_body(INTERNAL_ERROR, f"internal error: {type(e).__name__}"),
                int_info=INTERNAL_ERROR,
            )
        else:
            self.commit()
            await wire.send_frame(
                self.ch, "RODS_API_REPLY", reply.msg, bs=reply.bs, int_info=reply.int_info
            )

    async def call(self, req: Request) -> Reply:
        if self.state.request_log is not None:
            self.state.request_log.write(f"{req.api}\n")
        handler = HANDLERS.get(req.api)
        if handler is None:
            raise IrodsError("SYS_UNMATCHED_API_NUM", f"API {req.api} is not supported")
        if self.session.user is None and req.api not in PRE_AUTH_APIS:
            raise IrodsError("SYS_NO_API_PRIV", "not authenticated")
        if self.state.strict(leniency.API_ALLOWLIST):
            allowlist.check(self.session, req.api)
        db = self.state.catalog.db
        if not db.in_transaction and req.api not in IO_APIS:
            # one transaction per request: its SELECTs share one read snapshot instead of
            # each taking and dropping SQLite's WAL locks (a dozen fcntl calls per open)
            db.execute("BEGIN")
        return await handler(self.session, req)

    def commit(self) -> None:
        with contextlib.suppress(Exception):
            self.state.catalog.commit()  # no-op (in SQLite) when nothing is pending


async def start(state: ServerState, host: str, port: int) -> asyncio.Server:
    """Load the handlers and start listening; the caller serves forever or closes."""
    load_handlers()

    async def on_open(channel: wire.Channel) -> None:
        await Connection(state, channel).run()

    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: wire.Channel(on_open), host, port)


async def serve(state: ServerState, host: str, port: int) -> None:
    """Run the server until SIGTERM/SIGINT (or cancellation), printing the ready line
    once it accepts connections."""
    server = await start(state, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"irods-test-server ready on {bound[0]}:{bound[1]} zone={state.zone}", flush=True)
    async with server:
        await stop.wait()
    log.info("stopping")
