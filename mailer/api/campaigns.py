"""/sends, /schedules and /mailings: what was sent and how it went, what is planned, and what
is built, read-only.

A send's report gives counts per delivery status, per segment and per class of refusal, as
`mailer sends show` does, but not the servers' answers: those quote addresses.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from starlette.responses import Response

from mailer.api import paging
from mailer.api.problems import Problem
from mailer.api.spec import Call, Operation, Param, Reply
from mailer.api.validation import Schema, array, nullable
from mailer.builds.manifest import NAME as MANIFEST
from mailer.builds.manifest import Manifest, ManifestError, read_manifest
from mailer.config import Settings
from mailer.models import Send, utcnow
from mailer.schedule.scheduler import overview
from mailer.send.report import send_document, send_report
from mailer.send.runner import SendError

TIME: Schema = {"type": "string", "format": "date-time"}
MAYBE_TIME = nullable(TIME)
STRINGS = array({"type": "string"})
COUNTS: Schema = {"type": "object", "additionalProperties": {"type": "integer"}}

SEND: Schema = {
    "type": "object",
    "required": ["id", "theme", "topic", "subject", "regions", "audiences", "status",
                 "pause_reason", "planned_for", "created_at", "snapshot_at", "finished_at",
                 "created_by", "approved_by", "approved_at"],
    "properties": {
        "id": {"type": "integer"}, "theme": {"type": "string"}, "topic": {"type": "string"},
        "subject": {"type": "string"},
        "regions": {**STRINGS, "description": "Region slugs; empty: every region."},
        "audiences": {**STRINGS, "description": "Audience slugs; empty: every audience."},
        "status": {"type": "string", "description": "planned, running, done, paused or "
                                                     "cancelled."},
        "pause_reason": {"type": "string"}, "planned_for": MAYBE_TIME, "created_at": TIME,
        "snapshot_at": MAYBE_TIME, "finished_at": MAYBE_TIME, "created_by": {"type": "string"},
        "approved_by": {"type": "string"}, "approved_at": MAYBE_TIME,
    },
}
REPORT: Schema = {
    "type": "object", "required": ["send", "total", "counts", "segments", "classes"],
    "properties": {
        "send": SEND, "total": {"type": "integer", "description": "Recipients."},
        "counts": {**COUNTS, "description": "Recipients per delivery status (pending, sending, "
                                            "sent, failed, skipped, bounced)."},
        "segments": {"type": "object", "additionalProperties": COUNTS,
                     "description": '"region/audience" → status → count.'},
        "classes": {**COUNTS, "description": "Refusals per RFC 3463 class (hard, soft, "
                                             "blocked)."},
    },
}
SCHEDULE: Schema = {
    "type": "object",
    "required": ["id", "theme", "regions", "audiences", "due_at", "status", "send_id", "note",
                 "hold", "approval"],
    "properties": {
        "id": {"type": "integer"}, "theme": {"type": "string"}, "regions": STRINGS,
        "audiences": STRINGS, "due_at": TIME,
        "status": {"type": "string", "description": "As of now: planned, started, missed, "
                                                    "cancelled, done or failed."},
        "send_id": nullable({"type": "integer"}), "note": {"type": "string"},
        "hold": {"type": "string", "description": "Why it did not start when due, if so."},
        "approval": {"type": "string", "description": "With approval required: who approved "
                                                      "it, or why it will not start."},
    },
}
VARIANT: Schema = {
    "type": "object", "required": ["name", "segments", "bytes", "hash", "online_url"],
    "properties": {"name": {"type": "string"},
                   "segments": {**STRINGS, "description": '"region/audience" of each segment '
                                                          "that gets this variant."},
                   "bytes": {"type": "integer"}, "hash": {"type": "string"},
                   "online_url": {"type": "string"}},
}
MAILING: Schema = {
    "type": "object",
    "required": ["theme", "kind", "title", "subject", "topic", "date", "public_url",
                 "source_hash", "variants"],
    "properties": {"theme": {"type": "string"}, "kind": {"type": "string"},
                   "title": {"type": "string"}, "subject": {"type": "string"},
                   "topic": {"type": "string"}, "date": {"type": "string", "format": "date"},
                   "public_url": {"type": "string"}, "source_hash": {"type": "string"},
                   "variants": array(VARIANT)},
}
SEND_ID = Param("send_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                            "description": "The send's id."},
                "path")
THEME = Param("theme", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$",
                        "description": "The theme's folder name."}, "path")


def _shaped(document: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The library's JSON document (the one `--json` prints) cut to the fields the API's
    schema promises."""
    return {key: value for key, value in document.items() if key in schema["properties"]}


def send_json(send: Send) -> dict[str, Any]:
    return _shaped(send_document(send), SEND)


def _sends(session: Session, before: int | None, limit: int) -> tuple[list[Send], bool]:
    query = select(Send).order_by(col(Send.id).desc()).limit(limit + 1)
    if before is not None:
        query = query.where(col(Send.id) < before)
    rows = list(session.exec(query))
    return rows[:limit], len(rows) > limit


