"""`mailer studio` in a real process, driven by the real chromium: live preview and errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
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
        print("axe without accounts:", found)
        assert found == {"/": [], "sends": [], "partners": []}
    finally:
        page.close()


PASSWORD = "kwartel-vijzel-orgel 4812"


@pytest.fixture
def team_studio(project: Settings) -> Iterator[tuple[str, Settings, str]]:
    """The studio with accounts (an admin, a writer and an editor for Limburg), approval
    required and a Limburg send by the writer waiting for it; yields its address, the settings
    and a one-time link's path for a person who has no password yet."""
    from mailer.accounts import users
    from mailer.audit import command_line
    from mailer.send.runner import create_send
    from mailer.web.studio import create_studio
    from tests.browser import serve

    site = replace(project, approval_mode="required", public_base_url="https://testserver")
    for name, role in (("ada", "admin"), ("wim", "writer"), ("lotte", "editor")):
        users.add(site, command_line("test"), name, role, () if role == "admin" else ("limburg",),
                  password=PASSWORD)
    _, link, _ = users.add(site, command_line("ada"), "pia", "writer", ("limburg",))
    create_send(site, "stalking", ["limburg"], record={"created_by": "wim"})
    with serve(create_studio(site, "stalking", "unused-token")) as url:
        yield url + "/", site, link.removeprefix(site.studio_url)


def log_in(page, base: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """Log in through the form, from a page that needs it and back to that page."""
    page.goto(base + "sends")
    assert "/login?next=%2Fsends" in page.url
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "sends")


def test_a_writer_and_an_editor_see_the_buttons_their_role_allows(team_studio, browser) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = team_studio
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        log_in(page, base, "wim")
        assert page.inner_text("#who") == "Logged in as wim, writer for Limburg"
        assert page.locator("button:has-text('Approve')").count() == 0
        assert page.locator("a[href='/audit']").count() == 0
        assert "Can approve: ada, lotte" in page.inner_text("#region-limburg")  # not wim, who made it
        page.goto(base)
        assert page.locator("#test-form button").is_visible()  # a writer sends tests
        page.click("button:has-text('Log out')")
        page.wait_for_url(re.compile(r"/login$"))
        page.goto(base + "sends")
        assert "/login" in page.url  # the session is over

        log_in(page, base, "lotte")
        assert page.inner_text("#who") == "Logged in as lotte, editor for Limburg"
        button = page.locator("#region-limburg button:has-text('Approve send 1')")
        assert button.is_visible()
        button.click()
        page.wait_for_selector("text=approved by lotte")
        assert page.locator("#region-limburg button").count() == 0
    finally:
        context.close()


def test_the_studio_pages_with_accounts_have_no_axe_violations(team_studio, browser) -> None:  # type: ignore[no-untyped-def]
    base, _, link = team_studio
    source = axe_source()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        found = {}
        page.goto(base + link.lstrip("/"))
        found["password"] = axe_violations(page, source)
        page.fill("#password", "wachtwoord")
        page.fill("#again", "wachtwoord")
        page.evaluate("document.querySelector('form').noValidate = true")
        page.click("button:has-text('Set my password')")
        page.wait_for_selector("#password-error")
        found["password, refused"] = axe_violations(page, source)
        page.goto(base + "login")
        found["login"] = axe_violations(page, source)
        page.fill("#name", "ada")
        page.fill("#password", "not the password")
        page.click("button:has-text('Log in')")
        page.wait_for_selector("#login-error")
        found["login, refused"] = axe_violations(page, source)
        log_in(page, base, "ada")
        found["sends"] = axe_violations(page, source)
        for path in ("audit", "partners"):
            page.goto(base + path)
            found[path] = axe_violations(page, source)
        page.goto(base + "?region=limburg&audience=werkveld")
        page.frame_locator("#mail").locator("text=Beste Jan Jansen,").wait_for()
        found["/"] = axe_violations(page, source)
        print("axe with accounts:", found)
        assert {name: v for name, v in found.items() if v} == {}
        assert len(found) == 8
    finally:
        context.close()
