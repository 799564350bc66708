"""/subscribers and /suppressions: people named by their public id, never by a row id or an
address in a path, under the rules of mailer.subscribers.directory.

A create of someone new needs `consent_source` (where the calling system recorded the person's
consent, with `consent_at`, when) to make them active at once; without it the person gets the
double opt-in mail of /aanmelden and stays pending until they confirm. Every write is recorded
in the audit trail in its own transaction, as "token NAME" from "api ADDRESS", without the
address.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlmodel import Session
from starlette.responses import Response

from mailer import addresses, urls
from mailer.api import paging
from mailer.api.problems import Problem, invalid
from mailer.api.spec import Call, Operation, Param, Reply
from mailer.api.validation import EMAIL_PATTERN, Schema, array, obj, one_of, parse_date_time, text
from mailer.audit import Actor, record
from mailer.models import Subscriber, Suppression, stored_id, utcnow
from mailer.subscribers import directory
from mailer.subscribers import subscriptions as subs
from mailer.subscribers.directory import Conflict, Filters
from mailer.taxonomy import AUDIENCES, REGIONS, TOPICS

STATUSES = ("active", "pending", "unsubscribed")
REASONS = ("unsubscribed", "bounced", "complaint")
PUBLIC_ID: Schema = {"type": "string", "pattern": "^[0-9a-f]{32}$",
                     "description": "The subscriber's public id."}
TIME: Schema = {"type": "string", "format": "date-time"}
EMAIL: Schema = {"type": "string", "maxLength": 254, "pattern": EMAIL_PATTERN,
                 "description": "The address (stored in lower case)."}
TOPIC_LIST = array(one_of(TOPICS, "A topic."), "Topics to receive.", minItems=1, maxItems=len(TOPICS))

SUBSCRIBER: Schema = {
    "type": "object",
    "required": ["id", "email", "name", "organisation", "region", "audience", "status", "topics",
                 "source", "created_at", "updated_at"],
    "properties": {
        "id": PUBLIC_ID, "email": {"type": "string"}, "name": {"type": "string"},
        "organisation": {"type": "string"},
        "region": {"type": "string", "description": "Region slug: " + ", ".join(REGIONS)},
        "audience": {"type": "string", "description": "Audience slug: " + ", ".join(AUDIENCES)},
        "status": {"type": "string", "enum": list(STATUSES),
                   "description": "pending: waits for the person's confirmation."},
        "topics": {"type": "array", "items": {"type": "string"},
                   "description": "The topics the person receives now."},
        "source": {"type": "string", "description": "Where the person came from."},
        "created_at": TIME, "updated_at": TIME,
    },
}
PROFILE_FIELDS: dict[str, Schema] = {
    "name": text("The person's name."), "organisation": text("Their organisation."),
    "region": one_of(REGIONS, "Region slug."), "audience": one_of(AUDIENCES, "Audience slug."),
    "topics": TOPIC_LIST,
}
CREATE = obj({
    "email": EMAIL, **PROFILE_FIELDS,
    "consent_source": {**text("Where your system recorded the person's consent (a form, a "
                              "meeting, a record id). With it the person is active at once; "
                              "without it they get the confirmation mail.", 150), "minLength": 1},
    "consent_at": {**TIME, "description": "When they consented (with consent_source; default: "
                                          "now)."},
}, ["email", "region", "audience", "topics"])
CHANGE = obj(PROFILE_FIELDS, minProperties=1)
SUPPRESSION: Schema = {
    "type": "object", "required": ["address_hash", "reason", "created_at"],
    "properties": {"address_hash": {"type": "string", "description": "SHA-256 of the salted "
                                                                     "address; no address is kept."},
                   "reason": {"type": "string"}, "created_at": TIME},
}
SUPPRESS = obj({"email": EMAIL, "reason": one_of(REASONS, "Why it must not be mailed.")},
               ["email", "reason"])
ID = Param("public_id", PUBLIC_ID, "path")
NEXT = tuple((operation, "public_id", "$response.body#/id") for operation in (
    "getSubscriber", "changeSubscriber", "unsubscribeSubscriber", "eraseSubscriber"))


def person_json(person: Subscriber | Row, topics: list[str]) -> dict[str, Any]:
    """A subscriber (or a row of directory.LISTED) as the API shows it."""
    return {"id": person.public_id, "email": person.email, "name": person.name,
            "organisation": person.organisation, "region": person.region,
            "audience": person.audience, "status": person.status, "topics": topics,
            "source": person.source, "created_at": person.created_at.isoformat(),
            "updated_at": person.updated_at.isoformat()}


def _json_of(session: Session, person: Subscriber) -> dict[str, Any]:
    person = directory.by_public_id(session, person.public_id)  # read afresh after plain SQL
    return person_json(person, directory.active_topics(session, [stored_id(person)])[stored_id(person)])


async def _db(call: Call, func: Any, *args: Any, write: bool = False) -> Any:
    """A service call, with the library's refusals as problem details."""
    try:
        return await call.host.db(func, *args, write=write)
    except Conflict as exc:
        raise Problem(409, str(exc), [(exc.field, str(exc))] if exc.field else []) from exc
    except subs.NotFound as exc:
        raise Problem(404, str(exc)) from exc


