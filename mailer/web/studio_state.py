"""What the studio's handlers share: one `Studio` on `app.state.studio`, set up by
`create_studio`, who is asking (an `Access`, set by the studio's guard on every request), and
the helpers every studio page uses."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mailer.accounts.roles import Person, may, refusal, region_names
from mailer.builds.live import LiveBuild
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.taxonomy import AUDIENCES, REGIONS

KEEPALIVE = 15.0
MESSAGES = "studio/messages.txt.j2"


class Hub:
    """Hands each rebuild's state to every open event stream."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue] = set()

    def publish(self, data: dict | None) -> None:
        for queue in self.queues:
            queue.put_nowait(data)

    async def stream(self, first: dict) -> AsyncIterator[str]:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield f"retry: 1000\nevent: build\ndata: {json.dumps(first)}\n\n"
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                if data is None:
                    return
                yield f"event: build\ndata: {json.dumps(data)}\n\n"
        finally:
            self.queues.discard(queue)


@dataclass
class Studio:
    """The mailing the studio shows, its live build and who may act on it."""

    settings: Settings
    theme: str
    token: str
    live: LiveBuild
    env: Environment
    hub: Hub = field(default_factory=Hub)
    accounts: bool = False  # accounts were seen: from then on every page needs a log-in


@dataclass(frozen=True)
class Access:
    """Who is asking. With accounts: the logged-in person (None on the log-in pages before
    a log-in), the token of their session's cookie and its CSRF token. Without accounts:
    nobody in particular, and the studio's token guards the forms, as before accounts."""

    accounts: bool
    person: Person | None
    csrf: str
    session: str = ""


def access(request: Request) -> Access:
    """Who is asking, as the guard found out (mailer.web.studio.Guard)."""
    found: Access = request.state.access
    return found


def origin(request: Request) -> str:
    """Where a request comes from, for the audit trail: the client address, as the server (or,
    with `trusted_proxies`, the proxy's X-Forwarded-For) gives it."""
    return f"studio {request.client.host if request.client else 'unknown'}"


def studio(request: Request) -> Studio:
    """The Studio of the app serving this request."""
    found: Studio = request.app.state.studio
    return found


def say(here: Studio, message: str, *values: Any) -> str:
    """One of the studio's short answers: a macro of templates/studio/messages.txt.j2."""
    return str(getattr(here.env.get_template(MESSAGES).module, message)(*values))


def render(request: Request, page: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page of templates/studio/; `token` in it is what the page's forms carry (unless
    `context` gives another), `me` the logged-in person (None without accounts)."""
    here, who = studio(request), access(request)
    values: dict[str, Any] = dict(
        theme=here.theme, token=who.csrf, session_token=who.csrf, me=who.person, accounts=who.accounts,
        allowed=lambda action: allowed(who, action), regions=REGIONS, audiences=AUDIENCES,
        region_names=region_names)
    html = here.env.get_template(f"studio/{page}.html.j2").render({**values, **context})
    return HTMLResponse(html, status_code)


def allowed(who: Access, action: str) -> bool:
    """Whether the asker's role allows `action` at all (regions aside); without accounts,
    everything, as before accounts existed."""
    if who.person is None:
        return not who.accounts
    return may(who.person, action)


def forbid(request: Request, action: str, regions: Sequence[str] | None = None) -> None:
    """A 403 saying why, when the logged-in person may not do `action` for `regions` (None:
    their role alone decides)."""
    who = access(request).person
    if who is None:
        return
    why = (refusal(who, action, who.regions) if not may(who, action) else "") if regions is None \
        else refusal(who, action, regions)
    if why:
        raise HTTPException(403, why)


def form_token_ok(request: Request, form: Any) -> bool:
    """Whether a POST carries the token of this page's forms (the session's CSRF token with
    accounts, the studio's token without)."""
    expected = access(request).csrf
    return bool(expected) and hmac.compare_digest(str(form.get("token", "")), expected)


def segment(request: Request) -> tuple[str, str]:
    """The region and audience asked for, the first of each by default."""
    region = request.query_params.get("region") or next(iter(REGIONS))
    audience = request.query_params.get("audience") or next(iter(AUDIENCES))
    if region not in REGIONS or audience not in AUDIENCES:
        raise HTTPException(404, say(studio(request), "unknown_segment"))
    return region, audience


async def act(request: Request, work: Callable[..., Any], *args: Any) -> Any:
    """Run a library call for a POST whose token is right; every failure a writer can fix
    (MailerError) comes back to be shown as text, anything else is a bug (500)."""
    form = await request.form(max_files=0, max_fields=20)
    if not form_token_ok(request, form):
        raise HTTPException(403, say(studio(request), "wrong_token"))
    try:
        return await run_in_threadpool(work, form, *args)
    except MailerError as exc:
        return exc
