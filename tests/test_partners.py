"""Partner feeds in (served from loopback), the "Van onze partners" block, and our Atom feed out."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from sqlmodel import select

from mailer.builds.archive import publish
from mailer.builds.builder import build
from mailer.cli.main import main
from mailer.config import Settings
from mailer.content.loader import load_mailing
from mailer.db import session_scope
from mailer.models import PartnerPublication
from mailer.partners.publications import PartnerError, add_publication, fetch_all, suggest
from mailer.send import runner as sending

FEEDS = Path(__file__).parent / "data" / "feeds"
ETAG = '"om-v1"'


class FeedHandler(BaseHTTPRequestHandler):
    """Serves the fixtures: RSS with ETag, Atom, a malformed feed, a slow, a trickling and a huge one."""

    requests: list[str] = []
    release = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        FeedHandler.requests.append(self.path)
        if self.path == "/slow.rss":
            FeedHandler.release.wait(10)  # slower than the client's timeout, until the test ends
        if self.path == "/om.rss" and self.headers.get("If-None-Match") == ETAG:
            self.send_response(304)
            self.end_headers()
            return
        if self.path == "/trickle.rss":  # one byte every 0.2 s: each read is quick, the whole is not
            body = (FEEDS / "om.rss").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(30):  # 6 s, then the connection closes mid-body
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                if FeedHandler.release.wait(0.2):
                    return
            return
        if self.path == "/huge.rss":
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()  # no Content-Length: the client must count while reading
            for _ in range(4096):
                self.wfile.write(b"<!-- " + b"x" * 1024 + b" -->\n")
            return
        name = {"/om.rss": "om.rss", "/vt.atom": "vt.atom", "/broken.rss": "broken.rss",
                "/slow.rss": "om.rss"}.get(self.path)
        if name is None:
            self.send_error(404)
            return
        body = (FEEDS / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if name == "om.rss":
            self.send_header("ETag", ETAG)
            self.send_header("Last-Modified", "Mon, 02 Nov 2026 09:00:00 GMT")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def feed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FeedHandler.requests = []
    FeedHandler.release.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    FeedHandler.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def site(project: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The project's content on a fresh database of either backend."""
    monkeypatch.setenv("MAILER_DATABASE_URL", database_url)
    monkeypatch.setenv("MAILER_FEED_TIMEOUT", "2")
    return dataclasses.replace(project, database_url=database_url, feed_timeout=2.0)


