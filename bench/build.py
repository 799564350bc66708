"""Benchmark `mailer build stalking`: a full build beside compiling one variant, in one run.

Prints the median wall time of each and the ratio full build / (30 × one variant): the saving
that sharing identical variants buys. Run from the repository root:

    python bench/build.py [--runs 15]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mailer.build.builder import build
from mailer.config import load_settings
from mailer.content.loader import load_mailing
from mailer.content.segments import select_blocks
from mailer.render.renderer import Renderer
from mailer.taxonomy import REGIONS

REPO = Path(__file__).resolve().parents[1]


def median_seconds(func, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("content", "templates"):
            shutil.copytree(REPO / name, root / name)
        settings = load_settings(root, environ={})
        mailing = load_mailing(settings.content, "stalking", root)
        blocks = select_blocks(mailing.blocks, next(iter(REGIONS)), "beleidsmakers")
        renderer = Renderer(settings, mailing)
        renderer.compile_variant(blocks)  # warm the template cache, as a full build does once
        build(settings, "stalking")
        one = median_seconds(lambda: renderer.compile_variant(blocks), args.runs)
        full = median_seconds(lambda: build(settings, "stalking"), args.runs)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"runs: {args.runs}")
    print(f"full build (30 segments, load + compile + pages + manifest): median {full * 1000:.1f} ms")
    print(f"compile one variant (Jinja2 + MJML + premailer + text):        median {one * 1000:.1f} ms")
    print(f"ratio full / (30 x one variant): {full / (30 * one):.3f}")


if __name__ == "__main__":
    main()
