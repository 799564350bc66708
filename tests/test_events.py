"""Events as staff announce them: with or without a date, and a calendar file when dated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mailer.builds.builder import build
from mailer.config import Settings
from mailer.content.loader import Block, ContentError, load_mailing
from mailer.render.events import event_calendar, event_when

MAILING = """kind: verdieping
title: "Bijeenkomsten"
subject: "Bijeenkomsten"
preheader: "Wat er op de agenda staat"
date: 2027-01-15
greeting: "Beste lezer,"
"""

EVENTS = {
    "10-regiodag.md": "type: event\ntitle: Regiodag\nevent_kind: vakdag\nplace: Zwolle\n",
    "20-terugkijken.md": "type: event\ntitle: Webinar terugkijken\nevent_kind: webinar\n"
                         "url: https://example.org/webinar\n",
    "30-actieoverleg.md": 'type: event\ntitle: "Actieoverleg, live"\nstarts: "2027-03-11 15:00"\n'
                          "ends: 16:30\nplace: Utrecht\nonline: https://example.org/meedoen\n"
                          "url: https://example.org/actieoverleg\nlead: Praat mee.\n",
}


@pytest.fixture
def events_theme(project: Settings) -> Settings:
    folder = project.content / "agenda"
    folder.mkdir()
    (folder / "mailing.yaml").write_text(MAILING, encoding="utf-8")
    for name, front in EVENTS.items():
        (folder / name).write_text(f"---\n{front}---\nMeer over {name}.\n", encoding="utf-8")
    return project


def _variant(settings: Settings) -> tuple[str, str]:
    out = build(settings, "agenda").path
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["segments"]["limburg/werkveld"]
    return tuple((out / entry[part]).read_text(encoding="utf-8") for part in ("html", "text"))


def test_events_without_a_date_build_and_say_so(events_theme: Settings) -> None:
    html, text = _variant(events_theme)
    assert "Vakdag</strong> · Datum volgt · Zwolle" in html
    assert "Vakdag: Datum volgt, Zwolle" in text
    assert "Webinar</strong> · Op elk moment te bekijken" in html
    page = (events_theme.out / "agenda" / "regiodag.html").read_text(encoding="utf-8")
    assert "Datum volgt" in page and "Zet in je agenda" not in page
    assert not (events_theme.out / "agenda" / "regiodag.ics").exists()
    assert not (events_theme.out / "agenda" / "terugkijken.ics").exists()


def test_a_dated_event_links_a_calendar_file_that_parses_back(events_theme: Settings) -> None:
    html, text = _variant(events_theme)
    link = f"{events_theme.public_base_url}/agenda/actieoverleg.ics"
    assert f'href="{link}"' in html and ">Zet in je agenda</a>" in html
    assert f"Zet in je agenda:\n  {link}" in text
    assert "donderdag 11 maart 2027, 15:00–16:30 uur · Utrecht" in html
    assert 'href="https://example.org/meedoen"' in html
    page = (events_theme.out / "agenda" / "actieoverleg.html").read_text(encoding="utf-8")
    assert 'href="../agenda/actieoverleg.ics" download>Zet in je agenda</a>' in page

    raw = (events_theme.out / "agenda" / "actieoverleg.ics").read_bytes()
    calendar = icalendar.Calendar.from_ical(raw)
    [zone] = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Amsterdam"
    [event] = calendar.walk("VEVENT")
    amsterdam = ZoneInfo("Europe/Amsterdam")
    assert event.decoded("dtstart") == dt.datetime(2027, 3, 11, 15, 0, tzinfo=amsterdam)
    assert event.decoded("dtend") == dt.datetime(2027, 3, 11, 16, 30, tzinfo=amsterdam)
    assert b"DTSTART;TZID=Europe/Amsterdam:20270311T150000" in raw
    assert str(event["summary"]) == "Actieoverleg, live"
    assert str(event["location"]) == "Utrecht, https://example.org/meedoen"
    assert str(event["uid"]) == "agenda.actieoverleg@veiligheidvoorop.nl"
    assert raw.endswith(b"\r\n") and all(len(line) <= 75 for line in raw.split(b"\r\n"))


@pytest.mark.parametrize(("front", "message"), [
    ("ends: 14:00\n", "30-actieoverleg.md:6: field 'ends': '14:00' is not after 'starts'"),
    ("online: teams\n", "30-actieoverleg.md:6: online: 'teams' is not an http(s) or mailto URL"),
])
def test_bad_event_times_and_links_are_refused(events_theme: Settings, front: str, message: str) -> None:
    path = events_theme.content / "agenda" / "30-actieoverleg.md"
    text = path.read_text(encoding="utf-8").replace("ends: 16:30\n", "").replace(
        "online: https://example.org/meedoen\n", "")
    path.write_text(text.replace("place: Utrecht\n", f"place: Utrecht\n{front}"), encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        load_mailing(events_theme.content, "agenda", events_theme.root)
    assert message in str(caught.value)


def test_ends_without_starts_is_refused(events_theme: Settings) -> None:
    path = events_theme.content / "agenda" / "10-regiodag.md"
    path.write_text(path.read_text(encoding="utf-8").replace("place:", "ends: 17:00\nplace:"),
                    encoding="utf-8")
    with pytest.raises(ContentError, match="10-regiodag.md:5: field 'ends' needs 'starts' as well"):
        load_mailing(events_theme.content, "agenda", events_theme.root)


@pytest.mark.parametrize(("starts", "ends", "kind", "said"), [
    (None, None, "vakdag", "Datum volgt"),
    (None, None, "webinar", "Op elk moment te bekijken"),
    (dt.datetime(2027, 3, 11, 15), None, "", "donderdag 11 maart 2027, 15:00 uur"),
    (dt.datetime(2027, 3, 11, 15), dt.datetime(2027, 3, 11, 16, 30), "",
     "donderdag 11 maart 2027, 15:00–16:30 uur"),
    (dt.datetime(2027, 3, 11, 9), dt.datetime(2027, 3, 12, 17), "",
     "donderdag 11 maart 2027, 09:00 uur tot vrijdag 12 maart 2027, 17:00 uur"),
    (dt.datetime(2027, 3, 11), dt.datetime(2027, 3, 12), "vakdag",
     "11 maart 2027 tot en met 12 maart 2027"),
])
def test_when_an_event_is_said_in_dutch(starts, ends, kind, said) -> None:
    block = Block("x", "event", "X", Path("x.md"), event_kind=kind, starts=starts, ends=ends)
    assert event_when(block) == said


def test_an_all_day_event_is_a_date_in_the_calendar() -> None:
    block = Block("vakdag", "event", "Vakdag", Path("x.md"), starts=dt.datetime(2027, 3, 11),
                  ends=dt.datetime(2027, 3, 12))
    raw = event_calendar(block, "a.vakdag@example.org", "Europe/Amsterdam", dt.date(2027, 1, 1),
                         "https://example.org/vakdag.html")
    [event] = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    assert b"DTSTART;VALUE=DATE:20270311" in raw
    assert event.decoded("dtend") == dt.date(2027, 3, 13)  # exclusive, RFC 5545 3.6.1
    assert str(event["url"]) == "https://example.org/vakdag.html"
