"""Bad input through every command ends in one `error: …` message and exit code 1, never a
traceback; an unexpected exception is shown as a bug, with its traceback."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailer import errors
from mailer.cli.main import main
from mailer.config import Settings

REPO = Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql+psycopg://mailer:geheim@127.0.0.1:1/mailer"
LATER = "2099-12-01 09:00"


def mailer(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})


def assert_clean_error(result: Result, *expected: str) -> str:
    """Exit code 1, `error: …` on stderr naming what is expected, and no traceback."""
    assert not isinstance(result.exception, Exception), result.exception  # no unexpected exception
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def one_line(result: Result) -> str:
    message = assert_clean_error(result)
    assert len(message.strip().splitlines()) == 1, message
    return message


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


THEMES = [
    ("build", "{theme}"),
    ("preview", "{theme}"),
    ("send", "{theme}", "--dry-run"),
    ("send", "{theme}"),
    ("schedule", "{theme}", "--at", LATER),
    ("partners", "suggest", "{theme}"),
]


@pytest.mark.parametrize("theme", ["nergens", "leeg"])
@pytest.mark.parametrize("args", THEMES, ids=" ".join)
def test_unknown_and_missing_themes(project: Settings, args: tuple[str, ...], theme: str) -> None:
    (project.content / "leeg").mkdir()  # a theme folder without its mailing.yaml
    assert_clean_error(mailer(*(a.format(theme=theme) for a in args)), theme)


@pytest.mark.parametrize("args", [
    ("sends", "show", "99"), ("sends", "pause", "99"), ("sends", "resume", "99"),
    ("sends", "cancel", "99"), ("sends", "work", "99"),
    ("schedule", "cancel", "99"), ("schedule", "move", "99", "--at", LATER),
], ids=" ".join)
def test_unknown_send_and_schedule_ids(project: Settings, args: tuple[str, ...]) -> None:
    assert_clean_error(mailer(*args), "99", "list` shows")


@pytest.mark.parametrize(("args", "expected"), [
    (("subscribers", "show", "niemand@example.org"), "niemand@example.org"),
    (("subscribers", "remove", "niemand@example.org"), "niemand@example.org"),
    (("partners", "add", "--organisation", "Onbekend", "--title", "T", "--url", "https://x.nl/t"),
     "unknown organisation 'Onbekend'"),
    (("preview", "stalking", "--region", "utrecht"), "unknown region 'utrecht'"),
    (("schedule", "stalking", "--at", LATER, "--region", "utrecht"), "utrecht"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_unknown_names(project: Settings, args: tuple[str, ...], expected: str) -> None:
    assert_clean_error(mailer(*args), expected)


EVERY_FILE_COMMAND = [
    ("mailer.toml", "smtp_port = [587\n", [("build", "stalking"), ("sends", "list"),
                                            ("db", "upgrade"), ("calendar", "check")]),
    ("content/partners.yaml", "partners:\n  - name: [VT\n", [("partners", "fetch"),
                                                              ("partners", "add", "--organisation",
                                                               "OM", "--title", "T", "--url",
                                                               "https://www.om.nl/t")]),
    ("content/calendar.yaml", "mailings:\n  - id: a\n    at: [2026\n", [("calendar", "check"),
                                                                     ("calendar", "apply")]),
    ("content/brand.yaml", "colours: {brand: [oeps\n", [("build", "stalking"), ("serve",),
                                                         ("send", "stalking", "--dry-run")]),
    ("content/stalking/mailing.yaml", "kind: verdieping\ntitle: [oeps\n",
     [("build", "stalking"), ("preview", "stalking"), ("send", "stalking", "--dry-run"),
      ("schedule", "stalking", "--at", LATER), ("partners", "suggest", "stalking"),
      ("calendar", "check")]),
]


@pytest.mark.parametrize(("name", "text", "args"), [
    (name, text, args) for name, text, commands in EVERY_FILE_COMMAND for args in commands
], ids=lambda v: v if isinstance(v, str) and "\n" not in v else " ".join(v) if isinstance(v, tuple) else "")
def test_broken_config_files(project: Settings, name: str, text: str, args: tuple[str, ...]) -> None:
    write(project.root / name, text)
    if args[0] == "calendar" and name != "content/calendar.yaml":
        write(project.content / "calendar.yaml",
              f'mailings:\n  - id: a\n    theme: stalking\n    at: "{LATER}"\n')
    assert_clean_error(mailer(*args), Path(name).name)


@pytest.mark.parametrize(("url", "expected"), [
    (UNREACHABLE, ("cannot open the database", "database_url")),
    ("nosuchdb://x/y", ("MAILER_DATABASE_URL: must be a sqlite or postgresql URL",)),
    ("sqlite:////geen/map/mailer.db", ("cannot open the database", "database_url")),
], ids=["unreachable", "unknown kind", "no folder"])
@pytest.mark.parametrize("args", [
    ("sends", "list"), ("db", "upgrade"), ("lists", "export"), ("subscribers", "find", "x"),
    ("subscribers", "show", "a@example.org"), ("schedule", "list"), ("scheduler",), ("serve",),
    ("send", "stalking", "--dry-run"), ("schedule", "stalking", "--at", LATER),
    ("partners", "add", "--organisation", "Openbaar Ministerie", "--title", "T", "--url",
     "https://www.om.nl/t"),
    ("bounces", "process", str(REPO / "tests" / "data" / "bounces")),
], ids=" ".join)
def test_a_database_that_cannot_be_opened(project: Settings, monkeypatch: pytest.MonkeyPatch,
                                          url: str, expected: tuple[str, ...],
                                          args: tuple[str, ...]) -> None:
    monkeypatch.setenv("MAILER_DATABASE_URL", url)
    message = assert_clean_error(mailer(*args), *expected)
    assert "geheim" not in message  # the password is not shown



OLD_REVISION = "0004"  # partner publications with their lists still joined by "|"
OPENS_THE_DATABASE = [
    ("build", "stalking"), ("preview", "stalking"), ("check", "stalking", "--offline"),
    ("send", "stalking", "--dry-run"), ("send", "stalking"), ("sends", "list"),
    ("sends", "show", "1"), ("sends", "pause", "1"), ("sends", "resume", "1"),
    ("sends", "cancel", "1"), ("sends", "work"), ("schedule", "stalking", "--at", LATER),
    ("schedule", "list"), ("schedule", "approve", "1", "--by", "Anouk"),
    ("schedule", "move", "1", "--at", LATER), ("schedule", "cancel", "1"), ("scheduler",),
    ("calendar", "check"), ("calendar", "apply"), ("lists", "import", "lists/limburg.csv"),
    ("lists", "export"), ("subscribers", "find", "x"), ("subscribers", "show", "a@example.org"),
    ("subscribers", "remove", "a@example.org"), ("partners", "fetch"),
    ("partners", "add", "--organisation", "Openbaar Ministerie", "--title", "T", "--url",
     "https://www.om.nl/t"),
    ("partners", "suggest", "stalking"), ("bounces", "process", str(REPO / "tests" / "data" / "bounces")),
    ("serve",), ("studio", "stalking"),
]


@pytest.fixture
def outdated_database(project: Settings) -> str:
    """The project's database at an old schema version, holding a partner publication."""
    from alembic import command

    from mailer.db import _alembic_config, engine_for

    engine = engine_for(project.resolved_database_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), OLD_REVISION)
        conn.exec_driver_sql(
            "INSERT INTO partner_publication (id, url, organisation, title, summary, published, "
            "categories, themes, regions, source, created_at, updated_at) VALUES (1, "
            "'https://www.om.nl/x', 'OM', 'Aanpak stalking', '', '2026-11-20', "
            "'Huiselijk geweld|Stalking', 'stalking', '', 'hand', '2026-11-20', '2026-11-20')")
    write(project.content / "calendar.yaml",
          f'mailings:\n  - id: a\n    theme: stalking\n    at: "{LATER}"\n')
    shutil.copytree(REPO / "lists", project.root / "lists")
    return OLD_REVISION


