"""Webhooks: events written to the outbox with their cause, posted signed (Standard Webhooks) to
a real receiver on loopback, late but once when it was down, and nothing lost to a kill."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from standardwebhooks.webhooks import Webhook

from mailer.accounts import api_tokens
from mailer.audit import command_line
from mailer.bounces.processing import process
from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.events import EVENTS
from mailer.models import AuditEvent, Subscriber, WebhookMessage, utcnow
from mailer.send import runner as sending
from mailer.subscribers.subscriptions import (
    Profile,
    confirm,
    erase,
    request_subscription,
    unsubscribe,
    update_preferences,
)
from mailer.subscribers.tokens import Claim, make_token, read_token, unsubscribe_url
from mailer.transport.transports import MemoryTransport
from mailer.web.app import create_app
from mailer.webhooks import endpoints
from mailer.webhooks.delivery import Deliverer, deliver_due, new_client
from tests.browser import serve
from tests.conftest import REPO, add_subscriber
from tests.smtp_server import free_port
from tests.test_bounces_db import dsn
from tests.test_send_cli import FORCE

ADDRESS = "anouk@example.org"
ME = command_line("tester")


@dataclass
class Post:
    """One request as the receiver got it; `status` is its answer (0 while it waits)."""

    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP receiver on a loopback port, started and stopped at will (stopped, the port
    refuses connections). It answers `status`; while `hold` is clear it holds each request."""

    port: int = field(default_factory=free_port)
    status: int = 200
    posts: list[Post] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.hold.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mailer"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                post = Post({k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append(post)
                receiver.hold.wait(60)
                post.status = receiver.status
                try:
                    self.send_response(post.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the worker that posted was killed meanwhile
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.hold.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answered(self, status: int = 200) -> list[Post]:
        return [p for p in self.posts if p.status == status]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def messages(settings: Settings) -> list[WebhookMessage]:
    with session_scope(settings) as session:
        return list(session.exec(select(WebhookMessage).order_by(WebhookMessage.id)))


def verified(post: Post, secret: str) -> dict:
    """The event, after the standardwebhooks library checked its signature."""
    return Webhook(secret).verify(post.body, post.headers)


def public_id_of(settings: Settings, subscriber_id: int) -> str:
    with session_scope(settings) as session:
        person = session.get(Subscriber, subscriber_id)
        assert person is not None
        return person.public_id


def one_click(settings: Settings, public_id: str) -> Claim:
    """Whom a one-click link's token names, as the web app reads it."""
    return read_token(settings, make_token(settings, public_id, "unsubscribe"), "unsubscribe")


# --- the outbox: what each act writes, in its transaction ------------------------------------


def test_each_act_writes_its_event_for_the_receivers_that_take_it(settings: Settings) -> None:
    api_tokens.add(settings, ME, "crm-reads", ["subscribers:read"])
    api_tokens.add(settings, ME, "crm-sends", ["sends:read"])
    everything = endpoints.add(settings, ME, "https://crm.example.org/a", list(EVENTS), "all",
                               token="crm-sends")  # a token that may not read subscribers
    named = endpoints.add(settings, ME, "https://crm.example.org/b", ["subscriber.confirmed"],
                          "named", token="crm-reads")
    endpoints.add(settings, ME, "https://crm.example.org/c", ["send.started"], "sends")
    profile = Profile("Anouk", "Veilig Thuis", "limburg", "netwerk", ("updates", "verdiepingen"))
    with session_scope(settings, write=True) as session:
        sign_up = request_subscription(session, ADDRESS, profile, "web")
        assert sign_up is not None
        person = confirm(session, sign_up.subscriber.id, sign_up.nonce)
        public_id, person_id = person.public_id, person.id
    confirmed = {m.endpoint_id: json.loads(m.payload) for m in messages(settings)}
    assert len(confirmed) == 2 and confirmed.pop(everything.id) == {
        "type": "subscriber.confirmed", "timestamp": confirmed[named.id]["timestamp"],
        "data": {"public_id": public_id, "region": "limburg", "audience": "netwerk",
                 "topics": ["updates", "verdiepingen"]}}
    assert confirmed[named.id]["data"]["email"] == ADDRESS

    with session_scope(settings, write=True) as session:  # the preferences page drops a topic
        update_preferences(session, person_id, Profile("Anouk", "", "limburg", "netwerk",
                                                       ("verdiepingen",)))
    for topic in ("verdiepingen", "verdiepingen", None, None):  # each a second time: no change
        with session_scope(settings, write=True) as session:
            unsubscribe(session, one_click(settings, public_id), topic)
    left = [json.loads(m.payload) for m in messages(settings) if m.event == "subscriber.unsubscribed"]
    assert [e["data"]["topic"] for e in left] == ["updates", "verdiepingen", None]
    assert {e["type"] for e in left} == {"subscriber.unsubscribed"}
    assert {e["data"]["public_id"] for e in left} == {public_id}

    with session_scope(settings, write=True) as session:
        erase(session, person_id)
    rows = messages(settings)
    assert [m.event for m in rows] == ["subscriber.confirmed", *["subscriber.unsubscribed"] * 3,
                                       "subscriber.erased"]
    assert all(ADDRESS not in m.payload for m in rows), "an erased address stays in the outbox"
    assert len({m.msg_id for m in rows}) == 5 and all(m.msg_id.startswith("msg_") for m in rows)


def test_an_act_that_rolls_back_leaves_no_event(settings: Settings) -> None:
    endpoints.add(settings, ME, "https://crm.example.org/a", ["subscriber.unsubscribed"], "crm")
    with session_scope(settings, write=True) as session:
        person = add_subscriber(session, ADDRESS)
    with pytest.raises(RuntimeError), session_scope(settings, write=True) as session:
        unsubscribe(session, person)
        raise RuntimeError("the act fails after the unsubscribe")
    assert messages(settings) == []


# --- a one-click POST to `mailer serve` reaches a real receiver, signed ----------------------


def test_a_one_click_unsubscribe_reaches_the_receiver_signed(
        invoke, send_settings: Settings, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    added = invoke("webhooks", "add", receiver.url, "--event", "subscriber.unsubscribed",
                   "--name", "crm")
    assert added.exit_code == 0, added.output
    secret = added.output.splitlines()[-1]
    assert secret.startswith("whsec_")
    with session_scope(send_settings, write=True) as session:
        person = add_subscriber(session, ADDRESS)
    public_id = public_id_of(send_settings, person)
    with serve(create_app(send_settings)) as base:
        path = unsubscribe_url(send_settings, public_id).removeprefix(send_settings.public_base_url)
        answer = httpx.post(base + path, content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200
        wait_for(lambda: receiver.answered())
        again = httpx.post(base + path, data={"List-Unsubscribe": "One-Click"})  # a mail client's retry
        assert again.status_code == 200
        time.sleep(2.5)  # the worker looks every second: a second event would have come
    [post] = receiver.posts
    event = verified(post, secret)
    assert event["type"] == "subscriber.unsubscribed"
    assert event["data"] == {"public_id": public_id, "topic": None}
    assert dt.datetime.fromisoformat(event["timestamp"]) <= utcnow()
    assert b"@" not in post.body and ADDRESS not in json.dumps(dict(post.headers))
    assert post.headers["webhook-id"].startswith("msg_")
    assert post.headers["content-type"] == "application/json"
    [row] = messages(send_settings)
    assert (row.msg_id, row.attempts, row.next_attempt_at) == (post.headers["webhook-id"], 1, None)
    assert row.delivered_at is not None
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoints.new_secret()).verify(post.body, post.headers)


# --- a receiver that is down, a worker that is killed ----------------------------------------


def test_a_receiver_down_for_a_while_gets_the_event_once_late(settings: Settings) -> None:
    receiver = Receiver()  # not started: the port refuses connections
    endpoint = endpoints.add(settings, ME, receiver.url, ["subscriber.erased"], "crm")
    with session_scope(settings, write=True) as session:
        person = add_subscriber(session, ADDRESS)
    worker = Deliverer(settings, poll=0.1)
    worker.start()
    try:
        with session_scope(settings, write=True) as session:
            erase(session, person)
        erased_at = time.monotonic()
        wait_for(lambda: messages(settings)[0].attempts == 1)
        assert "ConnectError" in messages(settings)[0].last_error
        receiver.start()
        wait_for(lambda: receiver.posts)
        late = time.monotonic() - erased_at
        time.sleep(1.0)
    finally:
        worker.close()
        receiver.stop()
    [post] = receiver.posts
    assert verified(post, endpoint.secret)["type"] == "subscriber.erased"
    assert 4.0 < late < 15.0, "the first retry comes within seconds"
    [row] = messages(settings)
    assert row.attempts == 2 and row.delivered_at is not None


SCHEDULER = [sys.executable, "-m", "mailer", "scheduler", "--offline"]
# A worker whose claims run out after 2 seconds, so a killed one's message comes back soon.
QUICK_WORKER = """
import datetime as dt, sys
from pathlib import Path
from mailer.config import Settings
from mailer.webhooks.delivery import Deliverer
root, url = sys.argv[1:]
print("ready", flush=True)
Deliverer(Settings(root=Path(root), database_url=url), claim_for=dt.timedelta(seconds=2),
          poll=0.2).run()
"""


def started(command: list[str], settings: Settings) -> subprocess.Popen:
    env = {**os.environ, "MAILER_ROOT": str(settings.root), "MAILER_DATABASE_URL": settings.database_url,
           "MAILER_SECRET_KEY": settings.secret_key}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline(), process.communicate()
    return process


def killed(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def test_a_scheduler_killed_while_the_receiver_is_down_loses_nothing(
        settings: Settings, receiver: Receiver) -> None:
    endpoint = endpoints.add(settings, ME, receiver.url, ["subscriber.unsubscribed"], "crm")
    with session_scope(settings, write=True) as session:
        person = add_subscriber(session, ADDRESS)
    receiver.status = 503
    first = started(SCHEDULER, settings)
    try:
        with session_scope(settings, write=True) as session:
            unsubscribe(session, person)
        wait_for(lambda: messages(settings)[0].attempts == 1)  # failed, and waiting its retry
    finally:
        killed(first)
    receiver.status = 200
    second = started(SCHEDULER, settings)
    try:
        wait_for(lambda: receiver.answered(200))
        time.sleep(1.5)
    finally:
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=30)
    assert "Traceback" not in errors, errors
    assert [p.status for p in receiver.posts] == [503, 200]
    assert len({p.headers["webhook-id"] for p in receiver.posts}) == 1
    assert verified(receiver.posts[-1], endpoint.secret)["type"] == "subscriber.unsubscribed"
    [row] = messages(settings)
    assert row.attempts == 2 and row.delivered_at is not None and row.last_error == ""


def test_a_worker_killed_in_the_middle_of_a_post_loses_nothing(
        settings: Settings, receiver: Receiver) -> None:
    endpoint = endpoints.add(settings, ME, receiver.url, ["subscriber.unsubscribed"], "crm")
    with session_scope(settings, write=True) as session:
        person = add_subscriber(session, ADDRESS)
    receiver.status = 503
    receiver.hold.clear()  # the post waits for an answer …
    command = [sys.executable, "-c", QUICK_WORKER, str(settings.root), settings.database_url]
    first = started(command, settings)
    try:
        with session_scope(settings, write=True) as session:
            unsubscribe(session, person)
        wait_for(lambda: receiver.posts)
    finally:
        killed(first)  # … while its worker is killed: claimed, and never recorded
    receiver.hold.set()
    wait_for(lambda: receiver.answered(503))
    receiver.status = 200
    second = started(command, settings)
    try:
        wait_for(lambda: receiver.answered(200))
        time.sleep(1.0)
    finally:
        killed(second)
    assert [p.status for p in receiver.posts] == [503, 200]
    assert len({p.headers["webhook-id"] for p in receiver.posts}) == 1
    assert verified(receiver.posts[-1], endpoint.secret)["data"]["topic"] is None
    [row] = messages(settings)
    assert row.attempts == 1 and row.delivered_at is not None


def test_two_workers_post_each_message_once(settings: Settings, receiver: Receiver) -> None:
    endpoints.add(settings, ME, receiver.url, ["subscriber.erased"], "one")
    endpoints.add(settings, ME, receiver.url.replace("mailer", "other"), ["subscriber.erased"], "two")
    with session_scope(settings, write=True) as session:
        people = [add_subscriber(session, f"p{n}@example.org") for n in range(15)]
    with session_scope(settings, write=True) as session:
        for person in people:
            erase(session, person)
    workers = [Deliverer(settings, poll=0.05) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(receiver.answered()) >= 30)
        time.sleep(1.0)
    finally:
        for worker in workers:
            worker.close()
    ids = [p.headers["webhook-id"] for p in receiver.posts]
    assert len(ids) == len(set(ids)) == 30


def test_a_message_is_given_up_a_day_after_its_event(settings: Settings, receiver: Receiver) -> None:
    endpoints.add(settings, ME, receiver.url, ["subscriber.erased"], "crm")
    with session_scope(settings, write=True) as session:
        people = [add_subscriber(session, f"p{n}@example.org") for n in range(3)]
        for person in people:
            erase(session, person)
    old = utcnow() - dt.timedelta(hours=25)
    with session_scope(settings, write=True) as session:
        for row in session.exec(select(WebhookMessage).order_by(WebhookMessage.id).limit(2)):
            row.created_at = old
            session.add(row)
    receiver.status = 503
    with new_client() as client:
        deliver_due(get_engine(settings), client)
    rows = messages(settings)
    # the first failure gives up every message older than a day; the newer one waits its retry
    assert len(receiver.posts) == 1
    assert [r.gave_up_at is not None for r in rows] == [True, True, False]
    assert rows[1].last_error == "never tried: the receiver kept failing"
    assert rows[2].attempts == 0 and rows[2].next_attempt_at is not None
    [listed] = endpoints.listing(settings)
    assert (listed.pending, listed.failed, listed.last_error) == (1, 2, "HTTP 503 Service Unavailable")


# --- sends and bounces -------------------------------------------------------------------------


def test_a_real_send_tells_it_started_and_finished(run, send_settings: Settings,  # type: ignore[no-untyped-def]
                                                   receiver: Receiver) -> None:
    added = run("webhooks", "add", receiver.url, "--event", "send.started", "--event",
                "send.finished", "--event", "send.paused", "--name", "crm")
    secret = added.output.splitlines()[-1]
    sent = run("send", "stalking", "--region", "limburg", *FORCE)
    assert sent.exit_code == 0, sent.output
    queued = re.search(r"Send (\d+): running", run("send", "stalking", "--queue", *FORCE).output)
    assert queued is not None
    assert run("sends", "pause", queued[1]).exit_code == 0
    assert run("sends", "resume", queued[1]).exit_code == 0
    with new_client() as client:
        deliver_due(get_engine(send_settings), client)
    events = [verified(p, secret) for p in receiver.posts]
    assert [e["type"] for e in events] == ["send.started", "send.finished", "send.started",
                                           "send.paused", "send.started", "send.finished"]
    started_, finished, _, paused, resumed, _ = (e["data"] for e in events)
    assert started_["theme"] == "stalking" and started_["regions"] == ["limburg"]
    assert (started_["recipients"], started_["resumed"]) == (2, False)
    assert finished["send_id"] == started_["send_id"] and finished["counts"] == {"sent": 2}
    assert paused["send_id"] == int(queued[1]) and paused["reason"] == "paused by hand"
    assert (resumed["send_id"], resumed["resumed"]) == (int(queued[1]), True)
    assert all(b"@" not in p.body for p in receiver.posts)


def test_a_hard_bounce_tells_whose_address_bounced(send_settings: Settings, receiver: Receiver,
                                                   tmp_path: Path) -> None:
    endpoint = endpoints.add(send_settings, ME, receiver.url, ["bounce.hard"], "crm")
    with session_scope(send_settings, write=True) as session:
        person = add_subscriber(session, "weg@example.org", topics=("verdiepingen",))
        add_subscriber(session, "vol@example.org", topics=("verdiepingen",))
    transport = MemoryTransport()
    send_id = sending.create_send(send_settings, "stalking")
    sending.run_send(send_settings, send_id, transport=transport)
    bounced = {m.recipient: m for m in transport.sent}
    box = tmp_path / "bounces"
    box.mkdir()
    for n, (address, status) in enumerate((("weg@example.org", "5.1.1"),
                                           ("vol@example.org", "4.2.2")), 1):
        message = bounced[address]
        (box / f"{n}.eml").write_bytes(dsn(address, status, message.message_id, to=message.sender))
    process(send_settings, box)
    with new_client() as client:
        deliver_due(get_engine(send_settings), client)
    [post] = receiver.posts  # the soft bounce tells nobody
    event = verified(post, endpoint.secret)
    assert event["type"] == "bounce.hard"
    assert event["data"] == {"public_id": public_id_of(send_settings, person), "status": "5.1.1",
                             "send_id": send_id}
    assert b"@" not in post.body


def test_a_dead_receiver_does_not_slow_a_send_or_an_unsubscribe(
        run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    run("build", "stalking")
    began = time.monotonic()
    assert run("send", "stalking", *FORCE).exit_code == 0
    alone = time.monotonic() - began
    with socket.socket() as blackhole:  # takes connections and never answers
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)
        url = f"http://127.0.0.1:{blackhole.getsockname()[1]}/"
        args = [a for event in EVENTS for a in ("--event", event)]
        assert run("webhooks", "add", url, *args, "--name", "dead").exit_code == 0
        worker = Deliverer(send_settings, poll=0.05)
        worker.start()
        try:
            began = time.monotonic()
            assert run("send", "stalking", *FORCE).exit_code == 0
            beside_dead = time.monotonic() - began
            with session_scope(send_settings, write=True) as session:
                person = session.exec(select(Subscriber.id)).first()
                began = time.monotonic()
                unsubscribe(session, person)
            leaving = time.monotonic() - began
            waiting = [m for m in messages(send_settings) if m.delivered_at is None]
        finally:
            blackhole.close()  # the worker's post in flight fails now instead of timing out
            worker.close()
    assert beside_dead < alone * 1.5 + 1.0, (alone, beside_dead)
    assert leaving < 1.0
    assert {m.event for m in waiting} == {"send.started", "send.finished", "subscriber.unsubscribed"}


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://crm.example.org/hooks", "http://192.0.2.7/hooks",
                                 "ftp://crm.example.org/", "crm.example.org/hooks", "https://"])
