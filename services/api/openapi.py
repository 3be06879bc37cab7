"""OpenAPI 3.1 document built from the same pydantic models that validate requests, and a
self-contained browsable HTML rendering of it (no CDN, no scripts from elsewhere).

:func:`api_spec` documents every route the API serves: the v1 table
(``services.api.routes.ROUTES``), plus :data:`SERVICE_OPERATIONS` (this document, the HTML
page, health and metrics) and :data:`INGEST_OPERATIONS` (the ingest sub-app mounted at
``/v1/ingest``). ``tests/fuzz/test_openapi.py`` compares the router with the document, and
``make fuzz`` throws schemathesis at it (``fuzz/api.py``), so a route or a status left
undocumented fails a test.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, SkipJsonSchema, models_json_schema

from services.api.views import Problem
from services.ingest import rest as ingest_rest

# the API reaches the ingest service only through its REST module (tests/test_layout.py)
IngestRequest = ingest_rest.IngestRequest
Job = ingest_rest.Job
JOB_NAME_RE: str = Job.model_json_schema()["properties"]["name"]["pattern"]

REF = "#/components/schemas/{model}"
JSON = "application/json"
#: The media type documented for YAML bodies (the ingest endpoint reads all of YAML_TYPES)
YAML = ingest_rest.YAML_TYPES[0]


@dataclass(frozen=True)
class Content:
    """A body with its own media type (HTML, Prometheus text) and a literal schema."""

    media: str
    schema: dict[str, Any]


Body = type[BaseModel] | dict[str, Any] | Content | None


@dataclass(frozen=True)
class Param:
    """A path or query parameter."""

    name: str
    where: Literal["path", "query"]
    description: str
    required: bool = True
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """One documented endpoint."""

    method: str
    path: str
    summary: str
    responses: dict[int, tuple[str, Body]]
    request: type[BaseModel] | None = None
    #: media types the request body may be sent as (all with ``request``'s schema)
    request_media: tuple[str, ...] = (JSON,)
    params: tuple[Param, ...] = ()
    auth: bool = True
    tag: str = "jobs"
    #: OpenAPI links per status: name → (target operation's (METHOD, path), parameters as
    #: runtime expressions such as ``$response.body#/id``)
    links: dict[int, dict[str, tuple[tuple[str, str], dict[str, str]]]] = field(
        default_factory=dict
    )


def operation_id(method: str, path: str) -> str:
    """``post_v1_job``, ``get_v1_job_id``: the operationId of ``method path``."""
    return f"{method.lower()}_{path.strip('/').replace('/', '_')}".replace("{", "").replace("}", "")


def build_spec(ops: list[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document for ``ops``."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in ops:
        if op.request is not None:
            models.append((op.request, "validation"))
        for _desc, body in op.responses.values():
            if isinstance(body, type) and issubclass(body, BaseModel):
                models.append((body, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, defs = models_json_schema(unique, ref_template=REF)
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": operation_id(op.method, op.path),
            "tags": [op.tag],
            "responses": {},
        }
        if op.params:
            entry["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required,
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in op.params
            ]
        if op.request is not None:
            schema = refs[(op.request, "validation")]
            entry["requestBody"] = {
                "required": True,
                "content": {media: {"schema": schema} for media in op.request_media},
            }
        for status, (desc, body) in sorted(op.responses.items()):
            resp: dict[str, Any] = {"description": desc}
            if isinstance(body, type):
                schema = refs[(body, "serialization")]
                ctype = "application/problem+json" if status >= 400 else JSON
                resp["content"] = {ctype: {"schema": schema}}
            elif isinstance(body, Content):
                resp["content"] = {body.media: {"schema": body.schema}}
            elif isinstance(body, dict):
                resp["content"] = {JSON: {"schema": body}}
            if status in op.links:
                resp["links"] = {
                    name: {"operationId": operation_id(*target), "parameters": params}
                    for name, (target, params) in op.links[status].items()
                }
            entry["responses"][str(status)] = resp
        if op.auth:
            entry["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic", "description": "service accounts"},
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "OIDC access token of a user",
                },
            },
        },
    }


# --- what the v1 table does not list ----------------------------------------------------


class IngestProgress(BaseModel):
    """Progress of an ingest job's current pass."""

    files_done: int
    files_failed: int
    files_seen: int
    tasks_remaining: int
    elapsed: float = Field(description="seconds since the pass started")


