"""What each role may do, and within which regions.

A writer previews, test-sends and creates sends and schedules; an editor also approves them
and may force a send past failing checks; an admin also manages accounts and reads the audit
trail. Every role acts on sends and schedules only within its regions (none given: every
region); a send to every region needs a person who holds every region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailer.audit import Actor
from mailer.taxonomy import REGIONS

ROLES = ("writer", "editor", "admin")
ACTIONS = {
    "preview": "writer", "test-send": "writer", "create": "writer", "steer": "writer",
    "approve": "editor", "force": "editor", "users": "admin", "audit": "admin",
}
# Not about a send or a schedule: no region to hold (an admin with regions still manages accounts).
UNREGIONED = ("users", "audit")
WORDS = {
    "preview": "preview", "test-send": "send a test", "create": "create sends and schedules",
    "steer": "pause, resume or cancel", "approve": "approve", "force": "force a send past "
    "failing checks", "users": "manage accounts", "audit": "read the audit trail",
}


@dataclass(frozen=True)
class Person(Actor):
    """An actor who proved who they are (an account), or, with no accounts at all, a typed name
    with no role (`role` ""), which may do anything as before accounts existed."""

    role: str = ""
    regions: tuple[str, ...] = ()

    @property
    def accounted(self) -> bool:
        return bool(self.role)


def may(person: Person, action: str) -> bool:
    """Whether the role allows `action` at all (regions aside)."""
    if not person.accounted:
        return True
    return ROLES.index(person.role) >= ROLES.index(ACTIONS[action])


def a(role: str) -> str:
    """The role with its article: "a writer", "an editor", "an admin"."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def region_names(regions: Sequence[str]) -> str:
    return ", ".join(REGIONS.get(slug, slug) for slug in regions) if regions else "every region"


def refusal(person: Person, action: str, regions: Sequence[str] = ()) -> str:
    """Why `person` may not do `action` for a send or schedule to `regions` (empty: every
    region), or "" when they may."""
    if not may(person, action):
        needed = ACTIONS[action]
        also = "" if needed == "admin" else " or an admin"
        return (f"{person.name} is {a(person.role)}: {a(person.role)} may not {WORDS[action]} "
                f"(that needs {a(needed)}{also})")
    if not person.accounted or not person.regions or action in UNREGIONED:
        return ""
    outside = [slug for slug in (regions or REGIONS) if slug not in person.regions]
    if outside:
        return (f"{person.name} may {WORDS[action]} only for {region_names(person.regions)}; "
                f"this reaches {region_names(outside)}")
    return ""
