"""Removing what a task left behind when it ends without completing.

Each task run has a ledger in the user's state directory (``leftovers/<task>-<run>.jsonl``)
where the isync core notes the part objects, part files, journals and collections it
makes (:mod:`services.isync.leftovers`). A retry keeps all of it (the next attempt
resumes); a completed run removes its journals and the ledger itself (in its child); a
cancel, a final timeout or a final failure runs the ``cleanup`` job in a child as the
user (:mod:`services.worker.jobs.cleanup`) before the final event is published.
Cleaning up is best effort: a failure is logged and never changes the task's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from services.isync.paths import is_irods
from services.worker.credentials import resolve
from services.worker.forkserver.client import ForkServerError
from services.worker.forkserver.pool import ChildPool
from services.worker.forkserver.protocol import ERROR, FINAL_TYPES
from services.worker.settings import WorkerSettings
from services.worker.state_dir import user_state_dir
from shared.crypto import Opener
from shared.errors import StagerError
from shared.logging import get_logger
from shared.messaging.messages import TaskMessage
from shared.unix_users import UnknownUser, UserRefused, vet

log = get_logger(__name__)

#: The job kind that cleans up (``services.worker.forkserver.server.JOBS``).
CLEANUP_KIND = "cleanup"
#: How long a cleanup child may take before it is killed (the ledger stays for next time).
CLEANUP_SECONDS = 120.0
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def ledger_path(state_dir: Path, msg: TaskMessage) -> Path:
    """Where the run of ``msg`` notes what it leaves behind (in the user's state dir)."""
    tid = (
        msg.task_id
        if _SAFE.match(msg.task_id) and not msg.task_id.startswith(".")
        else (hashlib.sha256(msg.task_id.encode()).hexdigest()[:32])
    )
    return state_dir / "leftovers" / f"{tid}-{msg.run}.jsonl"


async def clean_up(
    msg: TaskMessage,
    settings: WorkerSettings,
    opener: Opener | None,
    pool: ChildPool,
) -> dict[str, Any] | None:
    """Run the ``cleanup`` job for ``msg``'s run as its user; what it reports, or None."""
    tlog = log.bind(task_id=msg.task_id, run=msg.run)
    spec = msg.task
    try:
        ident = vet(spec.stagerUser, settings.min_uid, max_uid=settings.max_uid)
        repo_user, password = resolve(msg, opener, settings.service_credentials)
        state_dir = user_state_dir(settings.state_dir, ident)
    except StagerError as e:  # nothing can have run as this user either
        tlog.info("task.cleanup_skipped", reason=e.message)
        return None
    irods = settings.irods
    account = {"host": irods.host, "port": irods.port, "zone": irods.zone}
    account |= {**settings.irods_options, "user": repo_user}
    ledger = ledger_path(state_dir, msg)
    # the run noted nothing (or never got as far as a part): one lstat, no child to start
    if not os.path.lexists(ledger):  # noqa: ASYNC240
        del password
        return None
    upload = is_irods(spec.dstURL)
    side, local = (spec.dstURL, spec.srcURL) if upload else (spec.srcURL, spec.dstURL)
    params = {
        "ledger": str(ledger),
        "irods": side,
        "local": local,
        "account": account,
    }
    key = pool.key(CLEANUP_KIND, ident.name, account, password, ident.uid)
    try:
        child = await pool.start(key, params, secret=password)
    except (UserRefused, UnknownUser, ForkServerError) as e:
        tlog.warning("task.cleanup_failed", error=e.message)
        return None
    finally:
        del password
    final: dict[str, Any] = {}
    clean = False
    try:
        async with asyncio.timeout(CLEANUP_SECONDS):
            async for line in child.lines():
                if line.get("type") in FINAL_TYPES:
                    final = line
                    break
        clean = final.get("type") not in (None, ERROR)
    except TimeoutError:
        tlog.warning("task.cleanup_failed", error=f"took longer than {CLEANUP_SECONDS:.0f} s")
    finally:
        # never kept for reuse: after a final outcome no process of the user's stays behind
        pool.release(key, child, reuse=False)
    if not clean:
        if final:
            tlog.warning("task.cleanup_failed", error=str(final.get("message") or "failed"))
        return None
    report = {k: v for k, v in final.items() if k in ("removed", "kept", "errors")}
    tlog.info("task.cleaned_up", **report)
    return report
