"""Two scheduler processes on one PostgreSQL database: every due send starts exactly once."""

from __future__ import annotations

import collections
import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import select

from mailer.db import session_scope
from mailer.models import Schedule, utcnow
from mailer.schedule.scheduler import Request, plan
from tests.conftest import POSTGRES_SKIP, REPO

pytestmark = pytest.mark.skipif(bool(POSTGRES_SKIP), reason=POSTGRES_SKIP)

# A scheduler whose starter writes the schedule id to a shared log instead of sending.
SCHEDULER = """
import signal, sys, time
from pathlib import Path
from mailer.config import Settings
from mailer.schedule.scheduler import Scheduler

root, url, log = sys.argv[1:]

def start(schedule):
    with open(log, "a") as out:
        out.write(f"{schedule.id}\\n")
    time.sleep(0.2)

scheduler = Scheduler(Settings(root=Path(root), database_url=url), start, tick_seconds=0.5)
signal.signal(signal.SIGTERM, lambda *_: scheduler.stop.set())
print("ready", flush=True)
scheduler.run()
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_each_due_send_starts_exactly_once(settings, engine, tmp_path):
    now = utcnow()
    overdue = [Request("stalking", now - dt.timedelta(hours=1)) for _ in range(6)]
    soon = [Request("stalking", now + dt.timedelta(seconds=4)) for _ in range(6)]
    ids = [s.id for s in plan(settings, overdue + soon, now)]
    log = tmp_path / "starts.log"
    workers = [subprocess.Popen([sys.executable, "-c", SCHEDULER, str(tmp_path), settings.database_url,
                                 str(log)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        # Each says ready once its SIGTERM handler is in place; then the sends may as well start.
        assert [worker.stdout.readline() for worker in workers] == ["ready\n", "ready\n"]  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                statuses = set(session.exec(select(Schedule.status)))
            if statuses == {"done"}:
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30) for worker in workers]
    assert statuses == {"done"}, outputs
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert all("Traceback" not in err for _, err in outputs), outputs
    starts = collections.Counter(int(line) for line in log.read_text().split())
    assert starts == dict.fromkeys(ids, 1)
