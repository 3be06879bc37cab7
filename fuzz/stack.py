"""The real stack the generated requests are thrown at: ``make up --ephemeral`` (the iRODS
test server, the API, a worker and the ingest worker on free loopback ports, a private
broker vhost) plus the development OIDC provider, a real Unix user it maps its account to,
and a fresh PostgreSQL database (or SQLite) as the task store.

    with Stack.start(Path("logs"), store="postgres") as stack:
        stack.api_url, stack.basic_header(), stack.bearer_header()

Everything it made (processes, the user, the database, the broker vhost, the temp
directory) is removed on exit; the logs of ``make up`` and the provider stay in ``logs``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from devtools.accounts import add_account, remove_account
from devtools.oidc.launcher import Account, OidcProvider
from scripts.up import READY_LINE, REPO, STREAMER
from tests.conftest import PG_ADMIN, _pg_admin

Store = Literal["postgres", "sqlite"]
AUDIENCE = "stager-api"


class StackError(RuntimeError):
    """The stack did not come up; the message says which part and where its log is."""


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


def _user_token(idp: OidcProvider, password: str) -> str:
    """An access token of the provider's ``alice`` account: the code flow with PKCE through
    its login form (the same steps a browser takes; ``tests/ui`` proves them)."""
    from tests.ui.test_oidc_provider import _login

    status, tokens = asyncio.run(_login(idp, password))
    if status != 303 or not tokens.get("access_token"):
        raise StackError(f"the OIDC provider refused the test login (status {status})")
    return str(tokens["access_token"])


@dataclass
class Stack:
    """A running stack; use :meth:`start` as a context manager."""

    store: Store = "postgres"
    #: where ``up.log`` and ``oidc.log`` are written (kept)
    logs: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stager-fuzz-")))
    user: str = ""
    api_url: str = ""
    token: str = ""
    password: str = ""
    log: list[str] = field(default_factory=list)
    _made_user: bool = False
    _database: str = ""
    _idp: OidcProvider | None = None
    _up: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, logs: Path, store: Store = "postgres", ready_timeout: float = 120.0) -> Stack:
        logs.mkdir(parents=True, exist_ok=True)
        stack = cls(store=store, logs=logs)
        try:
            stack._start(ready_timeout)
        except BaseException:
            stack.stop()
            raise
        return stack

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- parts ------------------------------------------------------------------------

    def _make_user(self) -> None:
        """A real login account (uid >= 20000, no home) the OIDC account maps to."""
        if os.geteuid() != 0:
            raise StackError("the fuzz stack needs root: it creates a Unix user (useradd)")
        self.user = add_account(prefix="stgfz").pw_name
        self._made_user = True

    def _start_idp(self) -> None:
        from tests.ui.test_oidc_provider import CLIENT

        secret = "idp-" + uuid.uuid4().hex
        self._idp = OidcProvider(
            accounts={"alice": Account(secret, self.user, "Fuzz User")},
            clients=[CLIENT],
            audience=AUDIENCE,
            access_token_ttl=4 * 3600,
            log_path=self.logs / "oidc.log",
        ).start()
        self.token = _user_token(self._idp, secret)

    def _store_url(self) -> str:
        if self.store == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp / 'store.sqlite'}"
        self._database = f"stager_fuzz_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{self._database}"'))
        return _pg_url(self._database)

    def _start(self, ready_timeout: float) -> None:
        self._make_user()
        self._start_idp()
        assert self._idp is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
        store_url = self._store_url()
        env.update(
            {
                # the task store and the ingest job store (as a deployment would share one)
                "STAGER_DATABASE_URL": store_url,
                "STAGER_INGEST__DB_URL": store_url,
                "STAGER_AUTH__OIDC__ISSUER": self._idp.issuer,
                "STAGER_AUTH__OIDC__AUDIENCE": AUDIENCE,
                "STAGER_INGEST_MANAGERS": json.dumps([f"service:{STREAMER}", f"user:{self.user}"]),
                "STAGER_LOG_JSON": "true",
                "PYTHONPATH": str(REPO),
            }
        )
        local = self.tmp / "local"
        self._up = subprocess.Popen(
            [sys.executable, "-m", "scripts.up", "--ephemeral", "--local-dir", str(local)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(ready_timeout) or self._up.poll() is not None:
            tail = "\n".join(self.log[-15:])
            raise StackError(f"make up --ephemeral did not get ready ({self.logs}/up.log):\n{tail}")
        line = next(x for x in self.log if x.startswith(READY_LINE))
        parts = dict(p.split("=", 1) for p in line[len(READY_LINE) :].split())
        self.api_url = parts["api"]
        self.password = (local / "streamer.password").read_text().strip()

    def _drain(self, ready: threading.Event) -> None:
        assert self._up is not None and self._up.stdout is not None
        with open(self.logs / "up.log", "w") as out:
            for line in self._up.stdout:
                self.log.append(line.rstrip("\n"))
                out.write(line)
                if line.startswith(READY_LINE):
                    ready.set()
        ready.set()

    # --- use ------------------------------------------------------------------------------

    def basic_header(self) -> str:
        raw = base64.b64encode(f"{STREAMER}:{self.password}".encode()).decode()
        return f"Basic {raw}"

    def bearer_header(self) -> str:
        return f"Bearer {self.token}"

    def api_errors(self) -> list[str]:
        """The API's log lines of unhandled errors (each also answered 500)."""
        return [x for x in self.log if "unhandled error" in x]

    # --- stop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop what was started, newest first; remove the user, database and temp dir."""
        if self._up is not None and self._up.poll() is None:
            self._up.send_signal(signal.SIGINT)
            try:
                self._up.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._up.pid, signal.SIGKILL)
                self._up.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        if self._idp is not None:
            self._idp.stop()
            self._idp = None
        if self._database:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)'))
            self._database = ""
        if self._made_user:
            remove_account(self.user)
            self._made_user = False
        shutil.rmtree(self.tmp, ignore_errors=True)
