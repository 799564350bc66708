"""The studio's audit page, for admins: the trail newest first, a page at a time, and whether
its hash chain is intact (mailer.audit.verify)."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mailer import audit
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import AuditEvent
from mailer.web.studio_state import forbid, render, say, studio

PAGE = 200  # rows per page


def _trail(settings: Settings, before: int | None) -> dict[str, Any]:
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(PAGE)
    if before is not None:
        query = query.where(col(AuditEvent.id) < before)
    with session_scope(settings) as session:
        rows = [audit.as_dict(row) for row in session.exec(query)]
    count, problems = audit.verify(settings)
    first = re.match(r"row (\d+)", problems[0]) if problems else None
    return {"rows": rows, "count": count, "problems": problems,
            "broken_at": first.group(1) if first else "",
            "older": rows[-1]["id"] if len(rows) == PAGE else None}


async def audit_page(request: Request) -> Response:
    """GET /audit[?before=ID]: 403 for anyone but an admin (once accounts exist)."""
    forbid(request, "audit")
    before = request.query_params.get("before", "")
    if before and not before.isdigit():
        raise HTTPException(400, say(studio(request), "before_needs"))
    found = await run_in_threadpool(_trail, studio(request).settings,
                                    int(before) if before else None)
    return render(request, "audit", **found)
