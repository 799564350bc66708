"""The studio's preview of the mailing being written: the page, the mail as HTML and text for a
segment and a reader, live reload over server-sent events, the readiness panel and test sends."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from mailer.builds.preview import SAMPLE_READER
from mailer.check.gate import gate
from mailer.db import session_scope
from mailer.errors import MailerError
from mailer.models import Subscriber, stored_id
from mailer.send import approval
from mailer.send.runner import send_test
from mailer.subscribers.subscriptions import recipients
from mailer.web.studio_state import Studio, act, forbid, render, say, segment, studio

READERS = 20  # real subscribers offered as sample readers, per segment
# The previewed mail loads nothing from other sites (a mail client may; the studio does not).
MAIL_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _readers(here: Studio, region: str, audience: str) -> list[tuple[int, str]]:
    """Real subscribers of this segment to preview as (id, label)."""
    if here.live.manifest is None:
        return []
    with session_scope(here.settings) as session:
        people = islice(recipients(session, here.live.manifest.topic, [region], [audience]), READERS)
        return [(stored_id(p), say(here, "reader", p)) for p in people]


def _reader_name(here: Studio, value: str) -> str | None:
    """None for the sample reader, else the subscriber's name ("" when they gave none)."""
    if not value:
        return None
    with session_scope(here.settings) as session:
        person = session.get(Subscriber, int(value)) if value.isdigit() else None
    if person is None:
        raise HTTPException(404, say(here, "unknown_reader"))
    return person.name


async def home(request: Request) -> Response:
    here = studio(request)
    region, audience = segment(request)
    manifest = here.live.manifest
    return render(request, "studio", region=region, audience=audience, sample=SAMPLE_READER,
                  readers=await run_in_threadpool(_readers, here, region, audience),
                  title=manifest.title if manifest else here.theme,
                  staff=approval.staff(here.settings))


async def mail(request: Request) -> Response:
    """The mail as the segment's reader gets it: /mail.html or /mail.txt."""
    here = studio(request)
    region, audience = segment(request)
    name = await run_in_threadpool(_reader_name, here, request.query_params.get("reader", ""))
    try:
        html, text = here.live.mail(region, audience, name)
    except LookupError:
        return PlainTextResponse(say(here, "nothing_built"), 503)
    if request.url.path.endswith(".txt"):
        return PlainTextResponse(text)
    return HTMLResponse(html, headers={"Content-Security-Policy": MAIL_CSP})


async def readers_json(request: Request) -> Response:
    region, audience = segment(request)
    found = await run_in_threadpool(_readers, studio(request), region, audience)
    return Response(json.dumps(found), media_type="application/json")


async def events(request: Request) -> Response:
    """Live reload: the state of each rebuild, for as long as the page is open."""
    here = studio(request)
    return StreamingResponse(here.hub.stream(here.live.state.as_json()),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def readiness(request: Request) -> Response:
    here = studio(request)
    links = request.query_params.get("links") == "on"
    try:
        checked = await run_in_threadpool(gate, here.settings, here.theme, offline=not links)
    except MailerError as exc:
        return render(request, "readiness", readiness=None, error=str(exc))
    return render(request, "readiness", readiness=checked.readiness, error="")


def _send_test(form: Any, here: Studio) -> list[tuple[str, str]]:
    return send_test(here.settings, here.theme, [str(form.get("address", "")).strip()],
                     [str(form.get("region", ""))], [str(form.get("audience", ""))])


async def test_send(request: Request) -> Response:
    here = studio(request)
    forbid(request, "test-send")
    done = await act(request, _send_test, here)
    if isinstance(done, Exception):
        return PlainTextResponse(say(here, "not_sent", done), 400)
    return PlainTextResponse(say(here, "sent", done))


async def script(request: Request) -> Response:
    return Response(studio(request).env.get_template("studio/studio.js.j2").render(),
                    media_type="text/javascript")
