"""The subscription pages: sign up, confirm, unsubscribe (RFC 8058 one-click) and preferences.

Starlette + uvicorn: a small ASGI app with no ORM or template magic of its own, served in-process
by tests (httpx) and by `mailer serve`. Database and SMTP work runs in the thread pool, so a slow
mail server never blocks the one-click unsubscribes that mail clients fire.

Every page a recipient sees is Dutch. Safety:
- forms carry a CSRF token that must match a SameSite=Strict cookie, and a foreign Origin is
  refused; only the one-click POST is exempt, as RFC 8058 requires (its URL's token is the secret);
- /aanmelden has a honeypot field and a per-IP limit (in the database, so it holds across
  workers), and an address gets at most one confirmation mail per CONFIRM_RESEND_AFTER; its
  answer is the same whether or not the address is known;
- nothing acts on a GET: confirming and erasing show a page whose button POSTs;
- behind https (seen directly, or through X-Forwarded-Proto from a trusted proxy) pages send HSTS;
- no page redirects, so there is nothing to redirect openly; token pages are never cached and
  send no Referer to other sites.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.policy
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, StrictUndefined
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailer import addresses, taxonomy, urls
from mailer.config import Settings
from mailer.content.brand import load_brand
from mailer.db import AsyncStatements, get_engine, session_scope
from mailer.errors import AccessError
from mailer.message.identity import bounce_address
from mailer.message.signing import DkimSigner
from mailer.models import Subscriber, utcnow
from mailer.render.overrides import OverridableLoader
from mailer.subscribers import subscriptions as subs
from mailer.subscribers.tokens import (
    Claim,
    TokenError,
    confirm_url,
    preferences_url,
    read_token,
    unsubscribe_url,
)
from mailer.taxonomy import AUDIENCES, REGIONS, TOPICS
from mailer.transport.transports import DeliveryError, OutgoingMessage, Transport, transport_from_settings
from mailer.web import ratelimit
from mailer.web.privacy import privacy_statement

CSRF_COOKIE = "mailer_csrf"
HONEYPOT = "website"
MAX_BODY = 64 * 1024
MAX_FIELDS = 30
TOO_LONG = (413, "Dat is te veel tekst", "Vul het formulier korter in.")
URLENCODED = "application/x-www-form-urlencoded"
SIGNUPS_PER_IP = ratelimit.RateLimiter("signup-ip", 10, 600.0)  # 10 per address per 10 minutes
HOUSEKEEPING_EVERY = 3600.0  # seconds between purges of old sign-ups and rate counters
HSTS = "max-age=31536000"
QP_LINES = email.policy.default.clone(max_line_length=76)  # RFC 2045; the stdlib would write 78
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",  # the token in the URL never leaves the site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
TEXT_ERROR = "Gebruik hier geen regeleinden of speciale tekens, en niet meer dan 200 tekens."
FIELD_ERRORS = {
    "email": "Vul een geldig e-mailadres in.",
    "name": TEXT_ERROR,
    "organisation": TEXT_ERROR,
    "region": "Kies je regio.",
    "audience": "Kies je doelgroep.",
    "topics": "Kies minstens één onderwerp.",
}
BROKEN_LINK = (
    "Deze link werkt niet (meer)",
    "Misschien is de link niet helemaal meegekopieerd, of is hij verlopen. Gebruik de link in je "
    "meest recente mail, of meld je opnieuw aan.",
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, error pages included, and HSTS over https.

    The headers are encoded once; each response only drops any of its own headers of the same
    names and appends them."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.plain = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self.https = [*self.plain, (b"strict-transport-security", HSTS.encode())]
        self.names = {name for name, _ in self.https}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ours = self.https if scope.get("scheme") == "https" else self.plain

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", ())
                                      if k.lower() not in self.names] + ours
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


class PageError(AccessError):
    """Ends a request with a Dutch message page."""

    def __init__(self, status: int, heading: str, text: str):
        self.status, self.heading, self.text = status, heading, text


def housekeeping(session: Session, settings: Settings) -> None:
    """What a running server purges every HOUSEKEEPING_EVERY: sign-ups never confirmed in
    `pending_days`, and rate counters whose window is over."""
    subs.purge_pending(session, dt.timedelta(days=settings.pending_days))
    ratelimit.purge(session, dt.timedelta(seconds=SIGNUPS_PER_IP.seconds))


def template_environment(settings: Settings) -> Environment:
    """The package's templates, overridable per site in settings.templates."""
    return Environment(
        loader=OverridableLoader(settings.templates),
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def confirmation_message(settings: Settings, env: Environment, email: str,
                         profile: subs.Profile, url: str) -> EmailMessage:
    """The double opt-in mail. Header values come from validated input and headerregistry."""
    message = EmailMessage(policy=QP_LINES)
    message["Subject"] = "Bevestig je aanmelding voor de mailings van Veiligheid voorop"
    message["From"] = Address(settings.sender_name, addr_spec=settings.sender_email)
    message["To"] = Address(profile.name, addr_spec=email)
    message["Reply-To"] = settings.reply_to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=settings.list_domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template("web/subscriptions/bevestigingsmail.txt.j2").render(
        profile=profile, url=url, settings=settings, topic_names=TOPICS,
        regions=REGIONS, audiences=AUDIENCES,
    ), cte="quoted-printable")  # 7-bit safe, like mailings: no relay re-encodes what DKIM signed
    return message


