"""The list import's staging: each batch of checked rows is matched, counted and written in SQL.

A million-row list must not be held in memory, yet the import stays all-or-nothing and finds
duplicate addresses anywhere in the file. So each batch of checked rows goes into a small
temporary table (one multi-row VALUES statement on SQLite, COPY on PostgreSQL) and is applied at
once with a few set-based statements, in the caller's transaction, while the reader thread checks
the next batch. The first line of every address is kept in a second temporary table, so a
duplicate is found however far apart its lines are. The caller's savepoint takes it all back.

The batches may be written one by one because, duplicates left out, every row concerns a person
no other row concerns: what a row does depends on that person alone, never on the rows before.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from typing import NamedTuple

from sqlalchemy import DateTime, bindparam, text
from sqlmodel import Session

from mailer.db import driver_connection
from mailer.models import PUBLIC_ID_SQL


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


ROW_COLUMNS = Staged._fields
TABLES = {
    "import_row": (  # the batch in hand
        "(line INTEGER PRIMARY KEY, email TEXT NOT NULL, address_hash TEXT NOT NULL, "
        "name TEXT NOT NULL, organisation TEXT NOT NULL, region TEXT NOT NULL, "
        "audience TEXT NOT NULL, topics TEXT NOT NULL, person_id INTEGER, "
        "left_alone INTEGER NOT NULL DEFAULT 0)"),
    "import_seen": (  # the first line of every address so far; on SQLite one b-tree, by address
        "(email TEXT PRIMARY KEY, line INTEGER NOT NULL)<without_rowid>"),
}
WITHOUT_ROWID = {"sqlite": " WITHOUT ROWID", "postgresql": ""}
CLEAR = {"sqlite": "DELETE FROM import_row",  # (PostgreSQL does not vacuum a temporary table:
         "postgresql": "TRUNCATE import_row"}  # deleted rows would pile up batch after batch)
_STAGE = f"INSERT INTO import_row ({', '.join(ROW_COLUMNS)}) VALUES "
_ROW_MARKS = f"({', '.join('?' * len(ROW_COLUMNS))})"
# ("WHERE true": SQLite's parser needs a WHERE before ON CONFLICT in INSERT … SELECT)
_SEEN = text("INSERT INTO import_seen (email, line) SELECT email, line FROM import_row WHERE true "
             "ORDER BY line ON CONFLICT (email) DO NOTHING")
_DUPLICATES = ("FROM import_row r JOIN import_seen s ON s.email = r.email "
               "WHERE s.line < r.line")
_MATCH = text("UPDATE import_row SET person_id = "
              "(SELECT p.id FROM subscriber p WHERE p.email = import_row.email)")
_ANY_EXISTING = text("SELECT EXISTS (SELECT 1 FROM import_row WHERE person_id IS NOT NULL)")
_LEFT_ALONE = text(
    "UPDATE import_row SET left_alone = 1 WHERE EXISTS (SELECT 1 FROM suppression s "
    "WHERE s.address_hash = import_row.address_hash) OR EXISTS (SELECT 1 FROM subscriber p "
    "WHERE p.id = import_row.person_id AND p.status = 'unsubscribed')")
# Indexes on random keys: once they outgrow the page cache every insert costs page reads and
# writes. When an import will at least double a large table (judged before the first write, from
# the file's size and the share of new people in the first batch), SQLite builds them again at
# the end (a sort, several times faster than a million random inserts), in the same transaction.
REBUILT_INDEXES = ("ix_subscriber_address_hash", "ix_subscriber_public_id")
REBUILD_FROM = 50_000  # rows; below this the indexes stay in the page cache
SQLITE_CACHE_KIB = 24 * 1024  # page cache while importing, and what a sort (CREATE INDEX) may hold
# (no PRAGMA threads: a second sort thread saved 0.4 s of 14 and took peak RSS from 138 to 186 MiB)
# A row's topics are staged space-separated; `topic t` joined ON this is one row per topic.
# Most rows have one topic: the equality decides those without building strings.
_ITS_TOPIC = ("(t.slug = r.topics OR (r.topics LIKE '% %' "
              "AND (' ' || r.topics || ' ') LIKE ('% ' || t.slug || ' %')))")

# (Every look-up is a subquery on an index: a join would let PostgreSQL hash the whole table
# once per batch.)
# Per staged row: 1 = the person is new, 2 = left alone, 3 = gets a topic or is activated,
# 4 = nothing to do. The same rules as a person's own preferences: never resubscribe.
_OUTCOMES = text(f"""
SELECT outcome, COUNT(*) FROM (SELECT CASE
  WHEN r.left_alone = 1 THEN 2
  WHEN r.person_id IS NULL THEN 1
  WHEN (SELECT p.status FROM subscriber p WHERE p.id = r.person_id) = 'pending' OR EXISTS (
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
FROM import_row r) o GROUP BY outcome
""")

# Each statement starts from the batch's rows and reaches the tables by index, so a batch costs
# the same in a large database as in an empty one.
_WRITES_EXISTING = (  # only for a batch with people the database has
    # topics an existing person does not have yet
    f"""INSERT INTO subscription (subscriber_id, topic, status, consent_at, consent_source, updated_at)
       SELECT r.person_id, t.slug, 'active', :now, :source, :now
       FROM import_row r JOIN topic t ON {_ITS_TOPIC}
       WHERE r.person_id IS NOT NULL AND r.left_alone = 0 AND NOT EXISTS (
           SELECT 1 FROM subscription x WHERE x.subscriber_id = r.person_id AND x.topic = t.slug)""",
    # pending topics the list confirms
    f"""UPDATE subscription SET status = 'active', consent_at = :now, consent_source = :source,
           updated_at = :now
       WHERE id IN (
           SELECT x.id FROM import_row r JOIN topic t ON {_ITS_TOPIC} JOIN subscription x
             ON x.subscriber_id = r.person_id AND x.topic = t.slug
           WHERE r.left_alone = 0 AND x.status = 'pending')""",
    # pending people the list confirms
    """UPDATE subscriber SET status = 'active', updated_at = :now
       WHERE id IN (SELECT person_id FROM import_row WHERE person_id IS NOT NULL AND left_alone = 0)
         AND status = 'pending'""",
)
_WRITES_NEW = (
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


class Staging:
    """Temporary tables in the session's transaction; `add` applies one batch of rows.

    `counts` holds the rows per outcome (see _OUTCOMES) and `duplicates` the (line, first line,
    address) of every row whose address an earlier row has; such rows are left out. Rows are
    written while `writing` is true; an import that is going to fail sets it false."""

    def __init__(self, session: Session, now: dt.datetime, source: str, writing: bool,
                 expected_rows: int):
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self.counts: dict[int, int] = {}
        self.duplicates: list[tuple[int, int, str]] = []
        self.writing = writing
        self.cache_size = None  # SQLite's, as it was before the import
        if self.dialect == "sqlite":
            limit = driver_connection(session.connection()).getlimit(
                sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self.rows_per_statement = limit // len(ROW_COLUMNS)
            self.cache_size = session.execute(text("PRAGMA cache_size")).scalar()
            session.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
        if self.dialect == "postgresql":
            # A batch's statements are costed high (a subquery per row) and run in milliseconds;
            # JIT-compiling them took 200 ms a batch.
            session.execute(text("SET LOCAL jit = off"))
        for name, columns in TABLES.items():
            session.execute(text(f"DROP TABLE IF EXISTS {name}"))
            session.execute(text(f"CREATE TEMPORARY TABLE {name} "
                                 + columns.replace("<without_rowid>", WITHOUT_ROWID[self.dialect])))
        # (into an empty database every row is new: no million lookups and row rewrites)
        self.match = bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM subscriber)")).scalar())
        self.writes_existing, self.writes_new = [[
            (text(s.replace("<public_id>", PUBLIC_ID_SQL[self.dialect]))
             .bindparams(bindparam("now", type_=DateTime())),  # stored as the ORM stores times
             {"now": now, "source": source} if ":source" in s else {"now": now})
            for s in statements] for statements in (_WRITES_EXISTING, _WRITES_NEW)]
        self.expected_rows = expected_rows
        self.rebuilt: list[str] | None = None  # decided with the first batch's outcomes

    def _drop_indexes(self, expected_new: int) -> list[str]:
        """Drop the REBUILT_INDEXES worth building again after this import; their CREATEs."""
        if self.dialect != "sqlite" or expected_new < REBUILD_FROM:
            return []
        before = self.session.execute(text("SELECT COALESCE(MAX(id), 0) FROM subscriber")).scalar_one()
        if expected_new * 2 < before:
            return []
        found = self.session.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscriber'"))
        dropped = [(name, sql) for name, sql in found if name in REBUILT_INDEXES]
        for name, _ in dropped:
            self.session.execute(text(f'DROP INDEX "{name}"'))
        return [sql for _, sql in dropped]

    def add(self, rows: list[Staged]) -> None:
        """Stage one batch, leave out its duplicates, count its outcomes and write it."""
        execute = self.session.execute
        execute(text(CLEAR[self.dialect]))
        self._stage(rows)
        seen = self.session.connection().execute(_SEEN)  # (an address seen before is not inserted)
        if seen.rowcount < len(rows):
            self.duplicates += [tuple(found) for found in execute(text(
                f"SELECT r.line, s.line, r.email {_DUPLICATES} ORDER BY r.line"))]
            execute(text(f"DELETE FROM import_row WHERE line IN (SELECT r.line {_DUPLICATES})"))
        existing = False  # whether the batch has people the database has
        if self.match:
            execute(_MATCH)
            existing = bool(execute(_ANY_EXISTING).scalar())
        execute(_LEFT_ALONE)
        outcomes = dict(execute(_OUTCOMES).all())
        for outcome, count in outcomes.items():
            self.counts[outcome] = self.counts.get(outcome, 0) + count
        if self.writing:
            if self.rebuilt is None:  # new people expected: as many as in this batch
                self.rebuilt = self._drop_indexes(self.expected_rows * outcomes.get(1, 0) // len(rows))
            for statement, values in (self.writes_existing if existing else []) + self.writes_new:
                execute(statement, values)

    def _stage(self, rows: list[Staged]) -> None:
        """On SQLite, one multi-row VALUES statement a batch, its values bound from one flat list:
        the interpreter is let go for the whole batch (the rows are checked meanwhile in another
        thread), not taken back after every row as `executemany` would, and SQLite parses no
        text (a JSON document a batch cost four times as much). On PostgreSQL, COPY."""
        cursor = self.session.connection().connection.cursor()
        try:
            if self.dialect == "sqlite":
                for start in range(0, len(rows), self.rows_per_statement):
                    part = rows[start:start + self.rows_per_statement]
                    cursor.execute(_STAGE + ",".join([_ROW_MARKS] * len(part)),
                                   list(itertools.chain.from_iterable(part)))
                return
            with cursor.copy(f"COPY import_row ({', '.join(ROW_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def close(self) -> None:
        """Build the dropped indexes again and drop the staging tables."""
        for create in self.rebuilt or []:
            self.session.execute(text(create))
        for name in TABLES:
            self.session.execute(text(f"DROP TABLE {name}"))
        if self.cache_size is not None:
            self.session.execute(text(f"PRAGMA cache_size = {int(self.cache_size)}"))
        if self.dialect == "postgresql":
            self.session.execute(text("RESET jit"))