async def list_sends(call: Call) -> Response:
    settings = call.host.settings
    before = paging.decode(settings, "sends", call.values["cursor"])
    rows, more = await call.host.db(_sends, int(before) if before else None, call.values["limit"])
    following = paging.encode(settings, "sends", str(rows[-1].id)) if more else None
    return call.answer(200, {"data": [send_json(s) for s in rows], "next_cursor": following})


async def get_send(call: Call) -> Response:
    found = await call.host.db(lambda session, key: session.get(Send, key), call.values["send_id"])
    if found is None:
        raise Problem(404, f"no send {call.values['send_id']}")
    return call.answer(200, send_json(found))


async def send_report_of(call: Call) -> Response:
    try:
        report = await call.host.run(send_report, call.host.settings, call.values["send_id"], 0)
    except SendError as exc:
        raise Problem(404, f"no send {call.values['send_id']}") from exc
    return call.answer(200, {"send": send_json(report.send), "total": report.total,
                             "counts": report.counts, "segments": report.segments,
                             "classes": report.classes})


def _schedules(settings: Settings) -> list[dict[str, Any]]:
    return [_shaped(row.document(), SCHEDULE)
            for row in overview(settings, utcnow(), reach=False)]


async def list_schedules(call: Call) -> Response:
    return call.answer(200, {"data": await call.host.run(_schedules, call.host.settings)})


def mailing_json(manifest: Manifest) -> dict[str, Any]:
    variants: dict[str, dict[str, Any]] = {}
    for key, segment in manifest.segments.items():
        entry = variants.setdefault(segment.variant, {
            "name": segment.variant, "segments": [], "bytes": segment.bytes,
            "hash": segment.hash, "online_url": segment.online_url})
        entry["segments"].append(key)
    return {"theme": manifest.theme, "kind": manifest.kind, "title": manifest.title,
            "subject": manifest.subject, "topic": manifest.topic,
            "date": manifest.date.isoformat(), "public_url": manifest.public_url,
            "source_hash": manifest.source_hash, "variants": list(variants.values())}


def _mailings(settings: Settings) -> list[dict[str, Any]]:
    """Every theme in out/ with a manifest this mailer reads; one it cannot is left out (a
    build replaces it)."""
    found = []
    folders = sorted(settings.out.iterdir()) if settings.out.is_dir() else []
    for folder in folders:
        if (folder / MANIFEST).is_file():
            try:
                found.append(mailing_json(read_manifest(folder)))
            except ManifestError:
                continue
    return found


async def list_mailings(call: Call) -> Response:
    return call.answer(200, {"data": await call.host.run(_mailings, call.host.settings)})


def _mailing(settings: Settings, theme: str) -> dict[str, Any] | None:
    folder = settings.out / theme
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return mailing_json(read_manifest(folder))
    except ManifestError:
        return None


async def get_mailing(call: Call) -> Response:
    found = await call.host.run(_mailing, call.host.settings, call.values["theme"])
    if found is None:
        raise Problem(404, f"no built mailing {call.values['theme']!r} (run `mailer build "
                           f"{call.values['theme']}`)")
    return call.answer(200, found)


def _list_of(item: Schema, what: str) -> Schema:
    return {"type": "object", "required": ["data"], "properties": {"data": array(item)},
            "description": what}


OPERATIONS = [
    Operation("GET", "/sends", "listSends", "List sends, newest first", "sends", list_sends,
              (Reply(200, "A page of sends.", paging.page_schema(SEND, "A page of sends."),
                     links=(("getSend", "send_id", "$response.body#/data/0/id"),
                            ("getSendReport", "send_id", "$response.body#/data/0/id"))),),
              scope="sends:read", params=(paging.LIMIT, paging.CURSOR)),
    Operation("GET", "/sends/{send_id}", "getSend", "Read one send", "sends", get_send,
              (Reply(200, "The send.", SEND),), scope="sends:read", params=(SEND_ID,)),
    Operation("GET", "/sends/{send_id}/report", "getSendReport", "Count a send's deliveries",
              "sends", send_report_of, (Reply(200, "The counts.", REPORT),), scope="sends:read",
              params=(SEND_ID,)),
    Operation("GET", "/schedules", "listSchedules", "List planned sends by due time",
              "schedules", list_schedules, (Reply(200, "Every schedule.",
                                                  _list_of(SCHEDULE, "Schedules.")),),
              scope="schedules:read"),
    Operation("GET", "/mailings", "listMailings", "List built mailings and their variants",
              "mailings", list_mailings, (Reply(200, "Every built theme.",
                                                _list_of(MAILING, "Mailings."), links=(
                                                    ("getMailing", "theme",
                                                     "$response.body#/data/0/theme"),)),),
              scope="mailings:read"),
    Operation("GET", "/mailings/{theme}", "getMailing", "Read one built mailing", "mailings",
              get_mailing, (Reply(200, "The mailing and its variants.", MAILING),),
              scope="mailings:read", params=(THEME,)),
]
