"""`out/<theme>/manifest.json`: what a build wrote, typed, written and read only here.

The build writes it last; the send, the preview and the archive read it. `version` changes when
the shape does, and a manifest of another version is not read but rebuilt. `source_hash` and
`partners` record what the build read, so a send can tell a stale build from a current one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mailer.errors import ContentError

VERSION = 2  # 1 was the untyped manifest, without "version" and "partners"
NAME = "manifest.json"


class ManifestError(ContentError):
    """A manifest that is missing, of another version or damaged; a new build replaces it."""


@dataclass(frozen=True)
class Segment:
    """Where one segment's variant is: files under `out/<theme>/` and its public web version."""

    html: str
    text: str
    online: str
    online_url: str
    blocks: tuple[str, ...]
    bytes: int
    hash: str
    variant: str


def variant_digest(html: bytes, text: bytes) -> str:
    """A variant's hash over its HTML and text as written: the build records it, and a send
    compares the files it reads against it."""
    return hashlib.sha256(html + b"\0" + text).hexdigest()


@dataclass(frozen=True)
class Article:
    """A block with a web page of its own, as the archive and the feed list it."""

    id: str
    title: str
    summary: str
    url: str


@dataclass(frozen=True)
class Manifest:
    """One built mailing: what it is, which variant each segment gets, and what it was built from."""

    theme: str
    kind: str
    title: str
    subject: str
    preheader: str
    topic: str
    date: dt.date
    greeting: str
    greeting_named: str
    public_url: str
    source_hash: str  # content, templates, settings and code; see mailer.builds.sources
    partners: str | None  # digest of the partner publications read; None: the mailing has none
    segments: dict[str, Segment]
    pages: list[str]
    articles: list[Article] = field(default_factory=list)
    version: int = VERSION

    def variant(self, name: str) -> Segment:
        """The files of a variant by its name."""
        try:
            return next(s for s in self.segments.values() if s.variant == name)
        except StopIteration:
            raise ManifestError(f"{self.theme}: no variant {name!r} in the manifest") from None

    def to_json(self) -> str:
        data = {"version": self.version, **asdict(self)}
        data["date"] = self.date.isoformat()
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            found = data.get("version", 1) if isinstance(data, dict) else "unknown"
            raise ManifestError(f"manifest version {found}, this mailer reads {VERSION}")
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["date"] = dt.date.fromisoformat(data["date"])
        data["segments"] = {key: Segment(**{**s, "blocks": tuple(s["blocks"])})
                            for key, s in data["segments"].items()}
        data["articles"] = [Article(**a) for a in data.get("articles", [])]
        return cls(**data)


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / NAME
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a built theme folder; ManifestError names the file and what is wrong."""
    path = folder / NAME
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path} not found: run `mailer build {folder.name}` first") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: cannot be read ({exc}); rebuild with "
                            f"`mailer build {folder.name}`") from exc
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}; rebuild with `mailer build {folder.name}`") from exc
