"""The studio's sends: one table by region (next planned send, its approval and who may give
it, the last send), the schedules and recent sends, approvals and a send's report.

Once accounts exist an approval is made as the logged-in person; the page offers the button
only where they may use it, and the library refuses anyway (403 with the reason)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Send as SendRow
from mailer.models import utcnow
from mailer.schedule.scheduler import local_time, overview
from mailer.send import approval
from mailer.send.report import html_report, send_report
from mailer.send.runner import SendError
from mailer.web.studio_regions import may_approve, region_rows
from mailer.web.studio_state import Access, Studio, access, act, origin, render, say, studio


def _sends_context(settings: Settings, who: Access) -> dict[str, Any]:
    now = utcnow()
    rows = overview(settings, now)
    with session_scope(settings) as session:
        recent = list(session.exec(select(SendRow).order_by(col(SendRow.id).desc()).limit(30)))
    by_region, planned = region_rows(settings, who, rows)
    return {"by_region": by_region, "schedules": rows, "sends": recent,
            "waiting": {(p.kind, p.row.id) for p in planned if p.waiting},
            "describe": approval.describe, "required": approval.required(settings),
            "may_approve": lambda row: may_approve(who, row),
            "when": lambda t: local_time(t, settings.timezone), "now": now}


async def sends_page(request: Request, message: str = "", status_code: int = 200) -> Response:
    settings = studio(request).settings
    return render(request, "sends", status_code, message=message,
                  staff=approval.staff(settings),
                  **await run_in_threadpool(_sends_context, settings, access(request)))


def _approve(form: Any, here: Studio, request: Request) -> str:
    kind, row_id = str(form.get("kind")), str(form.get("id", ""))
    if kind not in ("send", "schedule") or not row_id.isdigit():
        raise HTTPException(400, say(here, "approve_needs"))
    approver = access(request).person
    if approver is None:  # no accounts: a typed (or picked) name, from the studio
        approver = approval.person(here.settings, str(form.get("by", "")))
    row = approval.approve(here.settings, kind, int(row_id), replace(approver, origin=origin(request)))
    return say(here, "approved", kind, row_id, approval.describe(row))


async def approve(request: Request) -> Response:
    """Approve as the logged-in person (without accounts: as the name given); a refusal is a
    403 that says why (a writer, another region, their own send, a send that started)."""
    here = studio(request)
    done = await act(request, _approve, here, request)
    if isinstance(done, Exception):
        return await sends_page(request, say(here, "not_approved", done), 403)
    return await sends_page(request, done)


async def report(request: Request) -> Response:
    """One send's report page, the same as `mailer sends show --html` writes."""
    settings = studio(request).settings
    try:
        found = await run_in_threadpool(send_report, settings, request.path_params["send_id"])
    except SendError as exc:
        raise HTTPException(404, str(exc)) from exc
    return HTMLResponse(html_report(settings, found))
