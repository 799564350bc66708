"""The subscription pages: sign up and confirm (double opt-in), preferences, one's own data,
erasure, the privacy statement and where to unsubscribe without a personal link.

Nothing acts on a GET: confirming and erasing show a page whose button POSTs. /aanmelden has a
honeypot field and a per-IP limit (in the database, so it holds across workers), and an address
gets at most one confirmation mail per CONFIRM_RESEND_AFTER; its answer is the same whether or
not the address is known.
"""

from __future__ import annotations

import email.policy
import json
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from jinja2 import Environment
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailer import addresses, urls
from mailer.config import Settings
from mailer.message.identity import bounce_address
from mailer.models import Subscriber, utcnow
from mailer.subscribers import subscriptions as subs
from mailer.subscribers.tokens import confirm_url, preferences_url, unsubscribe_url
from mailer.taxonomy import AUDIENCES, REGIONS, TOPICS
from mailer.transport.transports import DeliveryError, OutgoingMessage
from mailer.web import ratelimit
from mailer.web.pages import PageError, claim, message_page, page, read_form, safe
from mailer.web.privacy import privacy_statement
from mailer.web.state import Site, site

HONEYPOT = "website"
SIGNUPS_PER_IP = ratelimit.RateLimiter("signup-ip", 10, 600.0)  # 10 per address per 10 minutes
QP_LINES = email.policy.default.clone(max_line_length=76)  # RFC 2045; the stdlib would write 78


def confirmation_message(settings: Settings, env: Environment, email: str,
                         profile: subs.Profile, url: str) -> EmailMessage:
    """The double opt-in mail. Header values come from validated input and headerregistry."""
    mail = env.get_template("web/subscriptions/bevestigingsmail.txt.j2").make_module({
        "profile": profile, "url": url, "settings": settings, "topic_names": TOPICS,
        "regions": REGIONS, "audiences": AUDIENCES})
    message = EmailMessage(policy=QP_LINES)
    message["Subject"] = mail.subject  # type: ignore[attr-defined]  # the template's {% set %}
    message["From"] = Address(settings.sender_name, addr_spec=settings.sender_email)
    message["To"] = Address(profile.name, addr_spec=email)
    message["Reply-To"] = settings.reply_to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=settings.list_domain)
    message["Auto-Submitted"] = "auto-generated"
    # 7-bit safe, like mailings: no relay re-encodes what DKIM signed
    message.set_content(str(mail), cte="quoted-printable")
    return message


async def signup(request: Request) -> Response:
    """The sign-up form; its POST sends the confirmation mail (or seems to, to a bot)."""
    if safe(request):
        return page(request, "aanmelden", values={"topics": ["updates"]}, errors=[])
    form = await read_form(request)
    values = _profile_values(form)
    email = addresses.normalise(str(form.get("email", "")))[:400]
    profile = _profile(values)
    errors = list(profile.problems())
    if addresses.problem(email):
        errors.append("email")
    if errors:
        return page(request, "aanmelden", 400, values={**values, "email": email}, errors=errors)
    if form.get(HONEYPOT):
        return message_page(request, "kijk-in-je-mail", email=email)
    client = request.client.host if request.client else "?"
    await sign_up(site(request), client, email, profile, "web /aanmelden")
    return message_page(request, "kijk-in-je-mail", email=email)


async def sign_up(here: Site, client: str, email: str, profile: subs.Profile, source: str) -> None:
    """A checked sign-up, from this page or a partner's form (the API): the per-IP limit, the
    request awaiting double opt-in, and its confirmation mail (unless one went out lately).

    Raises PageError 429 over the limit, 503 when the mail could not be handed over."""
    if not await here.db(SIGNUPS_PER_IP.allow, client, write=True):
        raise PageError(429, "even-geduld")
    recorded = await here.db(subs.request_subscription, email, profile, source, write=True)
    if recorded is not None:
        await send_confirmation(here, email, profile, recorded)


async def send_confirmation(here: Site, email: str, profile: subs.Profile,
                            sign_up: subs.SignUp) -> None:
    """Mail the confirmation link of a recorded sign-up; when it cannot go out, the person may
    try again at once (PageError 503)."""
    message = OutgoingMessage.from_email(
        confirmation_message(here.settings, here.env, email, profile, confirm_url(
            here.settings, sign_up.subscriber.public_id, sign_up.nonce)),
        bounce_address(here.settings), here.signer.sign if here.signer else None)
    try:
        await here.send(message)
    except DeliveryError as exc:
        await here.db(subs.confirmation_failed, sign_up.subscriber.id, write=True)
        raise PageError(503, "versturen-mislukt") from exc


def _with_preferences(request: Request, message: str, person: Subscriber) -> Response:
    """A message page with the button to the person's preferences."""
    return message_page(request, message, preferences_url=preferences_url(
        site(request).settings, person.public_id))


async def confirm(request: Request) -> Response:
    """GET (and HEAD, which link scanners send) only shows the button; its POST confirms."""
    token = claim(request, "confirm")
    db = site(request).db
    try:
        if safe(request):
            _, sign_up = await db(subs.pending_sign_up, token, token.nonce)
            return page(request, "bevestigen", signup=sign_up)
        await read_form(request)
        person = await db(subs.confirm, token, token.nonce, write=True)
    except subs.AlreadyConfirmed:
        return _with_preferences(request, "al-bevestigd", await db(subs.get_subscriber, token))
    except subs.StaleConfirmation as exc:
        raise PageError(400, "link-niet-meer-geldig") from exc
    return _with_preferences(request, "bevestigd", person)


async def preferences(request: Request) -> Response:
    """The profile form of one subscriber; its POST saves it."""
    token = claim(request, "preferences")
    db = site(request).db
    saved, status, errors = False, 200, []
    if not safe(request):
        form = await read_form(request)
        values = _profile_values(form)
        profile = _profile(values)
        person = await db(subs.get_subscriber, token)
        errors = list(profile.problems(require_topics=person.status == "active"))
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
        unsubscribe_url=unsubscribe_url(site(request).settings, person.public_id),
    )


async def my_data(request: Request) -> Response:
    data = await site(request).db(subs.personal_data, claim(request, "preferences"))
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False), media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="mijn-gegevens.json"'},
    )


async def erase(request: Request) -> Response:
    """GET asks whether the person is sure, on a page of its own; the POST erases."""
    token = claim(request, "preferences")
    if safe(request):
        person = await site(request).db(subs.get_subscriber, token)
        return page(request, "wissen", person=person,
                    back_url=urls.path(urls.PREFERENCES, token=request.path_params["token"]))
    await read_form(request)
    await site(request).db(subs.erase, token, write=True)
    return message_page(request, "gewist")


async def unsubscribe_help(request: Request) -> Response:
    """Where the web version of a mail sends readers: it has no personal link to offer."""
    return message_page(request, "afmelden")


async def privacy(request: Request) -> Response:
    return page(request, "privacy", statement=privacy_statement(site(request).settings))


def _profile_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(form.get(k, "")).strip()[:400]
                              for k in ("name", "organisation", "region", "audience")}
    values["topics"] = [str(t) for t in form.getlist("topics")][:10]
    return values


def _profile(values: dict[str, Any]) -> subs.Profile:
    return subs.Profile(values["name"], values["organisation"], values["region"],
                        values["audience"], tuple(dict.fromkeys(values["topics"])))
