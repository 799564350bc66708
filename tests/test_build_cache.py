"""A build that does only the work its changes ask for, and starts without the database layer."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mailer
from mailer import fingerprint
from mailer.builds.builder import build
from mailer.builds.manifest import ManifestError, read_manifest
from mailer.cli import COMMANDS
from mailer.cli.main import main
from mailer.config import Settings

ROTTERDAM_BLOCK = "30-nieuw-werkproces-rotterdam.md"
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "httpx", "feedparser")


def files(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under a folder with its inode, modification time and bytes."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cached(settings: Settings) -> set[str]:
    return {p.name for p in (settings.out / ".cache" / "stalking").glob("*.html")}


def test_unchanged_build_writes_nothing(project: Settings) -> None:
    first = build(project, "stalking")
    before = files(project.out)
    again = build(project, "stalking")
    assert again.unchanged and not first.unchanged
    assert files(project.out) == before
    assert [v.name for v in again.variants] == [v.name for v in first.variants]
    assert again.segments.keys() == first.segments.keys() and again.pages == first.pages


@pytest.mark.parametrize("damage", ["edit", "remove", "stray"])
def test_a_damaged_build_is_built_again(project: Settings, damage: str) -> None:
    first = build(project, "stalking")
    mail = first.path / first.variants[0].html
    if damage == "edit":
        mail.write_text(mail.read_text(encoding="utf-8") + " ", encoding="utf-8")
    elif damage == "remove":
        mail.unlink()
    else:
        (first.path / "mail" / "extra.html").write_text("old", encoding="utf-8")
    again = build(project, "stalking")
    assert not again.unchanged
    assert files(again.path)[first.variants[0].html][2] == files(first.path)[first.variants[0].html][2]
    assert not (again.path / "mail" / "extra.html").exists()


def test_manifest_of_another_version_is_rebuilt(project: Settings) -> None:
    first = build(project, "stalking")
    path = first.path / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["version"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestError, match="manifest version 1, this mailer reads 2"):
        read_manifest(first.path)
    assert not build(project, "stalking").unchanged
    assert read_manifest(first.path).segments == first.manifest.segments


def test_edit_to_one_block_recompiles_only_the_variants_that_hold_it(project: Settings) -> None:
    first = build(project, "stalking")
    holding = {v.name for v in first.variants if "nieuw-werkproces-rotterdam" in v.blocks}
    assert 0 < len(holding) < len(first.variants)
    before = cached(project)
    assert len(before) == len(first.variants)
    block = project.content / "stalking" / ROTTERDAM_BLOCK
    block.write_text(block.read_text(encoding="utf-8").replace("eerder herkennen", "sneller zien"),
                     encoding="utf-8")
    second = build(project, "stalking")
    after = cached(project)
    assert len(after - before) == len(holding), "one compilation per variant holding the block"
    assert len(before & after) == len(first.variants) - len(holding)
    changed = {v.name for v in second.variants} - {v.name for v in first.variants}
    assert len(changed) == len(holding)
    shutil.rmtree(project.out)
    fresh = build(project, "stalking")
    assert files(fresh.path).keys() == files(second.path).keys()
    assert all(files(fresh.path)[k][2] == v[2] for k, v in files(second.path).items()), \
        "a build from the cache equals a build from scratch"



@pytest.fixture
def upgrade(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Pretend that a distribution (or mailer itself) was upgraded since the last build."""
    real = fingerprint.installed_version

    def to_new_version(distribution: str) -> None:
        if distribution == "mailer":
            monkeypatch.setattr(mailer, "__version__", mailer.__version__ + ".post1")
        else:
            monkeypatch.setattr(fingerprint, "installed_version", lambda d, p: (
                real(d, p) + ".post1" if d == distribution else real(d, p)))
        fingerprint.code_digest.cache_clear()

    yield to_new_version
    fingerprint.code_digest.cache_clear()


def test_versions_are_those_installed() -> None:
    for distribution, package in fingerprint.RENDERING_LIBRARIES.items():
        assert fingerprint.installed_version(distribution, package) == version(distribution)
    assert fingerprint.installed_version("no-such-distribution", "json") == "not installed"


@pytest.mark.parametrize("distribution", ["mjml-python", "css-inline", "mailer"])
def test_an_upgrade_rebuilds_and_compiles_again(project: Settings, upgrade: Callable[[str], None],
                                                distribution: str) -> None:
    first = build(project, "stalking")
    before, output = cached(project), files(first.path)
    upgrade(distribution)
    again = build(project, "stalking")
    assert not again.unchanged, "the unchanged-build check saw the upgrade"
    after = cached(project)
    assert len(after) == len(before) and not after & before, "every variant compiled anew"
    shown = {k: v[2] for k, v in files(again.path).items() if k != "manifest.json"}
    assert shown == {k: v[2] for k, v in output.items() if k != "manifest.json"}, "same output"
    assert build(project, "stalking").unchanged

def _modules_loaded_by(args: list[str], cwd: Path) -> set[str]:
    code = ("import sys\nfrom mailer.cli.main import main\n"
            f"main({args!r}, standalone_mode=False)\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=os.environ, timeout=120, check=True)
    return set(done.stdout.split())


def test_build_loads_no_database_http_or_feed_library(project: Settings) -> None:
    for _ in ("full build", "unchanged build"):
        loaded = _modules_loaded_by(["build", "stalking"], project.root)
        assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "jinja2" not in loaded and "mjml" not in loaded, "an unchanged build renders nothing"


def test_help_lists_every_command_with_its_own_summary() -> None:
    ctx = click.Context(main)
    for name, (module, summary) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None, f"{name} is not in mailer.cli.{module}"
        assert command.get_short_help_str(200) == click.Command(name, help=summary).get_short_help_str(200)
    modules = {module for module, _ in COMMANDS.values()}
    everything = {c.name for m in modules for c in importlib.import_module(f"mailer.cli.{m}").COMMANDS}
    assert everything == set(COMMANDS)
    listed = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in listed for name in COMMANDS)
