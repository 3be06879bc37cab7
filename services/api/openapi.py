"""OpenAPI 3.1 document built from the same pydantic models that validate requests, and a
self-contained browsable HTML rendering of it (no CDN, no scripts from elsewhere)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

REF = "#/components/schemas/{model}"


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
    responses: dict[int, tuple[str, type[BaseModel] | dict[str, Any] | None]]
    request: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    auth: bool = True
    tag: str = "jobs"


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
            "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
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
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.request, "validation")]}},
            }
        for status, (desc, body) in sorted(op.responses.items()):
            resp: dict[str, Any] = {"description": desc}
            if isinstance(body, type):
                schema = refs[(body, "serialization")]
                ctype = "application/problem+json" if status >= 400 else "application/json"
                resp["content"] = {ctype: {"schema": schema}}
            elif isinstance(body, dict):
                resp["content"] = {"application/json": {"schema": body}}
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
                schema = body["content"]["application/json"]["schema"]
                out.append(f"<p>Request body (JSON): {_schema_link(schema)}</p>")
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
