"""deploy/: the systemd units that run mailer as a service, and the reverse-proxy example.

`systemd-analyze verify` judges each unit as systemd would load it. It only warns about an
unknown key or a value it cannot parse, so any output fails the test. The units run
/srv/mailer/.venv/bin/mailer, which verify wants to exist: it checks copies that run the mailer
of this test run instead. Each command a unit runs is asked for its --help, so a renamed
command or option shows here and not on a server.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli.main import main
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
LONG_RUNNING = ["mailer-serve.service", "mailer-scheduler.service", "mailer-work@.service"]
SERVICES = [*LONG_RUNNING, "mailer-backup.service"]
UNITS = [*SERVICES, "mailer-backup.timer"]
INSTALLED = "/srv/mailer/.venv/bin/mailer"


def directives(name: str, section: str = "Service") -> dict[str, list[str]]:
    """Key → values (in order) of one section of a unit file."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif line and not line.startswith("#") and current == section:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def mailer_commands(name: str) -> list[list[str]]:
    """The arguments of each mailer command the unit runs (also inside `sh -c '…'`)."""
    commands = []
    for value in directives(name).get("ExecStart", []):
        words = shlex.split(value.replace("%%", "%").replace("$$", "$"))
        if words[:2] == ["/bin/sh", "-c"]:
            words = shlex.split(words[2])[1:]  # after `exec`
        assert words[0] == INSTALLED, f"{name} runs {words[0]}"
        commands.append(words[1:])
    return commands


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_hardened_and_long_running_ones_restart(name: str) -> None:
    unit = directives(name)
    if name in LONG_RUNNING:
        assert unit["Restart"] in (["on-failure"], ["always"]) and unit["RestartSec"]
    assert unit.get("User") == ["mailer"] or unit.get("DynamicUser") == ["yes"]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "WorkingDirectory": "/srv/mailer",
                       "EnvironmentFile": "/etc/mailer/mailer.env"}.items():
        assert unit.get(key) == [value], f"{name}: {key}"
    assert "/srv/mailer" in unit["ReadWritePaths"]


@pytest.mark.parametrize("name", SERVICES)
def test_the_units_run_mailer_commands_that_exist(name: str) -> None:
    [command] = mailer_commands(name)
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, f"{name}: mailer {' '.join(command)}: {result.output}"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    mailer = Path(sys.executable).with_name("mailer")
    if not mailer.exists():
        pytest.skip(f"no mailer command beside {sys.executable}: install the package into the venv")
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(INSTALLED, str(mailer)), encoding="utf-8")
    done = subprocess.run([tool, "verify", *(f"./{name}" for name in UNITS)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_proxy_passes_what_trusted_proxies_believes() -> None:
    """The example proxy reaches `mailer serve` where its unit listens, connects from the
    address the documented trusted_proxies names, and sets (not appends to) both headers."""
    [serve] = mailer_commands("mailer-serve.service")
    host, port = serve[serve.index("--host") + 1], serve[serve.index("--port") + 1]
    proxy = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert f"server {host}:{port};" in proxy
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in proxy
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in proxy
    docs = (REPO / "docs" / "production.md").read_text(encoding="utf-8")
    for text in (proxy, docs):
        assert re.search(rf'trusted_proxies = "{re.escape(host)}"', text)
