"""Job ``whoami``: the child's credentials (a health probe and a privilege-drop check)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from services.worker.forkserver.child import ChildOutput


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Uid, gid, groups, process group and session of the child."""
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "pgid": os.getpgrp(),
        "sid": os.getsid(0),
    }
