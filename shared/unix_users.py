"""One rule for which Unix accounts a transfer may run as.

The API applies it when a job is submitted (so a bad ``stagerUser`` is a 4xx at once), the
worker applies it again before it starts a child, and the fork server a third time before
it calls ``setuid``: defence in depth, one rule. An account is refused when it does not
exist, is root (uid or primary gid 0), or is a system account (uid below ``min_uid``).
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass

from shared.errors import Forbidden, InvalidInput

#: Accounts below this uid are system accounts and never run transfers.
DEFAULT_MIN_UID = 1000

#: A portable Unix user name (POSIX portable filename characters, no leading dash).
USER_NAME_RE = r"^[a-z_][a-z0-9_.-]{0,31}$"


class UserRefused(Forbidden):
    """The account is root or a system account: transfers never run as it."""

    title = "user refused"


class UnknownUser(InvalidInput):
    """No such Unix account (or not a valid user name)."""

    title = "unknown user"


@dataclass(frozen=True)
class Identity:
    """The account a child process runs as."""

    name: str
    uid: int
    gid: int
    home: str


def check_name(name: str) -> None:
    """Refuse names that cannot be personal accounts without looking them up (root)."""
    if re.fullmatch(USER_NAME_RE, name) is None:
        raise UnknownUser(f"{name!r} is not a valid Unix user name")
    if name == "root":
        raise UserRefused("user root is refused: transfers never run as root")


def vet(name: str, min_uid: int = DEFAULT_MIN_UID) -> Identity:
    """Look ``name`` up and return its identity; refuse root, system and unknown accounts."""
    check_name(name)
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise UnknownUser(f"{name!r} is not a known user: check the spelling") from None
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise UserRefused(f"user {name!r} is root: transfers never run as root")
    if pw.pw_uid < max(min_uid, 1):
        raise UserRefused(
            f"user {name!r} is a system account (uid {pw.pw_uid} < {min_uid}): "
            "transfers run only as personal accounts"
        )
    return Identity(name=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir)
