"""iRODS → local for one file: written to `NAME.isync-part`, verified, then renamed.

Large objects are read in ranges over several streams with `os.pwrite` into the
preallocated part file; `NAME.isync-partial` journals the completed ranges so a rerun
fetches only what is missing. The part file and the journal are opened only when they are
this user's own regular files (`paths.open_own_file`): a FIFO, link or device planted there
fails that file at once, naming it, and is neither followed nor waited on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from services.isync import single_buffer, wire
from services.isync.context import Context
from services.isync.errors import ChecksumMismatch, DestinationExists, IsyncError
from services.isync.hashing import (
    ChasingHasher,
    checksum_of,
    file_checksum,
    irods_form,
    new_hash,
    remote_checksum,
    scheme_of,
    zone_scheme,
)
from services.isync.journal import Journal, get_journal_path
from services.isync.models import FileOutcome
from services.isync.paths import open_own_file, part_name
from services.isync.plan import FileTask
from services.isync.ranges import ByteRange, split
from services.isync.skip import unchanged
from services.isync.streams import StreamSet, run_ranges

# Bytes asked per read call (at most the buffer size): 8 MiB, as a put writes, is half the
# round trips of python-irodsclient's 4 MiB (its COPY_BUF_SIZE); each read is a round trip
# in which a real agent reads its vault file while the client waits.
READ_CHUNK = 8 * 1024 * 1024

#: what to do when the object changed while it was read
_AGAIN = ": it changed while it was read; run it again once nobody writes it"

_checksummer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="isync-chksum")


def get_file(ctx: Context, task: FileTask) -> FileOutcome:
    """Copy one data object to a local file (or skip it); raises on failure."""
    assert task.remote is not None
    base: dict[str, Any] = {"src": task.src, "dst": task.dst, "bytes": task.size}
    known = task.remote.checksum
    if os.path.lexists(task.dst):
        if os.path.isdir(task.dst):
            raise DestinationExists(
                f"{task.dst} is a directory but a file goes there: rename or remove it,"
                " or choose another destination"
            )
        if os.path.exists(task.dst) and not os.path.isfile(task.dst):  # never read a FIFO
            raise DestinationExists(
                f"{task.dst} is not a regular file (a FIFO or device?): remove it,"
                " or choose another destination"
            )
        same, checksum = unchanged(
            ctx,
            task.dst,
            os.path.getsize(task.dst),
            task.src,
            task.size,
            known,
            remote_mtime=task.remote.mtime,
            direction="get",
        )
        if same:
            ctx.tracker.add_bytes(task.size, 0)
            return FileOutcome(**base, outcome="skipped", reason="unchanged", checksum=checksum)
        if not ctx.options.force:
            raise DestinationExists(f"{task.dst} exists and differs (use -f to overwrite)")
    if ctx.options.dry_run:
        ctx.tracker.add_bytes(task.size, 0)
        return FileOutcome(**base, outcome="dry-run")
    verify = ctx.options.verify_checksum
    large = task.size >= ctx.options.large_file_threshold
    single = not large and task.size <= ctx.options.buffer_size and ctx.single.applies(task.size)
    expected: Future[str] | None = None
    if verify and not single and not _usable(known):
        expected = _checksummer.submit(remote_checksum, ctx.session, task.src)
    remote = known
    resumed = False
    if large:
        sent, checksum, resumed = _get_large(ctx, task)
    else:
        got = _get_single(ctx, task) if single else None
        if got is None:
            sent, checksum = _get_small(ctx, task)
        else:
            sent, checksum, from_reply = got
            remote = from_reply if _usable(from_reply) else known
    part = part_name(task.dst, "local")
    try:
        if verify:
            if expected is not None:
                remote = expected.result()
            elif not _usable(remote):
                remote = remote_checksum(ctx.session, task.src)
            scheme = scheme_of(remote)
            if checksum is not None and scheme is not None and scheme != scheme_of(checksum):
                checksum = file_checksum(part, ctx.cancel.is_set, scheme)  # hashed otherwise
            if checksum is None or remote != checksum:
                raise ChecksumMismatch(
                    f"{task.dst}: checksum mismatch after download "
                    f"(iRODS {remote}, local {checksum}): {ChecksumMismatch.hint}"
                )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        get_journal_path(task.dst).unlink(missing_ok=True)
        raise
    os.replace(part, task.dst)
    get_journal_path(task.dst).unlink(missing_ok=True)
    return FileOutcome(
        **base, outcome="transferred", bytes_sent=sent, checksum=checksum, resumed=resumed
    )


def _usable(checksum: str | None) -> bool:
    """A checksum isync can compare with (sha2: or md5, ``hashing.scheme_of``)."""
    return scheme_of(checksum) is not None


def _scheme(ctx: Context, task: FileTask) -> str:
    """The scheme to hash a download in: the catalog checksum's own, else the zone's
    (what the server computes when asked, ``rsFileChksum.cpp``)."""
    assert task.remote is not None
    return scheme_of(task.remote.checksum) or zone_scheme(ctx.session)


def _get_single(ctx: Context, task: FileTask) -> tuple[int, str | None, str | None] | None:
    """DATA_OBJ_GET (608) in one reply: (bytes, local sha2, iRODS checksum); None when the
    server will not (the run then falls back to open/read/close)."""
    part = part_name(task.dst, "local")
    buf = ctx.buffer()
    ctx.check_cancel()
    ctx.bucket.acquire(task.size)
    verify = ctx.options.verify_checksum
    try:
        with ctx.connection() as conn:
            n, remote = single_buffer.get_object(conn, task.src, buf, verify)
    except single_buffer.Unsupported as e:
        ctx.single.disable(str(e))
        return None
    except Exception as e:
        if not single_buffer.is_unsupported(e):
            raise
        ctx.single.disable(type(e).__name__)
        return None
    if n != task.size:
        raise IsyncError(
            f"irods:{task.src}: size changed during download ({n} != {task.size}){_AGAIN}"
        )
    data = buf[:n]
    fd_local = open_own_file(part, os.O_WRONLY, create=True)
    try:
        _write_all(fd_local, data, 0)
    except BaseException:
        os.close(fd_local)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    os.close(fd_local)
    ctx.single.count(put=False)
    ctx.tracker.add_bytes(n, current=task.src)
    return n, checksum_of(data, _scheme(ctx, task)) if verify else None, remote


def _get_small(ctx: Context, task: FileTask) -> tuple[int, str | None]:
    part = part_name(task.dst, "local")
    scheme = _scheme(ctx, task)
    h = new_hash(scheme) if ctx.options.verify_checksum else None
    buf = ctx.buffer()
    sent = 0
    fd_local = open_own_file(part, os.O_WRONLY, create=True)
    try:
        with ctx.connection() as conn:
            fd = wire.open_object(conn, task.src, wire.O_RDONLY)
            try:
                while True:
                    ctx.check_cancel()
                    n = wire.read_into(conn, fd, buf)
                    if n == 0:
                        break
                    ctx.bucket.acquire(n)
                    chunk = buf[:n]
                    if h is not None:
                        h.update(chunk)
                    _write_all(fd_local, chunk, sent)
                    sent += n
                    ctx.tracker.add_bytes(n, current=task.src)
            finally:
                wire.close(conn, fd)
    except BaseException:
        os.close(fd_local)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    os.close(fd_local)
    if sent != task.size:
        os.unlink(part)
        raise IsyncError(
            f"irods:{task.src}: size changed during download ({sent} != {task.size}){_AGAIN}"
        )
    return sent, irods_form(h, scheme) if h is not None else None


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _get_large(ctx: Context, task: FileTask) -> tuple[int, str | None, bool]:
    assert task.remote is not None
    part = part_name(task.dst, "local")
    jpath = get_journal_path(task.dst)
    # not the checksum: computing one (-K) must not invalidate the journal
    identity = {"src": task.src, "size": task.size, "mtime": task.remote.mtime}
    # the part file first: what lies there is checked before anything reads the journal
    fd_local = open_own_file(part, os.O_RDWR, create=False) if os.path.lexists(part) else -1
    try:
        journal = Journal.load(jpath, identity) if fd_local >= 0 else None
    except BaseException:
        os.close(fd_local)
        raise
    resumed = journal is not None and journal.bytes_done > 0
    try:  # noted before the part file is made: a cancel or final failure removes both
        ctx.leftovers.note("file", part)
        ctx.leftovers.note("file", str(jpath))
    except BaseException:
        if fd_local >= 0:
            os.close(fd_local)
        raise
    if journal is None:
        journal = Journal(jpath, identity, split(task.size, ctx.options.streams))
        if fd_local >= 0:
            os.close(fd_local)
        fd_local = open_own_file(part, os.O_RDWR, create=True)
        _preallocate(fd_local, task.size)
    journal.save()
    todo = [r for r in journal.ranges if not r.complete]
    ctx.tracker.add_bytes(task.size - sum(r.remaining for r in journal.ranges), 0)
    stop_hash = threading.Event()
    hasher = None
    if ctx.options.verify_checksum:
        scheme = _scheme(ctx, task)
        hasher = ChasingHasher(fd_local, journal.ranges, stop_hash, task.size, scheme)
        hasher.start()
    sent = [0]
    lock = threading.Lock()

    def worker(conn: Any, fd: int, rng: ByteRange, stop: threading.Event) -> None:
        buf = ctx.buffer()[:READ_CHUNK]
        wire.seek(conn, fd, rng.next_offset)
        out = open_own_file(part, os.O_WRONLY)  # one open file per stream, as a writer has
        try:
            ahead = wire.ReadAhead(conn, fd, buf, ctx.buffer(second=True)[: len(buf)])
            while not rng.complete:
                if stop.is_set():
                    return
                ctx.check_cancel()
                want = min(len(buf), rng.remaining)
                ctx.bucket.acquire(want)
                go_on = not (stop.is_set() or ctx.cancel.is_set())
                chunk = ahead.read(want, min(len(buf), rng.remaining - want) if go_on else 0)
                n = len(chunk)
                if n <= 0:
                    raise IsyncError(f"irods:{task.src}: object shorter than expected{_AGAIN}")
                _write_all(out, chunk, rng.next_offset)
                journal.advance(rng, n)
                with lock:
                    sent[0] += n
                ctx.tracker.add_bytes(n, current=task.src)
        finally:
            with contextlib.suppress(Exception):
                ahead.drain()  # a reply in flight is read before the stream closes
            os.close(out)

    streams = StreamSet(
        ctx, task.src, max(1, len(todo)), wire.O_RDONLY, {}, wire.O_RDONLY, task.size
    )
    try:
        run_ranges(
            streams,
            todo,
            worker,
            local_fd=fd_local,
            journal=journal,
            stop_hash=stop_hash,
            open_first=True,
        )
    except BaseException:
        if not resumed and sent[0] == 0:  # nothing fetched (e.g. the object is being
            # written elsewhere): no preallocated part file and journal left behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            jpath.unlink(missing_ok=True)
        raise
    return sent[0], hasher.wait() if hasher is not None else None, resumed


def _preallocate(fd: int, size: int) -> None:
    """Reserve the blocks (fast extents on most filesystems), else just set the size."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:
        os.ftruncate(fd, size)
