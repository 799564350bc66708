"""A planned send goes out through a real `mailer scheduler` process and a real SMTP server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlmodel import select

from mailer.cli.main import main
from mailer.db import session_scope
from mailer.message.dkimkeys import generate_key
from mailer.models import Schedule
from tests.conftest import REPO, add_subscriber


def schedule_status(project) -> str:
    with session_scope(project) as session:
        return session.exec(select(Schedule.status)).one()


def test_a_planned_send_goes_out_once_and_the_scheduler_stops_cleanly(project, smtp_server):
    # Ready to send, as the scheduler checks like `mailer send`: no example blocks, signed.
    for block in (project.content / "stalking").glob("*.md"):
        block.write_text(block.read_text("utf-8").replace("example: true\n", ""), "utf-8")
    generate_key(project.root / "dkim.pem")
    with session_scope(project) as session:
        for name in ("anna", "bram"):
            add_subscriber(session, f"{name}@example.org", region="oost-nederland",
                           topics=("verdiepingen",))
        add_subscriber(session, "carla@example.org", region="limburg", topics=("verdiepingen",))
    at = dt.datetime.now(ZoneInfo("Europe/Amsterdam")) + dt.timedelta(seconds=3)
    planned = CliRunner().invoke(main, ["schedule", "stalking", "--at", at.strftime("%Y-%m-%d %H:%M:%S"),
                                        "--region", "oost-nederland"])
    assert planned.exit_code == 0 and "2 recipients now" in planned.output, planned.output

    env = {**os.environ, "MAILER_ROOT": str(project.root), "MAILER_SMTP_HOST": smtp_server.host,
           "MAILER_SMTP_PORT": str(smtp_server.port), "MAILER_SMTP_SECURITY": "none",
           "MAILER_DKIM_SELECTOR": "nieuws2026", "MAILER_DKIM_DOMAIN": "veiligheidvoorop.nl",
           "MAILER_DKIM_KEY_FILE": "dkim.pem", "PYTHONPATH": str(REPO)}
    scheduler = subprocess.Popen([sys.executable, "-m", "mailer", "scheduler", "--offline"], env=env,
                                 cwd=project.root,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        received = smtp_server.wait_for(2, timeout=60)  # the checks of `mailer send` run first
        deadline = time.monotonic() + 30
        while schedule_status(project) != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=30)
    # The process is gone: whatever it would have sent twice or wrongly has arrived by now.
    assert scheduler.returncode == 0, output
    assert "SIGTERM: stopping" in output and output.rstrip().endswith("Scheduler stopped."), output
    assert "Traceback" not in output, output
    recipients = sorted(r for message in smtp_server.messages for r in message.recipients)
    assert recipients == ["anna@example.org", "bram@example.org"]
    subjects = {email.message_from_bytes(m.data, policy=email.policy.default)["Subject"] for m in received}
    assert subjects == {"Thematische verdieping: (Ex-)Partnerstalking"}
    with session_scope(project) as session:
        [schedule] = session.exec(select(Schedule))
    assert schedule.status == "done" and schedule.send_id is not None
