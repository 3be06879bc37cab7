"""What a child gets of a login: a clean environment and the user's umask.

The worker holds secrets in its environment (``STAGER_SERVICE_CREDENTIALS``,
``STAGER_IRODS__PASSWORD``, broker URLs …) and runs with root's umask. None of that may
reach a child that runs as a user. So the fork server is started with
:func:`base_environment` only (its environment is what every child inherits, and what
``/proc/<child>/environ`` shows), and each child replaces its ``os.environ`` with
:func:`user_environment` and sets :func:`login_umask` before its job runs.

* Environment: ``PATH`` (``ENV_PATH`` of ``login.defs``, else ``/usr/local/bin:/usr/bin:/bin``),
  ``LANG``, ``LC_*`` and ``TZ`` as the worker has them, the operator's explicit
  ``children.env``, then ``HOME``, ``USER`` and ``LOGNAME`` of the user.
* Umask: ``children.umask`` when set, else the login default of ``login.defs``
  (``UMASK``, 022 when absent; with ``USERGROUPS_ENAB yes`` a user whose uid equals its
  gid and whose name is its primary group's gets the group bits set like the owner bits,
  as ``login.defs(5)`` says: 022 → 002).
"""

from __future__ import annotations

import grp
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from shared.unix_users import Identity

#: PATH when ``login.defs`` names none (``ENV_PATH``).
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: ``UMASK`` when ``login.defs`` names none.
DEFAULT_UMASK = 0o022
#: Variables of the worker a child keeps (``LC_*`` too): locale and time zone only.
PASSED = frozenset({"LANG", "LANGUAGE", "TZ"})
#: Variables the child sets for the user (``children.env`` cannot set them).
PER_USER = frozenset({"HOME", "USER", "LOGNAME"})
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LoginSettings(BaseModel):
    """How a child's login looks (``STAGER_CHILDREN__UMASK``, ``…__ENV``, ``…__LOGIN_DEFS``).

    Parameters:
        umask: the children's umask as octal text (``"077"``); unset: the login default
            from ``login_defs``.
        env: extra variables every child gets (e.g. ``REQUESTS_CA_BUNDLE``); nothing of the
            worker's own environment reaches a child unless named here.
        login_defs: where the login defaults (``UMASK``, ``USERGROUPS_ENAB``, ``ENV_PATH``)
            are read.
    """

    umask: str | None = Field(default=None, description="octal, e.g. 077; unset: login.defs")
    env: dict[str, str] = Field(default_factory=dict, description="extra child variables")
    login_defs: Path = Path("/etc/login.defs")

    @field_validator("umask")
    @classmethod
    def _octal(cls, v: str | None) -> str | None:
        if v is not None and re.fullmatch(r"0?[0-7]{3}", v.strip()) is None:
            raise ValueError("umask must be three octal digits, e.g. 077 or 022")
        return None if v is None else v.strip()

    @field_validator("env")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if _NAME_RE.fullmatch(name) is None:
                raise ValueError(f"{name!r} is not a variable name")
            if name in PER_USER:
                raise ValueError(f"{name} is set per user; it cannot be configured")
            if "\0" in value:
                raise ValueError(f"{name} contains a NUL byte")
        return v

    @property
    def umask_value(self) -> int | None:
        """The configured umask as a number (None: the login default)."""
        return None if self.umask is None else int(self.umask, 8)


def read_login_defs(path: Path) -> dict[str, str]:
    """``KEY VALUE`` lines of a ``login.defs`` file (an unreadable file reads as empty)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[0].startswith("#"):
            out[parts[0]] = parts[1].strip()
    return out


def base_environment(
    environ: Mapping[str, str], extra: Mapping[str, str], defs: Mapping[str, str]
) -> dict[str, str]:
    """The fork server's whole environment: what every child may inherit."""
    env_path = defs.get("ENV_PATH", "")
    path = env_path.removeprefix("PATH=") if env_path.startswith("PATH=") else DEFAULT_PATH
    env = {"PATH": path}
    env |= {k: v for k, v in environ.items() if k in PASSED or k.startswith("LC_")}
    return env | dict(extra)


def user_environment(base: Mapping[str, str], ident: Identity) -> dict[str, str]:
    """A child's ``os.environ``: the fork server's clean one and the user's own names."""
    return {**base, "HOME": ident.home, "USER": ident.name, "LOGNAME": ident.name}


def login_umask(ident: Identity, defs: Mapping[str, str]) -> int:
    """The umask a login of ``ident`` gets from ``login.defs`` (see the module text)."""
    try:
        mask = int(defs.get("UMASK", ""), 8) & 0o777
    except ValueError:
        mask = DEFAULT_UMASK
    if defs.get("USERGROUPS_ENAB", "").lower() == "yes" and ident.uid == ident.gid:
        try:
            private = grp.getgrgid(ident.gid).gr_name == ident.name
        except KeyError:
            private = False
        if private:
            mask = (mask & ~0o070) | ((mask & 0o700) >> 3)
    return mask


def apply(environ: Mapping[str, str], umask: int) -> None:
    """In the child, as the user: replace the environment, set the umask."""
    os.environ.clear()
    os.environ.update(environ)
    os.umask(umask)
