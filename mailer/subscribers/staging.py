"""The list import's staging tables: checked rows go in by batch, the import is applied in SQL.

A million-row list must not be held in memory, yet the import stays all-or-nothing and finds
duplicate addresses anywhere in the file. So the checked rows are streamed into temporary tables
(a JSON document per batch on SQLite, COPY on PostgreSQL) in the caller's transaction; duplicates and the
outcome per row are found with a few set-based statements, and the writes are INSERT … SELECT
and UPDATE … WHERE EXISTS. A rollback takes the staging tables with it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

from sqlalchemy import DateTime, bindparam, text
from sqlmodel import Session

from mailer.models import PUBLIC_ID_SQL

ROW_COLUMNS = ("line", "email", "address_hash", "name", "organisation", "region", "audience",
               "topics")  # the fields of Staged
TABLE = (
    "CREATE TEMPORARY TABLE import_row (line INTEGER PRIMARY KEY, email TEXT NOT NULL, "
    "address_hash TEXT NOT NULL, name TEXT NOT NULL, organisation TEXT NOT NULL, "
    "region TEXT NOT NULL, audience TEXT NOT NULL, topics TEXT NOT NULL, person_id INTEGER, "
    "left_alone INTEGER NOT NULL DEFAULT 0)"
)
_STAGE_JSON = text(
    f"INSERT INTO import_row ({', '.join(ROW_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(ROW_COLUMNS)))
    + " FROM json_each(:rows)")  # json_extract, not ->>: SQLite before 3.38 has JSON1 but no ->>
INDEX = "CREATE INDEX import_row_email ON import_row (email)"
# Indexes on random keys: once they outgrow the page cache every insert costs page reads and
# writes. When an import at least doubles a large table, SQLite builds them again at the end
# (a sort, several times faster than a million random inserts), inside the same transaction.
REBUILT_INDEXES = ("ix_subscriber_address_hash", "ix_subscriber_public_id")
REBUILD_FROM = 50_000  # new people; below this the indexes stay in the page cache
SQLITE_CACHE_KIB = 24 * 1024  # page cache while importing, and what a sort (CREATE INDEX) may hold
# A row's topics are staged space-separated; `topic t` joined ON this is one row per topic.
# Most rows have one topic: the equality decides those without building strings.
_ITS_TOPIC = ("(t.slug = r.topics OR (r.topics LIKE '% %' "
              "AND (' ' || r.topics || ' ') LIKE ('% ' || t.slug || ' %')))")

# Per staged row: 1 = the person is new, 2 = left alone, 3 = gets a topic or is activated,
# 4 = nothing to do. The same rules as a person's own preferences: never resubscribe.
_OUTCOME = f"""
SELECT CASE
  WHEN r.left_alone = 1 THEN 2
  WHEN r.person_id IS NULL THEN 1
  WHEN p.status = 'pending' OR EXISTS (
      SELECT 1 FROM topic t WHERE {_ITS_TOPIC} AND NOT EXISTS (
          SELECT 1 FROM subscription x WHERE x.subscriber_id = r.person_id AND x.topic = t.slug))
    OR EXISTS (
      SELECT 1 FROM topic t JOIN subscription x
        ON x.subscriber_id = r.person_id AND x.topic = t.slug
      WHERE {_ITS_TOPIC} AND x.status = 'pending') THEN 3
  WHEN EXISTS (
      SELECT 1 FROM topic t JOIN subscription x
        ON x.subscriber_id = r.person_id AND x.topic = t.slug
      WHERE {_ITS_TOPIC} AND x.status = 'unsubscribed') THEN 2
  ELSE 4 END AS outcome