def _location(public_id: str) -> dict[str, str]:
    return {"Location": f"{urls.API}/subscribers/{public_id}"}


# --- reading ---------------------------------------------------------------------------------


def _page(session: Session, filters: Filters, after: int | None, limit: int) -> tuple[list, bool]:
    people, topics, more = directory.page(session, filters, after, limit)
    return [(p.id, person_json(p, topics[p.id])) for p in people], more


async def list_subscribers(call: Call) -> Response:
    settings = call.host.settings
    after = paging.decode(settings, "subscribers", call.values["cursor"])
    filters = Filters(*(call.values[k] for k in ("region", "audience", "topic", "status")))
    rows, more = await _db(call, _page, filters, int(after) if after else None,
                           call.values["limit"])
    following = paging.encode(settings, "subscribers", str(rows[-1][0])) if more else None
    return call.answer(200, {"data": [data for _, data in rows], "next_cursor": following})


def _one(session: Session, public_id: str) -> dict[str, Any]:
    return _json_of(session, directory.by_public_id(session, public_id))


async def get_subscriber(call: Call) -> Response:
    return call.answer(200, await _db(call, _one, call.values["public_id"]))


# --- writing ---------------------------------------------------------------------------------


def _profile(body: dict[str, Any]) -> subs.Profile:
    profile = subs.Profile(body.get("name", ""), body.get("organisation", ""), body["region"],
                           body["audience"], tuple(dict.fromkeys(body["topics"])))
    if found := profile.problems():
        raise invalid(found.items())
    return profile


def _add_active(session: Session, actor: Actor, email: str, profile: subs.Profile,
                consent: str, when: Any) -> dict[str, Any]:
    person = directory.add_with_consent(session, email, profile, f"{actor.name}: {consent}", when,
                                        f"api {actor.name}")
    record(session, actor, "subscriber.added", f"subscriber {person.public_id}", status="active",
           topics=list(profile.topics), consent_source=consent, consent_at=when.isoformat())
    return _json_of(session, person)


def _add_pending(session: Session, actor: Actor, email: str, profile: subs.Profile
                 ) -> tuple[dict[str, Any], subs.SignUp]:
    directory.check_new(session, email)
    sign_up = subs.request_subscription(session, email, profile, f"api {actor.name}")
    if sign_up is None:  # a confirmation went out a moment ago: added by a request just now
        raise Conflict("this address was added a moment ago", "email")
    person = sign_up.subscriber
    record(session, actor, "subscriber.added", f"subscriber {person.public_id}", status="pending",
           topics=list(profile.topics))
    return person_json(person, []), sign_up


async def create_subscriber(call: Call) -> Response:
    body = call.body
    email = addresses.normalise(body["email"])
    if why := addresses.problem(email):
        raise invalid([("email", why)])
    profile = _profile(body)
    if "consent_source" in body:
        when = parse_date_time(body["consent_at"]) if "consent_at" in body else utcnow()
        data = await _db(call, _add_active, call.actor, email, profile, body["consent_source"],
                         when, write=True)
        return call.answer(201, data, _location(data["id"]))
    data, sign_up = await _db(call, _add_pending, call.actor, email, profile, write=True)
    await call.host.send_confirmation(email, profile, sign_up)
    return call.answer(202, data, _location(data["id"]))


def _change(session: Session, actor: Actor, public_id: str, changes: dict) -> dict[str, Any]:
    person = directory.change(session, directory.by_public_id(session, public_id), changes,
                              f"api {actor.name}")
    record(session, actor, "subscriber.changed", f"subscriber {public_id}", fields=sorted(changes))
    return _json_of(session, person)


async def change_subscriber(call: Call) -> Response:
    return call.answer(200, await _db(call, _change, call.actor, call.values["public_id"],
                                      call.body, write=True))


def _unsubscribe(session: Session, actor: Actor, public_id: str) -> dict[str, Any]:
    person = directory.by_public_id(session, public_id)
    subs.unsubscribe(session, stored_id(person), None)
    record(session, actor, "subscriber.unsubscribed", f"subscriber {public_id}")
    return _one(session, public_id)


async def unsubscribe_subscriber(call: Call) -> Response:
    return call.answer(200, await _db(call, _unsubscribe, call.actor, call.values["public_id"],
                                      write=True))


def _erase(session: Session, actor: Actor, public_id: str) -> None:
    subs.erase(session, stored_id(directory.by_public_id(session, public_id)), by=actor)


async def erase_subscriber(call: Call) -> Response:
    await _db(call, _erase, call.actor, call.values["public_id"], write=True)
    return call.answer(204, None)


# --- suppressions ----------------------------------------------------------------------------


