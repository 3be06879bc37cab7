"""Landing zone: put each file into iRODS, verify it, then move it away or delete it.

Use with a periodic job on the directory instruments write into::

    stager ingest start /data/landing /tempZone/home/lab/raw -i 60 \\
        --event_handler services/ingest/examples/landing_zone.py \\
        --append_json '{"after": "move", "done_dir": "/data/ingested", "min_age": 120}'

For every file older than ``min_age`` seconds (default 300: instruments may still be
writing younger ones) the job copies the file into the target collection
(``PUT_SYNC``), asks iRODS for the object's checksum and compares it with the file's own,
hashed in the checksum's scheme: SHA256 (``sha2:``) or MD5, whichever the zone's
``default_hash_scheme`` is (``shared.checksums``). Only when they match is the file handled
as ``after`` says:

- ``"move"``: renamed into ``done_dir``, keeping its path relative to the job's root;
- ``"delete"``: removed;
- ``"keep"`` (default): left in place (a dry run of the policy).

A file whose checksum does not match (or comes in a scheme this handler cannot compute,
e.g. ``sha512:``) stays where it is and the file counts as failed,
so ``--synchronous`` exits non-zero and the next pass tries again.  Deletions on the
filesystem never delete anything in iRODS (``DeleteMode.DO_NOT_DELETE``).
"""

import os
import time
from typing import Any

from shared.checksums import file_checksum, same, scheme_of
from shared.ingest.core import Core
from shared.ingest.utils import DeleteMode, Operation

DEFAULT_MIN_AGE = 300.0


def _config(meta: dict[str, Any]) -> dict[str, Any]:
    cfg = meta.get("append_json") or {}
    return cfg if isinstance(cfg, dict) else {}


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
        remote = str(session.data_objects.chksum(target))
        scheme = scheme_of(remote)
        if scheme is None:
            raise RuntimeError(
                f"iRODS checksum {remote!r} of {target} is neither sha2: nor MD5, which this "
                "handler cannot verify: file kept"
            )
        if not same(file_checksum(path, scheme=scheme), remote):
            raise RuntimeError(f"checksum mismatch for {target} ({scheme}): file kept")
        after = _config(meta).get("after", "keep")
        if after == "delete":
            os.remove(path)
        elif after == "move":
            done_dir = _config(meta)["done_dir"]
            dest = os.path.join(done_dir, os.path.relpath(path, meta["root"]))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(path, dest)
        logger.info("landing zone: file settled", target=target, after=after)
