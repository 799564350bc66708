"""`mailer studio` in a real process, driven by the real chromium: live preview and errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.config import Settings
from tests.browser import axe_source, axe_violations, needs_chromium
from tests.conftest import REPO

BLOCK = "10-zorg-alleen-is-niet-voldoende.md"
TITLE = "Zorg alleen is niet voldoende, straf evenmin"

pytestmark = needs_chromium


@pytest.fixture
def studio(project: Settings) -> Iterator[str]:
    """`mailer studio stalking` on a free port; yields its address."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "studio", "stalking", "--port", "0"],
                               cwd=project.root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, line + process.stdout.read()  # type: ignore[union-attr]
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(10)


def save(path: Path, text: str) -> float:
    path.write_text(text, "utf-8")
    return time.monotonic()


def test_live_preview_follows_the_files_and_shows_errors_with_file_and_line(
        studio: str, project: Settings, browser) -> None:  # type: ignore[no-untyped-def]
    block = project.content / "stalking" / BLOCK
    original = block.read_text("utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(studio + "?region=limburg&audience=werkveld")
        frame = page.frame_locator("#mail")
        frame.locator("text=Beste Jan Jansen,").wait_for()
        assert page.locator("#region").input_value() == "limburg"
        assert page.locator("label[for=region]").inner_text() == "Region"
        assert "Beste Jan Jansen," in page.locator("#text").inner_text()
        images = page.frame(url=re.compile(r"/mail\.html")).evaluate(  # type: ignore[union-attr]
            "[...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])")
        assert images and all(src.startswith(studio + "site/stalking/img/") and loaded
                              for src, loaded in images), images

        saved = save(block, original.replace(TITLE, "Samen werken werkt"))
        frame.locator("h2:has-text('Samen werken werkt')").wait_for(timeout=5000)
        took = time.monotonic() - saved
        assert took < 2.0, f"the preview took {took:.2f} s to follow the save"

        save(block, original.replace("type: interview", "type: interview\ntitle: [niet gesloten"))
        problems = page.locator("#problems")
        problems.wait_for(state="visible", timeout=5000)
        assert re.search(rf"content/stalking/{BLOCK}:\d+: YAML error", problems.inner_text())
        assert page.locator("#status").inner_text().startswith("Build failed")

        save(block, original)
        problems.wait_for(state="hidden", timeout=5000)
        frame.locator(f"h2:has-text('{TITLE}')").wait_for(timeout=5000)

        page.check("input[value=phone]")
        assert page.locator("#mail").bounding_box()["width"] == 377  # type: ignore[index]
    finally:
        page.close()


def test_the_studio_pages_have_no_axe_violations(studio: str, browser) -> None:  # type: ignore[no-untyped-def]
    source = axe_source()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(studio + "?region=limburg&audience=werkveld")
        page.frame_locator("#mail").locator("text=Beste Jan Jansen,").wait_for()
        page.click("#check-form button")
        page.locator("#check-results p").wait_for(timeout=60000)
        found = {"/": axe_violations(page, source)}
        for path in ("sends", "partners"):
            page.goto(studio + path)
            found[path] = axe_violations(page, source)
        assert found == {"/": [], "sends": [], "partners": []}
    finally:
        page.close()