def suppression_json(row: Suppression) -> dict[str, Any]:
    return {"address_hash": row.address_hash, "reason": row.reason,
            "created_at": row.created_at.isoformat()}


async def list_suppressions(call: Call) -> Response:
    settings = call.host.settings
    after = paging.decode(settings, "suppressions", call.values["cursor"])
    rows, more = await _db(call, directory.suppressions_page, call.values["reason"], after,
                           call.values["limit"])
    following = paging.encode(settings, "suppressions", rows[-1].address_hash) if more else None
    return call.answer(200, {"data": [suppression_json(r) for r in rows], "next_cursor": following})


def _suppress(session: Session, actor: Actor, email: str, reason: str) -> tuple[dict, bool]:
    entry, new = directory.add_suppression(session, email, reason)
    if new:
        record(session, actor, "suppression.added", f"suppression {entry.address_hash}",
               reason=reason)
    return suppression_json(entry), new


async def add_suppression(call: Call) -> Response:
    email = addresses.normalise(call.body["email"])
    if why := addresses.problem(email):
        raise invalid([("email", why)])
    data, new = await _db(call, _suppress, call.actor, email, call.body["reason"], write=True)
    return call.answer(201 if new else 200, data)


PAGE = paging.page_schema(SUBSCRIBER, "A page of subscribers in a stable order.")
OPERATIONS = [
    Operation("GET", "/subscribers", "listSubscribers", "List subscribers, page by page",
              "subscribers", list_subscribers, (Reply(200, "A page of subscribers.", PAGE),),
              scope="subscribers:read", params=(
                  Param("region", one_of(REGIONS, "Only this region.")),
                  Param("audience", one_of(AUDIENCES, "Only this audience.")),
                  Param("topic", one_of(TOPICS, "Only people who receive this topic.")),
                  Param("status", one_of(STATUSES, "Only people in this state.")),
                  paging.LIMIT, paging.CURSOR)),
    Operation("POST", "/subscribers", "createSubscriber", "Add a subscriber", "subscribers",
              create_subscriber, (
                  Reply(201, "Added and active (with consent_source).", SUBSCRIBER,
                        headers=("Location",), links=NEXT),
                  Reply(202, "Added as pending: the confirmation mail went out (no "
                             "consent_source).", SUBSCRIBER, headers=("Location",), links=NEXT)),
              scope="subscribers:write", body=CREATE, errors=(409, 503),
              description="An address that is suppressed (unsubscribed, erased, bounced) or "
                          "already on the list is refused with 409: a create never brings "
                          "anyone back. With `consent_source` the person is active at once; "
                          "without it they get the double opt-in mail and stay pending until "
                          "they confirm."),
    Operation("GET", "/subscribers/{public_id}", "getSubscriber", "Read one subscriber",
              "subscribers", get_subscriber, (Reply(200, "The subscriber.", SUBSCRIBER),),
              scope="subscribers:read", params=(ID,)),
    Operation("PATCH", "/subscribers/{public_id}", "changeSubscriber",
              "Change name, organisation, region, audience or topics", "subscribers",
              change_subscriber, (Reply(200, "The changed subscriber.", SUBSCRIBER),),
              scope="subscribers:write", params=(ID,), body=CHANGE, errors=(409,),
              description="Only an active subscriber changes (409 otherwise). `topics` is the "
                          "full list to receive; a topic the person left is not switched on "
                          "again (409)."),
    Operation("POST", "/subscribers/{public_id}/unsubscribe", "unsubscribeSubscriber",
              "Unsubscribe from everything", "subscribers", unsubscribe_subscriber,
              (Reply(200, "The subscriber, now unsubscribed; the address is suppressed.",
                     SUBSCRIBER),),
              scope="subscribers:write", params=(ID,)),
    Operation("DELETE", "/subscribers/{public_id}", "eraseSubscriber", "Erase everything about "
              "a subscriber", "subscribers", erase_subscriber,
              (Reply(204, "Erased; only a hashed suppression entry stays."),),
              scope="subscribers:write", params=(ID,)),
    Operation("GET", "/suppressions", "listSuppressions", "List suppressed addresses (hashed)",
              "suppressions", list_suppressions, (Reply(200, "A page of suppressions.",
                                                         paging.page_schema(SUPPRESSION, "A page "
                                                                            "of suppressions.")),),
              scope="suppressions:read", params=(
                  Param("reason", {"type": "string", "maxLength": 12, "description":
                                   "Only this reason (unsubscribed, bounced, complaint, erased)."}),
                  paging.LIMIT, paging.CURSOR)),
    Operation("POST", "/suppressions", "addSuppression", "Suppress an address", "suppressions",
              add_suppression, (Reply(201, "Suppressed now.", SUPPRESSION),
                                Reply(200, "Suppressed already; the first reason stays.",
                                      SUPPRESSION)),
              scope="suppressions:write", body=SUPPRESS,
              description="A subscriber with this address is unsubscribed from everything."),
]
