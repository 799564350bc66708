"""What an event block says about its time, in words and as an iCalendar file.

Staff announce events before the date is fixed, and on-demand webinars have none, so every
reader of `starts` goes through here: the mail, the text part, the web page and the `.ics`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from mailer.content.loader import Block
from mailer.render.dates import dutch_date, dutch_datetime

DATE_FOLLOWS = "Datum volgt"
ON_DEMAND = "Op elk moment te bekijken"


def _all_day(moment: dt.datetime) -> bool:
    return moment.time() == dt.time()


def event_when(block: Block) -> str:
    """When the event is, as the reader sees it: a date and time, "Datum volgt", or on demand."""
    starts, ends = block.starts, block.ends
    if starts is None:
        return ON_DEMAND if block.event_kind == "webinar" else DATE_FOLLOWS
    if _all_day(starts) and (ends is None or _all_day(ends)):
        return dutch_date(starts) + (f" tot en met {dutch_date(ends)}" if ends else "")
    if ends is None:
        return dutch_datetime(starts)
    if ends.date() == starts.date():
        return f"{dutch_datetime(starts)[:-4]}–{ends:%H:%M} uur"
    return f"{dutch_datetime(starts)} tot {dutch_datetime(ends)}"


def has_calendar_file(block: Block) -> bool:
    """Only an event with a date can go into a calendar."""
    return block.type == "event" and block.starts is not None


def event_calendar(block: Block, uid: str, timezone: str, stamp: dt.date, page_url: str) -> bytes:
    """An RFC 5545 calendar with one VEVENT in `timezone`, its VTIMEZONE included.

    DTSTAMP is the mailing's date, so rebuilding unchanged content gives the same file.
    """
    if block.starts is None:
        raise ValueError(f"{block.source}: an event without 'starts' has no calendar file")
    import icalendar  # 50 ms to import: only for a mailing with a dated event

    zone = ZoneInfo(timezone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Ontwikkelagenda Veiligheid voorop//mailer//NL")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", dt.datetime.combine(stamp, dt.time(), dt.UTC))
    event.add("summary", block.title)
    if _all_day(block.starts) and (block.ends is None or _all_day(block.ends)):
        event.add("dtstart", block.starts.date())
        last = (block.ends or block.starts).date()
        event.add("dtend", last + dt.timedelta(days=1))
    else:
        event.add("dtstart", block.starts.replace(tzinfo=zone))
        if block.ends:
            event.add("dtend", block.ends.replace(tzinfo=zone))
    location = ", ".join(x for x in (block.place, block.online) if x)
    if location:
        event.add("location", location)
    event.add("url", block.url or page_url)
    description = "\n\n".join(x for x in (block.lead, block.url or page_url) if x)
    event.add("description", description)
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
