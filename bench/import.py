"""Benchmark `mailer lists import`: a 100,000-row and a 1,000,000-row list, side by side.

Each import runs in a process of its own (a fresh database, the schema made before the clock
starts), so its peak resident memory is its own: the figure to compare between the two sizes.
Prints time, rows/s, the process's CPU time (what a busy shared machine disturbs least) and peak
RSS of each, and the ratio of the peaks (flat memory: near 1). Each size is imported --runs
times, the sizes taking turns, after an fsync of everything written before; the median time and
the highest peak are printed, and every run's time, since this host's speed drifts by 2x.

    python bench/import.py [--rows 100000 --rows 1000000] [--runs 3] [--again] [--database-url URL]

With --database-url (PostgreSQL), each run gets a schema of its own in that database.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.config import Settings  # noqa: E402
from mailer.taxonomy import AUDIENCES, REGIONS  # noqa: E402


def generate(path: Path, rows: int) -> None:
    regions, audiences = list(REGIONS), list(AUDIENCES)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "organisation", "region", "audience"])
        for i in range(rows):
            writer.writerow([f"persoon{i}@example.org", f"Persoon {i}", "Veilig Thuis",
                             regions[i % len(regions)], audiences[i % len(audiences)]])


def run_one(path: Path, url: str, again: bool) -> dict:
    """One import in this process: seconds, rows added and this process's peak RSS; with
    `again`, also the seconds of importing the same file a second time (everyone is known)."""
    from sqlalchemy import text

    from mailer.db import engine_for, get_engine, session_scope
    from mailer.subscribers.lists import import_list

    schema = ""
    if url.startswith("postgresql"):
        schema = f"bench_import_{uuid.uuid4().hex[:10]}"
        with engine_for(url).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        settings = Settings(root=path.parent, database_url=url)
        get_engine(settings)  # creates the schema, which is not timed
        started = time.perf_counter()
        with session_scope(settings, write=True) as session:
            report = import_list(session, path)
        seconds = time.perf_counter() - started
        again_seconds = None
        if again:
            started = time.perf_counter()
            with session_scope(settings, write=True) as session:
                import_list(session, path)
            again_seconds = time.perf_counter() - started
    finally:
        if schema:
            with engine_for(url.split("?")[0]).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "again": again_seconds,
            "cpu": usage.ru_utime + usage.ru_stime, "added": report.added,
            "peak_mib": usage.ru_maxrss / 1024}


@click.command()
@click.option("--rows", "sizes", multiple=True, type=int, default=[100_000, 1_000_000],
              show_default=True, help="List sizes to import (repeatable).")
@click.option("--runs", default=3, show_default=True,
              help="Imports of each size, the sizes taking turns; the median is reported.")
@click.option("--database-url", default="", help="Default: a new SQLite file per run.")
@click.option("--again", is_flag=True,
              help="Then import the same file again into the same database, everyone already known, "
                   "and print that time too (CPU and peak RSS then cover both imports).")
@click.option("--child", type=click.Path(path_type=Path), hidden=True)
def main(sizes: tuple[int, ...], runs: int, database_url: str, again: bool, child: Path | None) -> None:
    if child is not None:
        print(json.dumps(run_one(child, database_url, again)))
        return
    results: dict[int, list[dict]] = {rows: [] for rows in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            generate(Path(tmp) / f"list-{rows}.csv", rows)
        for run in range(runs):
            for rows in sizes:
                url = database_url or f"sqlite:///{tmp}/run-{rows}-{run}.db"
                os.sync()  # the last run's database is not still being written out meanwhile
                done = subprocess.run([sys.executable, __file__, "--child", f"{tmp}/list-{rows}.csv",
                                       "--database-url", url, *["--again"] * again],
                                      check=True, capture_output=True, text=True)
                results[rows].append(json.loads(done.stdout.strip().splitlines()[-1]))
                if not database_url:
                    Path(url.removeprefix("sqlite:///")).unlink()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; database: {database_url.split('@')[-1] or 'SQLite'}; "
          f"median of {runs} run(s)")
    for rows, found in results.items():
        seconds = statistics.median(r["seconds"] for r in found)
        print(f"{rows:>9,} rows: {seconds:6.2f} s ({rows / seconds:>7,.0f} rows/s, "
              f"{found[0]['added']:,} added; CPU of the whole process "
              f"{statistics.median(r['cpu'] for r in found):.2f} s), "
              f"peak RSS {max(r['peak_mib'] for r in found):.0f} MiB; each run: "
              + ", ".join(f"{r['seconds']:.2f} s" for r in found))
        if again:
            print(f"{'':>9}   the same file again: "
                  f"{statistics.median(r['again'] for r in found):6.2f} s (median); each run: "
                  + ", ".join(f"{r['again']:.2f} s" for r in found))
    if len(results) > 1:
        peaks = [max(r["peak_mib"] for r in found) for found in results.values()]
        print(f"peak RSS largest / smallest list: {max(peaks) / min(peaks):.2f}")


if __name__ == "__main__":
    main()
