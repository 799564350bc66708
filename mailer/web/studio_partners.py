"""The studio's partners page: publications of partners that fit the mailing, and turning one
into a block of the mailing."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailer.content.loader import load_mailing
from mailer.errors import MailerError
from mailer.partners.blocks import partner_block
from mailer.partners.publications import suggest
from mailer.web.studio_state import Studio, act, forbid, render, say, studio


def _suggestions(here: Studio) -> list:
    return suggest(here.settings, load_mailing(here.settings.content, here.theme, here.settings.root))


async def partners_page(request: Request, message: str = "") -> Response:
    try:
        found, error = await run_in_threadpool(_suggestions, studio(request)), ""
    except MailerError as exc:
        found, error = [], str(exc)
    return render(request, "partners", suggestions=found, error=error, message=message)


def _write_block(form: Any, here: Studio) -> str:
    path = partner_block(here.settings, here.theme, str(form.get("url", "")))
    return say(here, "block_written", path.relative_to(here.settings.root))


async def make_block(request: Request) -> Response:
    here = studio(request)
    forbid(request, "create")
    done = await act(request, _write_block, here)
    return await partners_page(request, say(here, "not_written", done)
                               if isinstance(done, Exception) else done)
