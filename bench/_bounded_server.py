"""The iRODS test server with its per-operation cost bounded by a zone's cores.

    python -m bench._bounded_server --slots 2 --data DIR --cost real-zone [server flags]

``--cost`` (``devtools/irods_server/cost.py``) makes every request wait ``agent_ms`` (plus
``catalog_ms`` after a catalog write) in an ``asyncio.sleep``, so any number of connections
pay it at once. On a real zone that time is CPU (the agents and PostgreSQL): a client with
eight connections gets at most as many of them at once as the zone has cores. Here each
wait holds one of ``--slots`` slots (default 2, the cores of the zone issue 15 measured),
so concurrency past the zone's cores buys nothing, as there. The server's own code is
unchanged: this module wraps its handlers the way ``cost.install`` does, then runs its
``main``. Used by ``bench/isync_cli.py`` for the bounded real-zone small-file figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from devtools.irods_server import cost as cost_module
from devtools.irods_server.dispatch import Handler
from devtools.irods_server.launcher import ServerProcess

#: the cost module's own wrapper, kept before :func:`main` replaces ``cost_module.costed``
_costed = cost_module.costed


def bounded(handler: Handler, op_cost: cost_module.OpCost, slots: int) -> Handler:
    """``handler`` followed by the cost's wait (``cost.costed``), holding one of ``slots``
    slots while it waits (one semaphore per server process: the zone's cores)."""
    semaphore: asyncio.Semaphore | None = None

    async def pay(seconds: float) -> None:
        nonlocal semaphore
        if semaphore is None:  # made inside the server's event loop
            semaphore = _shared_semaphore(slots)
        async with semaphore:
            await asyncio.sleep(seconds)

    return _costed(handler, op_cost, wait=pay)


_SEMAPHORES: dict[int, asyncio.Semaphore] = {}


def _shared_semaphore(slots: int) -> asyncio.Semaphore:
    """One semaphore for every handler: the slots are the server's, not each API's."""
    if slots not in _SEMAPHORES:
        _SEMAPHORES[slots] = asyncio.Semaphore(slots)
    return _SEMAPHORES[slots]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._bounded_server", add_help=False)
    p.add_argument("--slots", type=int, default=2)
    ours, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if ours.slots < 1:
        print("--slots must be at least 1", file=sys.stderr)
        return 2
    from devtools.irods_server import __main__ as server

    # cost.install wraps every handler with the module's `costed`: give it ours
    cost_module.costed = lambda handler, op_cost: bounded(handler, op_cost, ours.slots)  # type: ignore[assignment,misc]
    return server.main(rest)


class BoundedServer(ServerProcess):
    """:class:`ServerProcess` running this module: plain TCP, as this process's user."""

    def __init__(self, data_dir: Any, *, cost: str, slots: int = 2) -> None:
        super().__init__(data_dir, cost=cost)
        self.slots = slots

    def start(self, timeout: float = 30.0) -> BoundedServer:
        import subprocess

        from devtools.irods_server.launcher import REPO_ROOT

        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "bench._bounded_server", "--slots", str(self.slots)]
        cmd += ["--data", str(self.data_dir), "--host", self.host, "--port", str(self.port)]
        cmd += ["--log-level", self.log_level, "--cost", str(self.cost)]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, text=True
            )
        line = self._ready_line(timeout)
        self.port = int(line[len("irods-test-server ready on ") :].split()[0].rsplit(":", 1)[1])
        return self


if __name__ == "__main__":
    raise SystemExit(main())
