"""The OpenAPI 3.1 document, made from the declared operations, and the page that shows it.

/api/v1/openapi.json is the document; /api/v1/docs renders the same document as one plain
HTML page (no scripts: the site's Content-Security-Policy allows none), with the scopes, the
problem types the `type` links of error answers point at, and the sign-up form for partners.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from mailer import urls
from mailer.accounts.api_tokens import SCOPES
from mailer.api import problems
from mailer.api.signup import snippet
from mailer.api.spec import FORM, JSON, Api, Call, Operation, Reply, scope_text
from mailer.render.renderer import jinja_environment

TAGS = [
    {"name": "subscribers", "description": "People on the lists, named by public id."},
    {"name": "suppressions", "description": "Addresses that must not be mailed, as hashes."},
    {"name": "sends", "description": "Sends and their delivery counts."},
    {"name": "schedules", "description": "Sends planned for a moment."},
    {"name": "mailings", "description": "Built mailings and their variants."},
    {"name": "sign-up", "description": "The sign-up form on partners' sites."},
    {"name": "documentation", "description": "This document and its page."},
]
HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "Where the new subscriber is read.", "required": True,
                 "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "The Bearer challenge (RFC 6750).", "required": True,
                         "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
INFO = {
    "title": "mailer API",
    "version": "1",
    "description": (
        "The REST API of `mailer serve`. Send a token made with `mailer tokens add NAME --scope "
        "SCOPE` as `Authorization: Bearer TOKEN`; each endpoint names the scope it needs. "
        "Every error answer is an RFC 9457 problem detail (`application/problem+json`) whose "
        "`errors` name the fields to blame. Lists come in pages: pass a page's `next_cursor` "
        "as `cursor` for the next one. Every write is recorded in mailer's audit trail."),
}


def _reply(reply: Reply) -> dict[str, Any]:
    entry: dict[str, Any] = {"description": reply.description}
    content: dict[str, Any] = {}
    if reply.schema is not None:
        content[JSON] = {"schema": reply.schema}
    if reply.html:
        content["text/html"] = {"schema": {"type": "string"}}
    if content:
        entry["content"] = content
    if reply.headers:
        entry["headers"] = {name: HEADERS[name] for name in reply.headers}
    if reply.links:
        entry["links"] = {operation: {"operationId": operation, "parameters": {name: expression}}
                          for operation, name, expression in reply.links}
    return entry


def _problem(status: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "description": problems.MEANING[status],
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    header = {401: "WWW-Authenticate", 429: "Retry-After"}.get(status)
    if header:
        entry["headers"] = {header: HEADERS[header]}
    return entry


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.name, "summary": op.summary, "tags": [op.tag],
        "description": f"{op.description} {scope_text(op.scope)}".strip(),
        "security": [{"bearer": []}] if op.scope else [],
        "responses": {**{str(r.status): _reply(r) for r in op.replies},
                      **{str(s): _problem(s) for s in op.statuses}},
    }
    if op.scope:
        doc["x-scope"] = op.scope
    if op.params:
        doc["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.where == "path",
             "description": p.schema.get("description", ""),
             "schema": {k: v for k, v in p.schema.items() if k != "description"}}
            for p in op.params]
    if op.body is not None:
        content = {JSON: {"schema": op.body}}
        if op.form:
            content[FORM] = {"schema": op.body}
        doc["requestBody"] = {"required": True, "content": content}
    return doc


def describe(api: Api) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0", "info": INFO, "servers": [{"url": urls.API}], "tags": TAGS,
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token of `mailer tokens add`."}},
            "schemas": {"Problem": problems.SCHEMA},
        },
    }


async def openapi_json(call: Call) -> Response:
    return JSONResponse(call.api.document)


async def docs_page(call: Call) -> Response:
    settings = call.host.settings
    template = jinja_environment(settings.templates, autoescape=True).get_template("api/docs.html.j2")
    return HTMLResponse(template.render(
        doc=call.api.document, scopes=SCOPES, problem_kinds=problems.KINDS,
        meanings=problems.MEANING, snippet=snippet(settings), openapi_url=urls.API_OPENAPI,
        signup_url=urls.absolute(settings.public_base_url, urls.API_SIGNUP)))


OPERATIONS = [
    Operation("GET", "/openapi.json", "getOpenApi", "This OpenAPI document", "documentation",
              openapi_json, (Reply(200, "The OpenAPI 3.1 document.", {"type": "object"}),)),
    Operation("GET", "/docs", "getDocs", "The API's documentation as a page", "documentation",
              docs_page, (Reply(200, "An HTML page made from this document.", html=True),)),
]
