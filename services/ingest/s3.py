"""S3 buckets as an ingest source, with automated ingest 0.7.0's options and semantics.

A job is an S3 job when it names a key-pair file (``--s3_keypair``); its root is
``/bucket`` or ``/bucket/prefix``.  Keys are read as a tree: ``/`` separates "directories"
(``list_objects`` with a delimiter, one level per directory task, exactly like a
filesystem directory), so memory stays bounded by the largest "directory", collections
mirror the key's elements below the prefix, and the per-collection diff of
:mod:`services.ingest.diff` applies unchanged.  An object's ``meta["path"]`` (and its
registered physical path) is ``/bucket/key``, as the seed makes it.

Change detection uses only the listing: size and ``LastModified`` (whole seconds) against
the catalog, as for files, and the ``ETag``, kept on each ingested object in the AVU
``irods::automated_ingest::s3_etag`` (so a same-size rewrite in the same second is seen).

Credentials: the key-pair file (first line the access key, second the secret key, as the
seed reads it) is read by the job owner's child when it first needs the bucket, never by
the worker, the API or the CLI beyond a check; only its *path* is stored with the job.  A
file anyone may read is refused.  No secret goes into a log line, a store row, a task
message or an exception's text: errors are built from the S3 error code and message only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import stat
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ingest.errors import IngestError
from services.ingest.scanner import Entry, Excludes, Listing
from shared.ingest.utils import Operation
from shared.settings import DEFAULT_S3_ENDPOINTS

DEFAULT_ENDPOINT = "s3.amazonaws.com"
#: The endpoints an ingest worker may contact unless ``STAGER_INGEST__S3_ENDPOINTS`` says
#: otherwise (the API and the CLI read the same setting: ``shared.settings``).
DEFAULT_ALLOWED_ENDPOINTS = DEFAULT_S3_ENDPOINTS
DEFAULT_REGION = "us-east-1"
DEFAULT_CHUNK_MIB = 8
#: The AVU holding an ingested object's ETag (ours: the seed keeps it in Redis, if at all).
ETAG_AVU = "irods::automated_ingest::s3_etag"
#: Bytes read from S3 and written to iRODS at a time (whatever the multipart chunk size).
BUFFER = 4 * 1024 * 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Error(IngestError):
    """The bucket could not be read: bad credentials, no such bucket, unreachable."""


class EndpointRefused(S3Error):
    """The job's S3 endpoint (or proxy) is not in the workers' allow-list."""


def _host_port(hostport: str) -> tuple[str, int | None]:
    parts = urllib.parse.urlsplit(f"//{hostport}")
    try:
        port = parts.port
    except ValueError:
        port = -1  # matches no pattern
    return (parts.hostname or "").lower(), port


def endpoint_allowed(hostport: str, allowed: Iterable[str], secure: bool = True) -> bool:
    """Whether ``host[:port]`` matches a pattern of ``allowed``.

    A pattern is ``host`` or ``host:port``, shell-style wildcards allowed in either part
    (``*.example.org``, ``127.0.0.1:*``); a pattern without a port matches only the
    scheme's standard port (443 with TLS, 80 without), which is also the port of an
    endpoint that names none."""
    host, port = _host_port(hostport)
    standard = 443 if secure else 80
    for pattern in allowed:
        pattern = pattern.strip().lower()
        p_host, sep, p_port = pattern.rpartition(":")
        if not sep or pattern.endswith("]") or (p_host.count(":") and not p_host.endswith("]")):
            p_host, p_port = pattern, ""  # no port (a bare IPv6 address has colons)
        if not fnmatch.fnmatchcase(host, p_host.strip("[]")):
            continue
        if not p_port:
            if port in (None, standard):
                return True
        elif fnmatch.fnmatchcase(str(standard if port is None else port), p_port):
            return True
    return False


def check_endpoints(source: S3Source, allowed: Sequence[str]) -> None:
    """Refuse (:class:`EndpointRefused`) a source whose endpoint or proxy the ingest
    workers may not contact (``STAGER_INGEST__S3_ENDPOINTS``)."""
    hint = (
        "the ingest workers may contact only the S3 endpoints in STAGER_INGEST__S3_ENDPOINTS"
        f" ({', '.join(allowed) or 'none'}): use one of those, or ask the operator to add it"
    )
    if not endpoint_allowed(source.endpoint_domain, allowed, source.secure):
        raise EndpointRefused(f"S3 endpoint {source.endpoint_domain} is not allowed: {hint}")
    if source.proxy_url:
        proxy = urllib.parse.urlsplit(source.proxy_url)
        if not endpoint_allowed(proxy.netloc, allowed, proxy.scheme == "https"):
            raise EndpointRefused(f"S3 proxy {proxy.netloc} is not allowed: {hint}")


class S3Source(BaseModel):
    """The seed's ``--s3_*`` options of one job (stored with the job: no secret here)."""

    model_config = ConfigDict(extra="forbid")

    keypair: str = Field(description="path of the key-pair file (access key, secret key)")
    endpoint_domain: str = DEFAULT_ENDPOINT
    region_name: str = DEFAULT_REGION
    proxy_url: str | None = None
    #: ``--s3_insecure_connection`` clears it (plain HTTP)
    secure: bool = True
    multipart_chunksize_in_mib: int = Field(default=DEFAULT_CHUNK_MIB, ge=5, le=5000)

    @field_validator("keypair")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("the S3 key-pair path must be absolute")
        if "\x00" in v:
            raise ValueError("the S3 key-pair path contains a NUL byte: remove it")
        return v

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parts = urllib.parse.urlsplit(v)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError("--s3_proxy_url: give http://host:port or https://host:port") from None
        if "@" in parts.netloc:  # checked first: the value is not echoed if it holds one
            raise ValueError(
                "--s3_proxy_url: leave credentials out of the proxy URL (it is stored and "
                "shown with the job)"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--s3_proxy_url {v!r}: give http://host:port or https://host:port")
        return v

    @field_validator("endpoint_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if "://" in v or "/" in v or not v.strip():
            raise ValueError(
                f"--s3_endpoint_domain {v!r}: give host[:port] only (no scheme, no path);"
                " --s3_insecure_connection selects plain HTTP"
            )
        return v

    @property
    def chunk_size(self) -> int:
        return self.multipart_chunksize_in_mib * 1024 * 1024


def split_root(root: str) -> tuple[str, str]:
    """``/bucket/some/prefix/`` → ``("bucket", "some/prefix/")`` (``""``: the whole bucket).

    The prefix is a "directory": it always ends with ``/`` (``/bucket/data`` does not take
    ``database/x``, which the seed's plain string prefix did).
    """
    if not root.startswith("/"):
        raise ValueError(f"S3 source {root!r}: give /bucket or /bucket/prefix")
    bucket, _, rest = root.lstrip("/").partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(f"S3 source {root!r}: {bucket!r} is not a valid bucket name")
    rest = rest.strip("/")
    return bucket, f"{rest}/" if rest else ""


def normal_root(root: str) -> str:
    """The stored form of an S3 root: ``/bucket`` or ``/bucket/prefix`` (no trailing ``/``)."""
    bucket, prefix = split_root(root)
    return f"/{bucket}/{prefix}".rstrip("/")


def split_path(path: str) -> tuple[str, str]:
    """A physical path ``/bucket/key`` → ``(bucket, key)``."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        raise IngestError(f"object name or bucket name missing from S3 path {path!r}")
    return bucket, key


def within_root(path: str, root: str) -> bool:
    """Whether the "directory" ``path`` lies in the job's S3 root (string prefixes)."""
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def read_keypair(path: str) -> tuple[str, str]:
    """``(access key, secret key)`` from the seed's two-line key-pair file.

    Refused (with a message naming the file, never its contents) when anyone may read it,
    when it is not a regular file, or when it lacks either line.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise S3Error(f"cannot read the S3 key-pair file {path}: {e.strerror}") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise S3Error(f"the S3 key-pair file {path} is not a regular file")
        if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
            raise S3Error(
                f"the S3 key-pair file {path} may be read or written by anyone (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): refused; chmod o-rwx {path}"
            )
        access = f.readline(4096).strip()
        secret = f.readline(4096).strip()
    if not access or not secret:
        raise S3Error(
            f"the S3 key-pair file {path} must hold two lines: the access key, then the secret key"
        )
    return access, secret


#: URL user-info (``//user:password@``) and signed-request query values.
_USERINFO = re.compile(r"(?<=//)[^/@\s'\"]+@")
_SIGNED = re.compile(
    r"((?:X-Amz-(?:Credential|Signature|Security-Token)|AWSAccessKeyId|Signature)=)[^&\s'\"]*",
    re.IGNORECASE,
)
#: How long an error's message may be in a job's error or a log line.
MESSAGE_LIMIT = 300


def _describe(e: Exception, secrets: Iterable[str] = ()) -> str:
    """An S3 or network error as one line without secrets.

    S3 errors: their code and message.  Others (connection refused, TLS, timeouts): the
    type name and the message, with the key pair's values, URL user-info and signed
    query values removed, on one line and at most :data:`MESSAGE_LIMIT` characters."""
    code = getattr(e, "code", None)
    message = getattr(e, "message", None)
    if code:
        text = f"{code}: {message}" if message else str(code)
    else:
        text = _sanitized(str(e), secrets)
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _sanitized(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub("***@", text)
    text = _SIGNED.sub(r"\1***", text)
    text = " ".join(text.split())
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 3] + "..."
    return text


@dataclass(frozen=True)
class ObjectInfo:
    """What the listing says of one object."""

    size: int
    mtime: float
    etag: str


class EtagCheck:
    """Recompute an object's ETag while it streams (MD5, or MD5 of part MD5s + ``-N``).

    A multipart ETag can only be recomputed with the part size of the upload: that is
    what ``--s3_multipart_chunksize_in_mib`` tells (the seed's default: 8 MiB).
    """

    def __init__(self, etag: str, part_size: int) -> None:
        self.etag = etag
        self.multipart = "-" in etag
        self.part_size = part_size
        self._whole = hashlib.md5(usedforsecurity=False)
        self._part = hashlib.md5(usedforsecurity=False)
        self._fill = 0
        self._digests: list[bytes] = []

    def update(self, data: bytes) -> None:
        if not self.multipart:
            self._whole.update(data)
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self._fill)
            self._part.update(view[:take])
            self._fill += take
            view = view[take:]
            if self._fill == self.part_size:
                self._digests.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._fill = 0

    def computed(self) -> str:
        if not self.multipart:
            return self._whole.hexdigest()
        digests = self._digests + ([self._part.digest()] if self._fill else [])
        joined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
        return f"{joined}-{len(digests)}"


class S3Reader:
    """One job's view of its bucket, in the owner's child (thread-safe, lazy client)."""

    def __init__(
        self, source: S3Source, root: str, allowed_endpoints: Sequence[str] | None = None
    ) -> None:
        self.source = source
        self.root = root
        self.bucket, self.prefix = split_root(root)
        #: None: not checked (the worker passes its STAGER_INGEST__S3_ENDPOINTS)
        self.allowed_endpoints = allowed_endpoints
        self._client: Any = None
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    # --- the client -------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        import urllib3
        from minio import Minio

        if self.allowed_endpoints is not None:
            check_endpoints(self.source, self.allowed_endpoints)
        access, secret = read_keypair(self.source.keypair)
        self._secrets = (access, secret)
        timeout = urllib3.Timeout(connect=30.0, read=120.0)
        retries = urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])
        http: Any
        if self.source.proxy_url:
            http = urllib3.ProxyManager(
                self.source.proxy_url, timeout=timeout, retries=retries, maxsize=16
            )
        else:
            http = urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=16)
        return Minio(
            self.source.endpoint_domain,
            access_key=access,
            secret_key=secret,
            secure=self.source.secure,
            region=self.source.region_name,
            http_client=http,
        )

    def _fail(self, what: str, e: Exception) -> S3Error:
        where = f"{'https' if self.source.secure else 'http'}://{self.source.endpoint_domain}"
        return S3Error(f"S3 {what} at {where}: {_describe(e, self._secrets)}")

    # --- the job's root ---------------------------------------------------------------

    def check_bucket(self) -> None:
        """The bucket exists and the key pair may list it (else :class:`S3Error`)."""
        try:
            exists = self.client.bucket_exists(self.bucket)
        except S3Error:
            raise
        except Exception as e:
            raise self._fail(f"bucket {self.bucket!r} cannot be read", e) from None
        if not exists:
            raise S3Error(
                f"S3 bucket {self.bucket!r} does not exist at {self.source.endpoint_domain}"
            )

    def meta(self) -> dict[str, Any]:
        """The seed's ``s3_*`` keys of ``meta`` (never the keys themselves)."""
        s = self.source
        return {
            "root": self.bucket,
            "s3_prefix": self.prefix.rstrip("/"),
            "s3_endpoint_domain": s.endpoint_domain,
            "s3_region_name": s.region_name,
            "s3_keypair": s.keypair,
            "s3_proxy_url": s.proxy_url,
            "s3_secure_connection": s.secure,
            "s3_multipart_chunksize_in_mib": s.multipart_chunksize_in_mib,
        }

    # --- listing ----------------------------------------------------------------------

    def list_dir(self, path: str, excludes: Excludes) -> Listing:
        """One "directory" (``/bucket/prefix/dir``) of the bucket, as ``scan_dir`` lists
        one of a filesystem: objects as regular files, common prefixes as directories.

        Folder-marker objects (keys ending in ``/``) are skipped, as the seed skips them; a
        key element that cannot be an iRODS name (empty, ``.``, ``..``) is reported as
        unreadable.
        """
        if not within_root(path, self.root):
            raise IngestError(f"S3 directory {path} is outside the job's root {self.root}")
        bucket, _, rest = path.lstrip("/").partition("/")
        prefix = f"{rest.strip('/')}/" if rest.strip("/") else ""
        listing = Listing()
        try:
            for obj in self.client.list_objects(bucket, prefix=prefix, recursive=False):
                name = obj.object_name[len(prefix) :]
                is_dir = bool(obj.is_dir)
                if is_dir:
                    name = name[:-1]
                elif name.endswith("/") or not name:
                    continue  # a folder marker
                full = f"/{bucket}/{prefix}{name}"
                if name in ("", ".", "..") or "/" in name:
                    listing.unreadable.append(full)
                    continue
                if is_dir:
                    entry = Entry(name, full, "directory", 0, 0.0, 0.0, stat.S_IFDIR | 0o755)
                else:
                    mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
                    entry = Entry(
                        name,
                        full,
                        "regular",
                        int(obj.size or 0),
                        mtime,
                        mtime,
                        stat.S_IFREG | 0o644,
                        etag=(obj.etag or "").strip('"') or None,
                    )
                if excludes.excluded(entry.path, entry.kind):
                    listing.excluded += 1
                else:
                    listing.entries.append(entry)
        except Exception as e:
            raise self._fail(f"listing of {path} failed", e) from None
        return listing

    # --- operations (called through the handler's on_* wrappers) -----------------------

    def create_object(
        self,
        hdlr_mod: Any,
        logger: Any,
        session: Any,
        meta: dict[str, Any],
        op: Operation,
        **options: Any,
    ) -> None:
        """Stream a new object into a new data object (PUT, PUT_SYNC, PUT_APPEND)."""
        from services.ingest.operations import refuse_existing_on_initial_ingest

        refuse_existing_on_initial_ingest(session, meta)
        self._copy(logger, session, meta, op, options, offset=0, created=True)

    def sync_object(
        self,
        hdlr_mod: Any,
        logger: Any,
        session: Any,
        meta: dict[str, Any],
        op: Operation,
        **options: Any,
    ) -> None:
        """Bring an existing data object up to date: PUT_APPEND fetches only the bytes past
        the object's size (a ranged GET); otherwise the whole object again."""
        old = int(meta.get("irods_size") or 0)
        offset = old if op is Operation.PUT_APPEND and 0 < old <= int(meta["size"]) else 0
        self._copy(logger, session, meta, op, options, offset=offset, created=False)

    def _copy(
        self,
        logger: Any,
        session: Any,
        meta: dict[str, Any],
        op: Operation,
        options: dict[str, Any],
        offset: int,
        created: bool,
    ) -> None:
        bucket, key = split_path(meta["path"])
        logical = meta["target"]
        listed = meta.get("s3_etag")
        try:
            response = self.client.get_object(bucket, key, offset=offset)
        except Exception as e:
            raise self._fail(f"GET of {meta['path']} failed", e) from None
        sent = 0
        try:
            etag = (response.headers.get("ETag") or "").strip('"')
            if listed and etag and etag != listed:
                raise IngestError(
                    f"S3 object {meta['path']} changed since it was listed: the next pass takes it"
                )
            check = EtagCheck(etag, self.source.chunk_size) if etag and not offset else None
            mode = "a" if offset else "w"
            with session.data_objects.open(logical, mode, allow_redirect=False, **options) as dst:
                if offset:
                    dst.seek(offset)
                for data in response.stream(BUFFER):
                    dst.write(data)
                    if check:
                        check.update(data)
                    sent += len(data)
        except Exception as e:
            if created:
                self._discard(session, logical)
            if isinstance(e, IngestError):
                raise
            raise self._fail(f"copy of {meta['path']} into {logical} failed", e) from None
        finally:
            response.close()
            response.release_conn()
        expected = int(meta["size"]) - offset
        if sent != expected:
            if created:
                self._discard(session, logical)
            raise IngestError(f"S3 object {meta['path']}: read {sent} bytes of {expected}")
        if check:
            computed = check.computed()
            if computed != check.etag:
                if not check.multipart:
                    if created:
                        self._discard(session, logical)
                    raise IngestError(
                        f"S3 object {meta['path']}: MD5 {computed} of the bytes read does not"
                        f" match its ETag {check.etag}"
                    )
                logger.warning(
                    "multipart ETag not verified (upload's part size differs from"
                    " --s3_multipart_chunksize_in_mib?)",
                    path=meta["path"],
                    etag=check.etag,
                    computed=computed,
                    chunk_mib=self.source.multipart_chunksize_in_mib,
                )
        meta["bytes_sent"] = sent
        if op is not Operation.PUT:  # PUT never looks at an existing object again
            session.data_objects.touch(
                logical, seconds_since_epoch=int(meta["mtime"]), no_create=True
            )

    @staticmethod
    def _discard(session: Any, logical: str) -> None:
        """Remove a data object this put created but could not fill correctly."""
        with contextlib.suppress(Exception):  # best effort: the file fails either way
            session.data_objects.unlink(logical, force=True)

    def annotate(self, session: Any, meta: dict[str, Any]) -> None:
        """Record the listed ETag on the object (the next pass compares it)."""
        etag = meta.get("s3_etag")
        if not etag:
            return
        from irods.meta import iRODSMeta
        from irods.models import DataObject

        session.metadata.set(DataObject, meta["target"], iRODSMeta(ETAG_AVU, etag))


def list_etags(session: Any, collection: str) -> dict[str, str]:
    """Name → recorded ETag of the data objects directly in ``collection`` (one GenQuery)."""
    from irods.column import Criterion
    from irods.models import Collection, DataObject, DataObjectMeta

    from services.isync.catalog import all_rows

    query = (
        session.query(DataObject.name, DataObjectMeta.value)
        .filter(Criterion("=", Collection.name, collection))
        .filter(Criterion("=", DataObjectMeta.name, ETAG_AVU))
    )
    return {row[DataObject.name]: row[DataObjectMeta.value] for row in all_rows(session, query)}
