"""What the studio's handlers share: one `Studio` on `app.state.studio`, set up by
`create_studio`, and the helpers every studio page uses."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

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


def studio(request: Request) -> Studio:
    """The Studio of the app serving this request."""
    found: Studio = request.app.state.studio
    return found


def say(here: Studio, message: str, *values: Any) -> str:
    """One of the studio's short answers: a macro of templates/studio/messages.txt.j2."""
    return str(getattr(here.env.get_template(MESSAGES).module, message)(*values))


def render(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A page of templates/studio/."""
    here = studio(request)
    html = here.env.get_template(f"studio/{name}.html.j2").render(
        theme=here.theme, token=here.token, regions=REGIONS, audiences=AUDIENCES, **context)
    return HTMLResponse(html)


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
    if not hmac.compare_digest(str(form.get("token", "")), studio(request).token):
        raise HTTPException(403, say(studio(request), "wrong_token"))
    try:
        return await run_in_threadpool(work, form, *args)
    except MailerError as exc:
        return exc
