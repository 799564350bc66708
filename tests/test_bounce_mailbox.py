"""`mailer bounces fetch` against a real IMAP server (a throwaway Dovecot, tests/mailservers.py):
every message is handled once and moved, a process killed between handling and moving counts
nothing twice, and server trouble is one line."""

from __future__ import annotations

import imaplib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlmodel import func, select

from mailer.bounces import imap
from mailer.bounces.imap import quoted
from mailer.config import Settings
from mailer.db import session_scope
from mailer.logs import mask
from mailer.models import Bounce, Subscriber
from mailer.schedule.scheduler import Scheduler
from mailer.subscribers.subscriptions import active_topics, hash_address, is_suppressed
from tests.conftest import REPO
from tests.fake_clock import FakeClock
from tests.mailservers import PASSWORD, Dovecot, missing, running, wait_until
from tests.mailservers import mail_root as new_mail_root
from tests.test_bounces_db import Sent, bounce_of, send_twice

BOUNCES = "bounces@veiligheidvoorop.nl"
MAILDIR = "veiligheidvoorop.nl/bounces"


def start_dovecot(**options: object) -> Iterator[Dovecot]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    with new_mail_root() as root:
        server = Dovecot(root, {BOUNCES: MAILDIR}, **options)  # type: ignore[arg-type]
        with running(server):
            yield server


@pytest.fixture(scope="module")
def shared_dovecot() -> Iterator[Dovecot]:
    yield from start_dovecot(tls=True)


@pytest.fixture
def dovecot(shared_dovecot: Dovecot) -> Dovecot:
    """The module's Dovecot, with an empty bounce mailbox (made anew at the next log-in)."""
    shutil.rmtree(shared_dovecot.mail / MAILDIR, ignore_errors=True)
    return shared_dovecot


@pytest.fixture
def sent(send_settings: Settings) -> Sent:
    return send_twice(send_settings)


def session_of(server: Dovecot) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    conn.login(BOUNCES, PASSWORD)
    return conn


def append(server: Dovecot, *messages: bytes) -> None:
    conn = session_of(server)
    for message in messages:
        assert conn.append("INBOX", None, None, message)[0] == "OK"
    conn.logout()


def count(server: Dovecot, folder: str) -> int | None:
    """Messages in a folder; None when there is no such folder."""
    conn = session_of(server)
    status, data = conn.status(quoted(folder), "(MESSAGES)")
    conn.logout()
    return int(data[0].split()[-1].strip(b")")) if status == "OK" else None


def unsubscribe_mail(sent: Sent, send_id: int, address: str) -> bytes:
    """What a mail client sends for the List-Unsubscribe mailto of our message to `address`."""
    header = str(sent.messages[send_id, address].email()["List-Unsubscribe"])
    mailto = urlsplit(header.split(",")[1].strip(" <>"))
    message = EmailMessage()
    message["From"], message["To"] = address, mailto.path
    message["Subject"] = unquote(parse_qs(mailto.query)["subject"][0])
    message["Message-ID"] = "<afmelden.1@example.org>"
    message.set_content("")
    return bytes(message).replace(b"\n", b"\r\n")


def letter() -> bytes:
    return (b"From: iemand@example.org\r\nTo: bounces@veiligheidvoorop.nl\r\nSubject: Vraag\r\n"
            b"Message-ID: <vraag.1@example.org>\r\n\r\nKunt u mij bellen?\r\n")


def environment(settings: Settings, server: Dovecot, **more: str) -> dict[str, str]:
    """The environment of a `mailer` process on these settings and this mailbox."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return {**keep, "MAILER_ROOT": str(settings.root), "MAILER_DATABASE_URL": settings.database_url,
            "MAILER_SECRET_KEY": settings.secret_key,
            "MAILER_PUBLIC_BASE_URL": settings.public_base_url,
            "MAILER_BOUNCE_IMAP_URL": server.url(BOUNCES),
            "MAILER_BOUNCE_IMAP_PASSWORD": PASSWORD, **more}


# `mailer bounces fetch` in a process that dies (os._exit, as a kill would end it) at the
# move of the Nth message: after that message was handled and committed, before it was moved.
KILLED_BEFORE_MOVE = """
import os, sys
from mailer.bounces import imap
from mailer.cli.main import main

moves, real_move = 0, imap.Mailbox.move

def move(self, uid, folder):
    global moves
    moves += 1
    if moves == int(sys.argv[1]):
        os._exit(9)
    real_move(self, uid, folder)