class IngestJobView(Job):
    """An ingest job as ``GET /v1/ingest/{name}`` shows it (``Job.view()``: no handler
    source)."""

    handler: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    progress: IngestProgress


class IngestJobs(BaseModel):
    """``GET /v1/ingest``."""

    jobs: list[IngestJobView]


def _problem(description: str) -> tuple[str, Body]:
    return (description, Problem)


_NOT_MANAGER = _problem("not one of the configured data managers (ingest_managers)")
_NO_AUTH = _problem("missing or invalid credentials")
_NO_JOB = _problem("no ingest job by that name")
_NAME = Param("name", "path", "the ingest job's name")
_TEXT = {"type": "string"}
_READY = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["status", "checks"],
}

#: The routes ``services.api.routes.EXTRA`` adds (no authentication).
SERVICE_OPERATIONS = [
    Operation(
        "GET",
        "/v1/openapi.json",
        "this document",
        {200: ("the OpenAPI 3.1 document", {"type": "object"})},
        auth=False,
        tag="documentation",
    ),
    Operation(
        "GET",
        "/v1/docs",
        "this document as a self-contained HTML page",
        {200: ("HTML", Content("text/html", _TEXT))},
        auth=False,
        tag="documentation",
    ),
    Operation(
        "GET",
        "/livez",
        "the process is alive (nothing else checked)",
        {
            200: (
                "alive",
                {
                    "type": "object",
                    "properties": {"status": {"const": "ok"}},
                    "required": ["status"],
                },
            )
        },
        auth=False,
        tag="health",
    ),
    Operation(
        "GET",
        "/readyz",
        "store, broker (and iRODS, when enabled) reachable",
        {200: ("ready", _READY), 503: ("a dependency is failing (named in checks)", _READY)},
        auth=False,
        tag="health",
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format)",
        {200: ("metrics", Content("text/plain", _TEXT))},
        auth=False,
        tag="health",
    ),
]

#: The ingest sub-app (``services.ingest.rest``, mounted at ``/v1/ingest``): data managers
#: only.
INGEST_OPERATIONS = [
    Operation(
        "PUT",
        "/v1/ingest/{name}",
        "start an ingest job (a finished job of that name is replaced)",
        {
            201: ("the job, waiting for its first pass", IngestJobView),
            400: _problem("invalid job: the message says what to fix"),
            401: _NO_AUTH,
            403: _NOT_MANAGER,
            409: _problem("a job of that name is active: stop it first"),
        },
        request=IngestRequest,
        request_media=(JSON, YAML),
        params=(
            Param(
                "name",
                "path",
                "the job's name",
                schema={"type": "string", "pattern": JOB_NAME_RE},
            ),
        ),
        tag="ingest",
    ),
    Operation(
        "GET",
        "/v1/ingest",
        "every ingest job with state, counters and progress",
        {200: ("jobs", IngestJobs), 401: _NO_AUTH, 403: _NOT_MANAGER},
        tag="ingest",
    ),
    Operation(
        "GET",
        "/v1/ingest/{name}",
        "one ingest job",
        {200: ("the job", IngestJobView), 401: _NO_AUTH, 403: _NOT_MANAGER, 404: _NO_JOB},
        params=(_NAME,),
        tag="ingest",
    ),
    Operation(
        "DELETE",
        "/v1/ingest/{name}",
        "stop an ingest job (its queued work is dropped); a finished job is left as it is",
        {200: ("the job", IngestJobView), 401: _NO_AUTH, 403: _NOT_MANAGER, 404: _NO_JOB},
        params=(_NAME,),
        tag="ingest",
    ),
]

