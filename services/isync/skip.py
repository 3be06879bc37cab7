"""The skip policy: is the destination already the same as the source?"""

from __future__ import annotations

from services.isync.context import Context
from services.isync.hashing import file_checksum, remote_checksum


def unchanged(
    ctx: Context,
    local_path: str,
    local_size: int,
    remote_path: str,
    remote_size: int,
    known_checksum: str | None,
) -> tuple[bool, str | None]:
    """(same?, the checksum both sides share). Size first; then sha256 unless --size-only."""
    if local_size != remote_size:
        return False, None
    if ctx.options.skip_policy == "size-only":
        return True, known_checksum
    remote = known_checksum or remote_checksum(ctx.session, remote_path)
    if not remote.startswith("sha2:"):
        return False, None
    local = file_checksum(local_path, ctx.cancel.is_set)
    return local == remote, local
