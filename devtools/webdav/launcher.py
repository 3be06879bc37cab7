"""Run the development WebDAV server (:mod:`devtools.webdav.server`) as a child process.

with WebdavServer(irods_host, irods_port, zone) as dav:
    dav.url   # http://127.0.0.1:PORT
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devtools.processes import first_line, stop

REPO_ROOT = Path(__file__).resolve().parents[2]


class WebdavSetupError(RuntimeError):
    """The server did not start."""


class WebdavServer:
    """One ``python -m devtools.webdav`` process on a free (or given) loopback port."""

    def __init__(
        self,
        irods_host: str,
        irods_port: int,
        zone: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        self.irods_host, self.irods_port, self.zone = irods_host, irods_port, zone
        self.host, self.port = host, port
        self.log_path = log_path
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> WebdavServer:
        """Start it and wait for its URL line."""
        cmd = [
            sys.executable,
            "-m",
            "devtools.webdav",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--irods-host",
            self.irods_host,
            "--irods-port",
            str(self.irods_port),
            "--zone",
            self.zone,
        ]
        log = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        line = first_line(self.proc, timeout)
        try:
            self.url = str(json.loads(line)["url"])
        except (ValueError, KeyError):
            self.stop()
            raise WebdavSetupError("the WebDAV server did not start") from None
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """Stop the process."""
        if self.proc is not None:
            stop(self.proc)
        self.proc = None

    def __enter__(self) -> WebdavServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
