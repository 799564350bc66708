"""A build that follows the files: rebuilt on every save, for the studio's live preview.

It is the ordinary `build`, run into a folder of its own (out/.studio) with the site's address
replaced by the studio's `/site`, so images and "Lees verder" links open from the studio.
Each distinct variant is compiled once per save (the stalking mailing: 4 for 30 segments).
A save that breaks the content keeps the last good build and reports the problems with
file and line; the next good save replaces both.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from watchfiles import awatch

from mailer.builds.builder import build
from mailer.builds.manifest import Manifest
from mailer.builds.preview import sample_slots
from mailer.config import Settings
from mailer.content.segments import segment_key
from mailer.errors import ContentError, Problem
from mailer.render.renderer import CompiledVariant, greeting

SITE_PREFIX = "/site"


@dataclass(frozen=True)
class LiveState:
    """The outcome of the last rebuild: a version number, and the problems if it failed."""

    version: int
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"version": self.version, "seconds": round(self.seconds, 3), "problems": [
            {"file": str(p.file), "line": p.line, "message": p.message, "text": str(p)}
            for p in self.problems]}


@dataclass
class LiveBuild:
    """One theme built into `out/.studio/`, again on every change of its sources."""

    settings: Settings
    theme: str
    state: LiveState = field(default_factory=lambda: LiveState(0))
    manifest: Manifest | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.site = replace(self.settings, public_base_url=SITE_PREFIX,
                            out_dir=self.settings.out / ".studio")

    @property
    def folder(self) -> Path:
        """Where the built files are: served under SITE_PREFIX."""
        return self.site.out

    def sources(self) -> list[Path]:
        """What the build reads from disk, and so what to watch."""
        paths = [self.settings.content / self.theme, self.settings.templates,
                 self.settings.content / "about.md"]
        return [p for p in paths if p.exists()]

    def rebuild(self) -> LiveState:
        """Build again; on failure keep the last good build and report the problems."""
        with self._lock:
            version = self.state.version + 1
            try:
                result = build(self.site, self.theme)
            except ContentError as exc:  # a problem without a place is put on the theme
                self.state = LiveState(version, tuple(replace(p, file=p.file or Path(self.theme))
                                                      for p in exc.problems))
            else:
                self.manifest = result.manifest
                self.state = LiveState(version, (), result.seconds)
            return self.state

    def mail(self, region: str, audience: str, name: str | None = None) -> tuple[str, str]:
        """HTML and text of a segment's variant as a reader called `name` gets it (sample links):
        None is the sample reader, "" a reader without a name (the neutral greeting)."""
        if self.manifest is None:
            raise LookupError("nothing built yet")
        entry = self.manifest.segments[segment_key(region, audience)]
        folder = self.folder / self.theme
        compiled = CompiledVariant((folder / entry.html).read_text("utf-8"),
                                   (folder / entry.text).read_text("utf-8"))
        slots = sample_slots(self.manifest, self.settings)
        if name is not None:
            slots["greeting"] = greeting(self.manifest.greeting, self.manifest.greeting_named,
                                         name)
        slots["webversion_url"] = entry.online_url
        return compiled.fill(slots)

    async def changes(self, stop: object = None) -> AsyncIterator[set]:
        """Sets of changed paths, as they are saved."""
        async for changed in awatch(*self.sources(), stop_event=stop):
            yield changed
