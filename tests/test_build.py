"""The build of the real stalking theme: segments, sharing, and the HTML rules of DESIGN.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mailer.builds.builder import build
from mailer.config import Settings
from mailer.message.encoding import encoded_size
from mailer.taxonomy import AUDIENCES, REGIONS
from tests.slots import body

ROTTERDAM = "rotterdam-zuid-holland-zuid"


@pytest.fixture
def built(project: Settings) -> tuple[Settings, dict, Path]:
    result = build(project, "stalking")
    manifest = json.loads((result.path / "manifest.json").read_text(encoding="utf-8"))
    return project, manifest, result.path


def test_manifest_lists_all_thirty_segments(built) -> None:
    _, manifest, out = built
    expected = {f"{r}/{a}" for r in REGIONS for a in AUDIENCES}
    assert set(manifest["segments"]) == expected
    for entry in manifest["segments"].values():
        html = out / entry["html"]
        assert html.is_file() and (out / entry["text"]).is_file()
        assert entry["bytes"] == encoded_size(html.read_text(encoding="utf-8"))  # as sent
    contents = {e["hash"]: (out / e["html"]).read_text(encoding="utf-8")
                + (out / e["text"]).read_text(encoding="utf-8") for e in manifest["segments"].values()}
    by_hash = {e["hash"]: e["variant"] for e in manifest["segments"].values()}
    assert len(set(contents.values())) == len(contents) == len(set(by_hash.values()))  # hash ⇔ content


def test_regional_and_audience_blocks_only_reach_their_segments(built) -> None:
    _, manifest, out = built
    for key, entry in manifest["segments"].items():
        region, audience = key.split("/")
        html = (out / entry["html"]).read_text(encoding="utf-8")
        assert ("nieuw-werkproces-rotterdam" in entry["blocks"]) == (region == ROTTERDAM)
        assert ("Nieuw werkproces Rotterdam" in html) == (region == ROTTERDAM)
        assert ("brief-van-de-minister" in entry["blocks"]) == (audience == "beleidsmakers")
        assert ("Brief van de minister" in html) == (audience == "beleidsmakers")


def test_identical_variants_are_shared_not_recompiled(built) -> None:
    _, manifest, out = built
    distinct_blocks = {tuple(e["blocks"]) for e in manifest["segments"].values()}
    files = {e["html"] for e in manifest["segments"].values()}
    assert len(files) == len(distinct_blocks) == 4
    assert len(list((out / "mail").glob("*.html"))) == 4


def test_every_variant_follows_the_email_html_rules(built) -> None:
    _, manifest, out = built
    for entry in manifest["segments"].values():
        html = body((out / entry["html"]).read_text(encoding="utf-8"))
        assert html.lower().startswith("<!doctype html>")
        assert re.search(r'<html[^>]*\blang="nl"', html)
        assert "<title>Thematische verdieping: (Ex-)Partnerstalking</title>" in html
        assert manifest["preheader"] in html.split("<body", 1)[1][:3000], "preheader near the top"
        assert "<script" not in html.lower()
        assert encoded_size(html) < 102 * 1024
        for img in re.findall(r"<img\b[^>]*>", html):
            assert re.search(r'\balt="[^"]+"', img), img
        ids = set(re.findall(r'\sid="([^"]+)"', html))
        anchors = re.findall(r'href="#([^"]+)"', html)
        assert anchors and set(anchors) <= ids
        assert html.count("<h1") == 1
        assert "fonts.googleapis" not in html


def test_inliner_keeps_what_mjml_needs(built) -> None:
    _, manifest, out = built
    html = (out / next(iter(manifest["segments"].values()))["html"]).read_text(encoding="utf-8")
    assert re.search(r"@media[^{]*\{[^}]*!important", html), "!important survives in media queries"
    assert re.search(r'<img[^>]*\bwidth="96"', html), "image width attribute survives"
    assert 'style="' in html, "CSS got inlined"


def test_slots_survive_compilation(built) -> None:
    _, manifest, out = built
    html = (out / next(iter(manifest["segments"].values()))["html"]).read_text(encoding="utf-8")
    for name in ("greeting", "unsubscribe_url", "preferences_url", "webversion_url"):
        assert re.search(rf"\[\[slot-[0-9a-f]{{16}}:{name}\]\]", html), name


def test_mail_links_point_at_the_web_pages(built) -> None:
    settings, manifest, out = built
    html = (out / manifest["segments"][f"{ROTTERDAM}/beleidsmakers"]["html"]).read_text(encoding="utf-8")
    base = settings.public_base_url
    for url, label in [
        (f"{base}/stalking/zorg-alleen-is-niet-voldoende.html", "Los artikel"),
        (f"{base}/stalking/bundel.html#zorg-alleen-is-niet-voldoende", "Lees verder…"),
        (f"{base}/stalking/bundel.html", "Bundel (Ex-)Partnerstalking"),
    ]:
        assert re.search(rf'<a href="{re.escape(url)}"[^>]*>{re.escape(label)}</a>', html), label
    for page in ("zorg-alleen-is-niet-voldoende.html", "bundel.html", "index.html"):
        assert (out / page).is_file()
    bundle = (out / "bundel.html").read_text(encoding="utf-8")
    assert 'lang="nl"' in bundle and 'name="viewport"' in bundle
    blocks = manifest["segments"][f"{ROTTERDAM}/beleidsmakers"]["blocks"]
    positions = [bundle.index(f'id="{b}"') for b in blocks]
    assert positions == sorted(positions), "the bundle keeps the mailing's order"


def test_text_part_is_written_from_the_blocks(built) -> None:
    _, manifest, out = built
    text = body((out / manifest["segments"]["limburg/werkveld"]["text"]).read_text(encoding="utf-8"))
    assert "<" not in text.replace("<=", "")
    assert "ZORG ALLEEN IS NIET VOLDOENDE, STRAF EVENMIN" in text
    assert "* Baukje Dotinga, Beleidsadviseur Straf met Zorg OM, Regio Noord-Nederland" in text
    assert "https://vng.nl/artikelen/stalking" in text
    assert re.search(r"Afmelden: \[\[slot-[0-9a-f]{16}:unsubscribe_url\]\]", text)
    assert "Nieuw werkproces Rotterdam" not in text


def test_web_version_is_filled_for_anonymous_readers(built) -> None:
    _, manifest, out = built
    online = (out / manifest["segments"]["limburg/netwerk"]["online"]).read_text(encoding="utf-8")
    assert "[[slot" not in online
    assert "Beste geïnteresseerde," in online


@pytest.mark.parametrize("theme", ["update-2021", "actieoverleg"])
def test_the_other_mailing_kinds_build(project: Settings, theme: str) -> None:
    result = build(project, theme)
    manifest = json.loads((result.path / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["segments"]) == 30
    html = (result.path / manifest["segments"]["limburg/netwerk"]["html"]).read_text(encoding="utf-8")
    if theme == "update-2021":
        assert "Reageer</a>" in html and "Ontwikkelagenda Veiligheid voorop</h2>" in html
        assert "Bundel" not in html
    else:
        assert "Praktijkvoorbeeld" in html and "Bundel Actieoverleg" in html


def test_rebuild_replaces_the_previous_output(project: Settings) -> None:
    first = build(project, "stalking")
    stale = first.path / "mail" / "stale.html"
    stale.write_text("old", encoding="utf-8")
    build(project, "stalking")
    assert not stale.exists()
    assert not list(project.out.glob(".stalking*")), "no temporary folders left behind"
