"""Turn a suggested partner publication into a block file the writer then edits.

The file is marked `example: true`: its text is the partner's own summary, and the readiness
check keeps it from going out until a writer has read it and removed the mark.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml
from sqlmodel import select

from mailer.config import Settings
from mailer.content.loader import FILE_RE
from mailer.db import session_scope
from mailer.models import PartnerPublication
from mailer.partners.publications import PartnerError

NUMBER_STEP = 5  # room between blocks for the writer to move them


def slugify(text: str, limit: int = 50) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:limit].rstrip("-") or "partner"


def partner_block(settings: Settings, theme: str, url: str) -> Path:
    """Write `content/THEME/NN-slug.md` (type partner) for the stored publication at `url`."""
    theme_dir = settings.content / theme
    if not (theme_dir / "mailing.yaml").is_file():
        raise PartnerError(f"no such theme {theme!r}")
    with session_scope(settings) as session:
        row = session.exec(select(PartnerPublication).where(PartnerPublication.url == url)).first()
    if row is None:
        raise PartnerError(f"no stored partner publication with the URL {url!r}")
    blocks = sorted(theme_dir.glob("*.md"))
    for path in blocks:
        if url in path.read_text("utf-8"):
            raise PartnerError(f"{path.relative_to(settings.root)} already points to {url}")
    numbers = [int(m.group(0)) for p in blocks if (m := re.match(r"\d+", p.name)) and FILE_RE.match(p.name)]
    target = theme_dir / f"{max(numbers, default=0) + NUMBER_STEP:02d}-{slugify(row.title)}.md"
    front: dict[str, object] = {"type": "partner", "title": row.title,
                                "organisation": row.organisation, "url": row.url}
    if row.published:
        front["date"] = row.published
    if row.summary:
        front["lead"] = row.summary
    regions = list(row.regions)
    if regions:
        front["regions"] = regions
    front["example"] = True
    text = "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=100) + "---\n"
    with target.open("x", encoding="utf-8") as handle:  # never overwrite a writer's file
        handle.write(text + (row.summary.strip() + "\n" if row.summary else ""))
    return target