def with_feeds(settings: Settings, base: str, names: list[str]) -> None:
    orgs = ["Openbaar Ministerie", "Veilig Thuis", "Politie", "Raad voor de Kinderbescherming",
            "Reclassering Nederland"]
    lines = ["partners:"]
    for org, name in zip(orgs, names, strict=False):
        lines += [f"  - name: {org}", "    website: https://example.org", f"    feed: {base}/{name}"]
    lines += ["  - name: VNG", "    website: https://vng.nl"]
    (settings.content / "partners.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def stored(settings: Settings) -> dict[str, PartnerPublication]:
    with session_scope(settings) as session:
        return {p.url: p for p in session.exec(select(PartnerPublication))}


def test_fetch_stores_good_feeds_and_reports_bad_ones(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss", "vt.atom", "broken.rss", "slow.rss", "huge.rss"])
    reports = {r.organisation: r for r in fetch_all(site)}
    assert (reports["Openbaar Ministerie"].status, reports["Openbaar Ministerie"].new) == ("ok", 2)
    assert (reports["Veilig Thuis"].status, reports["Veilig Thuis"].new) == ("ok", 2)
    assert "not a valid feed" in reports["Politie"].error
    assert reports["Raad voor de Kinderbescherming"].error.startswith("timed out after 2.")
    assert "too large" in reports["Reclassering Nederland"].error
    rows = stored(site)
    assert len(rows) == 4
    om = rows["https://www.om.nl/actueel/nieuws/2026/11/02/aanpak-stalking"]
    assert om.organisation == "Openbaar Ministerie" and om.regions == ["oost-nederland"]
    assert om.categories == ["Huiselijk geweld"] and str(om.published) == "2026-11-02"
    assert rows["https://www.veiligthuis.nl/publicaties/rotterdam-stalking"].regions == \
        ["rotterdam-zuid-holland-zuid"]
    assert rows["https://www.veiligthuis.nl/publicaties/factsheet-stalking"].regions == []


def test_a_trickling_feed_is_cut_off_at_its_deadline_and_does_not_hold_up_the_others(
        site: Settings, feed_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_FEED_DEADLINE", "1")
    with_feeds(site, feed_server, ["trickle.rss", "om.rss", "vt.atom"])
    started = time.monotonic()
    result = CliRunner().invoke(main, ["partners", "fetch"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 4, f"fetch took {elapsed:.1f} s with a 1 s deadline"
    lines = result.output.splitlines()
    assert lines[-2].startswith(f"Openbaar Ministerie: {feed_server}/trickle.rss: skipped: "
                                "timed out after 1.")
    assert lines[-1] == "error: 1 of 3 feed(s) failed"
    # the two good feeds were read while the slow one trickled, and are reported before it
    assert set(lines[:2]) == {"Veilig Thuis: 2 new, 0 updated", "Politie: 2 new, 0 updated"}
    assert len(stored(site)) == 4


def test_second_fetch_with_unchanged_etag_stores_nothing_new(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss"])
    fetch_all(site)
    before = {url: row.updated_at for url, row in stored(site).items()}
    [again] = fetch_all(site)
    assert again.status == "not-modified" and again.new == 0
    assert {url: row.updated_at for url, row in stored(site).items()} == before
    assert FeedHandler.requests == ["/om.rss", "/om.rss"]


def test_fetch_command_exits_1_but_keeps_the_good_feeds(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss", "broken.rss"])
    result = CliRunner().invoke(main, ["partners", "fetch"])
    assert result.exit_code == 1
    assert "Openbaar Ministerie: 2 new, 0 updated" in result.output
    assert f"Veilig Thuis: {feed_server}/broken.rss: skipped: not a valid feed" in result.output
    assert len(stored(site)) == 2


def test_suggestions_are_ranked_with_reasons(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss", "vt.atom"])
    fetch_all(site)
    found = suggest(site, load_mailing(site.content, "stalking", site.root))
    urls = [s.url for s in found]
    assert "https://www.om.nl/actueel/nieuws/2026/10/15/jaarbericht" not in urls, "no keyword"
    assert urls[0] == "https://www.veiligthuis.nl/publicaties/factsheet-stalking"
    assert "category matches 'stalking'" in found[0].reasons
    assert "'stalking' in the title" in found[0].reasons
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_partner_block_respects_regional_publications(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss", "vt.atom"])
    fetch_all(site)
    result = build(site, "stalking")
    manifest = json.loads((result.path / "manifest.json").read_text(encoding="utf-8"))

    def html(key: str) -> str:
        return (result.path / manifest["segments"][key]["html"]).read_text(encoding="utf-8")

    oost, limburg = html("oost-nederland/netwerk"), html("limburg/netwerk")
    assert "Van onze partners" in oost and "Van onze partners" in limburg
    assert "Factsheet: signalen van stalking door een ex-partner" in oost
    assert "Factsheet: signalen van stalking door een ex-partner" in limburg
    assert "Aanpak stalking: OM en politie werken met nieuw afsprakenkader" in oost
    assert "Aanpak stalking: OM en politie werken met nieuw afsprakenkader" not in limburg
    assert "Werkwijze Veilig Thuis Rotterdam Rijnmond" not in limburg
    assert "Lees verder bij Openbaar Ministerie" in oost
    assert 'href="#van-onze-partners"' in oost


def test_chosen_publication_must_be_known(site: Settings) -> None:
    config = site.content / "stalking" / "mailing.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "  suggest: true", "  suggest: true\n  chosen: [https://www.om.nl/onbekend]"), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "stalking"])
    assert result.exit_code == 1
    assert "content/stalking/mailing.yaml: partners.chosen: unknown publication(s)" in result.output


def test_add_by_hand_validates(site: Settings) -> None:
    with pytest.raises(PartnerError, match="unknown organisation 'OMM'"):
        add_publication(site, "OMM", "Titel", "https://www.om.nl/x", None)
    with pytest.raises(PartnerError, match="must start with https://"):
        add_publication(site, "Openbaar Ministerie", "Titel", "javascript:alert(1)", None)
    assert add_publication(site, "Openbaar Ministerie", "Titel", "https://www.om.nl/x", None,
                           themes=["stalking"], regions=["limburg"]) == "new"
    assert add_publication(site, "Openbaar Ministerie", "Titel 2", "https://www.om.nl/x", None) == "updated"
    row = stored(site)["https://www.om.nl/x"]
    assert (row.title, row.themes, row.regions) == ("Titel 2", ["stalking"], [])


def test_atom_feed_lists_every_mailing_and_article_with_stable_ids(project: Settings) -> None:
    for theme in ("stalking", "update-2021", "actieoverleg"):
        build(project, theme)
    unsent = feedparser.parse((project.out / "feed.xml").read_bytes())
    assert unsent.entries == []  # built is not gone out: nothing announced yet
    assert "nog geen mailings" in (project.out / "index.html").read_text(encoding="utf-8")
    sending.snapshot_send(project, sending.create_send(project, "stalking"))  # a real send starts
    assert CliRunner().invoke(main, ["publish", "update-2021"]).exit_code == 0
    assert publish(project, "actieoverleg", "test") and not publish(project, "actieoverleg", "x")
    first = feedparser.parse((project.out / "feed.xml").read_bytes())
    assert not first.bozo and first.version == "atom10"
    assert all(e.summary for e in first.entries)
    ids = [e.id for e in first.entries]
    assert len(ids) == len(set(ids))
    titles = {e.title for e in first.entries}
    assert "Thematische verdieping: (Ex-)Partnerstalking" in titles
    assert "Update" in titles and "Verbeteractiviteit in de praktijk: Actieoverleg" in titles
    for theme in ("stalking", "update-2021", "actieoverleg"):
        manifest = json.loads((project.out / theme / "manifest.json").read_text(encoding="utf-8"))
        links = {e.link for e in first.entries}
        assert manifest["public_url"] in links
        assert {a["url"] for a in manifest["articles"]} <= links
    build(project, "stalking")
    second = feedparser.parse((project.out / "feed.xml").read_bytes())
    assert [e.id for e in second.entries] == ids
    archive = (project.out / "archief" / "verdieping.html").read_text(encoding="utf-8")
    assert "(Ex-)Partnerstalking" in archive and "Actieoverleg" not in archive
    assert (project.out / "index.html").read_text(encoding="utf-8").count("<h2>") == 3


def test_partners_file_with_a_yaml_error(site: Settings) -> None:
    (site.content / "partners.yaml").write_text("partners:\n  - name: [VT\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["partners", "fetch"])
    assert result.exit_code == 1
    assert "partners.yaml:3: YAML error" in result.output


def _variant_html(settings: Settings, segment: str) -> str:
    folder = settings.out / "stalking"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return (folder / manifest["segments"][segment]["html"]).read_text(encoding="utf-8")


def test_send_rebuilds_after_new_publications_are_fetched(site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss"])
    assert not build(site, "stalking").unchanged
    assert build(site, "stalking").unchanged
    fresh = "Aanpak stalking: OM en politie werken met nieuw afsprakenkader"
    assert fresh not in _variant_html(site, "oost-nederland/netwerk")
    fetch_all(site)
    result = CliRunner().invoke(main, ["send", "stalking", "--region", "oost-nederland", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert fresh in _variant_html(site, "oost-nederland/netwerk")
    assert build(site, "stalking").unchanged


def test_a_mailing_without_partner_block_stays_current_when_publications_change(
        site: Settings, feed_server: str) -> None:
    with_feeds(site, feed_server, ["om.rss"])
    build(site, "actieoverleg")
    fetch_all(site)
    assert build(site, "actieoverleg").unchanged
    assert not build(site, "stalking").unchanged
