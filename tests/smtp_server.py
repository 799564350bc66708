"""A real SMTP server on 127.0.0.1 for tests and benchmarks, with fault injection.

Imported by the delivery tests, the send-loop tests and the send benchmark, so it lives in a module
of its own rather than inside conftest. Faults are drawn from a seeded generator: the same run of
messages meets the same faults every time.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    connection: int = 0  # which connection: numbered in the order they were opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler:
    def __init__(self, server: SMTPTestServer):
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.server.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.server.block:
            return f"550 5.7.1 <{address}>: Service unavailable; client host blocked by policy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self.server.draw_fault()
        if fault == "drop":
            server.transport.close()
            return "451 4.3.0 never heard: the connection is gone"
        if fault == "421":
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, try again later"
        if fault == "451":
            return "451 4.3.0 Temporary local problem, try again later"
        self.server.accept(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                    bytes(envelope.original_content or envelope.content),
                                    server.connection))
        return "250 2.0.0 OK: queued"


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, telling the test server when a client connects and leaves."""

    def __init__(self, test_server: SMTPTestServer, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.test_server, self.connection = test_server, 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.connection == 0:  # not again after STARTTLS
            self.connection = self.test_server.opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.test_server.closed(self)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, test_server: SMTPTestServer, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.test_server = test_server

    def factory(self) -> SMTP:
        return _TrackedSMTP(self.test_server, self.handler, **self.SMTP_kwargs)


class SMTPTestServer:
    """aiosmtpd on a free loopback port, collecting messages thread-safely.

    `temporary` is the share of messages answered with `temporary_code` (421 closes the
    connection, 451 keeps it), `drop` the share whose connection is cut during DATA, and
    `reject` the addresses refused at RCPT as unknown (550 5.1.1), `block` those refused for
    policy (550 5.7.1, as a block list would).
    """

    def __init__(self, temporary: float = 0.0, temporary_code: int = 451, drop: float = 0.0,
                 reject: Iterable[str] = (), block: Iterable[str] = (), seed: int = 0):
        if temporary_code not in (421, 451):
            raise ValueError("temporary_code must be 421 or 451")
        self.temporary, self.temporary_code, self.drop = temporary, temporary_code, drop
        self.reject = {address.lower() for address in reject}
        self.block = {address.lower() for address in block}
        self.host, self.port = "127.0.0.1", free_port()
        self.faults: list[str] = []
        self._messages: list[Received] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._opened = 0
        self._open: set[_TrackedSMTP] = set()
        self._controller = _Controller(self, _Handler(self), hostname=self.host, port=self.port)

    def opened(self, protocol: _TrackedSMTP) -> int:
        with self._lock:
            self._opened += 1
            self._open.add(protocol)
            return self._opened

    def closed(self, protocol: _TrackedSMTP) -> None:
        with self._lock:
            self._open.discard(protocol)

    @property
    def connections_opened(self) -> int:
        """How many connections were opened so far (the controller's own check included)."""
        with self._lock:
            return self._opened

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def close_connections(self) -> None:
        """Hang up on every client, as a server does with idle connections; returns once done."""
        with self._lock:
            transports = [p.transport for p in self._open if p.transport is not None]
        for transport in transports:
            self._controller.loop.call_soon_threadsafe(transport.close)
        self.wait_until(lambda: self.open_connections == 0, "connections still open")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait for something the server's thread does; fails with `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            time.sleep(0.01)

    def draw_fault(self) -> str:
        """Which fault, if any, the next DATA meets; recorded in `faults`."""
        with self._lock:
            roll = self._random.random()
            fault = ("drop" if roll < self.drop
                     else str(self.temporary_code) if roll < self.drop + self.temporary
                     else "")
            if fault:
                self.faults.append(fault)
            return fault

    def accept(self, message: Received) -> None:
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The received messages once there are `count` of them; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(received := self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(received)} of {count} messages arrived")
            time.sleep(0.01)
        return received

    def start(self) -> SMTPTestServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
