"""One rule for which Unix accounts a transfer may run as.

The API applies it when a job is submitted (so a bad ``stagerUser`` is a 4xx at once), the
worker applies it again before it starts a child, and the fork server a third time before
it calls ``setuid``: defence in depth, one rule. An account is refused when

* it does not exist, or its name is not a portable user name;
* it is root (uid or primary gid 0);
* its uid lies outside the personal range ``[min_uid, max_uid]`` (default 1000-60000,
  the Debian/Red Hat ``UID_MIN``/``UID_MAX``): system accounts below, ``nobody``
  (65534) and other reserved ids above;
* it is ``nobody``, whatever its uid;
* its login shell says "no logins" (``nologin``, ``false``, ``true``): service accounts
  that a person never logs in as.
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass

from shared.errors import Forbidden, InvalidInput

#: Accounts below this uid are system accounts and never run transfers.
DEFAULT_MIN_UID = 1000
#: Accounts above this uid (``nobody`` is 65534) never run transfers.
DEFAULT_MAX_UID = 60000

#: A portable Unix user name (POSIX portable filename characters, no leading dash).
USER_NAME_RE = r"^[a-z_][a-z0-9_.-]{0,31}$"

#: Names refused whatever their uid.
REFUSED_NAMES = frozenset({"root", "nobody", "nfsnobody"})
#: Login shells (by base name) that mean "no one logs in as this account".
NO_LOGIN_SHELLS = frozenset({"nologin", "false", "true"})


class UserRefused(Forbidden):
    """The account is root, a system account or a no-login account: transfers never run
    as it."""

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
    """Refuse names that cannot be personal accounts without looking them up (root,
    nobody)."""
    if re.fullmatch(USER_NAME_RE, name) is None:
        raise UnknownUser(f"{name!r} is not a valid Unix user name")
    if name == "root":
        raise UserRefused("user root is refused: transfers never run as root")
    if name in REFUSED_NAMES:
        raise UserRefused(f"user {name!r} is refused: transfers run only as personal accounts")


def login_refused(shell: str) -> bool:
    """True when ``shell`` (a passwd login shell) means the account takes no logins."""
    return os.path.basename(shell.strip()) in NO_LOGIN_SHELLS


def vet(name: str, min_uid: int = DEFAULT_MIN_UID, *, max_uid: int = DEFAULT_MAX_UID) -> Identity:
    """Look ``name`` up and return its identity; refuse root, system, no-login and
    unknown accounts, and uids outside ``[min_uid, max_uid]``."""
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
    if pw.pw_uid > max_uid:
        raise UserRefused(
            f"user {name!r} is not a personal account (uid {pw.pw_uid} > {max_uid}): "
            "transfers run only as personal accounts"
        )
    if login_refused(pw.pw_shell):
        raise UserRefused(
            f"user {name!r} is a no-login account (shell {pw.pw_shell}): "
            "transfers run only as personal accounts"
        )
    return Identity(name=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir)
