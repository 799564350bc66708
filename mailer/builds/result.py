"""What a build produced, as `mailer build` reports it: variants, segments, pages, warnings.

Shared by the full build (`mailer.builds.writer`) and the check that finds nothing to do
(`mailer.builds.builder`), so both report the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailer.builds.manifest import Manifest
from mailer.errors import ContentError

WARN_BYTES = 90 * 1024
MAX_BYTES = 102 * 1024  # Gmail clips messages whose HTML is larger than this


class BuildError(ContentError):
    """The mailing rendered, but the result must not be sent; nothing was written."""


@dataclass
class Variant:
    """One distinct compiled mail, shared by every segment that receives the same blocks."""

    name: str
    blocks: tuple[str, ...]
    bytes: int
    hash: str
    segments: list[str] = field(default_factory=list)

    @property
    def html(self) -> str:
        return f"mail/{self.name}.html"

    @property
    def text(self) -> str:
        return f"mail/{self.name}.txt"

    @property
    def online(self) -> str:
        return f"online/{self.name}.html"

    def where(self, theme: str) -> str:
        """The variant as an error message names it."""
        return f"{theme} variant {self.name} (blocks: {', '.join(self.blocks) or 'none'})"


@dataclass
class BuildResult:
    theme: str
    path: Path
    variants: list[Variant]
    segments: dict[str, Variant]
    pages: list[str]
    warnings: list[str]
    seconds: float
    manifest: Manifest
    unchanged: bool = False  # nothing was read that the last build had not; nothing was written


def size_check(theme: str, variant: Variant) -> str:
    """A warning when a variant's HTML nears Gmail's clipping limit; an error past it."""
    where, size = variant.where(theme), variant.bytes
    if size > MAX_BYTES:
        raise BuildError(f"{where}: HTML is {size / 1024:.1f} KB as sent (quoted-printable), over "
                         f"the {MAX_BYTES // 1024} KB at which Gmail clips a message; shorten "
                         "the leads or split the mailing")
    if size > WARN_BYTES:
        return (f"{where}: HTML is {size / 1024:.1f} KB as sent, close to Gmail's "
                f"{MAX_BYTES // 1024} KB clipping limit")
    return ""
