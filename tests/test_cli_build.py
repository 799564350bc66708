"""`mailer build` and `mailer preview` through the CLI."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli.main import main
from mailer.config import Settings


@pytest.mark.lowest
def test_build_prints_a_summary(project: Settings) -> None:
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 0, result.output
    assert "30 segments, 4 distinct variants" in result.output
    assert "HTML KB" in result.output and "Wrote" in result.output
    assert "mailer preview stalking --open" in result.output


def test_preview_page_has_a_segment_picker(project: Settings) -> None:
    result = CliRunner().invoke(main, ["preview", "stalking", "--region", "limburg", "--audience", "netwerk"])
    assert result.exit_code == 0, result.output
    page = (project.out / "preview" / "stalking" / "index.html").read_text(encoding="utf-8")
    assert page.count("<option") == 30
    assert " selected>Limburg · Netwerk Straf/Zorg (" in page
    shown = next(Path(project.out / "preview" / "stalking").glob("*.html"))
    assert "[[slot" not in shown.read_text(encoding="utf-8")


def test_preview_refuses_an_unknown_region(project: Settings) -> None:
    result = CliRunner().invoke(main, ["preview", "stalking", "--region", "utrecht"])
    assert result.exit_code == 1
    assert "unknown region 'utrecht'" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_preview_screenshots_at_mail_and_phone_width(project: Settings) -> None:
    result = CliRunner().invoke(main, ["preview", "stalking", "--screenshot"])
    assert result.exit_code == 0, result.output
    for width in (600, 375):
        png = (project.out / "preview" / "stalking" / f"screenshot-{width}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">I", png[16:20])[0] == width
