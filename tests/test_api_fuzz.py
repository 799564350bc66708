"""schemathesis holds the live API to its OpenAPI document, on SQLite and PostgreSQL: with a
token of every scope it finds no server error, no answer that breaks its schema, no undocumented
status code or content type, no schema-valid request refused and no invalid one taken.

It runs the `schemathesis run` command against /api/v1/openapi.json of a served app, with every
check, a fixed seed (the same cases each run) and a bounded number of cases per operation, so a
run stays within a minute or two per database.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mailer.accounts import api_tokens
from mailer.api.app import API
from mailer.audit import command_line
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Send
from mailer.web.app import create_app
from tests.browser import serve
from tests.conftest import bulk_subscribers

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
PARTNER = "https://partner.example"
EXAMPLES = "25"  # cases per operation and phase
SEED = "20261208"

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not "
                                "installed (pip install -e '.[test]')")


def test_schemathesis_finds_nothing_wrong(settings: Settings, tmp_path: Path) -> None:
    config = replace(settings, api_signup_origins=PARTNER, api_requests_per_minute=1_000_000)
    bulk_subscribers(config, 20)
    with session_scope(config, write=True) as session:
        session.add(Send(theme="stalking", topic="verdiepingen", subject="Stalking",
                         status="done", regions=["limburg"]))
    secret = api_tokens.add(config, command_line("tester"), "fuzzer", list(api_tokens.SCOPES))[1]
    with serve(create_app(config)) as base:
        done = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{base}/api/v1/openapi.json", "--checks", "all",
             "--header", f"Authorization: Bearer {secret}", "--header", f"Origin: {PARTNER}",
             "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "2",
             "--request-timeout", "30", "--suppress-health-check", "too_slow"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    # schemathesis leaves out OPTIONS (the sign-up's preflight: tests/test_api.py covers it)
    operations = sum(method != "options" for methods in API.document["paths"].values()
                     for method in methods)
    summary = done.stdout[done.stdout.rfind("SUMMARY"):]
    print(summary)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
    assert f"Tested: {operations}" in summary and " passed" in summary, summary
