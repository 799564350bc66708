"""The one gate before a send: a send builds once and runs the preflight once, from the CLI as
from the scheduler, and sends exactly the build that was checked."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Callable

import pytest

import mailer.cli.main  # noqa: F401  every command, so every module that holds the functions
import mailer.schedule.scheduler  # noqa: F401
from mailer.builds import builder
from mailer.check.gate import SendChecks, gate
from mailer.config import Settings
from mailer.db import session_scope
from mailer.schedule.scheduler import Request, Scheduler, plan
from mailer.send import preflight, runner
from mailer.send.runner import SendError
from tests.conftest import add_subscriber, outbox
from tests.fake_clock import FakeClock

FORCE = ("--offline", "--force", "--reason", "example text accepted for this test", "--by", "tester")
DUE = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
# What is counted does not depend on the database; SpamAssassin's seconds once per test.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often `build` and `preflight` run, counted wherever a module of mailer holds them."""
    counted: Counter[str] = Counter()

    def count(function: Callable[..., object]) -> None:
        def counting(*args: object, **kwargs: object) -> object:
            counted[function.__name__] += 1
            return function(*args, **kwargs)

        for module in [m for name, m in sys.modules.items() if name.startswith("mailer")]:
            for name, value in list(vars(module).items()):
                if value is function:
                    monkeypatch.setattr(module, name, counting)

    count(builder.build)
    count(preflight.preflight)
    return counted


def test_a_send_builds_once_and_runs_the_preflight_once(run, send_settings: Settings,
                                                        calls: Counter[str]) -> None:  # type: ignore[no-untyped-def]
    sent = run("send", "stalking", "--region", "limburg", *FORCE)
    assert sent.exit_code == 0 and "Send 1: done; 2 recipients (2 sent)" in sent.output, sent.output
    assert calls == {"build": 1, "preflight": 1}
    assert len(outbox(send_settings)) == 2


def test_a_dry_run_builds_once_and_runs_the_preflight_once(run, calls: Counter[str]) -> None:  # type: ignore[no-untyped-def]
    dry = run("send", "stalking", "--region", "limburg", "--dry-run", "--offline")
    assert dry.exit_code == 0 and "2 recipients (dry run" in dry.output, dry.output
    assert calls == {"build": 1, "preflight": 1}


def test_a_scheduled_send_builds_once_and_runs_the_preflight_once(send_settings: Settings,
                                                                  calls: Counter[str]) -> None:
    for block in (send_settings.content / "stalking").glob("*.md"):  # ready: no example blocks
        block.write_text(block.read_text("utf-8").replace("example: true\n", ""), "utf-8")
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "anna@example.org", "limburg", "netwerk", ("verdiepingen",), "Anna")
    [schedule] = plan(send_settings, [Request("stalking", DUE, ("limburg",))],
                      DUE - dt.timedelta(days=1))
    calls.clear()  # planning checks that the theme builds
    scheduler = Scheduler(send_settings, checks=SendChecks(send_settings, offline=True),
                          clock=FakeClock(DUE))
    assert scheduler.fire(schedule.id) == "done"  # type: ignore[arg-type]
    assert calls == {"build": 1, "preflight": 1}
    assert [m["To"] for m in outbox(send_settings)] == ["Anna <anna@example.org>"]


def test_a_build_changed_after_the_gate_is_not_sent(send_settings: Settings) -> None:
    checked = gate(send_settings, "stalking", offline=True)
    send_id = runner.create_send(send_settings, checked.manifest, ["limburg"])
    variant = checked.manifest.segments["limburg/netwerk"]
    html = send_settings.out / "stalking" / variant.html
    html.write_text(html.read_text("utf-8") + "<!-- rebuilt -->", "utf-8")
    with pytest.raises(SendError, match="stalking was rebuilt after its checks"):
        runner.snapshot_send(send_settings, send_id, checked.manifest)
    assert runner.summary(send_settings, send_id).status == "planned"
