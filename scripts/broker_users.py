"""Broker identity: a vhost of our own and one RabbitMQ user per service, least privilege.

    python -m scripts.broker_users ensure [--vhost stager] [--prefix stager] [--dir .local/broker]
    python -m scripts.broker_users remove --vhost V --users-prefix U

``ensure`` is idempotent (``make up`` runs it at every start, the test suite once per
session): it adds the vhost, adds each user or resets its password to the one stored in
``DIR/<role>.password`` (0600, generated once), sets each user's configure/write/read
regexes on the vhost, and clears any permission ``guest`` has there. ``DIR/<role>.url``
(0600) is the role's whole ``amqp://`` URL, for ``STAGER_BROKER__URL=file:DIR/<role>.url``.
Passwords reach ``rabbitmqctl`` on its standard input, never on a command line (``ps``).

What each role may touch is worked out from :mod:`shared.messaging.topology` (RabbitMQ
checks *configure* to declare or delete, *write* to publish to an exchange or bind a queue,
*read* to consume a queue, bind from an exchange or declare a queue with a dead-letter
exchange; the default exchange is ``amq.default``; aio-pika names an exclusive queue
``amq_<32 hex digits>`` itself):

========  ===========================================  ==============================
role      declares / publishes to                      consumes from
========  ===========================================  ==============================
api       transfer topology; tasks, control,           events, tasks.dead (admin view),
          default exchange (listing requests)          its own reply and heartbeat
                                                       queues (``amq_…``)
worker    transfer topology + retry queues; events,    tasks, tasks.priority,
          workers (heartbeats), default exchange       tasks.dead, rpc.dir, its control
          (retries, listing replies)                   queue (``amq_…``)
ingest    ingest.dirs, ingest.files (default exchange)  ingest.dirs, ingest.files
admin     everything (tests' fixtures, never a service)
========  ===========================================  ==============================

A queue and its exchange share a name (``P.tasks``, ``P.events``), and whoever may publish
to ``amq.default`` may publish to any queue of the vhost: the regexes bound each service to
its own prefix and kinds of resource, the signatures (:mod:`shared.messaging.signing`)
decide what is acted on.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROLES = ("api", "worker", "ingest")
ADMIN = "admin"
DEFAULT_VHOST = "stager"
DEFAULT_PREFIX = "stager"
#: How long one rabbitmqctl call may take.
CTL_TIMEOUT = 60.0
#: The default exchange as a permission resource.
DEFAULT_X = r"amq\.default"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class BrokerSetupError(Exception):
    """rabbitmqctl is missing or refused; the message is one line to show."""


@dataclass(frozen=True)
class Permissions:
    """RabbitMQ's three regexes for one user on one vhost."""

    configure: str
    write: str
    read: str


def _any(*alternatives: str) -> str:
    return "^(" + "|".join(alternatives) + ")$"


def permissions(role: str, prefix_re: str) -> Permissions:
    """The least permissions of ``role`` for the topology whose prefix matches ``prefix_re``
    (``re.escape(prefix)`` in production; the test suite allows a family of prefixes)."""
    p = prefix_re
    transfer = rf"{p}\.(tasks|tasks\.priority|tasks\.dead|events|control|workers|rpc\.dir)"
    retry = rf"{p}\.retry\.(normal|priority)\.[0-9]+"
    # exclusive auto-delete queues (the API's reply queue, each worker's control queue):
    # aio-pika names them itself, amq_<32 hex digits>; amq.gen-… if the server names them
    server_named = r"amq_[0-9a-f]{32}|amq\.gen-[A-Za-z0-9_-]+"
    bound_queues = rf"{p}\.(tasks|tasks\.priority|tasks\.dead|events)"
    if role == "api":
        return Permissions(
            configure=_any(transfer, server_named),
            # server-named: binding its heartbeat queue to the workers fanout
            write=_any(
                rf"{p}\.(tasks|tasks\.priority|tasks\.dead|events|control)", server_named, DEFAULT_X
            ),
            # read on the task queues: declaring a queue with a dead-letter exchange needs it
            # (tasks.dead also for the admin view's dead letters; workers: heartbeats)
            read=_any(rf"{p}\.(tasks|tasks\.priority|tasks\.dead|events|workers)", server_named),
        )
    if role == "worker":
        return Permissions(
            configure=_any(transfer, retry, server_named),
            write=_any(bound_queues, rf"{p}\.workers", server_named, DEFAULT_X),
            read=_any(transfer, retry, server_named),
        )
    if role == "ingest":
        ingest = rf"{p}\.ingest\.(dirs|files)"
        return Permissions(configure=_any(ingest), write=_any(DEFAULT_X), read=_any(ingest))
    if role == ADMIN:
        return Permissions(".*", ".*", ".*")
    raise ValueError(f"unknown broker role {role!r}: use one of {', '.join((*ROLES, ADMIN))}")


