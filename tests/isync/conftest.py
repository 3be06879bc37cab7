"""Fixtures for isync tests: account/env for the shared test server, CLI runners."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bench._wiretap import WireTap
from services.isync.cli import main
from services.isync.environment import Environment
from shared.irods import IrodsAccount

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def isync_environ(irods_server: Any, tmp_path: Path) -> dict[str, str]:
    """IRODS_* variables for rods on the shared server, plus a private state dir."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "IRODS_HOST": irods_server.host,
        "IRODS_PORT": str(irods_server.port),
        "IRODS_USER_NAME": "rods",
        "IRODS_ZONE_NAME": irods_server.zone,
        "IRODS_PASSWORD": irods_server.admin_password,
    }


@pytest.fixture
def account(irods_server: Any) -> IrodsAccount:
    return IrodsAccount(
        host=irods_server.host,
        port=irods_server.port,
        user="rods",
        zone=irods_server.zone,
        password=SecretStr(irods_server.admin_password),
    )


@pytest.fixture
def coll(irods_session: Any, unique_name: str) -> str:
    """A fresh collection path (not created) under rods' home."""
    return f"/{irods_session.zone}/home/rods/{unique_name}"


@pytest.fixture
def run_isync(isync_environ: dict[str, str]) -> Callable[..., CliResult]:
    """Run the CLI in-process with captured output: run_isync(*args, env_overrides)."""

    def run(*args: str, environ: dict[str, str] | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        env = Environment(stdout=out, stderr=err, environ={**isync_environ, **(environ or {})})
        code = main(list(args), env)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.isync", *args]


def spawn(args: list[str], environ: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command(*args),
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.fixture
def tap(irods_server: Any) -> Any:
    """A counting proxy (``bench/_wiretap.py``) in front of the shared server."""
    with WireTap(irods_server.host, irods_server.port) as t:
        yield t


def run_cli_via(
    args: list[str], environ: dict[str, str], port: int
) -> subprocess.CompletedProcess[str]:
    """A whole ``isync`` process, its output captured, talking to ``port`` (a tap's)."""
    return subprocess.run(
        cli_command(*args),
        cwd=REPO,
        env={**environ, "IRODS_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