def create_app(settings: Settings, transport: Transport | None = None) -> ASGIApp:
    """The ASGI app; `transport` defaults to the configured one (SMTP or the outbox)."""
    engine: Engine = get_engine(settings)
    on_loop: AsyncStatements | None = None  # PostgreSQL, while the app runs: see lifespan
    mailer_transport = transport or transport_from_settings(settings)
    signer = DkimSigner.from_settings(settings)  # loaded once; a bad key stops the start
    send_lock = threading.Lock()
    env = template_environment(settings)
    env.globals["brand"] = load_brand(settings.content, settings.root)
    env.globals["paths"] = urls  # not "urls": the page layout means a theme's links by that name
    own_origins = {_origin(settings.public_base_url)}

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        html = env.get_template(f"web/subscriptions/{name}.html.j2").render(
            settings=settings, home_url=urls.SIGNUP, csrf=csrf, regions=REGIONS,
            audiences=AUDIENCES, topic_names=TOPICS, **context,
        )
        response = HTMLResponse(html, status_code=status)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    def message_page(request: Request, heading: str, text: str, status: int = 200,
                     tone: str = "notice", **context: Any) -> HTMLResponse:
        return page(request, "bericht", status, heading=heading, text=text, tone=tone, **context)

    async def read_form(request: Request, csrf: bool = True) -> FormData:
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise PageError(*TOO_LONG)
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() == URLENCODED:
            form = await _urlencoded_form(request)
        else:
            form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_BODY)
        if csrf:
            check_csrf(request, form)
        return form

    def check_csrf(request: Request, form: FormData) -> None:
        if not _csrf_ok(request, form, own_origins):
            raise PageError(403, "Dit formulier is verlopen",
                            "Open de pagina opnieuw en probeer het nog eens.")

    def db(func: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        """Run one service call in its own transaction, in the thread pool."""

        def call() -> Any:
            with session_scope(engine, write=write) as session:
                return func(session, *args)

        return run_in_threadpool(call)

    def claim(request: Request, purpose: str) -> Claim:
        try:
            return read_token(settings, request.path_params["token"], purpose)
        except TokenError as exc:
            raise PageError(400, *BROKEN_LINK) from exc

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async def every_hour() -> None:
            while True:
                await asyncio.sleep(HOUSEKEEPING_EVERY)
                await db(housekeeping, settings, write=True)

        nonlocal on_loop
        task = asyncio.create_task(every_hour())
        if engine.dialect.name == "postgresql":  # one-click unsubscribes without a thread
            on_loop = AsyncStatements(engine)
        try:
            yield
        finally:
            task.cancel()
            if on_loop is not None:
                await on_loop.close()
                on_loop = None

    # --- /aanmelden and /bevestig ---------------------------------------------------------

    async def signup(request: Request) -> Response:
        if _safe(request):
            return page(request, "aanmelden", values={"topics": ["updates"]}, errors={})
        form = await read_form(request)
        values = _profile_values(form)
        email = addresses.normalise(str(form.get("email", "")))[:400]
        profile = _profile(values)
        errors = {k: FIELD_ERRORS[k] for k in profile.problems()}
        if addresses.problem(email):
            errors["email"] = FIELD_ERRORS["email"]
        if errors:
            return page(request, "aanmelden", 400, values={**values, "email": email}, errors=errors)
        check_mail = ("Kijk in je mail", f"Als {email} kan worden aangemeld, krijg je daar een "
                      "mail met een link. Klik op die link om je aanmelding te bevestigen. Geen "
                      "mail gezien? Kijk ook even in je map met ongewenste mail.")
        if form.get(HONEYPOT):
            return message_page(request, *check_mail)
        client = request.client.host if request.client else "?"
        if not await db(SIGNUPS_PER_IP.allow, client, write=True):
            raise PageError(429, "Even geduld", "Er zijn vanaf jouw verbinding veel aanmeldingen "
                            "gedaan. Probeer het over een kwartier opnieuw.")
        sign_up = await db(subs.request_subscription, email, profile, "web /aanmelden",
                           write=True)
        if sign_up is not None:
            message = OutgoingMessage.from_email(
                confirmation_message(settings, env, email, profile, confirm_url(
                    settings, sign_up.subscriber.public_id, sign_up.nonce)),
                bounce_address(settings), signer.sign if signer else None)
            try:
                await run_in_threadpool(_send, mailer_transport, send_lock, message)
            except DeliveryError as exc:
                await db(subs.confirmation_failed, sign_up.subscriber.id, write=True)
                raise PageError(503, "Versturen lukte niet", "We konden je de bevestigingsmail "
                                "nu niet sturen. Probeer het later nog eens.") from exc
        return message_page(request, *check_mail)

    def already_confirmed(request: Request, person: Subscriber) -> Response:
        return message_page(
            request, "Je aanmelding is al bevestigd",
            "Je hoeft niets meer te doen: je ontvangt de mailings die je hebt gekozen. Wil je "
            "iets veranderen? Dat kan bij je voorkeuren.",
            links=[("Mijn voorkeuren", preferences_url(settings, person.public_id))],
        )

    async def confirm(request: Request) -> Response:
        """GET (and HEAD, which link scanners send) only shows the button; its POST confirms."""
        token = claim(request, "confirm")
        try:
            if _safe(request):
                _, sign_up = await db(subs.pending_sign_up, token, token.nonce)
                return page(request, "bevestigen", signup=sign_up)
            await read_form(request)
            person = await db(subs.confirm, token, token.nonce, write=True)
        except subs.AlreadyConfirmed:
            return already_confirmed(request, await db(subs.get_subscriber, token))
        except subs.StaleConfirmation as exc:
            raise PageError(400, "Deze link is niet meer geldig", "Je hebt je daarna opnieuw "
                            "aangemeld, of de aanmelding is verlopen. Gebruik de link in je "
                            "meest recente bevestigingsmail, of meld je opnieuw aan.") from exc
        return message_page(
            request, "Je aanmelding is bevestigd",
            "Welkom! Je ontvangt voortaan de mailings die je hebt gekozen. Onder elke mail vind "
            "je een link om je voorkeuren aan te passen of je af te melden.",
            links=[("Mijn voorkeuren", preferences_url(settings, person.public_id))],
        )

    # --- /afmelden ------------------------------------------------------------------------

    async def unsubscribe(request: Request) -> Response:
        token = claim(request, "unsubscribe")
        topic = request.query_params.get("onderwerp") or None
        if topic is not None and taxonomy.problem("topic", topic):
            raise PageError(404, *BROKEN_LINK)
        what = TOPICS[topic] if topic else "alle mailings van Veiligheid voorop"
        if _safe(request):
            person, active = await db(subs.profile_of, token)
            remaining = [TOPICS[t] for t in active if topic and t != topic]
            return page(request, "afmelden", what=what, topic=topic, remaining=remaining,
                        already=person.status == "unsubscribed")
        form = await read_form(request, csrf=False)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click:  # RFC 8058: the token is the secret
            check_csrf(request, form)
        if on_loop is not None and token.public_id is not None:
            public_id = token.public_id
            found = await on_loop.scalar(*subs.unsubscribe_in_one_statement(public_id, topic))
            if found is None:
                raise subs.NotFound("no such subscriber")
        else:
            public_id = await db(subs.unsubscribe, token, topic, write=True)
        if one_click:  # a mail provider's server, not a person: a short answer, no cookie
            return PlainTextResponse(f"Afgemeld voor {what}.")
        return message_page(
            request, "Je bent afgemeld",
            f"Je bent afgemeld voor {what}. Dat gaat meteen in.",
            links=[("Mijn voorkeuren", preferences_url(settings, public_id))],
        )

    # --- /voorkeuren ----------------------------------------------------------------------

    async def preferences(request: Request) -> Response:
        token = claim(request, "preferences")
        saved, status, errors = False, 200, {}
        if not _safe(request):
            form = await read_form(request)
            values = _profile_values(form)
            profile = _profile(values)
            person = await db(subs.get_subscriber, token)
            problems = profile.problems(require_topics=person.status == "active")
            errors = {k: FIELD_ERRORS[k] for k in problems}
            if errors:
                status = 400
            else:
                await db(subs.update_preferences, token, profile, write=True)
                saved = True
        person, topics = await db(subs.profile_of, token)
        values = {"name": person.name, "organisation": person.organisation,
                  "region": person.region, "audience": person.audience, "topics": topics}
        if errors:
            values.update(_profile_values(form))
        return page(
            request, "voorkeuren", status, values=values, errors=errors, saved=saved,
            person=person, token=request.path_params["token"],
            unsubscribe_url=unsubscribe_url(settings, person.public_id),
        )

    async def my_data(request: Request) -> Response:
        data = await db(subs.personal_data, claim(request, "preferences"))
        return Response(
            json.dumps(data, indent=2, ensure_ascii=False), media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="mijn-gegevens.json"'},
        )

    async def erase(request: Request) -> Response:
        """GET asks whether the person is sure, on a page of its own; the POST erases."""
        token = claim(request, "preferences")
        if _safe(request):
            person = await db(subs.get_subscriber, token)
            return page(request, "wissen", person=person,
                        back_url=urls.path(urls.PREFERENCES, token=request.path_params["token"]))
        await read_form(request)
        await db(subs.erase, token, write=True)
        return message_page(
            request, "Je gegevens zijn gewist",
            "We hebben alles over je gewist. We bewaren alleen een onleesbaar gemaakte vorm van "
            "je e-mailadres, zodat je niet per ongeluk opnieuw op een lijst komt. Wil je later "
            "toch weer mails ontvangen? Meld je dan opnieuw aan.",
        )

    # --- errors ---------------------------------------------------------------------------

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return message_page(request, exc.heading, exc.text, exc.status, tone="error")

    async def unsubscribe_help(request: Request) -> Response:
        """Where the web version of a mail sends readers: it has no personal link to offer."""
        return message_page(
            request, "Afmelden",
            "Afmelden gaat met de persoonlijke link onderaan elke mail die je van ons krijgt. "
            f"Heb je die mail niet meer? Stuur dan een mail naar {settings.reply_to}, "
            "dan melden wij je af.")

    async def privacy(request: Request) -> Response:
        return page(request, "privacy", statement=privacy_statement(settings))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return message_page(request, *BROKEN_LINK, status=status, tone="error")

    async def unknown_subscriber(request: Request, exc: Exception) -> Response:
        """A genuine link of someone who is gone (erased, never confirmed): the same page as a
        broken link, so nobody learns whether a person existed."""
        return message_page(request, *BROKEN_LINK, status=400, tone="error")

    app = Starlette(
        routes=[
            Route(urls.SIGNUP, signup, methods=["GET", "POST"]),
            Route(urls.CONFIRM, confirm, methods=["GET", "POST"]),
            Route(urls.UNSUBSCRIBE_HELP, unsubscribe_help, methods=["GET"]),
            Route(urls.PRIVACY, privacy, methods=["GET"]),
            Route(urls.UNSUBSCRIBE, unsubscribe, methods=["GET", "POST"]),
            Route(urls.PREFERENCES, preferences, methods=["GET", "POST"]),
            Route(urls.MY_DATA, my_data, methods=["GET"]),
            Route(urls.ERASE, erase, methods=["GET", "POST"]),
        ],
        exception_handlers={
            PageError: page_error,
            HTTPException: not_found,
            subs.NotFound: unknown_subscriber,
        },
        lifespan=lifespan,
    )
    secured = SecurityHeaders(app)
    if not settings.trusted_proxies:
        return secured
    # Believe X-Forwarded-For/-Proto only from the configured proxies: the client address the
    # rate limit counts and the scheme that decides HSTS and secure cookies come from there.
    return ProxyHeadersMiddleware(secured, trusted_hosts=settings.trusted_proxies)


async def _urlencoded_form(request: Request) -> FormData:
    """An urlencoded body (our forms, and mail providers' one-click POSTs) parsed in one call:
    Starlette's streaming form parser took about a seventh of a one-click request's CPU."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:  # sent without a Content-Length, or with a false one
            raise PageError(*TOO_LONG)
    try:
        return FormData(parse_qsl(body.decode("latin-1"), keep_blank_values=True,
                                  max_num_fields=MAX_FIELDS))
    except ValueError as exc:  # too many fields: what Starlette's parser answers too
        raise HTTPException(400) from exc


def _send(transport: Transport, lock: threading.Lock, message: OutgoingMessage) -> None:
    with lock:  # one SMTP connection, shared by the thread pool
        transport.send(message)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _csrf_ok(request: Request, form: FormData, own_origins: set[str]) -> bool:
    """Double-submit check, plus a same-origin check when the browser says where it posts from.

    An Origin of "null" (privacy settings, some redirects) proves nothing either way; the token
    still has to match.
    """
    origin = request.headers.get("origin", "null").lower()
    if origin != "null" and origin not in own_origins | {_origin(str(request.base_url))}:
        return False
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get("csrf", ""))
    return bool(cookie) and secrets.compare_digest(cookie.encode(), sent.encode())


def _profile_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(form.get(k, "")).strip()[:400]
                              for k in ("name", "organisation", "region", "audience")}
    values["topics"] = [str(t) for t in form.getlist("topics")][:10]
    return values


def _profile(values: dict[str, Any]) -> subs.Profile:
    return subs.Profile(values["name"], values["organisation"], values["region"],
                        values["audience"], tuple(dict.fromkeys(values["topics"])))


def _safe(request: Request) -> bool:
    """GET and HEAD (which link scanners send) only ever show a page."""
    return request.method in ("GET", "HEAD")
