"""Import and export the regional networks' CSV contact lists.

A file with a bad row changes nothing (unless the caller asks to skip bad rows), and every bad
row is reported as "line N: reason". Imports only ever add: they never overwrite what a person
set on their preferences page, never reactivate a topic someone left, and never touch a
suppressed (unsubscribed, erased, bounced) address. The file is read and checked in batches,
each written as soon as it is checked (`mailer.subscribers.staging`), so memory stays flat
however long the list is; a savepoint takes back what was written when a bad row turns up
further down.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import operator
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlmodel import Session, col, select

from mailer import addresses, taxonomy
from mailer.audit import Actor, command_line, os_user, record
from mailer.errors import DataError, user_file
from mailer.models import TEXT_MAX, Subscriber, Subscription, utcnow
from mailer.subscribers.staging import Staged, Staging
from mailer.subscribers.subscriptions import (
    hash_address,
    text_problem,
)

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

# A cell starting with one of these is a formula to a spreadsheet (CSV injection): the export
# puts a "'" before it (and before a leading "'"), and the import takes that "'" off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTED_START = (*FORMULA_START, "'")
TOPIC_SEPARATOR = re.compile(r"[\s,]+")
COLUMNS = ("email", "name", "organisation", "region", "audience")
OPTIONAL_COLUMNS = ("topics",)
CHUNK = 500
BATCH = 4000  # rows checked and staged at a time (SQLite binds at least 32,766 values a statement)
# While the reader thread runs, the writing thread waits up to this long for the interpreter
# after each statement. 1 M rows, 3,000 statements: import 14.6 s at 0.5 ms, 11.5 s at 0.1 ms,
# 10.6 s at 20 µs; the default, 5 ms, was worse still.
SWITCH_INTERVAL = 0.00002


class ListImportError(DataError):
    """The file cannot be imported as a whole; `report.rejected` lists every bad row."""

    def __init__(self, message: str, report: ImportReport | None = None):
        super().__init__(message)
        self.report = report


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


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text; `from_spreadsheet` gives the value back."""
    return "'" + cell if cell.startswith(QUOTED_START) else cell


def from_spreadsheet(cell: str) -> str:
    """Undo `spreadsheet_safe`; a "'" before anything else is the cell's own."""
    return cell[1:] if cell[:1] == "'" and cell[1:].startswith(QUOTED_START) else cell


def _open_rows(handle: TextIO) -> CsvReader:
    """A reader for comma- or semicolon-separated files (Dutch spreadsheets write semicolons)."""
    first = handle.readline()
    handle.seek(0)
    return csv.reader(handle, delimiter=";" if first.count(";") > first.count(",") else ",")


def _check_header(fields: list[str] | None) -> list[str]:
    """The column names, lower case; a header we cannot use is an error."""
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
    return names


class _RowChecker:
    """Checks the rows of one file; what is the same for every row is worked out once."""

    FIELDS = ("email", "name", "organisation", "region", "audience", "topics")

    def __init__(self, names: list[str], region: str | None, audience: str | None, topic: str):
        self.width = len(names)
        column = {name: i for i, name in enumerate(names)}  # a repeated column: the last
        # A column the file does not have reads the empty cell `check` puts after the row's own.
        self.pick = operator.itemgetter(*(column.get(f, self.width) for f in self.FIELDS))
        self.defaults = {"region": region or "", "audience": audience or ""}
        self.resolved: dict[str, dict[str, str]] = {"region": {}, "audience": {}}
        self.topic: tuple[str, ...] = (topic,)

    def _slug(self, key: str, given: str, problems: list[str]) -> str:
        """The slug of a region or audience; a problem is added when there is none."""
        given = given[: TEXT_MAX + 1] or self.defaults[key]
        cache = self.resolved[key]
        if (slug := cache.get(given)) is None:
            if not given:
                problems.append(f"no {key} (fill the column or pass --{key})")
            elif (slug := taxonomy.resolve(key, given)) is None:
                problems += taxonomy.problems(key, [given])
            else:
                cache[given] = slug  # only names that resolve: a bad file cannot grow it
        return slug or ""

    def check(self, cells: list[str], line: int) -> Staged | str:
        """A valid row ready to stage, or the reason it is rejected."""
        if len(cells) > self.width:
            return "more fields than the header has columns"
        cells += [""] * (self.width + 1 - len(cells))
        # (a call per cell only for the few cells that start with "'": a million rows are read)
        email, name, organisation, region, audience, listed = [
            from_spreadsheet(cell) if cell[:1] == "'" else cell for cell in map(str.strip, self.pick(cells))]
        email = addresses.normalise(email)
        problems = list(filter(None, (addresses.problem(email), text_problem("name", name),
                                      text_problem("organisation", organisation))))
        region, audience = self._slug("region", region, problems), self._slug("audience", audience, problems)
        topics = self.topic  # checked once, by _check_options
        if listed:
            topics = tuple(t for t in TOPIC_SEPARATOR.split(listed) if t) or self.topic
            problems += taxonomy.problems("topic", topics)
        if problems:
            return "; ".join(problems)
        return Staged(line, email, hash_address(email), name, organisation, region, audience,
                      " ".join(topics))


def _check_options(region: str | None, audience: str | None, topic: str) -> None:
    found = [taxonomy.problem(key, given) for key, given in
             (("region", region), ("audience", audience), ("topic", topic)) if given is not None]
    if any(found):
        raise ListImportError("; ".join(p for p in found if p))


