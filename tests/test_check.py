"""`mailer check`: each readiness check on real builds, links against a loopback HTTP server."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.check import markup
from mailer.check.readiness import check_theme
from mailer.check.spam import spamassassin
from mailer.cli.main import main
from mailer.config import Settings
from mailer.render.templates import PACKAGE_TEMPLATES
from tests.conftest import REPO

EXAMPLE_BLOCKS = ["30-nieuw-werkproces-rotterdam.md:10", "40-brief-van-de-minister.md:13",
                  "50-politiepodcast-stalking.md:12", "60-webinar-stalking.md:12",
                  "70-van-de-partners.md:14"]


class Site:
    """A loopback web server: /ok answers 200, /moved 301, /gone 404; counts requests per path."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802
                site.asked[self.path] += 1
                code = {"/ok": 200, "/moved": 301}.get(self.path, 404)
                self.send_response(code)
                if code == 301:
                    self.send_header("Location", "/ok")
                self.end_headers()

            do_GET = do_HEAD  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


def small_theme(settings: Settings, links: list[str], extra: str = "") -> Settings:
    """A one-article theme `kort` linking to `links`; the templates come from the package."""
    theme = settings.root / "content" / "kort"
    theme.mkdir(parents=True)
    (theme / "mailing.yaml").write_text(
        'kind: verdieping\ntitle: "Kort"\nsubject: "Kort"\npreheader: "Kort nieuws"\n'
        'date: 2026-12-01\ngreeting: "Beste lezer,"\n', "utf-8")
    items = "".join(f'  - {{title: "Link {n}", url: "{url}"}}\n' for n, url in enumerate(links))
    (theme / "10-links.md").write_text(
        f'---\ntype: links\ntitle: "Handige links"\nlinks:\n{items}{extra}---\n', "utf-8")
    return replace(settings, public_base_url="https://nieuws.example.org")


def result(readiness, name):  # type: ignore[no-untyped-def]
    return next(r for r in readiness.results if r.name == name)


def test_check_lists_the_five_example_blocks_and_fails(project: Settings) -> None:
    out = CliRunner().invoke(main, ["check", "stalking", "--offline"])
    assert out.exit_code == 1
    for where in EXAMPLE_BLOCKS:
        assert f"content/stalking/{where}" in out.output
    assert out.output.count("is example text") == 5
    assert "Placeholder blocks (example: true) (5 of " in out.output  # counts what fails
    assert "--offline" in out.output and "not ready" in out.output


def test_links_answer_or_are_named_with_their_file_and_line_and_good_answers_are_cached(
        plain_settings: Settings, site: Site) -> None:
    config = small_theme(plain_settings, [f"{site.url}/ok", f"{site.url}/moved", f"{site.url}/gone"])
    links = result(check_theme(config, "kort"), "links")
    assert links.status == "fail"
    assert [str(f) for f in links.findings] == [
        f"content/kort/10-links.md:7: {site.url}/gone answers HTTP 404"]
    result(check_theme(config, "kort"), "links")
    assert site.asked["/ok"] == 1 and site.asked["/moved"] == 1  # cached
    assert site.asked["/gone"] == 4  # HEAD then GET, asked again on every check

    offline = result(check_theme(config, "kort", offline=True), "links")
    assert offline.status == "skip" and site.asked["/gone"] == 4


def test_a_link_that_does_not_answer_in_time_fails(plain_settings: Settings) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/stil"
        config = replace(small_theme(plain_settings, [url]), link_timeout=0.3)
        [finding] = result(check_theme(config, "kort"), "links").findings
        assert "Timeout" in finding.message
    finally:
        silent.close()


def test_a_ready_theme_passes(plain_settings: Settings, site: Site) -> None:
    readiness = check_theme(small_theme(plain_settings, [f"{site.url}/ok"]), "kort")
    assert readiness.ok, readiness.problems()
    assert {r.name: r.status for r in readiness.results}["spam"] == (
        "pass" if spamassassin() else "skip")


def test_oversized_images_fail(plain_settings: Settings) -> None:
    config = small_theme(plain_settings, ["https://example.org/"])
    shutil.copytree(REPO / "content" / "stalking" / "img", config.content / "kort" / "img")
    (config.content / "kort" / "img" / "groot.png").write_bytes(b"\x89PNG" + b"\0" * 300_000)
    (config.content / "kort" / "20-interview.md").write_text(
        '---\ntype: interview\ntitle: "Gesprek"\npeople:\n'
        '  - {name: Anna, role: Adviseur, photo: img/groot.png, photo_alt: "Portret van Anna"}\n'
        '---\nTekst.\n', "utf-8")
    images = result(check_theme(config, "kort", offline=True), "images")
    [finding] = images.findings
    assert "img/groot.png is 293 KB, over 200 KB" in finding.message
    assert finding.where == "content/kort/20-interview.md:5"


