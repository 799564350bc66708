"""Benchmark: import a generated contact list of 100,000 rows into a fresh database.

Prints the time of each run, the median, and the peak resident memory of this process.

    python bench/import.py [--rows 100000] [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import csv
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.config import Settings  # noqa: E402
from mailer.db import get_engine, session_scope  # noqa: E402
from mailer.subscribers.lists import import_list  # noqa: E402
from mailer.taxonomy import AUDIENCES, REGIONS  # noqa: E402


def generate(path: Path, rows: int) -> None:
    regions, audiences = list(REGIONS), list(AUDIENCES)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "organisation", "region", "audience"])
        for i in range(rows):
            writer.writerow([f"persoon{i}@example.org", f"Persoon {i}", "Veilig Thuis",
                             regions[i % len(regions)], audiences[i % len(audiences)]])


@click.command()
@click.option("--rows", default=100_000, show_default=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--database-url", default="", help="Default: a new SQLite file per run.")
def main(rows: int, runs: int, database_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "list.csv"
        generate(path, rows)
        times = []
        for run in range(runs):
            url = database_url or f"sqlite:///{root}/run{run}.db"
            settings = Settings(root=root, database_url=url)
            get_engine(settings)  # creates the schema, which is not timed
            start = time.perf_counter()
            with session_scope(settings, write=True) as session:
                report = import_list(session, path)
            times.append(time.perf_counter() - start)
            print(f"run {run + 1}: {times[-1]:.2f} s ({report.added} added)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"median {statistics.median(times):.2f} s for {rows} rows "
          f"({rows / statistics.median(times):,.0f} rows/s); peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
