"""/afmelden/{token}: the unsubscribe page, and the RFC 8058 one-click POST that mail clients
fire from the List-Unsubscribe header.

The one-click POST carries no CSRF token (the URL's signed token is the secret, as RFC 8058
requires); a person's POST from the page does. On PostgreSQL the one-click runs as one statement
on the event loop, without a thread, so a slow mail server never keeps it waiting.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailer import taxonomy
from mailer.subscribers import subscriptions as subs
from mailer.subscribers.tokens import Claim, preferences_url
from mailer.taxonomy import TOPICS
from mailer.web.pages import (
    BROKEN_LINK,
    PageError,
    check_csrf,
    claim,
    message_page,
    page,
    read_form,
    safe,
)
from mailer.web.state import site


async def unsubscribe(request: Request) -> Response:
    """GET shows what the person unsubscribes from; the POST (a person's or one-click) does it."""
    token = claim(request, "unsubscribe")
    topic = request.query_params.get("onderwerp") or None
    if topic is not None and taxonomy.problem("topic", topic):
        raise PageError(404, BROKEN_LINK)
    if safe(request):
        person, active = await site(request).db(subs.profile_of, token)
        remaining = [TOPICS[t] for t in active if topic and t != topic]
        return page(request, "afmelden", topic=topic, remaining=remaining,
                    already=person.status == "unsubscribed")
    form = await read_form(request, csrf=False)
    one_click = form.get("List-Unsubscribe") == "One-Click"
    if not one_click:  # RFC 8058: the token is the secret
        check_csrf(request, form)
    public_id = await _unsubscribe(request, token, topic, "one-click" if one_click else "page")
    if one_click:  # a mail provider's server, not a person: a short answer, no cookie
        return PlainTextResponse(site(request).env.get_template(
            "web/subscriptions/one-click.txt.j2").render(topic=topic, topic_names=TOPICS))
    return message_page(request, "afgemeld", topic=topic, preferences_url=preferences_url(
        site(request).settings, public_id))


async def _unsubscribe(request: Request, token: Claim, topic: str | None, via: str) -> str:
    """Unsubscribe the token's person; returns their public id."""
    on_loop = site(request).on_loop
    if on_loop is not None and token.public_id is not None:
        found = await on_loop.scalar(*subs.unsubscribe_in_one_statement(token.public_id, topic,
                                                                        via=via))
        if found is None:
            raise subs.NotFound("no such subscriber")
        return token.public_id
    public_id: str = await site(request).db(subs.unsubscribe, token, topic, "unsubscribed", via,
                                            write=True)
    return public_id
