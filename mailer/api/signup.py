"""POST /api/v1/signup: the sign-up form on a partner's site, without a token.

Only pages on the origins of `[api] signup_origins` may post it. For them, the preflight and
every answer carry the CORS headers a browser needs; any other origin gets none, and its posts
(and posts that name no origin) are refused with 403. The sign-up itself is /aanmelden's:
the same honeypot field, the same limit per client address, the same double opt-in mail, and
the same answer whether or not the address is known. A form posted by a browser (the snippet
works without JavaScript) gets /aanmelden's Dutch "look in your mail" page; JSON gets JSON.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailer import addresses, urls
from mailer.api.host import Host
from mailer.api.problems import Problem, invalid
from mailer.api.spec import Call, Operation, Reply
from mailer.api.subscribers import EMAIL, PROFILE_FIELDS
from mailer.api.validation import obj
from mailer.config import Settings
from mailer.models import TEXT_MAX
from mailer.render.renderer import jinja_environment
from mailer.subscribers.subscriptions import Profile
from mailer.taxonomy import AUDIENCES, REGIONS, TOPICS

HONEYPOT = "website"  # left empty by people; bots fill it in (as on /aanmelden)
PREFLIGHT_MAX_AGE = "600"
BODY = obj({"email": EMAIL, **PROFILE_FIELDS,
            HONEYPOT: {"type": "string", "maxLength": 400,
                       "description": "The honeypot: must stay empty (hidden in the form)."}},
           ["email", "region", "audience", "topics"])
ANSWER = {"type": "object", "required": ["status", "detail"],
          "properties": {"status": {"type": "string", "enum": ["check-your-mail"]},
                         "detail": {"type": "string", "description": "The same text, in Dutch, "
                                                                     "whether or not the address "
                                                                     "was known."}}}
THANKS = ("Als dit adres kan worden aangemeld, krijg je een mail met een link. Klik op die link "
          "om je aanmelding te bevestigen.")


def allowed_origins(settings: Settings) -> set[str]:
    return {item.strip().rstrip("/").lower() for item in settings.api_signup_origins.split(",")
            if item.strip()}


def _origin(request: Request) -> str:
    return request.headers.get("origin", "").strip().lower()


def cors_headers(request: Request, host: Host) -> dict[str, str]:
    """The CORS headers for a listed origin; nothing for anyone else."""
    origin = _origin(request)
    if origin not in allowed_origins(host.settings):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Expose-Headers": "Retry-After"}


def check_origin(call: Call) -> None:
    origin = _origin(call.request)
    if origin not in allowed_origins(call.host.settings):
        shown = f"origin {origin}" if origin else "a request without an Origin header"
        raise Problem(403, f"{shown} may not post sign-ups: only the sites in [api] "
                           "signup_origins may")


async def preflight(call: Call) -> Response:
    return Response(status_code=204, headers={
        "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE})


def _wants_page(request: Request) -> bool:
    """A browser posting the form itself (no JavaScript): it reads a page, not JSON."""
    posted_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded")
    return posted_form and "text/html" in request.headers.get("accept", "")


async def signup(call: Call) -> Response:
    body = call.body
    email = addresses.normalise(body["email"])
    if why := addresses.problem(email):
        raise invalid([("email", why)])
    profile = Profile(body.get("name", "").strip(), body.get("organisation", "").strip(),
                      body["region"], body["audience"], tuple(dict.fromkeys(body["topics"])))
    if found := profile.problems():
        raise invalid(found.items())
    if not body.get(HONEYPOT):  # a bot gets the same answer, and nothing happens
        source = f"api signup {_origin(call.request)}"[:TEXT_MAX]
        await call.host.sign_up(call.client, email, profile, source)
    if _wants_page(call.request):
        page = call.host.thanks_page(call.request, email)
        page.status_code = 202
        return page
    return call.answer(202, {"status": "check-your-mail", "detail": THANKS})


def snippet(settings: Settings) -> str:
    """The HTML form a partner copies into their page (docs/api.md shows it too)."""
    template = jinja_environment(settings.templates, autoescape=True).get_template(
        "api/signup-form.html.j2")
    return template.render(action=urls.absolute(settings.public_base_url, urls.API_SIGNUP),
                           privacy=urls.absolute(settings.public_base_url, urls.PRIVACY),
                           regions=REGIONS, audiences=AUDIENCES, topics=TOPICS,
                           honeypot=HONEYPOT)


DESCRIPTION = ("No token: only pages on the origins of `[api] signup_origins` may post it, and "
               "only they get CORS headers. The same double opt-in, honeypot and per-address "
               "limit as /aanmelden, and the same answer whether or not the address is known. "
               "A browser posting the form gets a Dutch page; JSON gets JSON.")
OPERATIONS = [
    Operation("POST", "/signup", "signUp", "Sign up from a partner's site", "sign-up", signup,
              (Reply(202, "The confirmation mail is on its way (or the address cannot be "
                          "signed up: the answer is the same).", ANSWER, html=True),),
              body=BODY, form=True, errors=(403, 429, 503), description=DESCRIPTION,
              guard=check_origin, headers=cors_headers),
    Operation("OPTIONS", "/signup", "signUpPreflight", "CORS preflight of the sign-up",
              "sign-up", preflight, (Reply(204, "The origin may post the sign-up."),),
              errors=(403,), guard=check_origin, headers=cors_headers,
              description="Answers a listed origin with Access-Control-Allow-Origin, -Methods "
                          "and -Headers; any other origin with 403 and no CORS headers."),
]