_TOO_LARGE = _problem("request body larger than the API accepts (max_body_bytes)")


def _uses(expression: str, param: str, *targets: tuple[str, str]) -> dict[str, Any]:
    return {operation_id(m, path): ((m, path), {param: expression}) for m, path in targets}


_JOB = "/v1/job/{id}"
_ONE_JOB = (("GET", _JOB), ("DELETE", _JOB), ("PUT", "/v1/job/scheduled/{id}"))
_ONE_INGEST = (("GET", "/v1/ingest/{name}"), ("DELETE", "/v1/ingest/{name}"))
#: Where the id a response carries is used next (OpenAPI links; schemathesis' stateful
#: phase follows them): (METHOD, path) → status → links.
LINKS: dict[tuple[str, str], dict[int, dict[str, Any]]] = {
    ("POST", "/v1/job"): {200: _uses("$response.body#/id", "id", *_ONE_JOB)},
    ("POST", "/v1/jobs"): {
        status: _uses("$response.body#/jobs/0/id", "id", *_ONE_JOB) for status in (200, 207)
    },
    ("PUT", "/v1/ingest/{name}"): {201: _uses("$response.body#/name", "name", *_ONE_INGEST)},
}


def api_spec(ops: list[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The API's document: ``ops`` (the v1 table), the service routes and the ingest ones.

    Every operation that reads a body may also answer 413: the body limit is the app's
    (``max_body_bytes``), not a route's. :data:`LINKS` are added to the operations they
    start from.
    """
    every = [*ops, *SERVICE_OPERATIONS, *INGEST_OPERATIONS]
    every = [
        replace(
            op,
            responses={**op.responses, 413: op.responses.get(413, _TOO_LARGE)}
            if op.request is not None
            else op.responses,
            links={**LINKS.get((op.method, op.path), {}), **op.links},
        )
        for op in every
    ]
    return build_spec(every, title=title, version=version)


# --- HTML -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}
summary{cursor:pointer;font-family:monospace;font-size:1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put{color:#a60}.delete{color:#c22}
pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.85rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


def _pre(obj: Any) -> str:
    return f"<pre>{html.escape(json.dumps(obj, indent=2))}</pre>"


def _schema_link(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    return _pre(schema)


def render_html(spec: dict[str, Any]) -> str:
    """A browsable, self-contained HTML page for ``spec``."""
    info = spec.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}")
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a>. '
        "Authenticate with HTTP basic (service accounts) or an OIDC bearer token.</p>",
        "<h2>Endpoints</h2>",
    ]
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            out.append(
                f'<details><summary><span class="m {method}">{method}</span>'
                f"{html.escape(path)} — {html.escape(op.get('summary', ''))}</summary>"
            )
            if op.get("security"):
                out.append("<p>Requires authentication.</p>")
            params = op.get("parameters", [])
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>")
                for p in params:
                    out.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td>"
                        f"<td>{html.escape(p['in'])}</td>"
                        f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            body = op.get("requestBody")
            if body:
                media = body["content"]
                schema = next(iter(media.values()))["schema"]
                kinds = ", ".join(html.escape(m) for m in media)
                out.append(f"<p>Request body ({kinds}): {_schema_link(schema)}</p>")
            out.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
            for status, resp in op.get("responses", {}).items():
                content = resp.get("content", {})
                link = ""
                for media in content.values():
                    link = _schema_link(media.get("schema", {}))
                out.append(
                    f"<tr><td>{html.escape(status)}</td>"
                    f"<td>{html.escape(resp.get('description', ''))}</td><td>{link}</td></tr>"
                )
            out.append("</table></details>")
    out.append("<h2>Schemas</h2>")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        desc = html.escape(schema.get("description", ""))
        out.append(
            f'<details id="schema-{html.escape(name)}"><summary>{html.escape(name)}</summary>'
            f"<p>{desc}</p>{_pre(schema)}</details>"
        )
    out.append("</body></html>")
    return "\n".join(out)
