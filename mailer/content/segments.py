"""The segments a mailing can be sent to: ten regions times three audiences."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.content.loader import Block

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

KIND_TOPICS: dict[str, str] = {
    "update": "updates",
    "verdieping": "verdiepingen",
    "verbeteractiviteit": "verbeteractiviteiten",
}

TOPIC_NAMES: dict[str, str] = {
    "updates": "Updates",
    "verdiepingen": "Thematische verdiepingen",
    "verbeteractiviteiten": "Verbeteractiviteiten in de praktijk",
}


def unknown_slugs(kind: str, given: Iterable[str], known: dict[str, str]) -> list[str]:
    """A problem for each of `given` that is not a slug of `known` (REGIONS or AUDIENCES)."""
    return [f"unknown {kind} {slug!r} (known: {', '.join(known)})" for slug in given
            if slug not in known]


def segment_key(region: str, audience: str) -> str:
    return f"{region}/{audience}"


def all_segments(
    regions: Iterable[str] | None = None, audiences: Iterable[str] | None = None
) -> Iterator[tuple[str, str]]:
    """Every (region, audience) pair, restricted to the given slugs when any are given."""
    for region in regions or REGIONS:
        for audience in audiences or AUDIENCES:
            yield region, audience


def select_blocks(blocks: Iterable[Block], region: str, audience: str) -> tuple[Block, ...]:
    """The blocks a segment receives, in mailing order.

    A block of partner publications keeps only the publications for the region (regional ones
    elsewhere are dropped), and disappears when none are left.
    """
    selected = []
    for block in blocks:
        if not block.applies_to(region, audience):
            continue
        if block.items:
            items = tuple(i for i in block.items if i.regions is None or region in i.regions)
            if not items:
                continue
            block = replace(block, items=items) if items != block.items else block
        selected.append(block)
    return tuple(selected)
