"""One compiled variant compared with a golden file, normalised so the diff reads like a review.

After an intended change to templates or rendering, rewrite the file with
`UPDATE_GOLDEN=1 pytest tests/test_golden.py` and review its diff in the commit.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from mailer.builds.builder import build
from tests.slots import KEYED, body

GOLDEN = Path(__file__).parent / "data" / "golden" / "stalking-limburg-netwerk.html"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def _squash(text: str) -> str:
    return " ".join(text.split())


def _attribute(name: str, value: str | None) -> str:
    """An attribute as shown; a style as `property:value; …`, however the inliner spaced it."""
    value = _squash(value or "")
    if name == "style":
        declarations = (d.partition(":") for d in value.split(";") if d.strip())
        value = "; ".join(f"{prop.strip()}:{val.strip()}" for prop, _, val in declarations)
    return f' {name}="{value}"'


class _Normaliser(HTMLParser):
    """One tag, text run or comment per line, attributes sorted, whitespace collapsed, CSS one
    rule per line, style attributes spaced alike. Not indented: a wrapper added around the body
    changes two lines of the diff, not all."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.lines: list[str] = []
        self.in_style = False

    def emit(self, text: str) -> None:
        self.lines.append(text)

    def handle_decl(self, decl: str) -> None:
        self.emit(f"<!{decl.lower()}>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        shown = "".join(_attribute(k, v) for k, v in sorted(attrs))
        self.emit(f"<{tag}{shown}>")
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID:
            self.emit(f"</{tag}>")
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style:
            for rule in re.split(r"(?<=})", data):
                if _squash(rule):
                    self.emit(_squash(rule))
        elif _squash(data):
            self.emit(_squash(data))

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.emit(f"<!--{_squash(data)}-->")


def normalise(html: str) -> str:
    parser = _Normaliser()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.lines) + "\n"


def test_the_normaliser_ignores_layout_only() -> None:
    assert normalise('<p  class="a"   id="b">x\n  y</p>') == normalise('<p id="b" class="a">x y</p>')
    assert normalise("<p>x</p>") != normalise("<p>y</p>")


def test_a_compiled_variant_matches_its_golden_file(project) -> None:
    out = build(project, "stalking").path
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    html = (out / manifest["segments"]["limburg/netwerk"]["html"]).read_text(encoding="utf-8")
    actual = KEYED.sub("[[slot:", normalise(body(html)))  # the key follows the source
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(actual, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                        actual.splitlines(keepends=True),
                                        str(GOLDEN.relative_to(GOLDEN.parents[3])), "built now"))
    assert actual == expected, (
        "the compiled variant differs from the golden file (intended? rerun with "
        "UPDATE_GOLDEN=1 and review):\n" + diff[:8000])
