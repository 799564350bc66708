"""Import and export the regional networks' CSV contact lists.

Every row is checked before anything is written: a file with a bad row changes nothing (unless
the caller asks to skip bad rows), and every bad row is reported as "line N: reason". Imports
only ever add: they never overwrite what a person set on their preferences page, never reactivate
a topic someone left, and never touch a suppressed (unsubscribed, erased, bounced) address.
Rows are written in bulk so a 100,000-row list takes seconds, not minutes.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqlmodel import Session, col, select

from mailer import addresses, taxonomy
from mailer.models import TEXT_MAX, Subscriber, Subscription, Suppression, utcnow
from mailer.subscribers.subscriptions import (
    hash_address,
    text_problem,
)

COLUMNS = ("email", "name", "organisation", "region", "audience")
OPTIONAL_COLUMNS = ("topics",)
CHUNK = 500


class ListImportError(Exception):
    """The file cannot be imported as a whole; `report.rejected` lists every bad row."""

    def __init__(self, message: str, report: ImportReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class Row:
    email: str
    name: str
    organisation: str
    region: str
    audience: str
    topics: tuple[str, ...]


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    file: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    left_alone: int = 0
    rejected: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (
            f"{self.file}: {self.rows} rows; {self.added} new subscribers {verb} added, "
            f"{self.updated} existing {verb} given a topic, {self.unchanged} unchanged, "
            f"{self.left_alone} left alone because they unsubscribed or were suppressed, "
            f"{len(self.rejected)} rejected."
        )


def _open_rows(handle: TextIO) -> csv.DictReader:
    """A reader for comma- or semicolon-separated files (Dutch spreadsheets write semicolons)."""
    first = handle.readline()
    handle.seek(0)
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return csv.DictReader(handle, delimiter=delimiter, restkey="\0extra")


def _check_header(fields: list[str] | None) -> None:
    if not fields:
        raise ListImportError("the file is empty; expected a header line: " + ",".join(COLUMNS))
    names = [f.strip().lower() for f in fields]
    if "email" not in names:
        raise ListImportError(f"the header has no 'email' column (columns: {','.join(COLUMNS)})")
    unknown = [f for f in names if f not in COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ListImportError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
            + ", ".join(COLUMNS + OPTIONAL_COLUMNS)
        )


def _parse_row(raw: dict, region: str | None, audience: str | None, topic: str) -> Row | str:
    """A valid Row, or the reason it is rejected."""
    if raw.get("\0extra"):
        return "more fields than the header has columns"
    value = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k != "\0extra"}
    email = addresses.normalise(value.get("email", ""))
    problems = [p for p in (addresses.problem(email),) if p]
    for key in ("name", "organisation"):
        problem = text_problem(key, value.get(key, ""))
        if problem:
            problems.append(problem)
    slugs = {}
    for key, default in (("region", region), ("audience", audience)):
        given = value.get(key, "")[: TEXT_MAX + 1] or default or ""
        slugs[key] = taxonomy.resolve(key, given) if given else None
        if not given:
            problems.append(f"no {key} (fill the column or pass --{key})")
        elif slugs[key] is None:
            problems.append(taxonomy.problem(key, given))
    topics = tuple(t for t in re.split(r"[\s,]+", value.get("topics", "")) if t) or (topic,)
    problems += taxonomy.problems("topic", topics)
    if problems:
        return "; ".join(problems)
    return Row(email, value.get("name", ""), value.get("organisation", ""),
               slugs["region"], slugs["audience"], topics)  # type: ignore[arg-type]


def read_list(path: Path, region: str | None = None, audience: str | None = None,
              topic: str = "updates", progress: Callable[[int], None] | None = None
              ) -> tuple[list[Row], list[str]]:
    """Validate a whole file: the good rows, and "line N: reason" for each bad one."""
    found = [taxonomy.problem(key, given) for key, given in
             (("region", region), ("audience", audience), ("topic", topic)) if given is not None]
    if any(found):
        raise ListImportError("; ".join(p for p in found if p))
    rows: list[Row] = []
    rejected: list[str] = []
    seen: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = _open_rows(handle)
            _check_header(reader.fieldnames)
            end = reader.line_num
            for raw in reader:
                line, end = end + 1, reader.line_num  # a quoted cell may span lines
                parsed = _parse_row(raw, region, audience, topic)
                if isinstance(parsed, str):
                    rejected.append(f"line {line}: {parsed}")
                elif parsed.email in seen:
                    rejected.append(
                        f"line {line}: duplicate of line {seen[parsed.email]} ({parsed.email})"
                    )
                else:
                    seen[parsed.email] = line
                    rows.append(parsed)
                if progress:
                    progress(1)
    except UnicodeDecodeError as exc:
        raise ListImportError(f"{path.name} is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise ListImportError(f"{path.name}: not a readable CSV file ({exc})") from exc
    return rows, rejected


def _chunks(items: Iterable, size: int = CHUNK) -> Iterator[list]:
    """Lists of `size` items (the last may be shorter), from any iterable."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_list(
    session: Session, path: Path, region: str | None = None, audience: str | None = None,
    topic: str = "updates", dry_run: bool = False, skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one contact list, all-or-nothing unless `skip_invalid`."""
    rows, rejected = read_list(path, region, audience, topic, progress)
    report = ImportReport(path.name, rows=len(rows) + len(rejected), rejected=rejected,
                          dry_run=dry_run)
    if rejected and not skip_invalid:
        raise ListImportError(
            f"{path.name}: {len(rejected)} of {report.rows} rows rejected, nothing imported "
            "(fix them, or pass --skip-invalid to import the rest):\n" + "\n".join(rejected),
            report,
        )
    source = f"import {path.name}"[:TEXT_MAX]
    existing = _existing(session, [r.email for r in rows])
    suppressed = _suppressed(session, [hash_address(r.email) for r in rows])
    subs = _subscriptions(session, [s.id for s in existing.values()])  # type: ignore[misc]
    now = utcnow()
    new_people: list[Row] = []
    new_subs: list[dict] = []
    activate_people: set[int] = set()
    activate_subs: list[int] = []
    for row in rows:
        person = existing.get(row.email)
        if hash_address(row.email) in suppressed or (
            person is not None and person.status == "unsubscribed"
        ):
            report.left_alone += 1
            continue
        if person is None:
            new_people.append(row)
            report.added += 1
            continue
        pid: int = person.id  # type: ignore[assignment]
        current = {t: subs[(pid, t)].status for t in row.topics if (pid, t) in subs}
        added = [t for t in row.topics if t not in current]
        pending = [subs[(pid, t)].id for t in row.topics if current.get(t) == "pending"]
        new_subs.extend(_subscription(pid, t, now, source) for t in added)
        activate_subs.extend(pending)  # type: ignore[arg-type]
        if person.status == "pending":
            activate_people.add(pid)
        if added or pending or person.status == "pending":
            report.updated += 1
        elif "unsubscribed" in current.values():
            report.left_alone += 1
        else:
            report.unchanged += 1
    if not dry_run:
        _write(session, new_people, new_subs, activate_people, activate_subs, now, source)
    return report


def _subscription(subscriber_id: int, topic: str, now: dt.datetime, source: str) -> dict:
    return {"subscriber_id": subscriber_id, "topic": topic, "status": "active",
            "consent_at": now, "consent_source": source, "updated_at": now}


def _existing(session: Session, emails: list[str]) -> dict[str, Subscriber]:
    found: dict[str, Subscriber] = {}
    for chunk in _chunks(emails):
        for person in session.exec(select(Subscriber).where(col(Subscriber.email).in_(chunk))):
            found[person.email] = person
    return found


def _suppressed(session: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(hashes):
        query = select(Suppression.address_hash).where(col(Suppression.address_hash).in_(chunk))
        found.update(session.exec(query))
    return found


def _subscriptions(session: Session, ids: list[int]) -> dict[tuple[int, str], Subscription]:
    found: dict[tuple[int, str], Subscription] = {}
    for chunk in _chunks(ids):
        query = select(Subscription).where(col(Subscription.subscriber_id).in_(chunk))
        for sub in session.exec(query):
            found[(sub.subscriber_id, sub.topic)] = sub
    return found


def _write(session: Session, people: list[Row], subs: list[dict], activate_people: set[int],
           activate_subs: list[int], now: dt.datetime, source: str) -> None:
    """Bulk statements: one round trip per thousand rows instead of one per row."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(people, 1000):
        values = [
            {"email": r.email, "address_hash": hash_address(r.email), "name": r.name,
             "organisation": r.organisation, "region": r.region, "audience": r.audience,
             "status": "active", "created_at": now, "updated_at": now, "source": source}
            for r in chunk
        ]
        returned = session.execute(table.insert().returning(table.c.id, table.c.email), values)
        ids = {email: id_ for id_, email in returned}
        subs.extend(_subscription(ids[r.email], t, now, source) for r in chunk for t in r.topics)
    sub_table = Subscription.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(subs, 1000):
        session.execute(sub_table.insert(), chunk)
    for chunk in _chunks(sorted(activate_people)):
        session.execute(table.update().where(table.c.id.in_(chunk))
                        .values(status="active", updated_at=now))
    for chunk in _chunks(activate_subs):
        session.execute(sub_table.update().where(sub_table.c.id.in_(chunk))
                        .values(status="active", consent_at=now, consent_source=source,
                                updated_at=now))
    session.flush()


def export_list(session: Session, out: TextIO) -> int:
    """Write subscribers as CSV in the import format plus their active topics; return the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + OPTIONAL_COLUMNS)
    query = (
        select(Subscriber)
        .where(Subscriber.status == "active")
        .order_by(Subscriber.email)
        .execution_options(yield_per=1000)
    )
    count = 0
    for batch in _chunks(session.exec(query), 1000):
        subs = _subscriptions(session, [p.id for p in batch])  # type: ignore[misc]
        for person in batch:
            topics = " ".join(
                t for t in taxonomy.TOPICS
                if (s := subs.get((person.id, t))) and s.status == "active"  # type: ignore[arg-type]
            )
            writer.writerow([person.email, person.name, person.organisation, person.region,
                             person.audience, topics])
            count += 1
    return count
