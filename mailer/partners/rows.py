"""Partner publications as the build reads them: one plain query, no ORM.

`mailer build` must not load SQLAlchemy, so it reads the `partner_publication` table through the
database driver itself (sqlite3, or psycopg on PostgreSQL), read-only: a project without a
database simply has no publications yet, and one at another schema version is refused as
`mailer.db` refuses it. The digest of what was read goes into the manifest, so
a send can tell that publications were fetched after the build.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from contextlib import closing
from dataclasses import astuple, dataclass
from pathlib import Path

from mailer.config import Settings
from mailer.errors import ContentError
from mailer.schema import check_revision

COLUMNS = ("url", "organisation", "title", "summary", "published", "categories", "themes", "regions")
QUERY = f"SELECT {', '.join(COLUMNS)} FROM partner_publication ORDER BY url"
VERSION_QUERY = "SELECT version_num FROM alembic_version"


class PartnerError(ContentError):
    """partners.yaml or a publication cannot be used; the message names file and field."""


@dataclass(frozen=True)
class Publication:
    """One stored publication, its lists decoded."""

    url: str
    organisation: str
    title: str
    summary: str
    published: dt.date | None
    categories: tuple[str, ...]
    themes: tuple[str, ...]
    regions: tuple[str, ...]


def split(value: str) -> tuple[str, ...]:
    """A stored list (a JSON array, as models.TextList writes it) as a tuple."""
    return tuple(json.loads(value)) if value else ()


def unique(values: Iterable[str]) -> list[str]:
    """A list as it is stored: without empties or repeats, in order."""
    return list(dict.fromkeys(v for v in values if v))


def _publication(row: tuple) -> Publication:
    url, organisation, title, summary, published, categories, themes, regions = row
    if published is not None and not isinstance(published, dt.date):
        published = dt.date.fromisoformat(str(published)[:10])
    return Publication(url, organisation, title, summary or "", published, split(categories or ""),
                       split(themes or ""), split(regions or ""))


def _check_version(row: tuple | None) -> None:
    """A database at an older schema may store the lists otherwise: ask for `mailer db upgrade`."""
    check_revision(row[0] if row else None)


def _sqlite_rows(path: str) -> list[tuple]:
    import sqlite3

    if path in ("", ":memory:") or not Path(path).exists():
        return []
    try:
        with closing(sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)) as conn:
            tables = {name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('alembic_version', 'partner_publication')")}
            if "alembic_version" in tables:
                _check_version(conn.execute(VERSION_QUERY).fetchone())
            return conn.execute(QUERY).fetchall() if "partner_publication" in tables else []
    except sqlite3.Error as exc:
        raise PartnerError(f"cannot read the partner publications from {path}: {exc}") from exc


def _postgres_rows(url: str) -> list[tuple]:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            versions, publications = conn.execute(
                "SELECT to_regclass('alembic_version'), to_regclass('partner_publication')"
            ).fetchone() or (None, None)
            if versions:
                _check_version(conn.execute(VERSION_QUERY).fetchone())
            return conn.execute(QUERY).fetchall() if publications else []
    except psycopg.Error as exc:
        raise PartnerError(f"cannot read the partner publications from the database: {exc}") from exc


def read_publications(settings: Settings) -> list[Publication]:
    """Every stored publication, ordered by URL; none when there is no database yet."""
    url = settings.resolved_database_url
    scheme, _, rest = url.partition("://")
    dialect = scheme.split("+")[0]
    if dialect == "sqlite":
        rows = _sqlite_rows(rest.removeprefix("/"))
    elif dialect in ("postgresql", "postgres"):
        rows = _postgres_rows(f"postgresql://{rest}")
    else:
        raise PartnerError(f"database_url {url!r}: unsupported database {dialect!r}")
    return [_publication(row) for row in rows]


def digest(publications: Iterable[Publication]) -> str:
    """A fingerprint of the publications a build read: any change to any of them changes it."""
    payload = json.dumps([astuple(p) for p in publications], ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
