"""The segments a mailing can be sent to: ten regions times three audiences."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from mailer.content.loader import Block
from mailer.taxonomy import AUDIENCES, REGIONS


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
