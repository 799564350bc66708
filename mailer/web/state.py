"""What the handlers of `mailer serve` share: one `Site` on `app.state.site`, set up by
`create_app`, so each handler is a plain function of its request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, StrictUndefined
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mailer.config import Settings
from mailer.db import AsyncStatements, session_scope
from mailer.message.signing import DkimSigner
from mailer.render.overrides import OverridableLoader
from mailer.transport.transports import OutgoingMessage, Transport


@dataclass
class Site:
    """The settings and the connections every page of `mailer serve` works with."""

    settings: Settings
    engine: Engine
    env: Environment
    transport: Transport
    signer: DkimSigner | None  # loaded once; a bad key stops the start
    own_origins: set[str]
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    on_loop: AsyncStatements | None = None  # PostgreSQL, while the app runs: see app.lifespan

    async def db(self, func: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        """Run one service call in its own transaction, in the thread pool."""

        def call() -> Any:
            with session_scope(self.engine, write=write) as session:
                return func(session, *args)

        return await run_in_threadpool(call)

    async def send(self, message: OutgoingMessage) -> None:
        """Hand one message to the transport, in the thread pool."""

        def call() -> None:
            with self.send_lock:  # one SMTP connection, shared by the thread pool
                self.transport.send(message)

        await run_in_threadpool(call)


def site(request: Request) -> Site:
    """The Site of the app serving this request."""
    found: Site = request.app.state.site
    return found


def template_environment(settings: Settings) -> Environment:
    """The package's templates, overridable per site in settings.templates."""
    return Environment(
        loader=OverridableLoader(settings.templates),
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