FROM import_row r LEFT JOIN subscriber p ON p.id = r.person_id
"""

_WRITES = (
    # topics an existing person does not have yet
    f"""INSERT INTO subscription (subscriber_id, topic, status, consent_at, consent_source, updated_at)
       SELECT r.person_id, t.slug, 'active', :now, :source, :now
       FROM import_row r JOIN topic t ON {_ITS_TOPIC}
       WHERE r.person_id IS NOT NULL AND r.left_alone = 0 AND NOT EXISTS (
           SELECT 1 FROM subscription x WHERE x.subscriber_id = r.person_id AND x.topic = t.slug)""",
    # pending topics the list confirms; IN (a set built once), not a correlated EXISTS, which
    # would read every staged row once per pending subscription in the database
    f"""UPDATE subscription SET status = 'active', consent_at = :now, consent_source = :source,
           updated_at = :now
       WHERE status = 'pending' AND (subscriber_id, topic) IN (
           SELECT r.person_id, t.slug FROM import_row r JOIN topic t ON {_ITS_TOPIC}
           WHERE r.person_id IS NOT NULL AND r.left_alone = 0)""",
    # pending people the list confirms
    """UPDATE subscriber SET status = 'active', updated_at = :now
       WHERE status = 'pending' AND id IN (
           SELECT person_id FROM import_row WHERE person_id IS NOT NULL AND left_alone = 0)""",
    # new people, in line order, then their topics; on SQLite, CROSS JOIN keeps the staged rows
    # the outer loop instead of a pass over them per topic
    """INSERT INTO subscriber (email, address_hash, name, organisation, region, audience, status,
                               created_at, updated_at, source, public_id)
       SELECT email, address_hash, name, organisation, region, audience, 'active', :now, :now,
              :source, <public_id>
       FROM import_row WHERE person_id IS NULL AND left_alone = 0 ORDER BY line""",
    f"""INSERT INTO subscription (subscriber_id, topic, status, consent_at, consent_source, updated_at)
       SELECT p.id, t.slug, 'active', :now, :source, :now
       FROM import_row r CROSS JOIN subscriber p CROSS JOIN topic t
       WHERE p.email = r.email AND {_ITS_TOPIC} AND r.person_id IS NULL AND r.left_alone = 0""",
)


class Staged(NamedTuple):
    """One checked row as it is staged (a tuple: a million of them are made)."""

    line: int
    email: str
    address_hash: str
    name: str
    organisation: str
    region: str
    audience: str
    topics: str  # topic slugs, space-separated


class Staging:
    """Temporary tables in the session's transaction, filled by batch and applied in SQL."""

    def __init__(self, session: Session):
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self.new = 0  # people the import adds, once `outcomes` has run
        self.cache_size = None
        if self.dialect == "sqlite":
            self.cache_size = session.execute(text("PRAGMA cache_size")).scalar()
            session.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
        session.execute(text("DROP TABLE IF EXISTS import_row"))
        session.execute(text(TABLE))

    def add(self, rows: list[Staged]) -> None:
        """Stage one batch of checked rows.

        SQLite takes the batch as one JSON document in one statement rather than a statement a
        row, so the interpreter is let go for the whole batch (the rows are checked meanwhile in
        another thread) instead of being taken back after every row."""
        if self.dialect == "sqlite":
            self.session.execute(_STAGE_JSON, {"rows": json.dumps(rows, ensure_ascii=False)})
            return
        cursor = self.session.connection().connection.cursor()
        try:
            with cursor.copy(f"COPY import_row ({', '.join(ROW_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def duplicates(self) -> list[tuple[int, int, str]]:
        """(line, first line, address) of every row whose address an earlier row already has."""
        self.session.execute(text(INDEX))
        return [tuple(row) for row in self.session.execute(text(
            "SELECT r.line, f.first, r.email FROM import_row r JOIN ("
            "  SELECT email, MIN(line) AS first FROM import_row GROUP BY email HAVING COUNT(*) > 1"
            ") f ON f.email = r.email WHERE r.line > f.first ORDER BY r.line"))]

    def drop_duplicates(self) -> None:
        self.session.execute(text(
            "DELETE FROM import_row WHERE line > (SELECT MIN(f.line) FROM import_row f "
            "WHERE f.email = import_row.email)"))

    def outcomes(self) -> dict[int, int]:
        """Match the staged rows with the database; count rows per outcome (see _OUTCOME)."""
        if self.session.execute(text("SELECT EXISTS (SELECT 1 FROM subscriber)")).scalar():
            # (into an empty database every row is new: no million lookups and row rewrites)
            self.session.execute(text(
                "UPDATE import_row SET person_id = (SELECT p.id FROM subscriber p "
                "WHERE p.email = import_row.email)"))
        self.session.execute(text(
            "UPDATE import_row SET left_alone = 1 WHERE address_hash IN "
            "(SELECT address_hash FROM suppression) OR person_id IN "
            "(SELECT id FROM subscriber WHERE status = 'unsubscribed')"))
        counts = self.session.execute(text(
            f"SELECT outcome, COUNT(*) FROM ({_OUTCOME}) o GROUP BY outcome"))
        found = {outcome: count for outcome, count in counts}
        self.new = found.get(1, 0)
        return found

    def _indexes_to_rebuild(self) -> list[tuple[str, str]]:
        """(name, CREATE statement) of the REBUILT_INDEXES worth dropping for this import."""
        if self.dialect != "sqlite" or self.new < REBUILD_FROM:
            return []
        before = self.session.execute(text("SELECT COALESCE(MAX(id), 0) FROM subscriber")).scalar()
        if self.new * 2 < before:
            return []
        found = self.session.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscriber'"))
        return [(name, sql) for name, sql in found if name in REBUILT_INDEXES]

    def write(self, now: dt.datetime, source: str) -> None:
        rebuilt = self._indexes_to_rebuild()
        for name, _ in rebuilt:
            self.session.execute(text(f'DROP INDEX "{name}"'))
        for statement in _WRITES:
            statement = statement.replace("<public_id>", PUBLIC_ID_SQL[self.dialect])
            # Typed, so SQLite stores the time in the same format as the ORM does.
            query = text(statement).bindparams(bindparam("now", type_=DateTime()))
            values = {"now": now, "source": source} if ":source" in statement else {"now": now}
            self.session.execute(query, values)
        for _, create in rebuilt:
            self.session.execute(text(create))

    def close(self) -> None:
        self.session.execute(text("DROP TABLE import_row"))
        if self.cache_size is not None:
            self.session.execute(text(f"PRAGMA cache_size = {int(self.cache_size)}"))

