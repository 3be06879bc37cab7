"""A WebDAV server (wsgidav on cheroot) whose Basic-auth logins are iRODS logins.

    python -m devtools.webdav --irods-host 127.0.0.1 --irods-port 1247 --zone tempZone \
        [--host 127.0.0.1] [--port 0] [--root DIR]

It stands in for the repository's WebDAV front end (Davrods at the institute) when the UI
checks a repository login by PROPFIND (``STAGER_REPOSITORY__CHECK=webdav``): every request
must carry a user name and password that log in to the iRODS server (through
:func:`shared.irods.connect`, as every other iRODS client here). What it serves is a local
folder (``--root``, empty by default), not the iRODS namespace: the UI lists the repository
over iRODS, and only the login check goes through WebDAV. A good login is remembered for a
minute (by a salted hash), so a burst of requests makes one iRODS login.

Prints ``{"url": "http://HOST:PORT"}`` on stdout once it listens; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import signal
import sys
import tempfile
import threading
import time
from typing import Any

from cheroot import wsgi
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.wsgidav_app import WsgiDAVApp

from shared.irods import IrodsAccount, connect

#: Seconds a checked login is remembered.
REMEMBER = 60.0


class IrodsDomainController(BaseDomainController):
    """Basic auth checked by an iRODS login (config key ``irods_dc``: host, port, zone)."""

    def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, config)
        self.irods = config["irods_dc"]
        self._salt = secrets.token_bytes(16)
        self._good: dict[str, float] = {}
        self._lock = threading.Lock()

    def get_domain_realm(self, path_info: str, environ: dict[str, Any] | None) -> str:
        return "repository"

    def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
        return True

    def supports_http_digest_auth(self) -> bool:
        return False

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        if not user_name or not password:
            return False
        key = hashlib.sha256(self._salt + f"{user_name}\0{password}".encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            if self._good.get(key, 0.0) > now:
                return True
        account = IrodsAccount(
            host=self.irods["host"],
            port=self.irods["port"],
            zone=self.irods["zone"],
            user=user_name,
            password=password,  # type: ignore[arg-type]
        )
        try:
            session = connect(account, timeout=10.0, check=True)
        except Exception:  # any failure to log in is a refused login
            return False
        session.cleanup()
        with self._lock:
            self._good[key] = now + REMEMBER
        environ["wsgidav.auth.roles"] = ("editor",)
        return True


def make_app(irods: dict[str, Any], root: str) -> WsgiDAVApp:
    """The WsgiDAV application serving ``root``, logins checked against ``irods``."""
    config = {
        "provider_mapping": {"/": root},
        "http_authenticator": {
            "domain_controller": IrodsDomainController,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
            "trusted_auth_header": None,
        },
        "irods_dc": irods,
        "verbose": 1,
        "logging": {"enable": False},
        "property_manager": True,
        "lock_storage": True,
        "dir_browser": {"enable": False},
    }
    return WsgiDAVApp(config)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(prog="python -m devtools.webdav", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--irods-host", default="127.0.0.1")
    p.add_argument("--irods-port", type=int, default=1247)
    p.add_argument("--zone", default="tempZone")
    p.add_argument("--root", help="folder to serve (default: a new empty temp folder)")
    args = p.parse_args(argv)
    root = args.root or tempfile.mkdtemp(prefix="stager-webdav-")
    irods = {"host": args.irods_host, "port": args.irods_port, "zone": args.zone}
    server = wsgi.Server((args.host, args.port), make_app(irods, root), numthreads=8)
    server.prepare()
    host, port = server.bind_addr[:2]
    sys.stdout.write(json.dumps({"url": f"http://{host}:{port}"}) + "\n")
    sys.stdout.flush()

    def _stop(*_: object) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.serve()
    return 0
