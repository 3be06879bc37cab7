"""REST endpoints for ingest jobs: an aiohttp sub-app the API mounts at ``/v1/ingest``.

    PUT    /v1/ingest/{name}   start a job (JSON, or YAML as the seed's REST API took)
    GET    /v1/ingest          every job with state, counters and progress
    GET    /v1/ingest/{name}   one job
    DELETE /v1/ingest/{name}   stop a job (its queued work is dropped)

``app.add_subapp("/v1/ingest", make_app(db_url=..., authorize=...))``: the sub-app opens
and closes the job store itself; the parent's middlewares (error responses) apply to it.
An event handler runs as Python on the workers, so every endpoint is reserved to the
principals the ``authorize`` callable accepts (the API passes its authenticator and its
configured data managers, kind and name, see :func:`principals_allowed`). A job names a
handler file in the operator's handler directory (``event_handler``); handler source in
the body (``event_handler_data``) is refused unless the operator enabled it. The API only
compiles a handler to check it, never runs it. Roots must lie under the allowed prefixes
(:mod:`services.ingest.policy`); YAML bodies may not use anchors or aliases.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ingest import policy, s3
from services.ingest.handlers import check_source
from services.ingest.scanner import Excludes
from services.ingest.store import IngestOptions, Job, JobStore
from shared.errors import (
    Forbidden,
    InvalidInput,
    Unavailable,
    validation_errors,
    validation_summary,
)
from shared.json_input import DEFAULT_LIMITS, check_shape, parse_json
from shared.messaging.messages import PrincipalKind
from shared.settings import IngestStoreSettings
from shared.unix_users import check_name

INGEST_STORE = web.AppKey("ingest_store", JobStore)
Authorize = Callable[[web.Request], Awaitable[Any]]
YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")


class IngestRequest(BaseModel):
    """The body of ``PUT /v1/ingest/{name}`` (the seed's YAML fields plus ours)."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(min_length=1, max_length=4096)
    target: str = Field(min_length=1, max_length=2700)
    interval: float | None = Field(default=None, gt=0)
    append_json: Any = None
    event_handler_data: str | None = Field(default=None, max_length=1_000_000)
    exclude_file_type: list[str] = Field(default_factory=list)
    exclude_file_name: list[str] = Field(default_factory=list)
    exclude_directory_name: list[str] = Field(default_factory=list)
    files_per_task: int = Field(default=50, ge=1, le=10_000)
    initial_ingest: bool = False
    ignore_cache: bool = False
    checksum: bool = False
    irods_idle_disconnect_seconds: int = Field(
        default=60, ge=1, description="close the job's iRODS connections idle this long"
    )
    #: the Unix user the job's work runs as (a user principal: itself, may be left unset;
    #: a service account: required, one of the users it acts for)
    owner: str | None = Field(default=None, max_length=32)
    # the seed's REST API fields (automated ingest <= 0.5, flask_app.py)
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="seconds each task's work (and pre_job/post_job) may take when the "
        "handler has no timeout() hook; the hook wins when it has one",
    )
    all: bool | None = Field(
        default=None,
        description="the seed's --all (renamed --ignore_cache there): true re-syncs files "
        "that look unchanged, as ignore_cache",
    )
    # the anchor's queue names: only their defaults (a job cannot have its own queues)
    restart_queue: str | None = Field(default=None, max_length=255, description="only 'restart'")
    path_queue: str | None = Field(default=None, max_length=255, description="only 'path'")
    file_queue: str | None = Field(default=None, max_length=255, description="only 'file'")
    #: the name of a handler file in the operator's handler directory
    event_handler: str | None = Field(default=None, max_length=128)
    # An S3 source (the anchor's --s3_* options): a job is an S3 job when it names its
    # key-pair file; the root is then /bucket or /bucket/prefix. Only the file's path is
    # sent and stored: the owner's process reads the keys when the job runs.
    s3_keypair: str | None = Field(
        default=None,
        max_length=4096,
        description="absolute path of a key-pair file the job owner can read (access key on "
        "line 1, secret key on line 2; not readable by others); never the keys themselves",
    )
    s3_endpoint_domain: str | None = Field(
        default=None,
        max_length=255,
        description=f"S3 host[:port], no scheme (default {s3.DEFAULT_ENDPOINT})",
    )
    s3_region_name: str | None = Field(
        default=None, max_length=64, description=f"S3 region (default {s3.DEFAULT_REGION})"
    )
    s3_proxy_url: str | None = Field(
        default=None, max_length=2048, description="URL of a proxy for S3 access"
    )
    s3_insecure_connection: bool = Field(
        default=False, description="plain HTTP to the endpoint (default HTTPS)"
    )
    s3_multipart_chunksize_in_mib: int | None = Field(
        default=None,
        ge=5,
        le=5000,
        description="the part size of multipart uploads, to verify their ETags "
        f"(default {s3.DEFAULT_CHUNK_MIB})",
    )


