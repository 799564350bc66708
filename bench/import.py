"""Benchmark `mailer lists import`: a 100,000-row and a 1,000,000-row list, side by side.

Each import runs in a process of its own (a fresh database, the schema made before the clock
starts), so its peak resident memory is its own: the figure to compare between the two sizes.
Prints time, rows/s, the process's CPU time (what a busy shared machine disturbs least) and peak
RSS of each, and the ratio of the peaks (flat memory: near 1).

    python bench/import.py [--rows 100000 --rows 1000000] [--database-url URL]

With --database-url (PostgreSQL), each run gets a schema of its own in that database.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
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


def run_one(path: Path, url: str) -> dict:
    """One import in this process: seconds, rows added and this process's peak RSS."""
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
    finally:
        if schema:
            with engine_for(url.split("?")[0]).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "added": report.added,
            "peak_mib": usage.ru_maxrss / 1024}


@click.command()
@click.option("--rows", "sizes", multiple=True, type=int, default=[100_000, 1_000_000],
              show_default=True, help="List sizes to import (repeatable).")
@click.option("--database-url", default="", help="Default: a new SQLite file per run.")
@click.option("--child", type=click.Path(path_type=Path), hidden=True)
def main(sizes: tuple[int, ...], database_url: str, child: Path | None) -> None:
    if child is not None:
        print(json.dumps(run_one(child, database_url)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"list-{rows}.csv"
            generate(path, rows)
            url = database_url or f"sqlite:///{tmp}/run-{rows}.db"
            done = subprocess.run([sys.executable, __file__, "--child", str(path), "--database-url",
                                   url], check=True, capture_output=True, text=True)
            results[rows] = json.loads(done.stdout.strip().splitlines()[-1])
            path.unlink()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; database: {database_url.split('@')[-1] or 'SQLite'}")
    for rows, r in results.items():
        print(f"{rows:>9,} rows: {r['seconds']:6.2f} s ({rows / r['seconds']:>7,.0f} rows/s, "
              f"{r['added']:,} added; CPU of the whole process {r['cpu']:.2f} s), "
              f"peak RSS {r['peak_mib']:.0f} MiB")
    if len(results) > 1:
        peaks = [r["peak_mib"] for r in results.values()]
        print(f"peak RSS largest / smallest list: {max(peaks) / min(peaks):.2f}")


if __name__ == "__main__":
    main()
