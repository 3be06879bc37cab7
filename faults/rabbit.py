"""A RabbitMQ node of the campaign's own: its own node name, ports and data directories,
so restarting it disturbs nobody else's broker (the shared one on 5672 stays up).

``rabbitmqctl`` (and so :mod:`scripts.broker_users`) reaches it through
``RABBITMQ_NODENAME``, which :meth:`RabbitNode.start` puts in this process's environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from scripts.up import LOOPBACK, free_port

START_TIMEOUT = 180.0


class BrokerNodeError(RuntimeError):
    """The node did not start or stop; the message names its log."""


class RabbitNode:
    """``rabbitmq-server`` on loopback with data under ``root`` (made, owned by rabbitmq)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"faults{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.root / "server.out"

    def env(self) -> dict[str, str]:
        r = self.root
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
            "RABBITMQ_LOG_BASE": str(r / "log"),
            "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(r / "pid"),
        }

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # the system's rabbitmq.conf names 5672: ours names our own port
        (self.root / "rabbitmq.conf").write_text(f"listeners.tcp.local = {LOOPBACK}:{self.port}\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        shutil.chown(self.root, "rabbitmq", "rabbitmq")  # the server drops to that user
        for p in self.root.iterdir():
            shutil.chown(p, "rabbitmq", "rabbitmq")

    def start(self) -> None:
        """Start the node and wait until it boots (``rabbitmqctl wait``)."""
        if self.starts == 0:
            self._prepare()
        os.environ["RABBITMQ_NODENAME"] = self.name  # for rabbitmqctl (broker_users)
        env = {**os.environ, **self.env()}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["rabbitmq-server"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_raise_nofile,
            )
        self.starts += 1
        done = self._ctl("wait", str(self.root / "pid"), "--timeout", str(int(START_TIMEOUT)))
        if done.returncode != 0:
            raise BrokerNodeError(f"RabbitMQ node {self.name} did not start (log: {self.log})")

    def stop(self) -> None:
        """``rabbitmqctl stop`` (the whole node), SIGKILL if it does not go."""
        if self.proc is None:
            return
        self._ctl("stop", str(self.root / "pid"))
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        """Stop it and delete its data."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env()}
        return subprocess.run(
            ["rabbitmqctl", "-q", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            check=False,
        )


def _raise_nofile() -> None:  # in the child: quorum queues hold many open files
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
