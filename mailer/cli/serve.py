"""`mailer serve`: the subscription pages."""

from __future__ import annotations

import gc

import click

from mailer.cli.common import database, friendly, settings
from mailer.content.loader import ContentError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@friendly(ContentError)
def serve(host: str, port: int) -> None:
    """Serve the subscription pages (/aanmelden, /bevestig, /afmelden, /voorkeuren, /privacy).

    Links in mails point at public_base_url; put this behind the web server that answers there.

    \b
    Example:
      mailer serve --host 0.0.0.0 --port 8080
    """
    import uvicorn

    from mailer.web.app import create_app

    config = settings()
    database(config)
    app = create_app(config)
    gc.freeze()  # startup objects leave the collector's view: shorter pauses under load
    # No access log: the paths hold the tokens that open a person's preferences and data.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


COMMANDS = [serve]
