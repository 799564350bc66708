"""`mailer serve`: the subscription pages, in one or more uvicorn worker processes."""

from __future__ import annotations

import gc

import click

from mailer.cli.common import database, settings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes sharing the port; they share state only through the "
                   "database (use PostgreSQL for more than one, see docs/production.md).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the subscription pages (/aanmelden, /bevestig, /afmelden, /voorkeuren, /privacy).

    Links in mails point at public_base_url; put this behind the web server that answers there.

    \b
    Examples:
      mailer serve --host 0.0.0.0 --port 8080
      mailer serve --workers 4
    """
    import uvicorn

    # Made here once even with workers, so a bad schema or brand file is one clear line here
    # and not a traceback in every worker.
    app = worker_app()
    # No access log: the paths hold the tokens that open a person's preferences and data.
    # X-Forwarded-* are believed only from the trusted_proxies setting, inside the app.
    options = {"host": host, "port": port, "log_level": "info", "access_log": False,
               "proxy_headers": False}
    if workers == 1:
        uvicorn.run(app, **options)
    else:
        uvicorn.run("mailer.cli.serve:worker_app", factory=True, workers=workers, **options)


def worker_app():  # type: ignore[no-untyped-def]
    """The app of one worker process, configured like the command that started it."""
    from mailer.web.app import create_app

    config = settings()
    database(config)
    app = create_app(config)
    gc.freeze()  # startup objects leave the collector's view: shorter pauses under load
    return app


COMMANDS = [serve]
