"""Shared fixtures: a throw-away copy of the project's content and templates per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.config import Settings, load_settings
from tests.smtp_server import SMTPTestServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project folder with the real content and templates; commands run inside it."""
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MAILER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MAILER_DATABASE_URL", f"sqlite:///{tmp_path / 'mailer.db'}")
    return load_settings(tmp_path)


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    """A started test SMTP server; faults via indirect parametrisation with SMTPTestServer's
    keyword arguments, e.g. `@pytest.mark.parametrize("smtp_server", [{"drop": 0.5}],
    indirect=True)`."""
    with SMTPTestServer(**getattr(request, "param", {})) as server:
        yield server