@pytest.mark.parametrize("args", OPENS_THE_DATABASE, ids=" ".join)
def test_a_database_at_an_older_schema_version(outdated_database: str, args: tuple[str, ...]) -> None:
    message = one_line(mailer(*args))
    assert f"the database is at schema version {outdated_database}" in message
    assert "run `mailer db upgrade`" in message


def test_db_upgrade_brings_an_outdated_database_to_the_newest_version(outdated_database: str) -> None:
    assert mailer("db", "upgrade").exit_code == 0
    assert mailer("build", "stalking").exit_code == 0

@pytest.mark.parametrize("args", [
    ("schedule", "stalking", "--at", "morgen om negen"),
    ("schedule", "stalking", "--at", "2026-13-01 09:00"),
    ("schedule", "move", "1", "--at", "volgende week"),
], ids=" ".join)
def test_a_bad_time(project: Settings, args: tuple[str, ...]) -> None:
    assert_clean_error(mailer(*args), "YYYY-MM-DD HH:MM")


def test_a_bad_time_in_the_calendar(project: Settings) -> None:
    write(project.content / "calendar.yaml", "mailings:\n  - id: a\n    theme: stalking\n    at: gauw\n")
    assert_clean_error(mailer("calendar", "check"), "calendar.yaml:2", "YYYY-MM-DD HH:MM")


