"""A real send refuses while checks fail (unless forced, which is recorded); four eyes."""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from dataclasses import replace

import pytest
from sqlmodel import select

from mailer.accounts.roles import Person
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Schedule, Send
from mailer.schedule.scheduler import Request, fire, overview, plan, send_schedule
from mailer.send import approval
from mailer.send.approval import ApprovalError
from tests.conftest import add_subscriber, outbox
from tests.test_check import EXAMPLE_BLOCKS
from tests.test_send_cli import FORCE

DUE = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def sends(settings: Settings) -> list[Send]:
    with session_scope(settings) as session:
        return list(session.exec(select(Send)))


def test_a_real_send_refuses_with_the_failing_checks_and_force_is_recorded(  # type: ignore[no-untyped-def]
        run, send_settings: Settings) -> None:
    refused = run("send", "stalking", "--region", "limburg", "--offline", "--by", "anna")
    assert refused.exit_code == 1
    for where in EXAMPLE_BLOCKS:
        assert f"placeholders: content/stalking/{where}" in refused.output
    assert "--force" in refused.output
    assert sends(send_settings) == [] and not (send_settings.root / "out" / "outbox").exists()

    no_reason = run("send", "stalking", "--offline", "--force")
    assert no_reason.exit_code == 2 and "--force needs --reason" in no_reason.output

    forced = run("send", "stalking", "--region", "limburg", "--offline", "--by", "anna",
                 "--force", "--reason", "de redactie heeft de voorbeeldtekst goedgekeurd")
    assert forced.exit_code == 0, forced.output
    assert "Send 1: done; 2 recipients (2 sent)" in forced.output
    [send] = sends(send_settings)
    assert (send.created_by, send.forced_by) == ("anna", "anna")
    assert send.forced_reason == "de redactie heeft de voorbeeldtekst goedgekeurd"
    assert send.forced_checks.count("placeholders: ") == 5
    shown = run("sends", "show", "1").output
    assert "Forced past failing checks by anna: de redactie heeft" in shown
    assert "30-nieuw-werkproces-rotterdam.md:10" in shown


@pytest.fixture
def four_eyes(run, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAILER_APPROVAL_MODE", "required")
    monkeypatch.setenv("MAILER_APPROVAL_STAFF", "anna,bert")
    return run


def test_a_send_waits_for_approval_by_someone_else_and_shows_both_names(  # type: ignore[no-untyped-def]
        four_eyes, send_settings: Settings) -> None:
    run = four_eyes
    assert "not on the staff list" in run("send", "stalking", *FORCE[:-2], "--by", "carl").output
    created = run("send", "stalking", "--region", "limburg", *FORCE[:-2], "--by", "anna")
    assert created.exit_code == 0 and "waits for approval by someone other than anna" in created.output
    assert not (send_settings.root / "out" / "outbox").exists()

    held = run("sends", "resume", "1")
    assert held.exit_code == 1 and "send 1 does not start: not approved yet" in held.output
    own = run("sends", "approve", "1", "--by", "anna")
    assert own.exit_code == 1 and "someone else must approve it" in own.output
    assert run("sends", "approve", "1", "--by", "bert").exit_code == 0
    assert "Send 1: done; 2 recipients (2 sent)" in run("sends", "resume", "1").output
    assert len(outbox(send_settings)) == 2
    shown = run("sends", "show", "1").output
    assert re.search(r"created by anna at 20\S+ \S+ UTC; approved by bert at 20\S+ \S+ UTC", shown)
    assert "approve" in run("sends", "approve", "1", "--by", "bert").output  # started: refused


def test_editing_the_content_after_approval_makes_it_stale(four_eyes, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    run = four_eyes
    run("send", "stalking", "--region", "limburg", *FORCE[:-2], "--by", "anna")
    run("sends", "approve", "1", "--by", "bert")
    block = send_settings.content / "stalking" / "10-zorg-alleen-is-niet-voldoende.md"
    block.write_text(block.read_text("utf-8").replace("Zorg alleen", "Zorg al1een"), "utf-8")
    stale = run("sends", "resume", "1")
    assert stale.exit_code == 1 and "the approval by bert" in stale.output and "stale" in stale.output
    run("sends", "approve", "1", "--by", "bert")
    assert "Send 1: done" in run("sends", "resume", "1").output


@pytest.fixture
def site(send_settings: Settings) -> Settings:
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
    return replace(send_settings, approval_mode="required")


def fire_now(site: Settings, schedule_id: int, worker: str = "w1") -> str:
    stop = threading.Event()
    return fire(site, schedule_id, functools.partial(send_schedule, site, stop),
                now=DUE + dt.timedelta(minutes=1), worker=worker, stop=stop)


def test_a_schedule_fires_only_when_approved_once_and_not_after_an_edit(site: Settings) -> None:
    before = DUE - dt.timedelta(days=1)
    first, second = plan(site, [Request("stalking", DUE, ("limburg",), created_by="anna"),
                                Request("stalking", DUE, ("limburg",), created_by="anna")], before)

    assert fire_now(site, first.id) == "held"  # type: ignore[arg-type]
    with session_scope(site) as session:
        held = session.get(Schedule, first.id)
        assert held is not None and held.status == "planned" and held.send_id is None
        assert held.hold_reason == "not approved yet (approval is required)"
    [row, _] = overview(site, DUE + dt.timedelta(minutes=1))
    assert row.held and row.approval == "not approved yet (approval is required)"

    with pytest.raises(ApprovalError, match="someone else"):
        approval.approve(site, "schedule", first.id, Person("anna", "test"))
    approval.approve(site, "schedule", first.id, Person("bert", "test"))
    approval.approve(site, "schedule", second.id, Person("bert", "test"))
    assert fire_now(site, first.id) == "done"  # type: ignore[arg-type]
    assert fire_now(site, first.id, worker="w2") == "not due"  # type: ignore[arg-type]
    [send] = sends(site)
    assert (send.created_by, send.approved_by) == ("anna", "bert")
    assert len(outbox(site)) == 1

    block = site.content / "stalking" / "10-zorg-alleen-is-niet-voldoende.md"
    block.write_text(block.read_text("utf-8") + "\nNog een zin.\n", "utf-8")
    assert fire_now(site, second.id) == "held"  # type: ignore[arg-type]
    [_, row] = overview(site, DUE + dt.timedelta(minutes=1))
    assert row.held and "stale: the content changed since" in row.approval
    assert len(sends(site)) == 1 and len(outbox(site)) == 1


def test_the_approval_settings_read_a_toml_list_of_staff(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mailer.config import load_settings

    (tmp_path / "mailer.toml").write_text('[approval]\nmode = "required"\nstaff = ["anna", "bert"]\n')
    config = load_settings(tmp_path, environ={})
    assert approval.required(config) and approval.staff(config) == ["anna", "bert"]
    assert approval.person(config, "Bert").name == "Bert"
    with pytest.raises(ApprovalError, match="not on the staff list"):
        approval.person(config, "carl")