def test_a_url_that_is_not_https_or_loopback_is_refused(invoke, url: str) -> None:  # type: ignore[no-untyped-def]
    result = invoke("webhooks", "add", url, "--event", "bounce.hard")
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "https://" in result.output
    assert "whsec_" not in result.output
    assert "no receivers" in invoke("webhooks", "list").output


@pytest.mark.parametrize("url", ["https://crm.example.org/hooks", "http://127.0.0.1:8080/hooks",
                                 "http://[::1]/hooks", "http://localhost:9000/"])
def test_https_or_loopback_urls_are_taken(plain_settings: Settings, url: str) -> None:
    assert endpoints.url_problem(url) == ""


def test_list_test_and_remove_receivers(invoke, send_settings: Settings,  # type: ignore[no-untyped-def]
                                        receiver: Receiver) -> None:
    unknown = invoke("webhooks", "add", receiver.url, "--event", "bounce.hard", "--token", "crm")
    assert unknown.exit_code == 1 and "there is no API token 'crm'" in unknown.output
    assert invoke("tokens", "add", "crm", "--scope", "subscribers:read").exit_code == 0
    added = invoke("webhooks", "add", receiver.url, "--event", "bounce.hard", "--event",
                   "subscriber.confirmed", "--token", "crm", "--by", "anna")
    assert added.exit_code == 0 and "Receiver 127.0.0.1 added" in added.output
    secret = added.output.splitlines()[-1]
    again = invoke("webhooks", "add", receiver.url, "--event", "bounce.hard")
    assert again.exit_code == 1 and "already a receiver '127.0.0.1'" in again.output

    tested = invoke("webhooks", "test", "127.0.0.1")
    assert tested.exit_code == 0 and "answered HTTP 200" in tested.output
    event = verified(receiver.posts[0], secret)
    assert event["type"] == "webhook.test" and event["data"] == {"name": "127.0.0.1"}

    [listed] = json.loads(invoke("webhooks", "list", "--json").output)
    assert listed["events"] == ["bounce.hard", "subscriber.confirmed"] and listed["token"] == "crm"
    assert (listed["pending"], listed["failed"]) == (0, 0) and "secret" not in listed
    assert secret not in invoke("webhooks", "list").output

    receiver.status = 500
    failed = invoke("webhooks", "test", "127.0.0.1")
    assert failed.exit_code == 1 and "HTTP 500" in failed.output

    removed = invoke("webhooks", "remove", "127.0.0.1", "--by", "anna")
    assert removed.exit_code == 0
    assert invoke("webhooks", "remove", "127.0.0.1").exit_code == 1
    with session_scope(send_settings) as session:
        trail = [(e.action, e.actor, e.subject) for e in session.exec(select(AuditEvent))
                 if e.action.startswith("webhook.")]
    assert trail == [("webhook.added", "anna", "webhook 127.0.0.1"),
                     ("webhook.removed", "anna", "webhook 127.0.0.1")]


def test_once_accounts_exist_only_an_admin_manages_receivers(invoke, send_settings: Settings
                                                             ) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from mailer.accounts import users
    from mailer.cli.main import main

    password = "Paardenbloem-Zeilboot-Kwartel-42"
    users.add(send_settings, ME, "beheer", "admin", password=password)
    users.add(send_settings, ME, "schrijver", "writer", password=password)
    args = ["webhooks", "add", "https://crm.example.org/h", "--event", "bounce.hard",
            "--password-stdin", "--by"]
    refused = CliRunner().invoke(main, [*args, "schrijver"], input=password + "\n")
    assert refused.exit_code == 1 and "may not manage accounts" in refused.output
    allowed = CliRunner().invoke(main, [*args, "beheer"], input=password + "\n")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.splitlines()[-1].startswith("whsec_")