@dataclass(frozen=True)
class BrokerUsers:
    """The vhost, its users and where their secrets are."""

    vhost: str
    users_prefix: str
    secrets_dir: Path
    host: str = "127.0.0.1"
    port: int = 5672
    roles: tuple[str, ...] = ROLES

    def user(self, role: str) -> str:
        return f"{self.users_prefix}-{role}"

    def password_file(self, role: str) -> Path:
        return self.secrets_dir / f"{role}.password"

    def url_file(self, role: str) -> Path:
        """``amqp://user:password@host:port/vhost`` of ``role`` (0600)."""
        return self.secrets_dir / f"{role}.url"

    def url(self, role: str) -> str:
        password = self.password_file(role).read_text().strip()
        return (
            f"amqp://{quote(self.user(role), safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.vhost, safe='')}"
        )

    def guest_url(self) -> str:
        """What a local user tries first: guest on our vhost (refused)."""
        return f"amqp://guest:guest@{self.host}:{self.port}/{quote(self.vhost, safe='')}"


def rabbitmqctl() -> str:
    ctl = shutil.which("rabbitmqctl") or (
        "/usr/sbin/rabbitmqctl" if os.path.exists("/usr/sbin/rabbitmqctl") else None
    )
    if ctl is None:
        raise BrokerSetupError(
            "rabbitmqctl not found: run this on the broker host as root (apt-get install "
            "rabbitmq-server), or create the users yourself (docs/broker.md)"
        )
    return ctl


def _ctl(args: Sequence[str], *, stdin: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> int:
    """One rabbitmqctl call; a secret only ever goes through ``stdin``."""
    try:
        proc = subprocess.run(
            [rabbitmqctl(), "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BrokerSetupError(
            f"rabbitmqctl {args[0]} did not answer in {CTL_TIMEOUT:g} s"
        ) from None
    if proc.returncode not in ok_codes:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise BrokerSetupError(
            f"rabbitmqctl {args[0]} failed (exit {proc.returncode}): "
            + (why[-1] if why else "no message")
        )
    return proc.returncode


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 whatever the umask (replacing it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _password(path: Path) -> str:
    """The stored password (made once: 32 url-safe characters)."""
    if path.exists():
        path.chmod(0o600)
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    _write_secret(path, value + "\n")
    return value


def ensure(
    users: BrokerUsers,
    *,
    prefix_re: str,
    admin: bool = False,
) -> BrokerUsers:
    """Create (or bring back in line) the vhost and the users of ``users``; idempotent."""
    for name in (users.vhost, users.users_prefix):
        if not _NAME_RE.match(name):
            raise BrokerSetupError(f"{name!r}: use letters, digits, '.', '_' and '-' only")
    users.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    users.secrets_dir.chmod(0o700)
    _ctl(["add_vhost", users.vhost])
    roles = (*users.roles, ADMIN) if admin else users.roles
    for role in roles:
        name = users.user(role)
        password = _password(users.password_file(role))
        if _ctl(["add_user", name], stdin=password, ok_codes=(0, 70)) == 70:  # exists already
            _ctl(["change_password", name], stdin=password)
        perms = permissions(role, prefix_re)
        _ctl(["set_permissions", "-p", users.vhost, name, perms.configure, perms.write, perms.read])
        _write_secret(users.url_file(role), users.url(role) + "\n")
    _ctl(["clear_permissions", "-p", users.vhost, "guest"], ok_codes=(0, 65, 69, 70))
    return users


def remove(users: BrokerUsers, *, admin: bool = False) -> None:
    """Delete the users and the vhost (with every queue in it)."""
    roles = (*users.roles, ADMIN) if admin else users.roles
    for role in roles:
        _ctl(["delete_user", users.user(role)], ok_codes=(0, 65, 69, 70))
    _ctl(["delete_vhost", users.vhost], ok_codes=(0, 65, 69, 70))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.broker_users", description=__doc__)
    p.add_argument("action", choices=["ensure", "remove"])
    p.add_argument("--vhost", default=DEFAULT_VHOST)
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="the topology prefix")
    p.add_argument("--users-prefix", default=None, help="user names: <this>-<role>")
    p.add_argument("--dir", type=Path, default=Path(".local/broker"), help="0600 secrets")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5672)
    args = p.parse_args(argv)
    users = BrokerUsers(
        vhost=args.vhost,
        users_prefix=args.users_prefix or args.vhost,
        secrets_dir=args.dir,
        host=args.host,
        port=args.port,
    )
    try:
        if args.action == "ensure":
            ensure(users, prefix_re=re.escape(args.prefix))
            print(f"broker_users: vhost {users.vhost}, users in {users.secrets_dir}")
        else:
            remove(users)
    except (BrokerSetupError, OSError) as e:
        sys.stderr.write(f"broker_users: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
