"""A real SMTP server on 127.0.0.1 for tests and benchmarks, with fault injection.

Imported by the delivery tests, the send-loop tests and the send benchmark, so it lives in a module
of its own rather than inside conftest. Faults are drawn from a seeded generator: the same run of
messages meets the same faults every time. Answers about the session are scripted: a greeting
per connection (421, 554 …), a required login (535 for a wrong password, 530 without one) and
required STARTTLS with a self-signed certificate (530 without it, a TLS failure with it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    at: float = 0.0  # time.time() when it was accepted
    connection: int = 0  # which connection: numbered in the order they were opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_context(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1: encryption
    works, but a client that checks certificates (as ours does) refuses it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


class _ScriptedSMTP(SMTP):
    """aiosmtpd's server telling the test server when a client connects and leaves, whose
    greeting can be replaced by a scripted answer, after which it hangs up, as a busy or
    unwilling relay does."""

    def __init__(self, server: SMTPTestServer, *args: Any, **kwargs: Any):
        with warnings.catch_warnings():  # a login without TLS, on loopback, on purpose
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            super().__init__(*args, **kwargs)
        self.test_server = server
        self.greeted = False
        self.connection = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.connection == 0:  # not again after STARTTLS
            self.connection = self.test_server.opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.test_server.closed(self)
        super().connection_lost(error)

    async def push(self, status: str) -> None:
        if not self.greeted:
            self.greeted = True
            answer = self.test_server.next_greeting()
            if answer:
                await super().push(answer)
                assert self.transport is not None
                self.transport.close()
                return
        await super().push(status)


class _Controller(Controller):
    def __init__(self, server: SMTPTestServer, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.test_server = server

    def factory(self) -> SMTP:
        return _ScriptedSMTP(self.test_server, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, server: SMTPTestServer):
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        await self.server.while_held()
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
                                    at=time.time(), connection=server.connection))
        return "250 2.0.0 OK: queued"


class SMTPTestServer:
    """aiosmtpd on a free loopback port, collecting messages thread-safely.

    `temporary` is the share of messages answered with `temporary_code` (421 closes the
    connection, 451 keeps it; a tuple draws one of its codes each time), `drop` the share whose
    connection is cut during DATA, `reject` the addresses refused at RCPT as unknown
    (550 5.1.1), and `block` those refused for policy (550 5.7.1, as a block list would).
    `greetings` are answered, one per new connection, instead of the 220 greeting (then the
    server hangs up); then `greeting` to every connection, unless it is "" (set it to refuse
    all, clear it to heal). `login` (user, password) requires that login; `starttls` requires
    TLS first. `hold_after` N: once N messages were accepted, every next recipient is kept
    waiting (no answer) until `release()`, as a server that hangs does; `held` counts them.
    """

    def __init__(self, temporary: float = 0.0, temporary_code: int | tuple[int, ...] = 451,
                 drop: float = 0.0, reject: Iterable[str] = (), block: Iterable[str] = (),
                 seed: int = 0, greetings: Iterable[str] = (),
                 login: tuple[str, str] | None = None, starttls: bool = False):
        codes = temporary_code if isinstance(temporary_code, tuple) else (temporary_code,)
        if not set(codes) <= {421, 451}:
            raise ValueError("temporary_code must be 421 or 451")
        self.temporary, self.temporary_codes, self.drop = temporary, codes, drop
        self.reject = {address.lower() for address in reject}
        self.block = {address.lower() for address in block}
        self.host, self.port = "127.0.0.1", free_port()
        self.faults: list[str] = []
        self._messages: list[Received] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.greetings = deque(greetings)
        self._started = False
        self.greeting = ""  # answered to every connection once `greetings` ran out; "" = 220
        self.refused_greetings = 0
        self._opened = 0
        self._open: set[_ScriptedSMTP] = set()
        self.hold_after: int | None = None
        self._held = 0
        options: dict[str, Any] = {}
        if login:
            options.update(auth_required=True, auth_require_tls=False,
                           authenticator=self._authenticator(login))
        if starttls:
            self._tls_folder = tempfile.TemporaryDirectory()
            options.update(require_starttls=True,
                           tls_context=self_signed_context(Path(self._tls_folder.name)))
        self._controller = _Controller(self, _Handler(self), hostname=self.host, port=self.port,
                                       **options)

    @staticmethod
    def _authenticator(login: tuple[str, str]) -> Any:
        expected = LoginPassword(login[0].encode(), login[1].encode())

        def check(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
            return AuthResult(success=data == expected, handled=False)

        return check

    def next_greeting(self) -> str:
        """The scripted answer for a new connection, or "" for the usual 220."""
        with self._lock:
            if not self._started:  # the controller's own check that the server is up
                return ""
            answer = self.greetings.popleft() if self.greetings else self.greeting
            self.refused_greetings += bool(answer)
            return answer

    def opened(self, protocol: _ScriptedSMTP) -> int:
        with self._lock:
            self._opened += 1
            self._open.add(protocol)
            return self._opened

    def closed(self, protocol: _ScriptedSMTP) -> None:
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
                     else str(self._random.choice(self.temporary_codes))
                     if roll < self.drop + self.temporary else "")
            if fault:
                self.faults.append(fault)
            return fault

    async def while_held(self) -> None:
        """Wait (on the server's loop) while `hold_after` messages or more were accepted."""
        with self._lock:
            if self.hold_after is None or len(self._messages) < self.hold_after:
                return
            self._held += 1
        try:
            while self.hold_after is not None:
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self._held -= 1

    @property
    def held(self) -> int:
        """How many clients wait for an answer to a recipient, held by `hold_after`."""
        with self._lock:
            return self._held

    def release(self) -> None:
        """Answer the held clients (those still connected) and hold nobody any more."""
        self.hold_after = None

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
        self._started = True
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