@pytest.mark.parametrize(("args", "path"), [
    (("lists", "import", "lists/bestaat-niet.csv"), "bestaat-niet.csv"),
    (("lists", "import", "lists/bestaat-niet.csv", "--dry-run"), "bestaat-niet.csv"),
    (("lists", "export", "--output", "geen-map/leden.csv"), "geen-map/leden.csv"),
    (("bounces", "process", "geen-map/bounces.mbox"), "geen-map/bounces.mbox"),
    (("bounces", "process", "geen-map/bounces.mbox", "--dry-run"), "geen-map/bounces.mbox"),
    (("dkim", "keygen", "--output", "mailer.db/sleutel.pem"), "mailer.db/sleutel.pem"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_bad_paths(project: Settings, args: tuple[str, ...], path: str) -> None:
    mailer("db", "upgrade")  # mailer.db is a file: no folder can be made under it
    assert_clean_error(mailer(*args), path)


# --- the partner cases: one line naming the file and the field ------------------------------


def test_a_partner_block_naming_an_unknown_publication(project: Settings) -> None:
    mailing = project.content / "stalking" / "mailing.yaml"
    write(mailing, mailing.read_text(encoding="utf-8").replace(
        "  suggest: true", "  suggest: true\n  chosen: [https://www.om.nl/onbekend]"))
    write(project.content / "calendar.yaml",
          f'mailings:\n  - id: a\n    theme: stalking\n    at: "{LATER}"\n')
    for args in (("schedule", "add", "stalking", "--at", LATER), ("calendar", "check")):
        message = one_line(mailer(*args))
        assert "content/stalking/mailing.yaml: partners.chosen: unknown publication" in message
        assert "mailer partners add" in message


@pytest.mark.parametrize(("text", "field"), [
    ("- name: Veilig Thuis\n  website: https://veiligthuis.nl\n", "partners.yaml: must be a mapping"),
    ("partners: 5\n", "partners.yaml: partners: must be a list"),
    ("partners:\n  - name: OM\n    website: https://www.om.nl\n    regions: limburg\n",
     "partners.yaml: partners[1].regions: must be a list"),
])
def test_partners_file_of_the_wrong_shape(project: Settings, text: str, field: str) -> None:
    write(project.content / "partners.yaml", text)
    assert field in one_line(mailer("partners", "fetch"))


# --- as a real process -------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**env, "PYTHONPATH": str(REPO)})


def test_a_process_prints_one_error_line(tmp_path: Path) -> None:
    done = run(tmp_path, "-m", "mailer", "build", "stalking")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot build 'stalking'"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_unexpected_exception_is_shown_as_a_bug_with_its_traceback(tmp_path: Path) -> None:
    code = ("from mailer.cli.main import main\n"
            "@main.command('kapot')\n"
            "def broken():\n"
            "    {}['no such key']\n"
            "main(['kapot'])\n")
    done = run(tmp_path, "-c", code)
    assert done.returncode == 1
    assert "this is a bug in mailer" in done.stderr
    assert "Traceback" in done.stderr and "KeyError: 'no such key'" in done.stderr


FAMILIES = (errors.ContentError, errors.SettingsError, errors.DeliveryError, errors.DataError,
            errors.AccessError)


def every_mailer_error() -> list[type[errors.MailerError]]:
    """Every MailerError class in mailer/, after importing each module that can be imported on
    its own (not the program entry point, not the migration scripts that alembic runs)."""
    import mailer

    for module in pkgutil.walk_packages(mailer.__path__, "mailer."):
        if not module.name.startswith(("mailer.__main__", "mailer.migrations")):
            importlib.import_module(module.name)
    found, todo = [], [errors.MailerError]
    while todo:
        found += (children := todo.pop().__subclasses__())
        todo += children
    return found


def test_every_error_belongs_to_exactly_one_family() -> None:
    classes = every_mailer_error()
    assert len(classes) > 20  # the walk found the modules' own errors, not only errors.py
    astray = {cls.__qualname__: [f.__name__ for f in FAMILIES if issubclass(cls, f)]
              for cls in classes if sum(issubclass(cls, f) for f in FAMILIES) != 1}
    assert astray == {}



def test_a_servers_refusal_during_a_send_is_not_a_settings_error() -> None:
    from mailer.transport.transports import InsecureServer

    refusal = InsecureServer("mail.example.org:587 does not offer STARTTLS")
    assert isinstance(refusal, errors.DeliveryError) and not isinstance(refusal, errors.SettingsError)
    assert refusal.connection and refusal.permanent  # the session's, not a recipient's: pause
