"""Landing zone: put each file into iRODS, verify it, then move it away or delete it.

Use with a periodic job on the directory instruments write into::

    stager ingest start /data/landing /tempZone/home/lab/raw -i 60 \\
        --event_handler services/ingest/examples/landing_zone.py \\
        --append_json '{"after": "move", "done_dir": "/data/ingested", "min_age": 120}'

For every file older than ``min_age`` seconds (default 300: instruments may still be
writing younger ones) the job copies the file into the target collection
(``PUT_SYNC``), asks iRODS for the object's SHA-256 and compares it with the file's own.
Only when they match is the file handled as ``after`` says:

- ``"move"``: renamed into ``done_dir``, keeping its path relative to the job's root;
- ``"delete"``: removed;
- ``"keep"`` (default): left in place (a dry run of the policy).

A file whose checksum does not match stays where it is and the file counts as failed,
so ``--synchronous`` exits non-zero and the next pass tries again.  Deletions on the
filesystem never delete anything in iRODS (``DeleteMode.DO_NOT_DELETE``).
"""

import base64
import hashlib
import os
import time
from typing import Any

from shared.ingest.core import Core
from shared.ingest.utils import DeleteMode, Operation

DEFAULT_MIN_AGE = 300.0


def _config(meta: dict[str, Any]) -> dict[str, Any]:
    cfg = meta.get("append_json") or {}
    return cfg if isinstance(cfg, dict) else {}


def _sha256_b64(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode("ascii")


class event_handler(Core):
    @staticmethod
    def operation(session: Any, meta: dict[str, Any], **options: Any) -> Operation:
        mtime = meta.get("mtime")
        min_age = float(_config(meta).get("min_age", DEFAULT_MIN_AGE))
        if mtime is not None and time.time() - float(mtime) < min_age:
            return Operation.NO_OP  # still being written: next pass
        return Operation.PUT_SYNC

    @staticmethod
    def delete_mode(meta: dict[str, Any]) -> DeleteMode:
        return DeleteMode.DO_NOT_DELETE

    @staticmethod
    def post_data_obj_create(
        hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], *args: Any, **options: Any
    ) -> None:
        event_handler.settle(logger, session, meta, args)

    @staticmethod
    def post_data_obj_modify(
        hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], *args: Any, **options: Any
    ) -> None:
        event_handler.settle(logger, session, meta, args)

    @staticmethod
    def settle(logger: Any, session: Any, meta: dict[str, Any], args: tuple[Any, ...]) -> None:
        """Verify the object against the file, then move or delete the file."""
        if not args or args[0] is Operation.NO_OP or "mtime" not in meta:
            return  # NO_OP (a young file) or a collection event
        path, target = meta["path"], meta["target"]
        remote = session.data_objects.chksum(target)
        if not remote.startswith("sha2:") or remote[5:] != _sha256_b64(path):
            raise RuntimeError(f"checksum mismatch for {target}: file kept")
        after = _config(meta).get("after", "keep")
        if after == "delete":
            os.remove(path)
        elif after == "move":
            done_dir = _config(meta)["done_dir"]
            dest = os.path.join(done_dir, os.path.relpath(path, meta["root"]))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(path, dest)
        logger.info("landing zone: file settled", target=target, after=after)
