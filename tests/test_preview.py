"""The preview shows what a recipient sees: filled slots, local images, no sideways scrolling."""

from __future__ import annotations

import re

from mailer.builds.builder import build
from mailer.builds.preview import write_preview
from mailer.config import Settings


def test_preview_copies_have_no_slots_and_only_local_images(project: Settings) -> None:
    build(project, "stalking")
    [index] = write_preview(project, "stalking")
    copies = [p for p in index.parent.glob("*.html") if p != index]
    assert len(copies) == 4
    for copy in copies:
        html = copy.read_text(encoding="utf-8")
        assert "[[slot" not in html and "Beste Jan Jansen," in html
        sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
        assert sources
        for src in sources:
            assert (copy.parent / src).resolve().is_file(), src


def test_preview_fits_a_phone_and_keeps_the_text_lines(project: Settings, browser) -> None:
    build(project, "stalking")
    [index] = write_preview(project, "stalking", region="limburg", audience="werkveld")
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(index.as_uri())
    frame = page.frame_locator("#mail")
    frame.locator("img").first.wait_for()
    loaded = page.frames[1].evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert loaded
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    text = page.locator("pre:not([hidden])")
    assert text.evaluate("e => getComputedStyle(e).whiteSpace") == "pre"
    assert page.get_attribute("label[for=segment]", "for") == "segment"
    page.close()