def job_owner(principal: Any, owner: str | None) -> str:
    """The Unix user a REST job runs as, as the principal may choose it.

    A user principal's jobs run as that user; a service account must name the user
    (``owner``), one of its ``act_for`` list (``*``: any personal account). The workers
    vet the owner again before they become it.
    """
    kind, name = getattr(principal, "kind", None), getattr(principal, "name", None)
    if owner is not None:
        check_name(owner)
    if kind == PrincipalKind.USER:
        if owner not in (None, name):
            raise Forbidden("an ingest job of a user runs as that user: leave owner unset")
        return str(name)
    if owner is None:
        raise InvalidInput(
            "owner: name the Unix user the job runs as (ingest reads the tree and runs the "
            "handler with that user's rights)"
        )
    act_for: frozenset[str] = getattr(principal, "act_for", frozenset())
    if owner not in act_for and "*" not in act_for:
        raise Forbidden(f"this service account may not start ingest jobs as {owner!r}")
    return owner


def job_from_request(
    name: str,
    body: IngestRequest,
    settings: IngestStoreSettings | None = None,
) -> Job:
    """Validate a request into a job (raises ``InvalidInput`` saying what to fix)."""
    s = settings or IngestStoreSettings()
    policy.check_queues({n: getattr(body, n) for n in policy.QUEUES}, flag="")
    source = s3_source(body)
    if source is None:
        root = policy.resolve_root(body.root, s.allowed_roots)
    else:  # a bucket, not a directory: the allowed (directory) roots do not apply
        try:
            root = s3.normal_root(body.root)
        except ValueError as e:
            raise InvalidInput(str(e), errors=[{"field": "root", "message": str(e)}]) from None
        check_endpoints(source, s.s3_endpoints)
    try:
        Excludes.build(body.exclude_file_type, body.exclude_file_name, body.exclude_directory_name)
    except ValueError as e:
        raise InvalidInput(str(e)) from e
    code, label = None, None
    if body.event_handler_data:
        if not s.rest_handler_code:
            raise policy.rest_code_refused(s.handler_dir)
        if body.event_handler:
            raise InvalidInput("give event_handler (a file name) or event_handler_data, not both")
        check_source(body.event_handler_data, f"{name} event_handler_data")
        code, label = body.event_handler_data, f"rest:{name}"
    elif body.event_handler:
        path = policy.handler_file(body.event_handler, s.handler_dir)
        try:
            with open(path, encoding="utf-8") as f:
                code = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"event handler {body.event_handler!r} cannot be read") from e
        check_source(code, path)
        label = path
    options = IngestOptions(
        exclude_file_type=body.exclude_file_type,
        exclude_file_name=body.exclude_file_name,
        exclude_directory_name=body.exclude_directory_name,
        files_per_task=body.files_per_task,
        initial_ingest=body.initial_ingest,
        ignore_cache=body.ignore_cache or bool(body.all),
        checksum=body.checksum,
        append_json=body.append_json,
        irods_idle_disconnect_seconds=body.irods_idle_disconnect_seconds,
        timeout=body.timeout,
        s3=source,
    )
    return Job(
        name=name,
        root=root,
        target=body.target,
        interval=body.interval,
        options=options,
        handler=code,
        handler_label=label,
    )


#: The body's S3 fields besides the key pair (``s3_<field>`` of :class:`s3.S3Source`).
S3_FIELDS = (
    "s3_endpoint_domain",
    "s3_region_name",
    "s3_proxy_url",
    "s3_multipart_chunksize_in_mib",
)


def s3_source(body: IngestRequest) -> s3.S3Source | None:
    """The job's S3 source (``s3_keypair`` given), else ``None``.

    The API never opens the key-pair file: it may not run as the owner, nor on the workers'
    host. The owner's process reads it when the job runs; a missing, unreadable or
    world-readable file (or wrong keys) fails the job with one error naming the file.
    """
    given = [n for n in S3_FIELDS if getattr(body, n) is not None]
    if body.s3_insecure_connection:
        given.append("s3_insecure_connection")
    if body.s3_keypair is None:
        if given:
            raise InvalidInput(
                f"{given[0]} needs s3_keypair (an S3 source is given by its key-pair file)",
                errors=[{"field": given[0], "message": "needs s3_keypair"}],
            )
        return None
    fields: dict[str, Any] = {n[3:]: getattr(body, n) for n in S3_FIELDS if n in given}
    try:
        source = s3.S3Source(
            keypair=body.s3_keypair, secure=not body.s3_insecure_connection, **fields
        )
    except ValidationError as e:
        errors: list[dict[str, object]] = [
            {"field": f"s3_{err['field']}", "message": str(err["message"]).replace("--s3_", "s3_")}
            for err in validation_errors(e, root="keypair")
        ]
        raise InvalidInput(validation_summary(errors), errors=errors) from None
    return source


