"""Benchmark `mailer build stalking` as a user runs it, beside the JavaScript MJML compiler.

Each round, in one run and interleaved so they share the machine's noise, times whole processes:

- `mailer build stalking` in a fresh project copy with no output and no compile cache (a first
  build), once with the templates already compiled to Python in the user's cache folder (as
  Python's own bytecode is) and once without (a first build on a new machine);
- the same command again with nothing changed (it only checks hashes);
- the same after an edit to one block that only some variants hold;
- JS `mjml` (pinned, installed with npm into ~/.cache/mailer-bench) compiling the 30 segment
  MJML documents of the same mailing in one node process; skipped when npm is absent or with
  `--no-js`.

Prints medians of wall time and of CPU time (user + system, which the shared machine disturbs
less), and the ratio of the build to the JS peer. Child processes run with Python's bytecode
cache on, as an installed mailer does. Run from the repository root:

    python bench/build.py [--runs 5] [--no-js]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MJML_VERSION = "4.18.0"  # the 4.x line that mjml-python follows, as in tests/test_mjml_parity.py
NODE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mailer-bench"
EDITED_BLOCK = "30-nieuw-werkproces-rotterdam.md"
NODE_SCRIPT = """
const fs = require('fs'), path = require('path');
const mjml2html = require(path.join(process.argv[2], 'node_modules', 'mjml'));
const dir = process.argv[3];
for (const name of fs.readdirSync(dir).filter(n => n.endsWith('.mjml')).sort()) {
  const out = mjml2html(fs.readFileSync(path.join(dir, name), 'utf8'), {validationLevel: 'soft'});
  if (!out.html) { console.error(name + ': no output'); process.exit(1); }
}
"""


# Python as users run it: with bytecode caching (this workplace's shells turn it off).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path, env: dict[str, str] = CHILD_ENV) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def install_mjml() -> Path | None:
    """The pinned JS mjml in the cache folder; None (with a message) when npm is absent."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        print("JS mjml peer: skipped (npm or node is not installed)")
        return None
    marker = NODE_CACHE / "node_modules" / "mjml" / "package.json"
    if not marker.exists() or f'"version": "{MJML_VERSION}"' not in marker.read_text():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix",
                        str(NODE_CACHE), f"mjml@{MJML_VERSION}"], check=True)
    (NODE_CACHE / "compile.js").write_text(NODE_SCRIPT, encoding="utf-8")
    return NODE_CACHE


def write_segment_documents(root: Path, target: Path) -> int:
    """The MJML source of every segment's variant, as the build renders it."""
    from mailer.config import load_settings
    from mailer.content.loader import load_mailing
    from mailer.content.segments import all_segments, select_blocks
    from mailer.render.renderer import Renderer

    settings = load_settings(root, environ={})
    mailing = load_mailing(settings.content, "stalking", root)
    renderer = Renderer(settings, mailing)
    target.mkdir()
    segments = list(all_segments())
    for n, (region, audience) in enumerate(segments):
        source = renderer.sources(select_blocks(mailing.blocks, region, audience))[0]
        (target / f"{n:02d}.mjml").write_text(source, encoding="utf-8")
    return len(segments)


def median(samples: list[tuple[float, float]], which: int) -> float:
    return statistics.median(s[which] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-js", action="store_true", help="Leave out the JS mjml peer.")
    args = parser.parse_args()
    mailer = [sys.executable, "-m", "mailer", "build", "stalking"]
    node = None if args.no_js else install_mjml()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        user_cache = root / "user-cache"  # the children's own, so the cold case can empty it
        env = {**CHILD_ENV, "XDG_CACHE_HOME": str(user_cache)}
        shutil.copytree(REPO / "content", root / "content")
        (root / "mailer.toml").write_text('secret_key = "bench-secret-key-not-for-production"\n',
                                          encoding="utf-8")
        count = write_segment_documents(root, root / "mjml")
        block = root / "content" / "stalking" / EDITED_BLOCK
        original = block.read_text(encoding="utf-8")

        def first_build(templates_compiled: bool = True) -> tuple[float, float]:
            shutil.rmtree(root / "out", ignore_errors=True)
            if not templates_compiled:
                shutil.rmtree(user_cache, ignore_errors=True)
            block.write_text(original, encoding="utf-8")
            return timed(mailer, root, env)

        def edited_build() -> tuple[float, float]:
            block.write_text(original.replace("eerder herkennen", f"eerder zien ({time.time()})"),
                             encoding="utf-8")
            return timed(mailer, root, env)

        cases: dict[str, Callable[[], tuple[float, float]]] = {
            "mailer build stalking, first build (no output, no cache)": first_build,
            "  the same, templates not yet compiled (new machine)": lambda: first_build(False),
            "mailer build stalking, nothing changed": lambda: timed(mailer, root, env),
            "mailer build stalking, one block edited": edited_build,
        }
        if node:
            cases[f"JS mjml {MJML_VERSION}: {count} segment documents, one node process"] = (
                lambda: timed(["node", str(node / "compile.js"), str(node), str(root / "mjml")], root))
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        timed(mailer, root, env)  # warm the file cache and Python's bytecode
        for _ in range(args.runs):
            for name, case in cases.items():
                samples[name].append(case())
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; medians of {args.runs} runs")
    width = max(len(name) for name in samples)
    print(f"{'':{width}}  {'wall':>8}  {'cpu':>8}")
    for name, runs in samples.items():
        print(f"{name:{width}}  {median(runs, 0):7.3f}s  {median(runs, 1):7.3f}s")
    if node:
        first, cold, peer = (samples[name] for name in (list(cases)[0], list(cases)[1], list(cases)[-1]))
        for label, build in (("first build", first), ("the same, templates not compiled", cold)):
            print(f"{label} / JS mjml: wall {median(build, 0) / median(peer, 0):.2f}, "
                  f"cpu {median(build, 1) / median(peer, 1):.2f} (target at most 0.33)")


if __name__ == "__main__":
    main()