def read_rows(path: Path, region: str | None, audience: str | None, topic: str,
              rejected: list[tuple[int, str]], progress: Callable[[int], None] | None = None
              ) -> Iterator[Staged]:
    """The checked rows of a file, one at a time; each bad row is added to `rejected` as
    (line, reason). Duplicates within the file are found later, in the staging tables."""
    try:
        with user_file(path), path.open(encoding="utf-8-sig", newline="") as handle:
            reader = _open_rows(handle)
            checker = _RowChecker(_check_header(next(reader, None)), region, audience, topic)
            end = reader.line_num
            for cells in reader:
                line, end = end + 1, reader.line_num  # a quoted cell may span lines
                if not cells:
                    continue  # an empty line
                parsed = checker.check(cells, line)
                if isinstance(parsed, str):
                    rejected.append((line, parsed))
                else:
                    yield parsed
                if progress:
                    progress(1)
    except UnicodeDecodeError as exc:
        raise ListImportError(f"{path.name} is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise ListImportError(f"{path.name}: not a readable CSV file ({exc})") from exc


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


def _read_ahead(batches: Iterator[list[Staged]], depth: int = 2) -> Iterator[list[Staged]]:
    """The batches of `batches`, made in a thread of their own, at most `depth` ahead.

    Reading and checking rows is Python; staging them is SQL, which lets go of the interpreter
    while it runs. So on two cores the next batch is checked while the last one is written.
    An error in the thread is raised here, in the caller's thread."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                ahead.put(batch)
            ahead.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            ahead.put(exc)

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    thread.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a thread that waits to put a batch see the stop
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.05)
        thread.join()
        sys.setswitchinterval(switch)


def import_list(
    session: Session, path: Path, region: str | None = None, audience: str | None = None,
    topic: str = "updates", dry_run: bool = False, skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None, actor: Actor | None = None,
) -> ImportReport:
    """Import one contact list in the session's transaction, all-or-nothing unless `skip_invalid`.

    An import (not a dry run) is `list.imported` in the audit trail, in the same transaction,
    by `actor` (default: the command line's OS user), with the file's name and the counts.
    """
    _check_options(region, audience, topic)
    bad: list[tuple[int, str]] = []
    expected_rows = _expected_rows(path)
    with session.begin_nested():  # what the batches wrote goes if the import fails
        staging = Staging(session, utcnow(), f"import {path.name}"[:TEXT_MAX], writing=not dry_run,
                          expected_rows=expected_rows)
        staged = 0
        for batch in _read_ahead(_chunks(read_rows(path, region, audience, topic, bad, progress), BATCH)):
            # an import that will fail goes on reading, to report every bad row, but writes no more
            staging.writing = staging.writing and (skip_invalid or not (bad or staging.duplicates))
            staging.add(batch)
            staged += len(batch)
        duplicates = [(line, f"duplicate of line {first} ({email})")
                      for line, first, email in staging.duplicates]
        rejected = [f"line {line}: {reason}" for line, reason in heapq.merge(bad, duplicates)]
        report = ImportReport(path.name, rows=staged + len(bad), rejected=rejected, dry_run=dry_run)
        if rejected and not skip_invalid:
            raise ListImportError(
                f"{path.name}: {len(rejected)} of {report.rows} rows rejected, nothing imported "
                "(fix them, or pass --skip-invalid to import the rest):\n" + "\n".join(rejected),
                report,
            )
        staging.close()
    counts = staging.counts
    report.added, report.left_alone = counts.get(1, 0), counts.get(2, 0)
    report.updated, report.unchanged = counts.get(3, 0), counts.get(4, 0)
    if not dry_run:
        record(session, actor or command_line(os_user()), "list.imported", f"list {path.name}",
               file=path.name, topic=topic, region=region, audience=audience, rows=report.rows,
               added=report.added, updated=report.updated, unchanged=report.unchanged,
               left_alone=report.left_alone, rejected=len(report.rejected))
    return report


def _expected_rows(path: Path, sample: int = 1 << 16) -> int:
    """About how many rows the file has, from the line length of its start (for `Staging`)."""
    with user_file(path), path.open("rb") as handle:
        start = handle.read(sample)
        size = handle.seek(0, 2)
    return size * start.count(b"\n") // max(len(start), 1)


def _subscriptions(session: Session, ids: list[int]) -> dict[tuple[int, str], Subscription]:
    found: dict[tuple[int, str], Subscription] = {}
    for chunk in _chunks(ids):
        query = select(Subscription).where(col(Subscription.subscriber_id).in_(chunk))
        for sub in session.exec(query):
            found[(sub.subscriber_id, sub.topic)] = sub
    return found


def export_list(session: Session, out: TextIO) -> int:
    """Write subscribers as CSV in the import format plus their active topics; return the count.

    Cells that a spreadsheet would run as a formula are exported as text (`spreadsheet_safe`)."""
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
        subs = _subscriptions(session, [p.id for p in batch])
        for person in batch:
            topics = " ".join(
                t for t in taxonomy.TOPICS
                if (s := subs.get((person.id, t))) and s.status == "active"
            )
            writer.writerow([spreadsheet_safe(cell) for cell in (
                person.email, person.name, person.organisation, person.region,
                person.audience, topics)])
            count += 1
    return count
