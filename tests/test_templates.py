"""Templates travel in the package; a project's own templates/ folder overrides single ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.builds.builder import build, source_hash
from mailer.config import Settings
from mailer.render.templates import PACKAGE_TEMPLATES

REPO = Path(__file__).resolve().parents[1]
LAYOUT = "mjml/mailing.mjml.j2"


def override(project: Settings, name: str, old: str, new: str) -> Path:
    """Copy a package template into the project's templates/ folder with one change."""
    text = (PACKAGE_TEMPLATES / name).read_text(encoding="utf-8")
    assert old in text
    path = project.templates / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_project_template_overrides_the_package_one(project: Settings) -> None:
    assert not project.templates.exists()  # the project holds only content/
    plain = build(project, "stalking")
    override(project, LAYOUT, "<mj-title>", "<mj-title>Eigen sjabloon: ")
    result = build(project, "stalking")
    for variant in result.variants:
        html = (result.path / variant.html).read_text(encoding="utf-8")
        assert "<title>Eigen sjabloon: Thematische verdieping" in html
        assert "Lees verder…" in html  # parts.mjml.j2 still comes from the package
    assert len(result.variants) == len(plain.variants)
    bundle = (result.path / "bundel.html").read_text(encoding="utf-8")
    assert "Eigen sjabloon" not in bundle  # the web pages keep the package's templates

    (project.templates / LAYOUT).unlink()  # without the override, the package's layout is back
    again = build(project, "stalking")
    assert "Eigen sjabloon" not in (again.path / again.variants[0].html).read_text(encoding="utf-8")


def test_the_web_pages_can_be_overridden_too(project: Settings) -> None:
    override(project, "web/base.html.j2", "<body", "<body data-eigen=\"ja\"")
    result = build(project, "stalking")
    assert 'data-eigen="ja"' in (result.path / "index.html").read_text(encoding="utf-8")


def test_an_override_makes_the_build_stale(project: Settings) -> None:
    before = source_hash(project, "stalking")
    path = override(project, LAYOUT, "<mj-title>", "<mj-title>Eigen: ")
    added = source_hash(project, "stalking")
    path.write_text(path.read_text(encoding="utf-8").replace("Eigen: ", "Anders: "), encoding="utf-8")
    edited = source_hash(project, "stalking")
    assert len({before, added, edited}) == 3



def test_compiled_templates_are_kept_for_the_next_process_and_never_stale(
        project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    kept = tmp_path / "user-cache" / "mailer" / "templates"

    def first_build_in_a_new_process() -> str:
        shutil.rmtree(project.out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "mailer", "build", "stalking"], cwd=project.root,
                       capture_output=True, check=True, timeout=120)
        return min((project.out / "stalking" / "mail").glob("*.html")).read_text(encoding="utf-8")

    path = override(project, LAYOUT, "<mj-title>", "<mj-title>Eerste: ")
    html = first_build_in_a_new_process()
    written = {p.name: p.stat().st_mtime_ns for p in kept.iterdir()}
    assert any("-html-" in name for name in written) and any("-text-" in name for name in written)
    assert first_build_in_a_new_process() == html
    assert {p.name: p.stat().st_mtime_ns for p in kept.iterdir()} == written, "all read, none compiled"
    path.write_text(path.read_text(encoding="utf-8").replace("Eerste: ", "Tweede: "), encoding="utf-8")
    assert "<title>Tweede: " in first_build_in_a_new_process()

def test_an_installed_wheel_builds_in_a_folder_with_only_content(tmp_path: Path) -> None:
    """pip wheel, a fresh virtual environment, and `mailer build stalking` in a bare folder."""
    source = tmp_path / "source"  # a copy, so the build leaves no build/ in the repository
    shutil.copytree(REPO / "mailer", source / "mailer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels, venv, site = tmp_path / "wheels", tmp_path / "venv", tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILER_", "PYTHON"))}

    def run(*args: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source)
    [wheel] = wheels.glob("mailer-*.whl")
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    shutil.copytree(REPO / "content", site / "content")
    output = run(venv / "bin" / "mailer", "build", "stalking", cwd=site)
    assert "30 segments" in output
    assert {p.name for p in site.iterdir()} <= {".mailer-secret", "content", "mailer.db", "out"}
    html = next((site / "out" / "stalking" / "mail").glob("*.html")).read_text(encoding="utf-8")
    assert "Lees verder…" in html and "<!doctype html>" in html.lower()
    # the migrations came along too: the database is created at the newest schema
    assert "schema version" in run(venv / "bin" / "mailer", "db", "upgrade", cwd=site)

    # an edited package template makes the build stale: a send rebuilds first
    installed = Path(run(venv / "bin" / "python", "-c", "from mailer.render.templates import "
                         "PACKAGE_TEMPLATES as t; print(t / 'mjml/mailing.mjml.j2')").strip())
    installed.write_text(installed.read_text(encoding="utf-8").replace(
        "<mj-title>", "<mj-title>Nieuw sjabloon: "), encoding="utf-8")
    run(venv / "bin" / "mailer", "send", "stalking", "--dry-run", cwd=site)
    html = next((site / "out" / "stalking" / "mail").glob("*.html")).read_text(encoding="utf-8")
    assert "<title>Nieuw sjabloon: " in html
