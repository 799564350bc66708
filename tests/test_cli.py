from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailer.cli.main import main
from mailer.db import head_revision

LISTS = Path(__file__).resolve().parent.parent / "lists"


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(main))


@pytest.mark.parametrize("path, command", COMMANDS,
                         ids=[" ".join(path) or "mailer" for path, _ in COMMANDS])
def test_every_command_has_help_with_an_example(path, command):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert command.help and "Example" in command.help, f"{' '.join(path)} has no example"


@pytest.fixture
def run(settings, monkeypatch):
    monkeypatch.setenv("MAILER_ROOT", str(settings.root))
    monkeypatch.setenv("MAILER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MAILER_SECRET_KEY", settings.secret_key)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_db_upgrade(run):
    result = run("db", "upgrade")
    assert result.exit_code == 0 and f"schema version {head_revision()}" in result.output


def test_import_export_show_find_remove(run, tmp_path):
    result = run("lists", "import", str(LISTS / "limburg.csv"), "--dry-run")
    assert result.exit_code == 0 and "5 new subscribers would be added" in result.output
    assert "limburg.csv: 5 rows; 5 new subscribers were added" in run(
        "lists", "import", str(LISTS / "limburg.csv")).output
    exported = run("lists", "export")
    assert exported.output.count("@example.org") == 5
    email = exported.stdout.splitlines()[1].split(",")[0]
    assert email in run("subscribers", "find", "example.org").output
    shown = json.loads(run("subscribers", "show", email.upper()).output)
    assert shown["email"] == email and shown["subscriptions"][0]["topic"] == "updates"
    assert "unsubscribed" in run("subscribers", "remove", email).output
    assert "1 left alone" in run("lists", "import", str(LISTS / "limburg.csv")).output
    assert "erased" in run("subscribers", "remove", email, "--erase").output
    missing = run("subscribers", "show", email)
    assert missing.exit_code == 1 and "no subscriber with address" in missing.output
    out = tmp_path / "out.csv"
    run("lists", "export", "--output", str(out))
    assert out.read_text().count("@example.org") == 4


def test_a_rejected_file_exits_1_with_every_line(run, write_csv):
    path = write_csv("email,region,audience\nbad,limburg,netwerk\nok@example.org,nowhere,netwerk\n")
    result = run("lists", "import", str(path))
    assert result.exit_code == 1
    assert "line 2: not a valid email address: 'bad'" in result.output
    assert "line 3: unknown region 'nowhere'" in result.output
    assert "nothing imported" in result.output


def test_purge_forgets_unconfirmed_sign_ups(run, engine):
    import datetime as dt

    from mailer.db import session_scope
    from mailer.models import utcnow
    from mailer.subscribers.subscriptions import Profile, request_subscription

    profile = Profile("", "", "limburg", "netwerk", ("updates",))
    with session_scope(engine, write=True) as session:
        old, _ = request_subscription(session, "old@example.org", profile, "web")
        old.confirm_sent_at = utcnow() - dt.timedelta(days=3)
        request_subscription(session, "new@example.org", profile, "web")
    assert "0 unconfirmed sign-ups older than 7 days purged" in run("subscribers", "purge").output
    result = run("subscribers", "purge", "--days", "2.5")
    assert result.output == "1 unconfirmed sign-ups older than 2.5 days purged\n"
    assert "new@example.org" in run("subscribers", "show", "new@example.org").output


def test_output_into_a_pipe_nobody_reads_stops_quietly(project):
    """`mailer build stalking | head -1`: once the reader has gone, the command stops with exit
    code 1, and says nothing of a bug (it used to ask for a bug report)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        done = subprocess.run([sys.executable, "-m", "mailer", "build", "stalking"], cwd=project.root,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""
    assert (project.root / "out" / "stalking" / "manifest.json").exists()  # the build itself ran
