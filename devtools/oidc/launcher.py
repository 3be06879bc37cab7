"""Install and run the development OIDC provider (``devtools/oidc/server.mjs``).

    ui = Client("stager-ui", "secret", ["http://127.0.0.1:8081/auth/callback"])
    with OidcProvider(accounts={"alice": Account("pw", "stgalice")}, clients=[ui]) as idp:
        idp.issuer   # http://127.0.0.1:PORT

The provider is panva's ``oidc-provider`` at the version ``package-lock.json`` pins,
installed by :func:`ensure_installed` (``npm ci``) into ``devtools/oidc/node_modules`` the
first time. Node 20.19 or newer runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devtools.processes import first_line, stop

HERE = Path(__file__).resolve().parent
SERVER = HERE / "server.mjs"
NODE_MODULES = HERE / "node_modules"


class OidcSetupError(RuntimeError):
    """Node or the pinned packages are not available."""


@dataclass(frozen=True)
class Account:
    """A test login: its password, the Unix user it maps to (``preferred_username``) and
    its ``groups`` claim (in the access token: what the API's admin roles read)."""

    password: str
    unix_user: str
    name: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Account(unix_user={self.unix_user!r})"


@dataclass(frozen=True)
class Client:
    """A relying party registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r})"


def node() -> str:
    """The ``node`` executable (20.19+), or :class:`OidcSetupError` saying what to install."""
    exe = shutil.which("node")
    if exe is None:
        raise OidcSetupError("node is not installed: apt-get install nodejs npm (Node 20.19+)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    major, minor = (int(x) for x in out.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 19):
        raise OidcSetupError(f"node {out.strip()} is too old: oidc-provider needs 20.19+")
    return exe


def ensure_installed(*, quiet: bool = True) -> Path:
    """``npm ci`` the pinned packages into ``devtools/oidc/node_modules`` unless present."""
    marker = NODE_MODULES / "oidc-provider" / "package.json"
    lock = json.loads((HERE / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/oidc-provider"]["version"]
    if marker.exists() and json.loads(marker.read_text()).get("version") == want:
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None:
        raise OidcSetupError("npm is not installed: apt-get install npm")
    cmd = [npm, "ci", "--no-audit", "--no-fund"]
    if quiet:
        cmd.append("--silent")
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        raise OidcSetupError(f"npm ci in {HERE} failed: {tail[0]}")
    return NODE_MODULES


class OidcProvider:
    """One provider process on a free (or given) loopback port."""

    def __init__(
        self,
        *,
        accounts: dict[str, Account],
        clients: list[Client],
        audience: str = "stager-api",
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_ttl: int = 300,
        log_path: Path | None = None,
    ) -> None:
        self.accounts = accounts
        self.clients = clients
        self.audience = audience
        self.host = host
        self.port = port
        self.access_token_ttl = access_token_ttl
        self.log_path = log_path
        self.issuer = ""
        self.proc: subprocess.Popen[str] | None = None
        self._config_dir: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout: float = 30.0) -> OidcProvider:
        """Install if needed, start, and wait for the issuer line."""
        exe = node()
        ensure_installed()
        self._config_dir = tempfile.TemporaryDirectory(prefix="stager-oidc-")
        config_path = Path(self._config_dir.name) / "config.json"
        config: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "audience": self.audience,
            "access_token_ttl": self.access_token_ttl,
            "clients": [asdict(c) for c in self.clients],
            "accounts": {k: asdict(v) for k, v in self.accounts.items()},
        }
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)
        log = self.log_path or Path(self._config_dir.name) / "oidc.log"
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                [exe, str(SERVER), str(config_path)],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production"},
            )
        line = first_line(self.proc, timeout)
        try:
            self.issuer = str(json.loads(line)["issuer"])
        except (ValueError, KeyError):
            self.stop()
            raise OidcSetupError(f"the OIDC provider did not start (see {log})") from None
        self.port = int(self.issuer.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """Stop the process and remove its config (passwords)."""
        if self.proc is not None:
            stop(self.proc)
        self.proc = None
        if self._config_dir is not None:
            self._config_dir.cleanup()
            self._config_dir = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
