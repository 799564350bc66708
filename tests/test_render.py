"""Slot filling, Dutch dates and the plain-text conversion."""

from __future__ import annotations

import datetime as dt

import pytest

from mailer.render.plaintext import markdown_to_text
from mailer.render.renderer import SLOT_HEADER, CompiledVariant, RenderError, dutch_datetime
from tests.slots import stored


def test_fill_escapes_values_in_html_only() -> None:
    variant = CompiledVariant(stored('<p>[[slot:greeting]]</p><a href="[[slot:unsubscribe_url]]">x</a>'),
                              stored("[[slot:greeting]]\n[[slot:unsubscribe_url]]"))
    html, text = variant.fill({"greeting": "Beste <Jan> & co,", "unsubscribe_url": "https://x/a?b=1&c=2"})
    assert html == '<p>Beste &lt;Jan&gt; &amp; co,</p><a href="https://x/a?b=1&amp;c=2">x</a>'
    assert text == "Beste <Jan> & co,\nhttps://x/a?b=1&c=2"
    assert variant.html.count("[[slot-") == 2, "the compiled variant itself is not changed"


def test_only_markers_under_the_key_line_are_slots() -> None:
    """Slot syntax from content or a feed, or under a guessed key, is left as text."""
    body = ('<a href="https://evil.example/x?t=[[slot:preferences_url]]">a</a>'
            '<a href="[[slot-fedcba9876543210:preferences_url]]">b</a>')
    variant = CompiledVariant(SLOT_HEADER.format(key="00112233445566ff") + body, stored(""))
    html, _ = variant.fill({})
    assert html == body
    with pytest.raises(RenderError, match="run `mailer build` again"):
        CompiledVariant(body, "")


def test_dutch_datetime() -> None:
    assert dutch_datetime(dt.datetime(2027, 3, 11, 15, 0)) == "donderdag 11 maart 2027, 15:00 uur"


def test_markdown_to_text_lists_links_and_wraps() -> None:
    text = markdown_to_text("Zie [de bundel](https://vng.nl/b) voor meer.\n\n- een\n- twee\n")
    assert text == "Zie de bundel (https://vng.nl/b) voor meer.\n\n- een\n- twee"


def test_markdown_headings_stay_below_the_page_heading() -> None:
    from mailer.render.renderer import markdown_html

    assert str(markdown_html("# Kop\n\n## Sub\n\n#### Diep", below=2)) == \
        "<h3>Kop</h3>\n<h3>Sub</h3>\n<h4>Diep</h4>\n"
    assert "<script>" not in markdown_html("<script>x</script>")


def test_the_greeting_uses_the_name_only_when_known_and_wanted() -> None:
    from mailer.render.renderer import greeting

    assert greeting("Beste lezer,", "Beste {naam},", "Anouk Jansen") == "Beste Anouk Jansen,"
    assert greeting("Beste lezer,", "Beste {naam},", "") == "Beste lezer,"
    assert greeting("Beste lezer,", "", "Anouk Jansen") == "Beste lezer,"
