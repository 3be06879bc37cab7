"""Server-side sessions: a bounded in-memory store, the cookie, and the CSRF token.

The browser holds only an opaque random cookie value (HttpOnly, Secure unless configured
off for plain-HTTP local use, SameSite=Lax). The store keys sessions by the SHA-256 of
that value, so the store's keys alone do not let anyone in. A session lives at most
``lifetime`` seconds from its creation (no rolling renewal); one that has not finished
logging in lives ``login_lifetime`` seconds. When the store is full, expired sessions go
first, then the oldest unfinished logins; if every slot holds a live login, new visitors
are refused (503) rather than logging someone else out.

Every state-changing request must carry the session's CSRF token (header
``X-CSRF-Token`` or form field ``csrf``), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from shared.errors import Unavailable

#: The cookie's name. ``__Host-`` binds it to this origin, path / and Secure; browsers
#: refuse that prefix without Secure, so plain-HTTP use drops it.
SECURE_COOKIE = "__Host-stager-ui"
PLAIN_COOKIE = "stager-ui"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class PendingLogin:
    """What the callback must match: ``state``, ``nonce`` and the PKCE verifier."""

    state: str
    nonce: str
    verifier: str
    next_path: str = "/"


@dataclass
class Tokens:
    """The user's OIDC tokens (never sent to the browser)."""

    access_token: str
    id_token: str
    refresh_token: str | None
    expires_at: float

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at!r})"


@dataclass
class Repository:
    """The repository login: the user name and the password sealed to the API's key
    (bound to this Unix user and repository user). The plaintext is never kept."""

    user: str
    envelope: str

    def __repr__(self) -> str:
        return f"Repository(user={self.user!r})"


@dataclass
class Session:
    """One browser's state on the server."""

    id_hash: str
    csrf: str
    created: float
    expires: float
    pending: PendingLogin | None = None
    user: str | None = None
    name: str = ""
    tokens: Tokens | None = None
    repository: Repository | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        """True once the OIDC login finished."""
        return self.user is not None and self.tokens is not None

    def __repr__(self) -> str:
        return f"Session(user={self.user!r}, expires={self.expires!r})"


class SessionStore:
    """Sessions in memory, at most ``max_sessions`` of them.

    Parameters:
        lifetime: seconds a logged-in session lives (from the login, not renewed).
        login_lifetime: seconds a visitor has to finish the OIDC login.
        max_sessions: the bound.
        on_drop: called with each session removed (expired, evicted or logged out), so
            what hangs on it (an open repository connection) is closed too.
        clock: ``time.time`` unless a test moves time.
    """

    def __init__(
        self,
        *,
        lifetime: float,
        login_lifetime: float,
        max_sessions: int,
        on_drop: Callable[[Session], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.login_lifetime = login_lifetime
        self.max_sessions = max_sessions
        self.on_drop = on_drop
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def new(self) -> tuple[str, Session]:
        """A fresh session and the cookie value naming it (shown to the browser only)."""
        now = self.clock()
        self._make_room(now)
        token = secrets.token_urlsafe(32)
        session = Session(
            id_hash=_digest(token),
            csrf=secrets.token_urlsafe(32),
            created=now,
            expires=now + self.login_lifetime,
        )
        self._sessions[session.id_hash] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session named by a cookie value, or None (unknown or expired)."""
        if not token or len(token) > 256:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self.clock():
            self.drop(session)
            return None
        return session

    def logged_in(self, session: Session, user: str, name: str, tokens: Tokens) -> str:
        """Mark ``session`` logged in; it gets a new cookie value and CSRF token (no
        fixation: the value a visitor had before logging in stops working)."""
        self._sessions.pop(session.id_hash, None)
        token = secrets.token_urlsafe(32)
        session.id_hash = _digest(token)
        session.csrf = secrets.token_urlsafe(32)
        session.pending = None
        session.user, session.name, session.tokens = user, name, tokens
        now = self.clock()
        session.created, session.expires = now, now + self.lifetime
        self._sessions[session.id_hash] = session
        return token

    def drop(self, session: Session) -> None:
        """Forget ``session`` (logout, expiry)."""
        if self._sessions.pop(session.id_hash, None) is not None and self.on_drop:
            self.on_drop(session)

    def sweep(self) -> int:
        """Drop every expired session; how many were dropped."""
        now = self.clock()
        dead = [s for s in self._sessions.values() if s.expires <= now]
        for s in dead:
            self.drop(s)
        return len(dead)

    def sessions(self) -> list[Session]:
        """Every stored session (a copy of the list)."""
        return list(self._sessions.values())

    def clear(self) -> None:
        """Drop all (shutdown)."""
        for s in list(self._sessions.values()):
            self.drop(s)

    def _make_room(self, now: float) -> None:
        if len(self._sessions) < self.max_sessions:
            return
        self.sweep()
        if len(self._sessions) < self.max_sessions:
            return
        for s in list(self._sessions.values()):  # oldest first
            if not s.authenticated:
                self.drop(s)
                return
        raise Unavailable("too many people are logged in right now; try again in a while")


def cookie_name(secure: bool) -> str:
    """The session cookie's name for this deployment."""
    return SECURE_COOKIE if secure else PLAIN_COOKIE


def set_cookie(response: web.StreamResponse, token: str, *, secure: bool, max_age: float) -> None:
    """Attach the session cookie: HttpOnly, SameSite=Lax, Secure unless plain HTTP."""
    response.set_cookie(
        cookie_name(secure),
        token,
        max_age=int(max_age),
        path="/",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


def clear_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(cookie_name(secure), path="/", secure=secure, httponly=True, samesite="Lax")


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether ``given`` is this session's CSRF token (constant-time)."""
    if not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())
