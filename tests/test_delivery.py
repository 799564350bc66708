"""The transports against a real local SMTP server, faults included."""

from __future__ import annotations

import mailbox
import socket
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.transport.transports import (
    DeliveryError,
    OutboxTransport,
    OutgoingMessage,
    RateLimiter,
    SMTPPool,
    SMTPTransport,
    transport_from_settings,
)
from tests.smtp_server import SMTPTestServer, free_port


def outgoing(n: int, recipient: str = "") -> OutgoingMessage:
    data = (f"From: a@example.org\r\nTo: r{n}@example.org\r\nSubject: {n}\r\n"
            f"Message-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n.leading dot\r\n").encode()
    to = recipient or f"r{n}@example.org"
    return OutgoingMessage("bounce@example.org", to, data, f"<m{n}@example.org>")


def smtp(server: SMTPTestServer, timeout: float = 5.0) -> SMTPTransport:
    return SMTPTransport(server.host, server.port, security="none", timeout=timeout)


def test_one_connection_is_reused_and_bytes_arrive_unchanged(smtp_server: SMTPTestServer) -> None:
    transport = smtp(smtp_server)
    for n in range(4):
        transport.send(outgoing(n))
    transport.close()
    received = smtp_server.wait_for(4)
    assert len({m.connection for m in received}) == 1
    assert received[0].sender == "bounce@example.org"
    assert received[0].recipients == ("r0@example.org",)
    assert received[0].data.replace(b"\r\n", b"\n") == outgoing(0).data.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("smtp_server", [{"reject": ["gone@example.org"]}], indirect=True)
def test_a_5xx_answer_is_permanent_and_keeps_the_connection(smtp_server: SMTPTestServer) -> None:
    transport = smtp(smtp_server)
    before = smtp_server.connections_opened
    with pytest.raises(DeliveryError) as caught:
        transport.send(outgoing(1, "gone@example.org"))
    assert caught.value.permanent and caught.value.code == 550
    assert "User unknown" in str(caught.value)
    transport.send(outgoing(2))
    transport.close()
    assert len(smtp_server.wait_for(1)) == 1
    assert smtp_server.connections_opened == before + 1


@pytest.mark.parametrize(("fault", "code"), [({"temporary": 1.0, "temporary_code": 451}, 451),
                                             ({"temporary": 1.0, "temporary_code": 421}, 421),
                                             ({"drop": 1.0}, None)])
def test_temporary_faults_are_not_permanent_and_the_next_send_reconnects(
        fault: dict, code: int | None) -> None:
    with SMTPTestServer(**fault) as server:
        transport = smtp(server)
        with pytest.raises(DeliveryError) as caught:
            transport.send(outgoing(1))
        assert not caught.value.permanent and caught.value.code == code
        server.temporary = server.drop = 0.0
        transport.send(outgoing(2))
        assert [m.recipients for m in server.wait_for(1)] == [("r2@example.org",)]
        transport.close()


def test_a_connection_the_server_closed_while_idle_is_reopened(smtp_server: SMTPTestServer) -> None:
    transport = smtp(smtp_server)
    transport.send(outgoing(1))
    smtp_server.close_connections()  # the server timed the idle connection out
    transport.send(outgoing(2))
    transport.close()
    first, second = smtp_server.wait_for(2)
    assert second.connection > first.connection


def test_no_server_and_a_silent_server_are_temporary() -> None:
    with pytest.raises(DeliveryError) as caught:
        SMTPTransport("127.0.0.1", free_port(), security="none", timeout=1).send(outgoing(1))
    assert not caught.value.permanent
    with socket_that_never_answers() as port, pytest.raises(DeliveryError) as caught:
        SMTPTransport("127.0.0.1", port, security="none", timeout=0.3).send(outgoing(1))
    assert not caught.value.permanent


class socket_that_never_answers:
    """A listening socket that accepts and stays silent, to provoke the timeout."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_the_pool_spreads_threads_over_its_connections(smtp_server: SMTPTestServer) -> None:
    settings = Settings(smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                        smtp_security="none", smtp_connections=3)
    pool = transport_from_settings(settings)
    assert isinstance(pool, SMTPPool)
    threads = [threading.Thread(target=lambda k=k: [pool.send(outgoing(k * 10 + i))
                                                     for i in range(10)]) for k in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    received = smtp_server.wait_for(50)
    expected = sorted(f"r{n}@example.org" for n in range(50))
    assert sorted(r.recipients[0] for r in received) == expected
    assert len({r.connection for r in received}) <= 3  # at most smtp_connections in use
    smtp_server.wait_until(lambda: smtp_server.open_connections == 0, "the pool left connections open")


def test_the_rate_limiter_spaces_messages() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    assert slept == [0.25, 0.5]  # first is free, the others queue 1/4 s apart
    now[0] = 10.0
    limiter.acquire()
    assert slept == [0.25, 0.5]  # the bucket refilled while idle
    RateLimiter(0, sleep=sleep).acquire()
    assert len(slept) == 2


def test_the_outbox_is_the_default_and_writes_a_readable_maildir(tmp_path: Path) -> None:
    transport = transport_from_settings(Settings(root=tmp_path))
    assert isinstance(transport, OutboxTransport)
    transport.send(outgoing(1))
    (message,) = mailbox.Maildir(tmp_path / "out" / "outbox").values()
    assert message["Message-ID"] == "<m1@example.org>"
    assert b"\r\n" not in message.as_bytes()


def test_an_email_message_becomes_outgoing_for_confirmation_mails() -> None:
    message = EmailMessage()
    message["From"] = "Netwerk <info@ovv.nl>"
    message["To"] = "Jan <jan@example.org>"
    message["Subject"] = "Bevestig je aanmelding"
    message["Message-ID"] = "<c1@veiligheidvoorop.nl>"
    message.set_content("Klik op de link.\n")
    out = OutgoingMessage.from_email(message, "bounces@veiligheidvoorop.nl")
    assert (out.sender, out.recipient, out.message_id) == (
        "bounces@veiligheidvoorop.nl", "jan@example.org", "<c1@veiligheidvoorop.nl>")
    assert b"\r\nSubject: Bevestig je aanmelding\r\n" in out.data
    signed = OutgoingMessage.from_email(message, "b@x.nl", sign=lambda data: b"DKIM-Signature: x\r\n")
    assert signed.data == b"DKIM-Signature: x\r\n" + out.data
    assert out.email().get_content() == "Klik op de link.\r\n"