def check_endpoints(source: s3.S3Source, allowed: Sequence[str]) -> None:
    """The source's endpoint and proxy must match ``allowed`` (``STAGER_INGEST__S3_ENDPOINTS``,
    the setting the workers enforce before they connect): else 400 naming the field, at
    submission, rather than a job that fails once a worker takes it."""
    try:
        s3.check_endpoints(source, allowed)
    except s3.EndpointRefused as e:
        field = "s3_proxy_url" if str(e).startswith("S3 proxy") else "s3_endpoint_domain"
        raise InvalidInput(str(e), errors=[{"field": field, "message": str(e)}]) from None


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise InvalidInput("request body is empty: send the job as JSON or YAML")
    if request.content_type not in YAML_TYPES:
        return parse_json(raw)  # the API's guarded reader: depth, entries, string length
    try:
        data = policy.load_yaml(raw.decode("utf-8"))
    except policy.YamlTooDeep as e:
        raise InvalidInput(str(e)) from None
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise InvalidInput(f"request body is not valid YAML: {str(e).splitlines()[0]}") from e
    except RecursionError:
        limit = DEFAULT_LIMITS.max_depth
        raise InvalidInput(f"request body is nested too deeply: at most {limit} levels") from None
    check_shape(data)
    return data


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def _handlers(authorize: Authorize, settings: IngestStoreSettings) -> list[web.RouteDef]:
    """The sub-app's routes (paths relative to its mount point)."""

    async def put_job(request: web.Request) -> web.Response:
        principal = await authorize(request)
        if not settings.workers:
            raise Unavailable(
                "no ingest worker is configured here (STAGER_INGEST__WORKERS=false): an "
                "ingest job would wait for ever; start one (python -m services.ingest with an "
                "iRODS account, e.g. STAGER_IRODS__PASSWORD for make up) and set it to true"
            )
        data = await _body(request)
        if not isinstance(data, dict):
            raise InvalidInput("the job must be a JSON or YAML object (mapping)")
        try:
            body = IngestRequest.model_validate(data)
            job = job_from_request(request.match_info["name"], body, settings)
            job.options.owner = job_owner(principal, body.owner)  # after the body's own errors
        except ValidationError as e:
            raise InvalidInput.from_validation(e, root="name") from None
        created = await request.app[INGEST_STORE].create(job)
        return _json(created.view(), 201)

    async def list_jobs(request: web.Request) -> web.Response:
        await authorize(request)
        await request.app[INGEST_STORE].purge(settings.retention)
        jobs = await request.app[INGEST_STORE].list_jobs()
        return _json({"jobs": [j.view() for j in jobs]})

    async def get_job(request: web.Request) -> web.Response:
        await authorize(request)
        job = await request.app[INGEST_STORE].get(request.match_info["name"])
        return _json(job.view())

    async def stop_job(request: web.Request) -> web.Response:
        await authorize(request)
        job = await request.app[INGEST_STORE].stop(request.match_info["name"])
        return _json(job.view())

    return [
        web.put("/{name}", put_job),
        web.get("", list_jobs),
        web.get("/{name}", get_job),
        web.delete("/{name}", stop_job),
    ]


def parse_managers(entries: Iterable[str]) -> frozenset[tuple[PrincipalKind, str]]:
    """``service:NAME`` / ``user:NAME`` entries (a bare ``NAME`` is a service account)."""
    out = set()
    for entry in entries:
        kind, sep, name = entry.partition(":")
        if not sep:
            kind, name = PrincipalKind.SERVICE.value, entry
        try:
            out.add((PrincipalKind(kind), name))
        except ValueError:
            raise InvalidInput(
                f"ingest manager {entry!r}: write service:NAME or user:NAME"
            ) from None
    return frozenset(out)


def principals_allowed(
    authenticate: Callable[[web.Request], Awaitable[Any]], names: Iterable[str]
) -> Authorize:
    """An ``authorize`` that authenticates, then admits only the listed principals.

    A principal is its kind *and* its name: ``service:streamer`` admits the service
    account, never an OIDC user whose ``preferred_username`` is ``streamer``.
    """
    allowed = parse_managers(names)

    async def authorize(request: web.Request) -> Any:
        principal = await authenticate(request)
        kind, name = getattr(principal, "kind", None), getattr(principal, "name", None)
        if not isinstance(kind, PrincipalKind) or (kind, name) not in allowed:
            raise Forbidden("ingest jobs are reserved to the configured data managers")
        return principal

    return authorize


def make_app(
    *, db_url: str, authorize: Authorize, settings: IngestStoreSettings | None = None
) -> web.Application:
    """The ingest endpoints as a sub-app; its job store opens and closes with it.

    ``settings``: allowed roots and where handlers come from (default: none allowed).
    """
    s = settings or IngestStoreSettings(db_url=db_url)
    policy.check_allowed_prefixes(s.allowed_roots)
    app = web.Application()
    app.router.add_routes(_handlers(authorize, s))

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = await JobStore.open(db_url)
        app[INGEST_STORE] = store
        yield
        await store.close()

    app.cleanup_ctx.append(store_ctx)
    return app
