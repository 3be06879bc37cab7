"""Job ``cleanup``: remove what a task's runs left behind, as the user.

A pipeline cancel, a final timeout or a final failure ends with this job: it reads the
task run's ledger (``services.isync.leftovers``) in the user's state directory and
removes the hidden ``.NAME.isync-part`` objects, the local part files and the resume
journals still there, and the collections and local directories the run made that are
still empty. A retry never runs it: the next attempt resumes from the parts.

Parameters: ``ledger`` (its path), ``irods`` (the task's iRODS side, an ``irods:`` URL:
nothing outside it is removed), ``local`` (the task's local side: only directories at,
under or above it are removed) and ``account`` (an ``IrodsAccount`` without its password,
which arrives as the spawn request's secret). iRODS is logged into only when the ledger
names something there.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from services.isync import leftovers
from services.isync.account import open_session
from services.isync.paths import parse_location
from services.worker.forkserver.child import ChildOutput
from shared.irods import IrodsAccount


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Clean up the ledger ``params["ledger"]``; the counts of what was removed and kept."""
    ledger = Path(params["ledger"])
    entries = leftovers.read(ledger)
    if not entries:
        ledger.unlink(missing_ok=True)
        return {"removed": 0, "kept": 0, "errors": []}
    account = IrodsAccount(**params["account"], password=SecretStr(secret or ""))
    root = parse_location(params["irods"], account.home).path
    session = None
    if any(kind in ("irods_part", "collection") for kind, _ in entries):
        session = open_session(account)
    try:
        return leftovers.clean(ledger, session, root, local_root=params.get("local")).summary()
    finally:
        if session is not None:
            session.cleanup()
