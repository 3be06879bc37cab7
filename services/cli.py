"""``stager``: every operator command, one hop from ``stager --help``.

``stager ingest ...``
    Automated ingest jobs (``start``, ``list``, ``stop``, ``watch``): handed whole to
    :mod:`services.ingest.cli`, whose options and help are its own.
``stager genkey DIR [--bits N]``
    A new credential key pair: ``DIR/private.pem`` (created 0600) and ``DIR/public.pem``;
    prints the key id. The API seals with the public key, workers open with the private
    one (:mod:`shared.crypto`).
``stager genkey --signing ROLE DIR``
    A new message signing key pair for ``ROLE`` (api, worker or ingest): ``DIR/ROLE.key``
    (0600) and ``DIR/ROLE.pub``; prints the key id. The role's processes sign with the
    private key, receivers trust the public one (:mod:`shared.messaging.signing`).

``genkey`` never overwrites: when a file of the pair exists it exits 1 and says so (move
the old pair away first; rotation keeps both keys configured for a while). Files are
created with ``O_EXCL`` and the private key is 0600 whatever the umask.
``stager hash-password``
    Reads a service account's password from the first line of stdin and prints its hash
    for the API's settings (:func:`services.api.auth.hash_password`).

Exit codes are the project's one vocabulary (``shared.errors.ExitStatus``): a usage error
is one line on stderr and 2; a file that cannot be written is one line and 1. Each command
imports its service only when it runs, so ``stager genkey`` does not load the API or the
ingest store.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from shared.errors import ExitStatus

#: The ingest CLI's argv is handed over before this parser sees it.
INGEST = "ingest"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong, where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(ExitStatus.USAGE), f"{self.prog}: {message} (see {self.prog} -h)\n")


class KeyExists(Exception):
    """A file of the key pair to write exists already."""


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (never following a link, never overwriting)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widen beyond mode
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
    finally:
        os.close(fd)


def write_pair(private: Path, public: Path, private_pem: bytes, public_pem: bytes) -> None:
    """Write a key pair; refuses (KeyExists) when either file is there."""
    for path in (private, public):
        if os.path.lexists(path):
            raise KeyExists(f"{path} exists; move the old key pair away first (never overwritten)")
    write_new(private, private_pem, 0o600)
    write_new(public, public_pem, 0o644)


def genkey(args: argparse.Namespace) -> int:
    """Write a new key pair into ``args.dir`` (private key 0600) and print its key id."""
    out: Path = args.dir
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.signing:
        from shared.messaging import signing

        private_pem, public_pem = signing.generate()
        write_pair(
            out / f"{args.signing}.key", out / f"{args.signing}.pub", private_pem, public_pem
        )
        kid = signing.key_id(signing.load_publics(public_pem)[0])
    else:
        from shared.crypto import generate_keypair, key_id, load_public_key

        private_pem, public_pem = generate_keypair(args.bits)
        write_pair(out / "private.pem", out / "public.pem", private_pem, public_pem)
        kid = key_id(load_public_key(public_pem))
    sys.stdout.write(kid + "\n")
    return ExitStatus.SUCCESS


def hash_password(args: argparse.Namespace) -> int:
    """Print the hash of the password on stdin's first line; exit 2 when it is empty."""
    from services.api.auth import hash_password as hash_of

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        args.parser.error("empty password on stdin")
    sys.stdout.write(hash_of(password) + "\n")
    return ExitStatus.SUCCESS


def build_parser() -> argparse.ArgumentParser:
    """The ``stager`` parser; ``ingest`` is listed for ``--help`` and parses its own argv."""
    parser = _Parser(
        prog="stager",
        description="data stager operator commands",
        epilog="stager COMMAND -h shows a command's options",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(INGEST, add_help=False, help="automated ingest jobs: start, list, stop, watch")
    gen = sub.add_parser(
        "genkey", help="a new key pair: DIR/private.pem (0600) + DIR/public.pem, never overwritten"
    )
    gen.add_argument("dir", metavar="DIR", type=Path, help="where to write (created if missing)")
    gen.add_argument("--bits", type=int, default=3072, help="RSA key size (default 3072)")
    gen.add_argument(
        "--signing",
        metavar="ROLE",
        choices=("api", "worker", "ingest"),
        help="a message signing key pair instead: DIR/ROLE.key (0600) + DIR/ROLE.pub",
    )
    gen.set_defaults(run=genkey, parser=gen)
    hashing = sub.add_parser("hash-password", help="hash a password read on stdin (API settings)")
    hashing.set_defaults(run=hash_password, parser=hashing)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point (``stager = "services.cli:main"``)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [INGEST]:
        from services.ingest.cli import main as ingest_main

        return ingest_main(args[1:])
    parsed = build_parser().parse_args(args)
    run: Callable[[argparse.Namespace], int] = parsed.run
    try:
        return int(run(parsed))
    except KeyExists as e:
        sys.stderr.write(f"stager {parsed.command}: {e}\n")
        return int(ExitStatus.FAILED)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        sys.stderr.write(f"stager {parsed.command}: cannot write{where}: {e.strerror or e}\n")
        return int(ExitStatus.FAILED)


if __name__ == "__main__":
    sys.exit(main())