imap.Mailbox.move = move
main(["bounces", "fetch"])
"""


def fetch_killed_at(settings: Settings, server: Dovecot, move: int, **env: str
                    ) -> subprocess.CompletedProcess:
    """Killed at the move of the `move`th message; 0: not killed."""
    return subprocess.run([sys.executable, "-u", "-c", KILLED_BEFORE_MOVE, str(move)], cwd=REPO,
                          env=environment(settings, server, **env), capture_output=True,
                          text=True, timeout=120)


def test_a_fetch_killed_between_handling_and_moving_counts_nothing_twice(
        send_settings: Settings, sent: Sent, dovecot: Dovecot) -> None:
    first, _ = sent.sends
    hard = bounce_of(sent, first, "weg@example.org", "5.1.1", answer="550 5.1.1 no such user")
    append(dovecot, bounce_of(sent, first, "vol@example.org", "4.2.2"),
           unsubscribe_mail(sent, first, "blok@example.org"), hard, hard, letter())
    with session_scope(send_settings) as session:
        blok = session.get(Subscriber, sent.ids["blok@example.org"]).public_id

    runs = [fetch_killed_at(send_settings, dovecot, move) for move in (1, 2, 3)]
    assert [run.returncode for run in runs] == [9, 9, 9], [run.stderr for run in runs]
    assert runs[0].stdout.splitlines() == []  # killed before its first message was reported
    assert runs[1].stdout.splitlines() == [
        "INBOX/1: vol@example.org soft 4.2.2 (the server said no) -> already recorded"]
    unsubscribed, suppressed = runs[2].stdout.splitlines()
    assert unsubscribed == (f"INBOX/2: already unsubscribed: subscriber {blok} does not receive "
                            "verdiepingen; nothing changed")
    assert suppressed.startswith(
        "INBOX/3: weg@example.org hard 5.1.1 (550 5.1.1 no such user) -> suppressed; delivery")
    last = fetch_killed_at(send_settings, dovecot, 0)
    assert last.returncode == 0, last.stderr
    assert last.stdout.splitlines() == [  # the copy of INBOX/3, killed before its move
        "INBOX/4: weg@example.org hard 5.1.1 (550 5.1.1 no such user) -> already recorded",
        "INBOX/5: ignored (not a bounce)",
        "2 messages: 0 hard, 0 soft, 0 blocked (0 unmatched), 0 unsubscribe mails, 1 ignored, "
        "1 already handled; 2 moved to Verwerkt"]

    with session_scope(send_settings) as session:
        kinds = sorted(session.exec(select(Bounce.kind)))
        soft = session.exec(select(func.count()).where(
            Bounce.address_hash == hash_address("vol@example.org"))).one()
        assert kinds == ["hard", "soft"] and soft == 1  # one soft bounce, not two
        assert is_suppressed(session, "weg@example.org")
        assert not is_suppressed(session, "vol@example.org")
        assert active_topics(session, sent.ids["blok@example.org"]) == []
    assert (count(dovecot, "INBOX"), count(dovecot, "Verwerkt")) == (0, 5)
    again = fetch_killed_at(send_settings, dovecot, 0)
    assert again.stdout.splitlines() == [
        "0 messages: 0 hard, 0 soft, 0 blocked (0 unmatched), 0 unsubscribe mails, 0 ignored; "
        "0 moved to Verwerkt"]


def test_the_first_fetch_records_and_moves_what_it_handled(
        send_settings: Settings, sent: Sent, dovecot: Dovecot, invoke) -> None:  # type: ignore[no-untyped-def]
    first, second = sent.sends
    append(dovecot, bounce_of(sent, first, "weg@example.org", "5.1.1"),
           bounce_of(sent, second, "blok@example.org", "5.7.1", answer="550 5.7.1 blocked"),
           unsubscribe_mail(sent, first, "vol@example.org"))
    env = {"bounce_imap_url": dovecot.url(BOUNCES), "bounce_imap_password": PASSWORD}
    dry = invoke("bounces", "fetch", "--dry-run", **env)
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[-1] == (
        "3 messages: 1 hard, 0 soft, 1 blocked (0 unmatched), 1 unsubscribe mails, 0 ignored "
        "(dry run: nothing recorded or moved)")
    assert (count(dovecot, "INBOX"), count(dovecot, "Verwerkt")) == (3, None)

    result = invoke("bounces", "fetch", **env)
    assert result.exit_code == 0, result.output
    assert "INBOX/1: weg@example.org hard 5.1.1 (the server said no) -> suppressed" in result.output
    assert result.output.splitlines()[-1] == (
        "3 messages: 1 hard, 0 soft, 1 blocked (0 unmatched), 1 unsubscribe mails, 0 ignored; "
        "3 moved to Verwerkt")
    assert (count(dovecot, "INBOX"), count(dovecot, "Verwerkt")) == (0, 3)
    with session_scope(send_settings) as session:
        assert is_suppressed(session, "weg@example.org")
        assert not is_suppressed(session, "blok@example.org")
        assert active_topics(session, sent.ids["vol@example.org"]) == []


def test_a_message_that_cannot_be_read_is_left_in_the_folder_and_said_so(
        send_settings: Settings, sent: Sent, dovecot: Dovecot, invoke,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = sent.sends
    append(dovecot, letter().replace(b"Vraag", b"Kapot"),
           bounce_of(sent, first, "weg@example.org", "5.1.1"))
    parse = imap.parse_message

    def breaks_on_kapot(data: bytes) -> EmailMessage:  # a message the parser chokes on
        if b"Kapot" in data:
            raise ValueError("onleesbare MIME-structuur")
        return parse(data)

    monkeypatch.setattr(imap, "parse_message", breaks_on_kapot)
    result = invoke("bounces", "fetch", bounce_imap_url=dovecot.url(BOUNCES),
                    bounce_imap_password=PASSWORD)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("INBOX/1: left in the folder, cannot be read (ValueError: onleesbare "
                        "MIME-structuur)")
    assert "WARNING bounce mailbox: INBOX/1: left in the folder" in result.stderr
    assert lines[-1] == ("1 messages: 1 hard, 0 soft, 0 blocked (0 unmatched), 0 unsubscribe "
                         "mails, 0 ignored, 1 left in the folder (cannot be read); 1 moved to "
                         "Verwerkt")
    assert (count(dovecot, "INBOX"), count(dovecot, "Verwerkt")) == (1, 1)


@pytest.fixture
def no_move() -> Iterator[Dovecot]:
    """A Dovecot that does not offer MOVE (nor UIDPLUS), as older servers do."""
    yield from start_dovecot(settings="imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID IDLE")


def test_without_move_a_message_is_copied_flagged_and_expunged(
        send_settings: Settings, sent: Sent, no_move: Dovecot) -> None:
    first, _ = sent.sends
    append(no_move, bounce_of(sent, first, "weg@example.org", "5.1.1"), letter())
    done = "Afgehandeld & één"  # a name IMAP carries in modified UTF-7
    run = fetch_killed_at(send_settings, no_move, 0, MAILER_BOUNCE_IMAP_DONE_FOLDER=done)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].endswith(f"; 2 moved to {done}")
    assert (count(no_move, "INBOX"), count(no_move, done)) == (0, 2)
    assert b'"Afgehandeld &- &AOkA6Q-n"' in b" ".join(session_of(no_move).list()[1])
    assert b"MOVE" not in session_of(no_move).capability()[1][-1].split()
    append(no_move, letter())
    starttls = fetch_killed_at(send_settings, no_move, 0, MAILER_BOUNCE_IMAP_URL=no_move.url(
        BOUNCES, scheme="imap+starttls"))  # this server has no TLS at all
    assert (starttls.returncode, starttls.stderr) == (1, (
        f"error: IMAP server 127.0.0.1:{no_move.port}: does not offer STARTTLS, which "
        "imap+starttls:// asks for (imaps:// if it has TLS on a port of its own)\n"))
    assert count(no_move, "INBOX") == 1


@pytest.mark.parametrize("case", ["password", "folder", "closed port", "untrusted"])
def test_trouble_with_the_mailbox_is_one_line_and_loses_nothing(
        send_settings: Settings, sent: Sent, dovecot: Dovecot, case: str) -> None:
    first, _ = sent.sends
    append(dovecot, bounce_of(sent, first, "weg@example.org", "5.1.1"))
    port = str(dovecot.port)
    url, password, said = {
        "password": (dovecot.url(BOUNCES), "fout",
                     f"the IMAP server 127.0.0.1:{port} refused the log-in of "
                     f"'{BOUNCES}' ([AUTHENTICATIONFAILED] Authentication failed.)"),
        "folder": (dovecot.url(BOUNCES, "Weg"), PASSWORD,
                   f"IMAP server 127.0.0.1:{port}: cannot open the folder 'Weg' (is it there?): "
                   "Mailbox doesn't exist: Weg"),
        "closed port": (dovecot.url(BOUNCES).replace(port, "1"), PASSWORD,
                        "cannot reach the IMAP server at 127.0.0.1:1: Connection refused"),
        "untrusted": (dovecot.url(BOUNCES, scheme="imaps"), PASSWORD,
                      f"TLS with the IMAP server 127.0.0.1:{dovecot.tls_port} failed: "
                      "self-signed certificate"),
    }[case]
    run = subprocess.run([sys.executable, "-m", "mailer", "bounces", "fetch"], cwd=REPO,
                         env=environment(send_settings, dovecot, MAILER_BOUNCE_IMAP_URL=url,
                                         MAILER_BOUNCE_IMAP_PASSWORD=password),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    [line] = run.stderr.splitlines()
    assert line.startswith(f"error: {said}"), line
    assert count(dovecot, "INBOX") == 1
    with session_scope(send_settings) as session:
        assert not is_suppressed(session, "weg@example.org")


@pytest.mark.parametrize("scheme", ["imaps", "imap+starttls"])
def test_tls_and_starttls_with_a_trusted_certificate(
        send_settings: Settings, sent: Sent, dovecot: Dovecot, scheme: str) -> None:
    first, _ = sent.sends
    append(dovecot, bounce_of(sent, first, "weg@example.org", "5.1.1"))
    run = subprocess.run([sys.executable, "-m", "mailer", "bounces", "fetch"], cwd=REPO,
                         env=environment(send_settings, dovecot,
                                         MAILER_BOUNCE_IMAP_URL=dovecot.url(BOUNCES, scheme=scheme),
                                         SSL_CERT_FILE=str(dovecot.certificate)),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("1 messages: 1 hard")
    assert ", TLS, session=" in dovecot.log()
    assert count(dovecot, "Verwerkt") == 1


def test_the_scheduler_fetches_the_mailbox_and_a_failing_fetch_is_one_line(
        send_settings: Settings, sent: Sent, dovecot: Dovecot,
        caplog: pytest.LogCaptureFixture) -> None:
    first, _ = sent.sends
    append(dovecot, bounce_of(sent, first, "weg@example.org", "5.1.1"))
    settings = replace(send_settings, bounce_imap_url=dovecot.url(BOUNCES),
                       bounce_imap_password=PASSWORD, bounce_poll_seconds=120)
    scheduler = Scheduler(settings, lambda schedule: None, clock=FakeClock(), tick_seconds=15)
    caplog.set_level(logging.INFO, logger="mailer.schedule.scheduler")
    assert scheduler.tick() == 15
    scheduler.pool.shutdown(wait=True)
    assert count(dovecot, "Verwerkt") == 1
    with session_scope(settings) as session:
        assert is_suppressed(session, "weg@example.org")
    assert caplog.messages == ["bounce mailbox: 1 messages: 1 hard, 0 soft, 0 blocked (0 unmatched), "
                               "0 unsubscribe mails, 0 ignored; 1 moved to Verwerkt"]

    caplog.clear()
    failing = Scheduler(replace(settings, bounce_imap_password="fout"), lambda schedule: None,
                        clock=FakeClock())
    failing.tick()
    failing.pool.shutdown(wait=True)
    # (once a command has set up mailer's log handler, its filter masks the mailbox's address)
    assert [(r.levelname, mask(r.getMessage()).split(" (")[0]) for r in caplog.records] == [
        ("WARNING", f"bounce mailbox not fetched: the IMAP server 127.0.0.1:{dovecot.port} "
                    f"refused the log-in of '{mask(BOUNCES)}'")]
    assert caplog.records[0].exc_info is None


def test_the_scheduler_fetches_every_poll_seconds(settings: Settings) -> None:
    clock = FakeClock()
    scheduler = Scheduler(replace(settings, bounce_imap_url="imap://b@127.0.0.1/INBOX",
                                  bounce_poll_seconds=100),
                          lambda schedule: None, clock=clock, tick_seconds=15)
    fetched = []

    def fetch() -> None:  # in the pool, as the real one
        fetched.append(clock.now())
        scheduler.fetching = False

    scheduler.fetch_bounces = fetch  # type: ignore[method-assign]
    pauses = []
    for _ in range(8):
        pauses.append(scheduler.tick())
        wait_until(lambda: not scheduler.fetching, 10, "the fetch")
        clock.advance(pauses[-1])
    assert [(t - fetched[0]).total_seconds() for t in fetched] == [0, 100]
    assert pauses == [15, 15, 15, 15, 15, 15, 10, 15]


def test_folder_names_are_quoted_in_modified_utf7() -> None:
    assert quoted("Verwerkt") == '"Verwerkt"'
    assert quoted('Oud "spul" \\ & meer') == '"Oud \\"spul\\" \\\\ &- meer"'
    assert quoted("~peter/mail/台北/日本語") == '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'  # RFC 3501
