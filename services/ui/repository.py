"""The repository side: checking a researcher's repository login, and browsing it.

Where the password goes: it reaches this process once, in the login request. There it
is (1) checked, by an iRODS login or by a WebDAV PROPFIND, (2) sealed at once to the API's
public key, bound to this Unix user and repository user (only the envelope is kept in the
session, for the jobs submitted later), and (3) used to open one authenticated iRODS
connection for browsing, after which the password is removed from python-irodsclient's
account object. The connection stays open while it is used (``browse_idle`` seconds of
idleness at most) and is closed at logout or when the session ends; if it breaks, browsing
asks for the password again, while jobs keep working with the envelope. No route here
ever receives the envelope back in clear. See docs/ui.md for the trade-off.

python-irodsclient is blocking: every call runs in a bounded thread pool, and each
connection is used by one thread at a time (it has no password left to open a second).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr

from services.isync.errors import translate
from services.ui.settings import RepositorySettings
from shared import irods
from shared.errors import (
    ErrorKind,
    Forbidden,
    InvalidInput,
    NotFound,
    StagerError,
    Unauthenticated,
    Unavailable,
)
from shared.settings import IrodsSettings

#: How long one repository call may take before the page is told to try again.
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class RepoEntry:
    """One entry of a collection as the page shows it."""

    name: str
    type: Literal["dir", "regular"]
    size: int
    mtime: int | None


def _ui_error(exc: BaseException, what: str) -> StagerError:
    """A python-irodsclient error as a message the page can show (never its raw text)."""
    err = translate(exc, what)
    by_kind: dict[ErrorKind, type[StagerError]] = {
        ErrorKind.AUTHENTICATION: Unauthenticated,
        ErrorKind.NOT_FOUND: NotFound,
        ErrorKind.PERMISSION_DENIED: Forbidden,
        ErrorKind.INVALID: InvalidInput,
    }
    cls = by_kind.get(err.kind, Unavailable)
    return cls(err.message)


class RepoBrowser:
    """One researcher's authenticated iRODS connection (its password already removed)."""

    def __init__(self, session: Any, user: str, zone: str) -> None:
        self._session = session
        self.user = user
        self.zone = zone
        self._lock = threading.Lock()
        self.last_used = time.monotonic()
        self.closed = False

    def list(self, path: str) -> list[RepoEntry]:
        """Sub-collections then data objects of ``path`` (blocking; thread pool)."""
        from irods.column import Criterion
        from irods.models import Collection, DataObject

        with self._use():
            s = self._session
            out: list[RepoEntry] = []
            if not s.collections.exists(path):
                if s.data_objects.exists(path):
                    raise InvalidInput(f"{path} is a file, not a folder: open its folder")
                raise NotFound(f"no such collection {path}: check the path")
            q = s.query(Collection.name, Collection.modify_time).filter(
                Criterion("=", Collection.parent_name, path)
            )
            for row in q.get_results():
                name = row[Collection.name].rsplit("/", 1)[-1]
                if name:
                    out.append(RepoEntry(name, "dir", 0, _epoch(row[Collection.modify_time])))
            seen: set[str] = set()
            q = s.query(DataObject.name, DataObject.size, DataObject.modify_time).filter(
                Criterion("=", Collection.name, path)
            )
            for row in q.get_results():
                name = row[DataObject.name]
                if name in seen:  # one row per replica
                    continue
                seen.add(name)
                out.append(
                    RepoEntry(
                        name,
                        "regular",
                        int(row[DataObject.size]),
                        _epoch(row[DataObject.modify_time]),
                    )
                )
            return out

    def mkdir(self, path: str) -> None:
        """Create one collection (its parent must exist)."""
        with self._use():
            s = self._session
            parent = path.rsplit("/", 1)[0] or "/"
            if not s.collections.exists(parent):
                raise NotFound(f"the folder {parent} does not exist: open an existing folder")
            if s.collections.exists(path) or s.data_objects.exists(path):
                raise InvalidInput(f"{path} already exists: choose another name")
            s.collections.create(path, recurse=False)

    def close(self) -> None:
        """Close the connection (idempotent; waits for a running call)."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._session.cleanup()

    def _use(self) -> _Use:
        return _Use(self)


class _Use:
    """Hold the connection for one call; errors become UI errors; a broken connection
    closes the browser (the page then asks for the password again)."""

    def __init__(self, browser: RepoBrowser) -> None:
        self.b = browser

    def __enter__(self) -> Any:
        self.b._lock.acquire()
        if self.b.closed:
            self.b._lock.release()
            raise Unauthenticated(
                "the repository connection has ended: log in to the repository again"
            )
        return self.b._session

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> None:
        self.b.last_used = time.monotonic()
        broken = exc is not None and not isinstance(exc, StagerError)
        self.b._lock.release()
        if exc is None or isinstance(exc, StagerError):
            return
        err = _ui_error(exc, "repository")
        if broken and err.kind in (ErrorKind.UNAVAILABLE, ErrorKind.AUTHENTICATION):
            self.b.close()
            err = Unauthenticated(
                "the repository connection was lost: log in to the repository again"
            )
        raise err from None


def _epoch(value: Any) -> int | None:
    try:
        return int(value.timestamp())
    except (AttributeError, ValueError, OverflowError):
        return None


def _open(irods_settings: IrodsSettings, user: str, password: str) -> RepoBrowser:
    """Log in as ``user`` (blocking). The password is removed from the session after the
    one connection is made."""
    account = irods_settings.account().model_copy(
        update={"user": user, "password": SecretStr(password)}
    )
    try:
        session = irods.connect(account, timeout=irods_settings.timeout, check=True)
    except Exception as e:
        raise _ui_error(e, "repository login") from None
    forget_password(session)
    return RepoBrowser(session, user, irods_settings.zone)


def forget_password(session: Any) -> None:
    """Remove the password from a python-irodsclient session whose connection is open:
    its account objects and the keyword arguments it keeps for a later ``configure``."""
    configure_kwargs = getattr(session, "do_configure", None)
    if isinstance(configure_kwargs, dict):
        configure_kwargs.pop("password", None)
    seen: set[int] = set()
    for holder in (session.pool.account, getattr(session, "_iRODSSession__configured", None)):
        if holder is not None and id(holder) not in seen:
            seen.add(id(holder))
            holder.password = None


class Repository:
    """Login checks and browser factory, sharing one bounded thread pool."""

    def __init__(
        self,
        settings: RepositorySettings,
        irods_settings: IrodsSettings,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self.irods = irods_settings
        self.http = http
        self._pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="ui-irods")

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def root(self, user: str) -> str:
        """Where the repository pane starts for ``user``."""
        return self.settings.root.format(zone=self.irods.zone, user=user)

    async def login(self, user: str, password: str) -> RepoBrowser:
        """Check the credentials (iRODS or WebDAV) and open the browsing connection."""
        if self.settings.check == "webdav":
            await self._propfind(user, password)
        return await self.run(_open, self.irods, user, password)

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the pool, bounded in time."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, fn, *args), CALL_TIMEOUT)
        except TimeoutError:
            raise Unavailable("the repository did not answer in time; try again") from None

    async def _propfind(self, user: str, password: str) -> None:
        url = self.settings.webdav_url.rstrip("/") + "/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'
        )
        headers = {
            "Depth": "0",
            "Content-Type": "application/xml",
            "Authorization": aiohttp.encode_basic_auth(user, password),
        }
        try:
            async with self.http.request("PROPFIND", url, data=body, headers=headers) as r:
                status = r.status
        except aiohttp.ClientError as e:
            raise Unavailable(
                f"the repository's WebDAV server cannot be reached ({type(e).__name__})"
            ) from None
        if status in (401, 403):
            raise Unauthenticated(
                "repository login failed: check your user name and data-access password"
            )
        if status != 207:
            raise Unavailable(f"the repository's WebDAV server answered {status}; try later")
