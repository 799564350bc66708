"""Bad content stops the build with a located message, exit code 1, and `out/` left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mailer.cli.main import main
from mailer.config import Settings
from mailer.content.loader import read_yaml, split_front_matter
from tests.conftest import REPO

BLOCK = """---
type: article
title: "Een artikel"
lead: "Korte inleiding."
---
Tekst.
"""


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def built_once(project: Settings) -> Settings:
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 0, result.output
    return project


def theme_file(settings: Settings, name: str) -> Path:
    return settings.content / "stalking" / name


CASES = {
    "unknown block type": (
        "15-nieuw.md", BLOCK.replace("type: article", "type: interviw"),
        "content/stalking/15-nieuw.md:2: unknown block type 'interviw'"),
    "unknown region": (
        "15-nieuw.md", BLOCK.replace("---\nT", "regions: [utrecht]\n---\nT"),
        "content/stalking/15-nieuw.md:5: unknown region 'utrecht'"),
    "unknown audience": (
        "15-nieuw.md", BLOCK.replace("---\nT", "audiences: [pers]\n---\nT"),
        "content/stalking/15-nieuw.md:5: unknown audience 'pers'"),
    "missing title": (
        "15-nieuw.md", BLOCK.replace('title: "Een artikel"\n', ""),
        "content/stalking/15-nieuw.md: missing required field 'title'"),
    "photo without alt text": (
        "15-nieuw.md",
        BLOCK.replace("type: article", "type: interview\npeople:\n  - {name: Jan, role: Rol, "
                      "region: Regio X, photo: img/dotinga.png}"),
        "content/stalking/15-nieuw.md:3: people[1] (Jan): photo 'img/dotinga.png' has no photo_alt text"),
    "two blocks with one slug": (
        "95-politiepodcast-stalking.md", BLOCK,
        "content/stalking/95-politiepodcast-stalking.md: slug 'politiepodcast-stalking' is already used "
        "by content/stalking/50-politiepodcast-stalking.md"),
    "YAML error": (
        "15-nieuw.md", BLOCK.replace('title: "Een artikel"', 'title: "Een artikel\n  lead: [x'),
        "content/stalking/15-nieuw.md:5: YAML error"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_block_stops_the_build(built_once: Settings, case: str) -> None:
    name, text, message = CASES[case]
    before = snapshot(built_once.out)
    theme_file(built_once, name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert message in result.output
    assert snapshot(built_once.out) == before


def test_toc_entry_without_its_block(built_once: Settings) -> None:
    config = theme_file(built_once, "mailing.yaml")
    extra = "toc: [zorg-alleen-is-niet-voldoende, verdwenen]\n"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    before = snapshot(built_once.out)
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert "content/stalking/mailing.yaml:" in result.output
    assert "table of contents entry 'verdwenen' has no block with that slug" in result.output
    assert snapshot(built_once.out) == before


def test_all_problems_are_reported_at_once(built_once: Settings) -> None:
    for name, text in (("15-a.md", BLOCK.replace("type: article", "type: x")),
                       ("16-b.md", BLOCK.replace('title: "Een artikel"\n', ""))):
        theme_file(built_once, name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert "2 problems" in result.output and "15-a.md" in result.output and "16-b.md" in result.output


def test_unknown_theme_names_the_known_ones(project: Settings) -> None:
    result = CliRunner().invoke(main, ["build", "stalkin"])
    assert result.exit_code == 1
    assert "no such theme 'stalkin'" in result.output and "stalking" in result.output


def test_no_content_folder_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILER_ROOT", raising=False)
    monkeypatch.delenv("MAILER_CONTENT_DIR", raising=False)
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'content'}: no such folder, so no themes to build. Run mailer in the project " \
           "folder that holds content/" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_markup_in_content_is_escaped(project: Settings) -> None:
    theme_file(project, "15-nieuw.md").write_text(
        BLOCK.replace('"Een artikel"', '"Zorg <script>alert(1)</script> & straf"')
        .replace('"Korte inleiding."', '"Lees <b>dit</b> & dat"'), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 0, result.output
    for html in (project.out / "stalking" / "mail").glob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "<script" not in text and "<b>dit</b>" not in text
        assert "Zorg &lt;script&gt;alert(1)&lt;/script&gt; &amp; straf" in text
        assert "Lees &lt;b&gt;dit&lt;/b&gt; &amp; dat" in text
    page = (project.out / "stalking" / "nieuw.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page


def _long_blocks(settings: Settings, count: int) -> None:
    lead = "Een lange inleiding over samenwerking tussen zorg en straf. " * 6
    for n in range(count):
        theme_file(settings, f"9{n:02d}-extra-{n}.md").write_text(
            BLOCK.replace('"Korte inleiding."', f'"{lead}"'), encoding="utf-8")


def test_variant_close_to_gmail_clipping_warns(project: Settings) -> None:
    _long_blocks(project, 3)  # the encoded HTML part: 8% more than the HTML itself
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "clipping limit" in result.output


def test_variant_over_gmail_clipping_is_refused(built_once: Settings) -> None:
    _long_blocks(built_once, 14)
    before = snapshot(built_once.out)
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert "over the 102 KB at which Gmail clips" in result.output
    assert snapshot(built_once.out) == before


def test_yaml_reads_as_pyyamls_own_parser_reads_it() -> None:
    """libyaml reads the content; the data and the key lines are what PyYAML's parser gives."""
    read = 0
    for path in sorted((REPO / "content").rglob("*")):
        if path.suffix not in (".md", ".yaml"):
            continue
        text = path.read_text(encoding="utf-8")
        front = split_front_matter(text) if path.suffix == ".md" else (text, "")
        if front is None:
            continue
        data, lines = read_yaml(front[0])
        assert data == yaml.load(front[0], Loader=yaml.SafeLoader), path
        node = yaml.compose(front[0], Loader=yaml.SafeLoader)
        if isinstance(node, yaml.MappingNode):
            assert lines == {k.value: k.start_mark.line + 1 for k, _ in node.value}, path
        read += 1
    assert read > 20
    with pytest.raises(yaml.YAMLError) as error:
        read_yaml("title: [oeps\n")
    assert error.value.problem == "expected ',' or ']', but got '<stream end>'"  # PyYAML's words
