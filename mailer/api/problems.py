"""Every error answer of the API is an RFC 9457 problem detail.

`application/problem+json` with `type` (a link to the problem's entry on the docs page),
`title`, `status`, `detail`, `instance` (the path asked for) and, where fields are to blame,
`errors: [{field, message}]`. A handler raises `Problem`; the endpoint turns it into the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailer import urls

MEDIA_TYPE = "application/problem+json"
# status → (slug on the docs page, title)
KINDS: dict[int, tuple[str, str]] = {
    400: ("malformed", "Malformed request"),
    401: ("unauthorized", "No valid token"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict with what is stored"),
    413: ("too-large", "Request too large"),
    422: ("invalid", "Invalid request"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Temporarily unavailable"),
}
MEANING: dict[int, str] = {
    400: "The body is not JSON (or not a form, where a form is taken).",
    401: "No token, or one that is unknown or revoked. Send `Authorization: Bearer TOKEN`.",
    403: "The token lacks the scope this endpoint needs, or (sign-up) the page's origin is not "
         "one of `[api] signup_origins`.",
    404: "Nothing is stored under this id, the path is unknown, or the `cursor` is not one "
         "this list gave.",
    405: "The path does not take this method; `Allow` lists those it takes.",
    409: "The request contradicts what is stored, e.g. a create of an address that is "
         "unsubscribed, erased or already subscribed.",
    413: "The body is larger than 64 KiB.",
    422: "A parameter or field breaks the schema or a rule; `errors` names each.",
    429: "The token (or, for the sign-up, the client address) made too many requests; "
         "`Retry-After` says how many seconds to wait.",
    500: "A bug in mailer: please report it.",
    503: "A mail could not be handed to the mail server; try again later.",
}


class Problem(Exception):
    """An error answer: its status, what went wrong, and the fields to blame."""

    def __init__(self, status: int, detail: str, errors: Iterable[tuple[str, str]] = (),
                 headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def body(self, request: Request) -> dict[str, Any]:
        slug, title = KINDS[self.status]
        found: dict[str, Any] = {
            "type": f"{str(request.base_url).rstrip('/')}{urls.API_DOCS}#problem-{slug}",
            "title": title, "status": self.status, "detail": self.detail,
            "instance": request.url.path}
        if self.errors:
            found["errors"] = [{"field": field, "message": message}
                               for field, message in self.errors]
        return found

    def response(self, request: Request, headers: Mapping[str, str] | None = None) -> Response:
        return Response(json.dumps(self.body(request), ensure_ascii=False),
                        status_code=self.status, media_type=MEDIA_TYPE,
                        headers={**self.headers, **(headers or {})})


def invalid(errors: Iterable[tuple[str, str]]) -> Problem:
    found = list(errors)
    return Problem(422, "; ".join(f"{f or 'body'} {m}" for f, m in found), found)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "Where this kind of problem is explained."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, in this request."},
        "instance": {"type": "string", "description": "The path that was asked for."},
        "errors": {"type": "array", "description": "The fields to blame, where there are any.",
                   "items": {"type": "object", "required": ["field", "message"],
                             "properties": {"field": {"type": "string"},
                                            "message": {"type": "string"}}}},
    },
}
