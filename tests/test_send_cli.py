"""`mailer send` and `mailer sends …` through click, into the default Maildir outbox."""

from __future__ import annotations

import re

import pytest

from mailer.config import Settings
from tests.conftest import outbox

OUTBOX = "Written to the local outbox out/outbox/ (no SMTP host configured)"
FORCE = ("--offline", "--force", "--reason", "example text accepted for this test", "--by", "tester")


@pytest.mark.lowest
def test_dry_run_test_send_and_send(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    dry = run("send", "stalking", "--region", "limburg", "--dry-run")
    assert dry.exit_code == 0
    assert re.search(r"jan@example.org\tlimburg/netwerk\t\w+", dry.output)
    assert "2 recipients (dry run" in dry.output and not (send_settings.root / "out/outbox").exists()
    assert re.search(r"A real send would be refused: \d+ readiness check\(s\) fail; see "
                     r"`mailer check stalking`", dry.output), dry.output  # the example blocks

    test = run("send", "stalking", "--audience", "netwerk", "--test", "me@example.org")
    assert test.exit_code == 0 and test.output.count("[TEST] variant") == 2  # Rotterdam differs
    assert all(m["Subject"].startswith("[TEST]") for m in outbox(send_settings))
    assert OUTBOX in test.output

    sent = run("send", "stalking", "--region", "limburg", *FORCE)
    assert sent.exit_code == 0, sent.output
    assert "Send 1: done; 2 recipients (2 sent)" in sent.output and OUTBOX in sent.output
    assert len(outbox(send_settings)) == 4

    listed = run("sends", "list")
    assert "stalking" in listed.output and "limburg / all" in listed.output


def test_show_pause_cancel_resume_and_work(run, send_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    queued = run("send", "stalking", "--queue", *FORCE)
    assert "Send 1: running; 2 recipients (2 pending)" in queued.output
    assert run("sends", "pause", "1").exit_code == 0
    assert "paused by hand" in run("sends", "list").output
    resumed = run("sends", "resume", "1")
    assert "Send 1: done; 2 recipients (2 sent)" in resumed.output
    refused = run("sends", "cancel", "1")
    assert refused.exit_code == 1 and "already done" in refused.output
    assert run("sends", "work", "1").exit_code == 1  # not running any more

    report = tmp_path / "report.html"
    shown = run("sends", "show", "1", "--html", str(report))
    assert shown.exit_code == 0 and "limburg/beleidsmakers" in shown.output
    page = report.read_text()
    assert "<svg" in page and "limburg/netwerk" in page
    assert re.search(r'>sent</text>\s*<rect x="80" y="0" width="370" height="22" fill="#2f8132"/>',
                     page), "one full-length bar for the sent messages"
    assert not re.search(r'(src|href)="https?:', page), "no external assets"

    run("send", "stalking", "--queue", *FORCE)
    assert run("sends", "cancel", "2").output == "Send 2 cancelled.\n"
    assert "status cancelled" in run("sends", "show", "2").output
    assert run("sends", "work").exit_code == 0  # nothing running: nothing to do


def test_sends_list_without_sends_says_how_to_start_one(run) -> None:  # type: ignore[no-untyped-def]
    listed = run("sends", "list")
    assert listed.exit_code == 0
    assert listed.output == "No sends yet. Start one with `mailer send THEME`.\n"
