"""The real browser for tests: Debian's chromium through playwright, the app served on loopback,
and axe-core (from npm, pinned) to check pages for accessibility problems."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.smtp_server import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="browser test needs "
                                    "/usr/bin/chromium (Debian package 'chromium')")
NPM_CACHE = Path(os.environ.get("MAILER_NPM_CACHE", Path.home() / ".cache" / "mailer-npm"))
AXE_VERSION = "4.14.1"


def npm_package(name: str, version: str) -> Path:
    """The folder of an npm package at a pinned version, installed once into NPM_CACHE; the
    test is skipped, saying why, when npm is missing or cannot install it."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"{name} {version} is installed with npm, and npm is not on this machine")
    prefix = NPM_CACHE / f"{name}-{version}"
    package = prefix / "node_modules" / name
    if not (package / "package.json").is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                               f"{name}@{version}"], capture_output=True, text=True, timeout=600,
                              check=False)
        if done.returncode != 0:
            pytest.skip(f"npm install {name}@{version} failed: {done.stderr.strip()[-300:]}")
    return package


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def axe_violations(page: Any, source: str) -> list[str]:
    """Run axe-core with its default rules (WCAG 2.0-2.2 A/AA and best practices) on the open
    page; one line per violation: rule, impact and the first element it found."""
    page.evaluate(source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}, {len(v['nodes'])}x): {v['nodes'][0]['target']} "
            f"{v['nodes'][0]['failureSummary'].splitlines()[-1].strip()}"
            for v in result["violations"]]


def axe_source() -> str:
    return (npm_package("axe-core", AXE_VERSION) / "axe.min.js").read_text(encoding="utf-8")
