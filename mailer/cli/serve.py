"""`mailer serve`: the subscription pages, in one or more uvicorn worker processes."""

from __future__ import annotations

import gc
import socket
from typing import TYPE_CHECKING, Any

import click

from mailer.cli.common import database, log_format_option, recording_failed_start, settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes sharing the port; they share state only through the "
                   "database (use PostgreSQL for more than one, see docs/production.md).")
@log_format_option(expose=True)
def serve(host: str, port: int, workers: int, log_format: str) -> None:
    """Serve the subscription pages (/aanmelden, /bevestig, /afmelden, /voorkeuren, /privacy).

    Links in mails point at public_base_url; put this behind the web server that answers there.

    \b
    Examples:
      mailer serve --host 0.0.0.0 --port 8080
      mailer serve --workers 4 --log-format json

    Also answers /healthz, /readyz and /metrics (Prometheus; loopback or [metrics] token).
    """
    import uvicorn

    from mailer.logs import uvicorn_config

    # Made here once even with workers, so a bad schema or brand file is one clear line here
    # and not a traceback in every worker.
    with recording_failed_start("serve"):
        app = worker_app()
    # No access log: the paths hold the tokens that open a person's preferences and data.
    # X-Forwarded-* are believed only from the trusted_proxies setting, inside the app.
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info",
                               "access_log": False, "proxy_headers": False,
                               "log_config": uvicorn_config(log_format)}
    if workers == 1:
        uvicorn.run(app, **options)
    else:
        config = uvicorn.Config("mailer.cli.serve:worker_app", factory=True, workers=workers,
                                **options)
        _own_socket_supervisor(config).run()


def worker_app() -> ASGIApp:
    """The app of one worker process, configured like the command that started it."""
    from mailer.web.app import create_app

    config = settings()
    database(config)
    app = create_app(config)
    gc.freeze()  # startup objects leave the collector's view: shorter pauses under load
    return app


def _own_socket_supervisor(config: Any) -> Any:
    """uvicorn's worker supervisor (restarts, signals, health checks), except that every worker
    listens on a socket of its own, bound to the shared port with SO_REUSEPORT.

    With one shared socket the first idle worker to wake accepts a whole burst of new
    connections (the event loop accepts until the queue is empty), and with keep-alive it then
    serves all of them while the other workers idle. Separate sockets let the kernel spread new
    connections evenly over the workers.
    """
    from uvicorn.supervisors import Multiprocess

    class OwnSocketWorkers(Multiprocess):
        handed: list[socket.socket]

        @property
        def sockets(self) -> list[socket.socket]:
            """Read once for each worker process being made: a fresh socket for it."""
            sock = _bound_socket(config.host, config.port, shared=True)
            self.handed.append(sock)
            return [sock]

        @sockets.setter
        def sockets(self, _unused: list[socket.socket]) -> None:
            self.handed = []

        def init_processes(self) -> None:
            super().init_processes()
            self._close_handed()

        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()
            self._close_handed()

        def _close_handed(self) -> None:
            """Started workers hold their sockets; a copy left open here would keep a dead
            worker's socket in the port's group, and the kernel would queue connections on it.
            (Workers started on a signal, SIGHUP or SIGTTIN, have theirs closed here too: the
            supervisor's loop keeps the workers alive right after it handles the signals.)"""
            for sock in self.handed:
                sock.close()
            self.handed.clear()

    # A socket that does not share the port fails here when something already listens there;
    # with SO_REUSEPORT alone a second `mailer serve` would quietly join the first one's port.
    _bound_socket(config.host, config.port, shared=False).close()
    return OwnSocketWorkers(config, sockets=[])


def _bound_socket(host: str, port: int, shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


COMMANDS = [serve]
