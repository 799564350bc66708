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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


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
                                    bytes(envelope.original_content or envelope.content)))
        return "250 2.0.0 OK: queued"


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
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)

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