def test_heading_order_alt_text_and_contrast_are_read_from_the_html() -> None:
    doc = markup.parse(
        '<html><body style="background:#ffffff">'
        '<h2>Eerst</h2><h1>Titel</h1><h4>Te diep</h4>'
        '<img src="a.png"><img src="b.png" alt="b.png"><img src="c.png" alt="Portret">'
        '<p style="color:#777777">grijs op wit</p>'
        '<div bgcolor="#e5731a" style="color:#fff; font-size:12px">Veilig Thuis</div>'
        '<h1 style="color:#ffffff; font-size:28px; background-color:#00567a">Groot</h1>'
        '<p style="color:#949494; font-size:24px">groot grijs</p>'
        '<p style="display:none; color:#eeeeee">verborgen</p>'
        '</body></html>')
    assert markup.headings(doc) == [
        "2 h1 headings; a mail has exactly one",
        "the first heading is h2 ('Eerst'), not h1",
        "h4 'Te diep' follows an h1: level h2 skipped"]
    assert [p for p in map(markup.alt_problem, markup.images(doc)) if p] == [
        "image a.png has no alt attribute", "image b.png has a file name as alt text ('b.png')"]
    found = {(p.text, p.foreground, p.background, round(p.ratio, 2)) for p in markup.contrast(doc)}
    assert found == {("grijs op wit", "#777777", "#ffffff", 4.48),
                     ("Veilig Thuis", "#ffffff", "#e5731a", 3.09)}


def test_the_gmail_size_is_measured_on_the_encoded_html_part(project: Settings) -> None:
    size = result(check_theme(project, "stalking", offline=True), "size")
    assert size.status == "pass"
    largest = float(size.note.split()[1])
    raw = max(p.stat().st_size for p in (project.out / "stalking" / "mail").glob("*.html"))
    assert raw / 1024 < largest < raw / 1024 * 1.3  # quoted-printable adds a little


def test_contrast_is_checked_in_the_compiled_variants(plain_settings: Settings) -> None:
    config = small_theme(plain_settings, ["https://example.org/"])
    (config.templates / "mjml").mkdir(parents=True)  # the project's own layout overrides the package's
    (config.templates / "mjml" / "mailing.mjml.j2").write_text(
        (PACKAGE_TEMPLATES / "mjml" / "mailing.mjml.j2").read_text("utf-8").replace(
            "</mj-body>", '<mj-section><mj-column><mj-text color="#aaaaaa">Lichtgrijs'
                          "</mj-text></mj-column></mj-section></mj-body>"), "utf-8")
    contrast = result(check_theme(config, "kort", offline=True), "contrast")
    assert contrast.status == "fail"
    assert "'Lichtgrijs': #aaaaaa on #ffffff" in str(contrast.findings[0])


def test_missing_files_of_our_own_site_are_named(plain_settings: Settings) -> None:
    config = small_theme(plain_settings, ["https://nieuws.example.org/kort/weg.html"])
    [finding] = result(check_theme(config, "kort", offline=True), "links").findings
    assert finding.message == "https://nieuws.example.org/kort/weg.html: no such page in the build"
    assert Path(finding.where.split(":")[0]).name == "10-links.md"


@pytest.mark.skipif(spamassassin() is None, reason="spamassassin is not installed")
def test_spamassassin_gives_one_verdict_per_message_in_order() -> None:
    from mailer.check.spam import verdicts

    head = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hallo\r\n"
            b"Message-ID: <1@example.org>\r\nDate: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n")
    gtube = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
    plain, spam = verdicts([head + b"From the start: hallo\r\n", head + gtube], spamassassin() or "")
    assert not plain.spam and spam.spam and "GTUBE" in spam.tests, (plain, spam)


def test_check_as_json(project: Settings) -> None:
    import json

    out = CliRunner().invoke(main, ["check", "stalking", "--offline", "--json"])
    data = json.loads(out.output)
    assert out.exit_code == 1 and data["ok"] is False
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert statuses["placeholders"] == "fail" and statuses["links"] == "skip"
