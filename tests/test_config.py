"""Settings: file, environment, and the signing key made per project folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import ConfigError, Settings, load_settings
from mailer.config_checks import MailboxAddress, read_imap_url
from mailer.errors import ConfigWarning


def test_a_project_without_a_key_gets_its_own_kept_key(tmp_path: Path) -> None:
    first = load_settings(tmp_path, environ={})
    again = load_settings(tmp_path, environ={})
    (tmp_path / "elsewhere").mkdir()
    other = load_settings(tmp_path / "elsewhere", environ={})
    assert first.secret_key == again.secret_key != Settings().secret_key
    assert other.secret_key != first.secret_key
    assert (tmp_path / ".mailer-secret").stat().st_mode & 0o777 == 0o600


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text(
        'secret_key = "uit-bestand-0123456789"\npublic_base_url = "https://a.example"\n[smtp]\nport = 2525\n',
        encoding="utf-8")
    settings = load_settings(tmp_path, environ={"MAILER_PUBLIC_BASE_URL": "https://b.example"})
    assert (settings.secret_key, settings.public_base_url, settings.smtp_port) == \
        ("uit-bestand-0123456789", "https://b.example", 2525)
    assert not (tmp_path / ".mailer-secret").exists()


@pytest.mark.parametrize("text, message", [
    ("smtp_port = 'x'\n", "mailer.toml: smtp_port: cannot use 'x'"),
    ("port = \n", "mailer.toml"),
    ("[smtp]\nport = 0\n", "mailer.toml: smtp_port: must be between 1 and 65535"),
    ("[send]\nbatch = 0\n", "mailer.toml: send_batch: must be at least 1"),
    ("[smtp]\ntimeout = 0\n", "mailer.toml: smtp_timeout: must be more than 0"),
    ("timezone = 'Europe/Amsterdm'\n", "mailer.toml: timezone: must be a time zone name"),
    ("database_url = 'mysql://x/y'\n", "mailer.toml: database_url: must be a sqlite or postgresql URL"),
    ("database_url = 'geen url'\n", "mailer.toml: database_url: cannot be read as a database URL"),
    ("public_base_url = 'nieuws.example.nl'\n", "mailer.toml: public_base_url: must be a full address"),
])
def test_bad_settings_name_the_file_and_setting(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mailer.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_defaults_and_a_local_site_pass(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).public_base_url.startswith("https://")
    local = load_settings(tmp_path, environ={"MAILER_PUBLIC_BASE_URL": "http://localhost:8000"})
    assert local.public_base_url == "http://localhost:8000"


@pytest.mark.parametrize("environ, message", [
    ({"MAILER_PUBLIC_BASE_URL": "http://nieuws.example.nl"},
     "MAILER_PUBLIC_BASE_URL: must start with https://: the links in mails carry personal tokens"),
    ({"MAILER_SECRET_KEY": "geheim"}, "MAILER_SECRET_KEY: must be a random text of at least 16"),
    ({"MAILER_SECRET_KEY": Settings().secret_key}, "MAILER_SECRET_KEY: must be a random text"),
    ({"MAILER_BOUNCE_SOFT_LIMIT": "0"}, "MAILER_BOUNCE_SOFT_LIMIT: must be at least 1"),
    ({"MAILER_APPROVAL_MODE": "requierd"}, "MAILER_APPROVAL_MODE: must be one of none, required"),
    ({"MAILER_SEND_MAX_ATTEMPTS": "0"}, "MAILER_SEND_MAX_ATTEMPTS: must be at least 1"),
    ({"MAILER_DKIM_SELECTOR": "nieuws"}, "MAILER_DKIM_SELECTOR: DKIM needs dkim_selector, dkim_domain, "
                                         "dkim_key_file together; without dkim_domain, dkim_key_file"),
])
def test_values_that_weaken_security_or_delivery_are_refused(tmp_path: Path, environ: dict[str, str],
                                                             message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(tmp_path, environ=environ)


def test_every_problem_is_named_at_once_without_secret_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={"MAILER_SECRET_KEY": "kort-geheim", "MAILER_SMTP_PORT": "0"})
    assert str(caught.value).splitlines() == [
        "MAILER_SECRET_KEY: must be a random text of at least 16 characters; leave it unset to use "
        "a random key kept in .mailer-secret",
        "MAILER_SMTP_PORT: must be between 1 and 65535"]


def test_unknown_settings_are_named_in_a_warning(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text("sender = 'x'\n[smtp]\nhots = 'mail.example.nl'\n",
                                          encoding="utf-8")
    with pytest.warns(ConfigWarning) as caught:
        settings = load_settings(tmp_path, environ={"MAILER_SMTP_PROT": "25", "MAILER_ROOT": str(tmp_path)})
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'mailer.toml'}: unknown setting 'sender' (did you mean 'sender_name'?); ignored",
        f"{tmp_path / 'mailer.toml'}: unknown setting 'smtp_hots' (did you mean 'smtp_host'?); ignored",
        "environment: unknown setting 'MAILER_SMTP_PROT' (did you mean 'MAILER_SMTP_PORT'?); ignored"]
    assert (settings.smtp_host, settings.smtp_port) == ("", 587)


def test_the_command_line_shows_warnings_and_errors_in_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text("[smtp]\nhots = 'x'\nport = 0\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    done = subprocess.run([sys.executable, "-m", "mailer", "sends", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"warning: {tmp_path / 'mailer.toml'}: unknown setting 'smtp_hots' (did you mean "
        "'smtp_host'?); ignored",
        f"error: {tmp_path / 'mailer.toml'}: smtp_port: must be between 1 and 65535"]


def test_a_named_settings_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILER_CONFIG: there is no settings file .*elders.toml"):
        load_settings(tmp_path, environ={"MAILER_CONFIG": str(tmp_path / "elders.toml")})


def test_the_bounce_mailbox_settings_are_read_from_the_bounce_section(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text(
        "[bounce]\nimap_url = 'imaps://bounces%40veiligheidvoorop.nl@mail.example.org/Bounces'\n"
        "imap_done_folder = 'Bounces/Verwerkt'\npoll_seconds = 60\n", encoding="utf-8")
    settings = load_settings(tmp_path, environ={"MAILER_BOUNCE_IMAP_PASSWORD": "uit-de-omgeving"})
    assert (settings.bounce_imap_password, settings.bounce_imap_done_folder,
            settings.bounce_poll_seconds) == ("uit-de-omgeving", "Bounces/Verwerkt", 60)
    assert read_imap_url(settings.bounce_imap_url) == MailboxAddress(
        "tls", "mail.example.org", 993, "bounces@veiligheidvoorop.nl", "Bounces")
    assert read_imap_url("imap+starttls://b@mail.example.org:1143") == MailboxAddress(
        "starttls", "mail.example.org", 1143, "b", "INBOX")
    assert read_imap_url("IMAP://b@[::1]/INBOX").security == "none"
    assert Settings().bounce_imap_done_folder == "Verwerkt"
    assert Settings().bounce_poll_seconds == 300


@pytest.mark.parametrize("value, message", [
    ("imap://bounces@mail.example.org/INBOX", "must use imaps:// (TLS) or imap+starttls:// (STARTTLS)"),
    ("pop3s://bounces@mail.example.org", "must be an imaps://, imap+starttls:// or imap:// address"),
    ("imaps://mail.example.org/INBOX", "must name the mailbox's user before the host"),
    ("imaps://b:geheim@mail.example.org/INBOX", "must not hold the password: set [bounce] imap_password"),
    ("imaps://b@mail.example.org:99999/INBOX", "has a port that is not a number from 1 to 65535"),
    ("imap://b@127.0.0.1/INBOX?starttls", "must not have a ?query or #fragment"),
])
def test_a_bounce_mailbox_without_encryption_or_user_is_refused(tmp_path: Path, value: str,
                                                               message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"MAILER_BOUNCE_IMAP_URL: {message}")):
        load_settings(tmp_path, environ={"MAILER_BOUNCE_IMAP_URL": value})


def test_the_done_folder_must_differ_from_the_folder_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(
            "MAILER_BOUNCE_IMAP_URL: reads the folder bounce_imap_done_folder names (Verwerkt)")):
        load_settings(tmp_path, environ={"MAILER_BOUNCE_IMAP_URL": "imap://b@localhost/Verwerkt"})
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_POLL_SECONDS: must be more than 0"):
        load_settings(tmp_path, environ={"MAILER_BOUNCE_POLL_SECONDS": "0"})
