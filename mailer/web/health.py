"""/healthz and /readyz: what a load balancer or systemd watchdog asks `mailer serve`.

/healthz answers 200 while the process serves requests, and touches nothing else. /readyz
answers 200 only when the database answers and its schema is the one this code needs;
otherwise 503 with the cause, so a worker is taken out of rotation during an upgrade or an
outage instead of failing every page.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailer.db import current_revision
from mailer.schema import head_revision
from mailer.web.metrics import allowed
from mailer.web.state import site

PLAIN = {"Cache-Control": "no-store"}
log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers=PLAIN)


def _not_ready(request: Request) -> str:
    """Why the database cannot serve requests now, or ""."""
    engine = site(request).engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        found = current_revision(engine)
    except Exception as exc:  # any driver error means the same here: not ready
        log.warning("not ready: the database does not answer (%s)", type(exc).__name__)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the database does not answer: {first}"
    if found != head_revision():
        return f"the database is at schema version {found}, this mailer needs {head_revision()}"
    return ""


async def readyz(request: Request) -> Response:
    """The cause is told to those who may read /metrics; anyone else learns only "not ready"."""
    why = await run_in_threadpool(_not_ready, request)
    if why:
        shown = why if allowed(request) else "see the server's log"
        return PlainTextResponse(f"not ready: {shown}\n", 503, headers=PLAIN)
    return PlainTextResponse("ready\n", headers=PLAIN)
