"""The skip policy: is the destination already the same as the source?

Same size first. Then, when the catalog has a checksum, the local file hashed in that
checksum's own scheme (``sha2:`` on a SHA256 zone, plain md5 hex on an MD5 zone) must
match it. When the catalog has none (a real zone clears it on every overwrite, and never
computes one for a put without ``-K``), isync does not ask the server for one first: API
629 would make it read every such object whole, one agent request each. It decides by
modification time: the destination is unchanged when it was last written in a later
second than the source last changed (iRODS records whole seconds). Only when the times
cannot say so (the same second, or a destination older than the source) does it ask
iRODS for the checksum of that one object and compare. Wherever it would hash, a few
sampled ranges of both sides are compared first (:mod:`services.isync.sample`): a
difference settles "changed" with no checksum on either side.
"""

from __future__ import annotations

import os
from typing import Literal

from services.isync import sample
from services.isync.context import Context
from services.isync.hashing import file_checksum, remote_checksum, scheme_of


def unchanged(
    ctx: Context,
    local_path: str,
    local_size: int,
    remote_path: str,
    remote_size: int,
    known_checksum: str | None,
    *,
    remote_mtime: int,
    direction: Literal["put", "get"],
) -> tuple[bool, str | None]:
    """(same?, the checksum both sides share). Size first; then, unless --size-only, the
    catalog's checksum, or without one the modification times, then iRODS's checksum
    (see the module docstring).
    ``remote_mtime``: the object's modify time (epoch seconds); ``direction``: which side
    is the destination (``put``: iRODS, ``get``: the local file)."""
    if local_size != remote_size:
        return False, None
    if ctx.options.skip_policy == "size-only":
        return True, known_checksum
    if not known_checksum and _written_after_change(local_path, remote_mtime, direction):
        return True, None
    if sample.differs(ctx, remote_path, local_path, local_size):
        return False, None  # changed: no checksum of either side needed
    if not known_checksum:
        known_checksum = remote_checksum(ctx.session, remote_path)
    scheme = scheme_of(known_checksum)
    if scheme is None:  # a scheme isync cannot compute: copy again rather than guess
        return False, None
    local = file_checksum(local_path, ctx.cancel.is_set, scheme)
    return local == known_checksum, local


def _written_after_change(local_path: str, remote_mtime: int, direction: str) -> bool:
    """Whether the destination was written in a later whole second than the source last
    changed (then it was written after that change)."""
    if remote_mtime <= 0:
        return False
    local_mtime = int(os.stat(local_path).st_mtime)
    if direction == "put":
        return remote_mtime > local_mtime
    return local_mtime > remote_mtime
