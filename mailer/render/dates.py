"""Dates and times the way the mailings write them ("donderdag 11 maart 2027, 15:00 uur")."""

from __future__ import annotations

import datetime as dt

_MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december")
_DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")


def dutch_date(value: dt.date) -> str:
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def dutch_datetime(value: dt.datetime) -> str:
    return f"{_DAYS[value.weekday()]} {dutch_date(value)}, {value:%H:%M} uur"
