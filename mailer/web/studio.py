"""`mailer studio`: the staff's view of a mailing while they write it.

A view over the library and nothing more: the live build (mailer.builds.live) for the preview,
`check_theme` for the readiness panel, `send_test`, the schedule overview, approvals, send
reports and partner suggestions. Saving a file rebuilds; the open pages hear of it through
server-sent events.

Access: on a loopback address only this machine can connect; the Host header must name it
(no DNS rebinding). Bound anywhere else, every request needs the access token printed at the
start (once given in the URL it is kept in a cookie). Every POST carries the token, so another
site open in the same browser cannot make the studio act.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import islice
from typing import Any

from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.builds.live import SITE_PREFIX, LiveBuild
from mailer.builds.preview import SAMPLE_READER
from mailer.builds.result import BuildError
from mailer.check.readiness import check_theme
from mailer.config import Settings
from mailer.content.loader import ContentError, load_mailing
from mailer.db import session_scope
from mailer.message.assembly import MessageError
from mailer.models import Send as SendRow
from mailer.models import Subscriber, utcnow
from mailer.partners.blocks import partner_block
from mailer.partners.publications import PartnerError, suggest
from mailer.render.renderer import RenderError
from mailer.schedule.scheduler import local_time, overview
from mailer.send import approval
from mailer.send.report import html_report, send_report
from mailer.send.runner import SendError, send_test
from mailer.subscribers.subscriptions import recipients
from mailer.taxonomy import AUDIENCES, REGIONS
from mailer.transport.transports import DeliveryError
from mailer.web.state import template_environment

TOKEN_COOKIE = "mailer_studio"
READERS = 20  # real subscribers offered as sample readers, per segment
KEEPALIVE = 15.0
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# The previewed mail loads nothing from other sites (a mail client may; the studio does not).
MAIL_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
SHOWN_ERRORS = (ContentError, BuildError, RenderError, PartnerError, SendError, DeliveryError,
                MessageError, approval.ApprovalError)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


class Guard:
    """The access rules of the module docstring, for every request."""

    def __init__(self, app: ASGIApp, token: str, loopback: bool):
        self.app, self.token, self.loopback = app, token, loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token", "")
        if self.loopback and not is_loopback(request.url.hostname or ""):
            await PlainTextResponse("Unknown host", 400)(scope, receive, send)
            return
        if not self.loopback and not (self.valid(given) or
                                      self.valid(request.cookies.get(TOKEN_COOKIE, ""))):
            await PlainTextResponse("Open the address with ?token=… that `mailer studio` printed.",
                                    403)(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in PAGE_HEADERS.items():
                    headers.setdefault(key, value)
                if self.valid(given):
                    headers.append("Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; "
                                                 "SameSite=Strict; Path=/")
            await send(message)

        await self.app(scope, receive, with_headers)

    def valid(self, value: str) -> bool:
        return bool(value) and hmac.compare_digest(value, self.token)


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


def create_studio(settings: Settings, theme: str, token: str, loopback: bool = True) -> ASGIApp:
    """The studio app for THEME; `token` guards it as the module docstring says."""
    live = LiveBuild(settings, theme)
    hub = Hub()
    env = template_environment(settings)

    async def watch(stop: asyncio.Event) -> None:
        async for _ in live.changes(stop):
            state = await run_in_threadpool(live.rebuild)
            hub.publish(state.as_json())

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(live.rebuild)
        stop = asyncio.Event()
        task = asyncio.create_task(watch(stop))
        yield
        stop.set()
        hub.publish(None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def render(name: str, **context: Any) -> HTMLResponse:
        html = env.get_template(f"studio/{name}.html.j2").render(
            theme=theme, token=token, regions=REGIONS, audiences=AUDIENCES, **context)
        return HTMLResponse(html)

    def segment(request: Request) -> tuple[str, str]:
        region = request.query_params.get("region") or next(iter(REGIONS))
        audience = request.query_params.get("audience") or next(iter(AUDIENCES))
        if region not in REGIONS or audience not in AUDIENCES:
            raise HTTPException(404, "unknown region or audience")
        return region, audience

    def readers(region: str, audience: str) -> list[tuple[int, str]]:
        """Real subscribers of this segment to preview as (id, label)."""
        if live.manifest is None:
            return []
        with session_scope(settings) as session:
            people = islice(recipients(session, live.manifest.topic, [region], [audience]), READERS)
            return [(p.id, f"{p.name or '(no name)'}, {p.organisation or p.email}") for p in people]  # type: ignore[misc]

    def reader_name(value: str) -> str | None:
        """None for the sample reader, else the subscriber's name ("" when they gave none)."""
        if not value:
            return None
        with session_scope(settings) as session:
            person = session.get(Subscriber, int(value)) if value.isdigit() else None
        if person is None:
            raise HTTPException(404, "no such subscriber")
        return person.name

    async def home(request: Request) -> Response:
        region, audience = segment(request)
        return render("studio", region=region, audience=audience, sample=SAMPLE_READER,
                      readers=await run_in_threadpool(readers, region, audience),
                      title=live.manifest.title if live.manifest else theme, staff=approval.staff(settings))

    async def mail(request: Request) -> Response:
        region, audience = segment(request)
        name = await run_in_threadpool(reader_name, request.query_params.get("reader", ""))
        try:
            html, text = live.mail(region, audience, name)
        except LookupError:
            return PlainTextResponse("Nothing built yet: see the problems above.", 503)
        if request.url.path.endswith(".txt"):
            return PlainTextResponse(text)
        return HTMLResponse(html, headers={"Content-Security-Policy": MAIL_CSP})

    async def readers_json(request: Request) -> Response:
        region, audience = segment(request)
        return Response(json.dumps(await run_in_threadpool(readers, region, audience)),
                        media_type="application/json")

    async def events(_: Request) -> Response:
        return StreamingResponse(hub.stream(live.state.as_json()), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def act(request: Request, work: Callable[..., Any], *args: Any) -> Any:
        """Run a library call for a POST whose token is right; library errors become text."""
        form = await request.form(max_files=0, max_fields=20)
        if not hmac.compare_digest(str(form.get("token", "")), token):
            raise HTTPException(403, "wrong or missing studio token")
        try:
            return await run_in_threadpool(work, form, *args)
        except SHOWN_ERRORS as exc:
            return exc

    async def readiness(request: Request) -> Response:
        links = request.query_params.get("links") == "on"
        try:
            found = await run_in_threadpool(check_theme, settings, theme, offline=not links)
        except SHOWN_ERRORS as exc:
            return render("readiness", readiness=None, error=str(exc))
        return render("readiness", readiness=found, error="")

    async def test_send(request: Request) -> Response:
        def send(form: Any) -> list[tuple[str, str]]:
            return send_test(settings, theme, [str(form.get("address", "")).strip()],
                             [str(form.get("region", ""))], [str(form.get("audience", ""))])

        done = await act(request, send)
        if isinstance(done, Exception):
            return PlainTextResponse(f"Not sent: {done}", 400)
        return PlainTextResponse("; ".join(f"variant {v} sent to {a}" for a, v in done))

    def sends_context() -> dict[str, Any]:
        now = utcnow()
        rows = overview(settings, now)
        with session_scope(settings) as session:
            recent = list(session.exec(select(SendRow).order_by(col(SendRow.id).desc()).limit(30)))
        by_region = {slug: [r for r in rows if not r.schedule.regions
                            or slug in r.schedule.regions] for slug in REGIONS}
        return {"by_region": by_region, "sends": recent, "describe": approval.describe,
                "required": approval.required(settings), "when": lambda t: local_time(
                    t, settings.timezone), "now": now}

    async def sends_page(_: Request, message: str = "") -> Response:
        return render("sends", message=message, staff=approval.staff(settings),
                      **await run_in_threadpool(sends_context))

    async def approve(request: Request) -> Response:
        def give(form: Any) -> str:
            kind, row_id = str(form.get("kind")), str(form.get("id", ""))
            if kind not in ("send", "schedule") or not row_id.isdigit():
                raise HTTPException(400, "approve needs kind (send or schedule) and a numeric id")
            row = approval.approve(settings, kind, int(row_id), str(form.get("by", "")))
            return f"{kind.capitalize()} {row_id}: {approval.describe(row)}."

        done = await act(request, give)
        return await sends_page(request, f"Not approved: {done}" if isinstance(done, Exception) else done)

    async def report(request: Request) -> Response:
        try:
            found = await run_in_threadpool(send_report, settings, request.path_params["send_id"])
        except SendError as exc:
            raise HTTPException(404, str(exc)) from exc
        return HTMLResponse(html_report(settings, found))

    async def partners_page(_: Request, message: str = "") -> Response:
        def find() -> list:
            return suggest(settings, load_mailing(settings.content, theme, settings.root))

        try:
            found, error = await run_in_threadpool(find), ""
        except SHOWN_ERRORS as exc:
            found, error = [], str(exc)
        return render("partners", suggestions=found, error=error, message=message)

    async def make_block(request: Request) -> Response:
        def write(form: Any) -> str:
            path = partner_block(settings, theme, str(form.get("url", "")))
            return f"Wrote {path.relative_to(settings.root)}: edit its text, then remove 'example: true'."

        done = await act(request, write)
        return await partners_page(request, f"Not written: {done}" if isinstance(done, Exception) else done)

    async def script(_: Request) -> Response:
        return Response(env.get_template("studio/studio.js.j2").render(),
                        media_type="text/javascript")

    return Guard(Starlette(routes=[
        Route("/", home),
        Route("/studio.js", script),
        Route("/mail.html", mail),
        Route("/mail.txt", mail),
        Route("/readers", readers_json),
        Route("/events", events),
        Route("/readiness", readiness),
        Route("/test-send", test_send, methods=["POST"]),
        Route("/sends", sends_page),
        Route("/sends/approve", approve, methods=["POST"]),
        Route("/sends/{send_id:int}", report),
        Route("/partners", partners_page),
        Route("/partners/block", make_block, methods=["POST"]),
        Mount(SITE_PREFIX, StaticFiles(directory=live.folder, check_dir=False)),
    ], lifespan=lifespan), token, loopback)


def serve_studio(settings: Settings, theme: str, host: str, port: int, token: str,
                 started: Callable[[str], None] | None = None) -> None:
    """Run the studio with uvicorn until Ctrl-C; `started` gets the address to open."""
    import uvicorn

    loopback = is_loopback(host)
    app = create_studio(settings, theme, token, loopback)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and started is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            started(f"http://{shown}:{bound}/" + ("" if loopback else f"?token={token}"))
        await task

    asyncio.run(run())

