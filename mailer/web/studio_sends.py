"""The studio's sends: the schedule per region, recent sends, approvals and a send's report."""

from __future__ import annotations

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
from mailer.taxonomy import REGIONS
from mailer.web.studio_state import Studio, act, render, say, studio


def _sends_context(settings: Settings) -> dict[str, Any]:
    now = utcnow()
    rows = overview(settings, now)
    with session_scope(settings) as session:
        recent = list(session.exec(select(SendRow).order_by(col(SendRow.id).desc()).limit(30)))
    by_region = {slug: [r for r in rows if not r.schedule.regions
                        or slug in r.schedule.regions] for slug in REGIONS}
    return {"by_region": by_region, "sends": recent, "describe": approval.describe,
            "required": approval.required(settings), "when": lambda t: local_time(
                t, settings.timezone), "now": now}


async def sends_page(request: Request, message: str = "") -> Response:
    settings = studio(request).settings
    return render(request, "sends", message=message, staff=approval.staff(settings),
                  **await run_in_threadpool(_sends_context, settings))


def _approve(form: Any, here: Studio) -> str:
    kind, row_id = str(form.get("kind")), str(form.get("id", ""))
    if kind not in ("send", "schedule") or not row_id.isdigit():
        raise HTTPException(400, say(here, "approve_needs"))
    approver = approval.person(here.settings, str(form.get("by", "")))
    row = approval.approve(here.settings, kind, int(row_id), approver)
    return say(here, "approved", kind, row_id, approval.describe(row))


async def approve(request: Request) -> Response:
    here = studio(request)
    done = await act(request, _approve, here)
    return await sends_page(request, say(here, "not_approved", done)
                            if isinstance(done, Exception) else done)


async def report(request: Request) -> Response:
    """One send's report page, the same as `mailer sends show --html` writes."""
    settings = studio(request).settings
    try:
        found = await run_in_threadpool(send_report, settings, request.path_params["send_id"])
    except SendError as exc:
        raise HTTPException(404, str(exc)) from exc
    return HTMLResponse(html_report(settings, found))
