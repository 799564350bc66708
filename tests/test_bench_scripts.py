"""Every script in bench/ still runs, at tiny sizes, so none can rot unnoticed.

The figures they print are not checked (speed is for bench/README.md, measured on purpose); only
that each script gets to the end and prints its summary. The JS mjml peer runs only when npm and
the pinned mjml are already in the cache (no download in a test run); SpamAssassin and
PostgreSQL as elsewhere in the tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import POSTGRES_SKIP, REPO

BENCH = REPO / "bench"


def js_peer_cached() -> bool:
    """Whether bench/build.py would find npm and its pinned mjml without downloading."""
    spec = importlib.util.spec_from_file_location("bench_build", BENCH / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    marker = module.NODE_CACHE / "node_modules" / "mjml" / "package.json"
    return (shutil.which("npm") is not None and marker.exists()
            and f'"version": "{module.MJML_VERSION}"' in marker.read_text(encoding="utf-8"))


def no_spamassassin() -> bool:
    return shutil.which("spamassassin") is None


SCRIPTS = [
    pytest.param("api_list.py", ["--subscribers", "300", "--limit", "100", "--runs", "1"],
                 "per page over 3 pages", id="api_list"),
    pytest.param("build.py", ["--runs", "1"], "mailer build stalking, nothing changed", id="build"),
    pytest.param("import.py", ["--rows", "200", "--runs", "1", "--again"], "the same file again:",
                 id="import"),
    pytest.param("send.py", ["--recipients", "20", "--dkim-recipients", "20", "--bare-messages", "20",
                             "--runs", "1", "--cost-messages", "20"], "server counted", id="send"),
    pytest.param("spam.py", ["--theme", "update-2021"], "highest score", id="spam", marks=pytest.mark.skipif(
        no_spamassassin(), reason="spamassassin is not installed")),
    pytest.param("web.py", ["--duration", "0.5", "--rate", "40", "--warmup", "0.2", "--workers", "1",
                            "--concurrency", "4", "--database", "sqlite", "--recipients", "20"],
                 "(all recorded)", id="web"),
    pytest.param("workers.py", ["--recipients", "12", "--runs", "1", "--delay-ms", "0", "--workers",
                                "1", "--workers", "2"], "2 worker(s):", id="workers",
                 marks=pytest.mark.skipif(bool(POSTGRES_SKIP), reason=POSTGRES_SKIP)),
]


@pytest.mark.parametrize(("script", "args", "summary"), SCRIPTS)
def test_bench_script_runs_at_tiny_sizes(script: str, args: list[str], summary: str) -> None:
    if script == "build.py" and not js_peer_cached():
        args = [*args, "--no-js"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    assert summary in done.stdout, done.stdout
    if script == "build.py" and "--no-js" not in args:
        assert "first build / JS mjml" in done.stdout, done.stdout


def test_every_bench_script_is_run_here() -> None:
    run = {p.values[0] for p in SCRIPTS}
    assert run == {p.name for p in BENCH.glob("*.py")}
