"""The words of the domain: regions, audiences, topics and mailing kinds, with their Dutch labels.

Every module that accepts or shows one of these asks this module, so a new region or topic is
added in one place, and every "unknown region" message reads the same and suggests the nearest
known slug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

REGIONS: dict[str, str] = {
    "noord-nederland": "Noord-Nederland",
    "oost-nederland": "Oost-Nederland",
    "noord-holland": "Noord-Holland",
    "amsterdam-amstelland": "Amsterdam-Amstelland",
    "midden-nederland": "Midden-Nederland",
    "haaglanden-hollands-midden": "Haaglanden-Hollands-Midden",
    "rotterdam-zuid-holland-zuid": "Rotterdam-Zuid-Holland-Zuid",
    "zeeland-west-brabant": "Zeeland-West-Brabant",
    "oost-brabant": "Oost-Brabant",
    "limburg": "Limburg",
}

AUDIENCES: dict[str, str] = {
    "beleidsmakers": "Beleidsmakers",
    "netwerk": "Netwerk Straf/Zorg",
    "werkveld": "Werkveld buiten Straf/Zorg",
}

TOPICS: dict[str, str] = {
    "updates": "Updates",
    "verdiepingen": "Thematische verdiepingen",
    "verbeteractiviteiten": "Verbeteractiviteiten in de praktijk",
}

KINDS: dict[str, str] = {
    "update": "Update",
    "verdieping": "Thematische verdieping",
    "verbeteractiviteit": "Verbeteractiviteit in de praktijk",
}

# The subscription topic a mailing of each kind goes to unless its mailing.yaml says otherwise.
KIND_TOPICS: dict[str, str] = {
    "update": "updates",
    "verdieping": "verdiepingen",
    "verbeteractiviteit": "verbeteractiviteiten",
}

VOCABULARIES: dict[str, dict[str, str]] = {
    "region": REGIONS, "audience": AUDIENCES, "topic": TOPICS, "kind": KINDS,
}


def problem(what: str, value: object) -> str | None:
    """Why `value` is not a known `what` ("region", "audience", "topic", "kind"), or None."""
    known = VOCABULARIES[what]
    if isinstance(value, str) and value in known:
        return None
    shown = str(value)[:80]
    close = difflib.get_close_matches(shown.lower(), known, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"unknown {what} {shown!r}{hint} (known: {', '.join(known)})"


def problems(what: str, values: Iterable[object]) -> list[str]:
    """One problem per value of `values` that is not a known `what`."""
    return [p for p in (problem(what, v) for v in values) if p]


def resolve(what: str, value: str) -> str | None:
    """The slug of `value` given as slug or as its Dutch label, in any case; None if neither."""
    wanted = value.strip().lower()
    return next((slug for slug, label in VOCABULARIES[what].items()
                 if wanted in (slug, label.lower())), None)


def label(what: str, slug: str) -> str:
    """The Dutch label of a slug, or the slug itself when it is not (or no longer) known."""
    return VOCABULARIES[what].get(slug, slug)
