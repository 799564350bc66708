"""The API as a list of operations, each declared once: its routes, its checks and its OpenAPI
description are all made from the declaration, so none can drift from another.

An `Operation` names its method and path, the scope its token needs (None: no token), its
parameters and body as JSON Schemas, the answers it gives and its handler. The endpoint of a
path checks, in order: the method (405), the token (401, 429, 403), the operation's own guard
(the sign-up's origin), the path parameters (404), the query (422) and the body (400, 413, 422);
only then does the handler run, with checked values.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from mailer import urls
from mailer.accounts.api_tokens import SCOPES
from mailer.api import auth, problems
from mailer.api.host import Host
from mailer.api.problems import Problem
from mailer.api.validation import Schema, from_query
from mailer.api.validation import problems as schema_problems
from mailer.audit import Actor
from mailer.models import ApiToken

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

Handler = Callable[["Call"], Awaitable[Response]]
Guard = Callable[["Call"], None]
Headers = Callable[[Request, Host], dict[str, str]]


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    where: str = "query"  # query | path


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status, what it means, and its JSON body's schema (None: no
    body). `html`: a browser's form post gets a page instead."""

    status: int
    description: str
    schema: Schema | None = None
    html: bool = False
    headers: tuple[str, ...] = ()  # headers it always carries, e.g. Location
    # OpenAPI links: what a client (or a fuzzer) can do next with this answer's ids
    links: tuple[tuple[str, str, str], ...] = ()  # (operationId, parameter, expression)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below urls.API, with {names} as Starlette and OpenAPI both write them
    name: str  # the operationId
    summary: str
    tag: str
    handler: Handler
    replies: tuple[Reply, ...]
    scope: str | None = None
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    form: bool = False  # the body may also be an urlencoded form
    errors: tuple[int, ...] = ()  # answers beyond those the declaration implies
    description: str = ""
    guard: Guard | None = None
    headers: Headers | None = None  # added to every answer (the sign-up's CORS headers)

    @property
    def statuses(self) -> list[int]:
        """Every error status this operation can answer."""
        found = set(self.errors)
        if self.scope:
            found |= {401, 403, 429}
        if self.body is not None:
            found |= {400, 413, 422}
        if any(p.where == "query" for p in self.params):
            found.add(422)
        if any(p.where == "path" or p.name == "cursor" for p in self.params):
            found.add(404)  # nothing under that id; no page with that cursor
        return sorted(found)


@dataclass
class Call:
    """One request to an operation, checked: its token, parameter values and body."""

    request: Request
    host: Host
    api: Api
    operation: Operation
    token: ApiToken | None = None
    values: dict[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def client(self) -> str:
        return self.request.client.host if self.request.client else "?"

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail: the token, from the client's address."""
        name = self.token.name if self.token else "anonymous"
        return Actor(f"token {name}", f"api {self.client}")

    def answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        if data is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(data, status_code=status, headers=headers)


class Api:
    """The operations, their routes and their OpenAPI document."""

    def __init__(self, operations: list[Operation], describe: Callable[[Api], dict]):
        self.operations = operations
        self._describe = describe

    @cached_property
    def document(self) -> dict:
        return self._describe(self)

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Operation]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = op
        found = [Route(path, _AnyMethod(self._endpoint(ops))) for path, ops in by_path.items()]
        return [*found, _dotall(Route("/{rest:path}", _AnyMethod(_unknown_path)))]

    def mount(self, prefix: str) -> Mount:
        """The routes at `prefix`; every path below it is the API's, even one with a line break
        in it (Starlette's patterns stop at one), so it is always answered as JSON."""
        return _dotall(Mount(prefix, routes=self.routes()))

    def _endpoint(self, operations: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
        allow = ", ".join(sorted({*operations, *(["HEAD"] if "GET" in operations else [])}))

        async def endpoint(request: Request) -> Response:
            op = operations.get("GET" if request.method == "HEAD" else request.method)
            if op is None:
                return Problem(405, f"{request.method} is not taken here (Allow: {allow})",
                               headers={"Allow": allow}).response(request)
            host: Host = request.app.state.api
            extra = op.headers(request, host) if op.headers else {}
            try:
                response = await op.handler(await self._checked(op, request, host))
            except Problem as problem:
                return problem.response(request, extra)
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return Problem(500, "mailer failed on this request; the error is in the "
                                    "server's log").response(request, extra)
            response.headers.update(extra)
            return response

        return endpoint

    async def _checked(self, op: Operation, request: Request, host: Host) -> Call:
        call = Call(request, host, self, op)
        if op.scope:
            call.token = await auth.authorized(request, host, op.scope)
        if op.guard:
            op.guard(call)
        for param in (p for p in op.params if p.where == "path"):
            value = from_query(param.schema, request.path_params[param.name])
            if schema_problems(param.schema, value, param.name):
                raise Problem(404, f"nothing is stored under {param.name} "
                                   f"{request.path_params[param.name]!r}")
            call.values[param.name] = value
        errors = []
        for param in (p for p in op.params if p.where == "query"):
            if param.name in request.query_params:
                value = from_query(param.schema, request.query_params.getlist(param.name)[-1])
                errors += schema_problems(param.schema, value, param.name)
                call.values[param.name] = value
            else:
                call.values[param.name] = param.schema.get("default")
        if errors:
            raise problems.invalid(errors)
        if op.body is not None:
            call.body = await _body(request, op)
            if found := schema_problems(op.body, call.body):
                raise problems.invalid(found)
        return call


async def _body(request: Request, op: Operation) -> Any:
    """The request's body as JSON (or, where the operation takes one, an urlencoded form)."""
    raw = b""
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Problem(413, f"the body is larger than {MAX_BODY // 1024} KiB")
    except ClientDisconnect:
        raise Problem(400, "the client went away before its body arrived") from None
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if op.form and kind == FORM:
        return _form(raw, op.body or {})
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        taken = f"JSON ({JSON}) or a form ({FORM})" if op.form else f"JSON ({JSON})"
        raise Problem(400, f"the body is not {taken}") from None


def _form(raw: bytes, schema: Schema) -> dict[str, Any]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50,
                          strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "the form cannot be read (UTF-8, at most 50 fields)") from None
    properties = schema.get("properties", {})
    found: dict[str, Any] = {}
    for name, value in pairs:
        if properties.get(name, {}).get("type") == "array":
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    return found


_R = TypeVar("_R", bound=BaseRoute)


def _dotall(route: _R) -> _R:
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)  # type: ignore[attr-defined]
    return route


class _AnyMethod:
    """An endpoint as an ASGI app, so that Starlette hands it every method and the API answers
    a method a path does not take with its own 405 problem detail."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]):
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


async def _unknown_path(request: Request) -> Response:
    return Problem(404, f"the API has no path {request.url.path} (see {urls.API_DOCS})"
                   ).response(request)


def scope_text(scope: str | None) -> str:
    if scope is None:
        return "No token."
    return f"Token scope `{scope}` ({SCOPES[scope]})."
