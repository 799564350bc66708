"""Settings: file, environment, and the signing key made per project folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.config import ConfigError, Settings, load_settings


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
        'secret_key = "uit-bestand"\npublic_base_url = "https://a.example"\n[smtp]\nport = 2525\n',
        encoding="utf-8")
    settings = load_settings(tmp_path, environ={"MAILER_PUBLIC_BASE_URL": "https://b.example"})
    assert (settings.secret_key, settings.public_base_url, settings.smtp_port) == \
        ("uit-bestand", "https://b.example", 2525)
    assert not (tmp_path / ".mailer-secret").exists()


@pytest.mark.parametrize("text, message", [
    ("smtp_port = 'x'\n", "setting 'smtp_port'"),
    ("sender = 'x'\n", "unknown setting 'sender'"),
    ("port = \n", "mailer.toml"),
])
def test_bad_settings_name_the_file_and_setting(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mailer.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})
