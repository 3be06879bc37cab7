"""Start the iRODS test server.

``python -m devtools.irods_server --data DIR [--host H] [--port P]
[--tls-cert F --tls-key F] [--log-level L] [--presents 4.3.4|5.0.2]
[--cost real-zone|AGENT_MS,CATALOG_MS] [--lenient NAME[,NAME]] [--hash-scheme SHA256|MD5]
[--request-log FILE] [--allow-root]``

Like a real iRODS server (``irodsctl should not be run by the root user``,
``scripts/irods_control.py``), it refuses to run as root: root can write a vault anywhere,
where a real server, running as the unprivileged ``irods`` account, gets ``EACCES``.
``--allow-root`` runs it as root anyway (this development environment runs everything as
root; ``launcher.ServerProcess`` passes it there unless told to run the server as an
unprivileged account with ``run_as``).

``--presents`` (or ``IRODS_TEST_SERVER_PRESENTS``) picks the iRODS release the server
presents as (``presentation.py``);
``--cost`` (or ``IRODS_TEST_SERVER_COST``) slows every request to a real zone's
per-operation cost (``cost.py``; off by default);
``--lenient`` (or ``IRODS_TEST_SERVER_LENIENT``) relaxes named strict behaviours
(``leniency.py``; none by default);
``--hash-scheme`` (or ``IRODS_TEST_SERVER_HASH_SCHEME``) is the zone's
``default_hash_scheme`` (``hash_scheme.py``; SHA256 by default, MD5 for an md5 zone);
``--request-log FILE`` appends the API number of every request to FILE, one line each, so
a test can count what a client asked for (``ServerProcess.api_counts``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import ssl
import sys
from pathlib import Path

from . import cost, hash_scheme, leniency, presentation
from .catalog import Catalog
from .server import load_handlers, serve
from .state import ZONE, ServerState


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devtools.irods_server", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="catalog and vault directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1247, help="0 picks a free port")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate (enables TLS negotiation)")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--presents",
        default=os.environ.get(presentation.ENV_VAR) or presentation.DEFAULT,
        choices=sorted(presentation.PRESENTATIONS),
        help=f"iRODS release to present as (default: ${presentation.ENV_VAR},"
        f" else {presentation.DEFAULT})",
    )
    p.add_argument(
        "--cost",
        help="per-request delay: 'real-zone', 'off' or 'AGENT_MS,CATALOG_MS'"
        f" (default: ${cost.ENV_VAR}, else off)",
    )
    p.add_argument(
        "--lenient",
        help="comma-separated strict behaviours to relax"
        f" ({', '.join(sorted(leniency.NAMES))}; default: ${leniency.ENV_VAR}, else none)",
    )
    p.add_argument(
        "--hash-scheme",
        help="the zone's default_hash_scheme: SHA256 (sha2:+base64) or MD5 (plain hex)"
        f" (default: ${hash_scheme.ENV_VAR}, else {hash_scheme.DEFAULT})",
    )
    p.add_argument(
        "--request-log",
        type=Path,
        help="append every request's API number to this file (tests count requests)",
    )
    p.add_argument(
        "--allow-root",
        action="store_true",
        help="run even as root (a real iRODS server refuses to; vault permissions then never fail)",
    )
    args = p.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    try:
        args.cost = cost.parse_cost(args.cost) if args.cost else cost.from_environment()
        args.lenient = leniency.parse(args.lenient) if args.lenient else leniency.from_environment()
        args.hash_scheme = (
            hash_scheme.parse(args.hash_scheme)
            if args.hash_scheme
            else hash_scheme.from_environment()
        )
    except ValueError as e:
        p.error(str(e))
    return args


def configure(presents: str, op_cost: cost.OpCost) -> None:
    """Load the handlers, then fit them to the presented release and the cost."""
    load_handlers()
    presentation.use(presents)
    presentation.install()
    cost.install(op_cost)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def build_state(
    data: Path,
    cert: Path | None = None,
    key: Path | None = None,
    lenient: frozenset[str] = frozenset(),
    scheme: str = hash_scheme.DEFAULT,
) -> ServerState:
    """Open (or create) the catalog under ``data`` and wrap it in a :class:`ServerState`."""
    data.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(data / "catalog.sqlite", ZONE, data / "vault")
    ctx = tls_context(cert, key) if cert is not None and key is not None else None
    return ServerState(
        data_dir=data, catalog=catalog, ssl_context=ctx, lenient=lenient, hash_scheme=scheme
    )


ROOT_REFUSAL = (
    "irods-test-server: refusing to run as root (a real iRODS server runs as an unprivileged"
    " account); run it as another user, or pass --allow-root"
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() == 0 and not args.allow_root:
        print(ROOT_REFUSAL, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    configure(args.presents, args.cost)
    if args.cost.active:
        logging.getLogger("irods_server").warning("per-operation cost: %s", args.cost)
    if os.geteuid() == 0:
        logging.getLogger("irods_server").warning("running as root (--allow-root)")
    if args.hash_scheme != hash_scheme.DEFAULT:
        logging.getLogger("irods_server").warning("default_hash_scheme: %s", args.hash_scheme)
    if args.lenient:
        logging.getLogger("irods_server").warning("lenient: %s", ", ".join(sorted(args.lenient)))
    try:
        state = build_state(args.data, args.tls_cert, args.tls_key, args.lenient, args.hash_scheme)
        if args.request_log is not None:
            state.request_log = open(args.request_log, "a", buffering=1)  # noqa: SIM115
    except (OSError, ssl.SSLError) as e:
        print(f"irods-test-server: cannot start: {e}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(state, args.host, args.port))
    except OSError as e:
        where = f"{args.host}:{args.port}"
        print(f"irods-test-server: cannot listen on {where}: {e}", file=sys.stderr)
        return 2
    finally:
        state.catalog.commit()
        state.catalog.close()
        if state.request_log is not None:
            state.request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
