"""Slot syntax from content or a partner feed stays text: only our own links carry a personal URL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mailer.config import Settings
from mailer.partners.publications import fetch_all
from tests.conftest import outbox
from tests.test_send_cli import FORCE

TYPED = "[[slot:preferences_url]]"
TYPED_BODY = "Typ hier [[slot:unsubscribe_url]] of [[slot:greeting]]."
FEED = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>OM</title><link>https://www.om.nl</link>
<description>Nieuws</description>
<item><title>Nieuw over stalking {TYPED}</title>
<link>https://evil.example/x?t={TYPED}</link>
<description>Over de aanpak van stalking.</description>
<pubDate>Mon, 02 Nov 2026 09:00:00 +0100</pubDate></item>
</channel></rss>
""".encode()


class FeedHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)


@pytest.fixture
def feed_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/om.rss"
    server.shutdown()
    server.server_close()


def _plant(settings: Settings, feed_url: str) -> None:
    """Slot syntax in a block's title and body, and a partner feed whose item carries it."""
    block = settings.content / "stalking" / "10-zorg-alleen-is-niet-voldoende.md"
    source = block.read_text(encoding="utf-8")
    source = source.replace('title: "Zorg alleen is niet voldoende, straf evenmin"',
                            f'title: "Zorg alleen {TYPED}"', 1)
    source = source.replace("lead: >-\n", f"lead: >-\n  {TYPED_BODY}\n", 1)
    block.write_text(source + f"\n{TYPED_BODY}\n", encoding="utf-8")
    (settings.content / "partners.yaml").write_text(
        "partners:\n  - name: Openbaar Ministerie\n    website: https://www.om.nl\n"
        f"    feed: {feed_url}\n", encoding="utf-8")


def _parts(message: Message) -> dict[str, str]:
    return {part.get_content_type(): part.get_payload(decode=True).decode()
            for part in message.walk() if part.get_content_maintype() == "text"}


def test_slot_syntax_from_content_and_feeds_never_carries_a_personal_url(
        run, send_settings: Settings, feed_url: str) -> None:  # type: ignore[no-untyped-def]
    _plant(send_settings, feed_url)
    assert not [r for r in fetch_all(send_settings) if r.error]
    sent = run("send", "stalking", "--region", "limburg", *FORCE)
    assert sent.exit_code == 0, sent.output

    messages = outbox(send_settings)
    assert len(messages) == 2
    base = re.escape(send_settings.public_base_url)
    for message in messages:
        unsubscribe = re.match(r"<(https://\S+)>", message["List-Unsubscribe"])[1]  # type: ignore[index]
        parts = _parts(message)
        html, text = parts["text/html"], parts["text/plain"]
        preferences = re.search(rf'href="({base}/voorkeuren/[^"]+)"', html)[1]  # type: ignore[index]
        # Our footer links are the only places a personal URL appears, in either part.
        assert html.count(unsubscribe) == html.count(f'href="{unsubscribe}"') == 2  # header, footer
        assert html.count(preferences) == html.count(f'href="{preferences}"') == 1
        assert text.count(unsubscribe) == text.count(f"Afmelden: {unsubscribe}\n") == 1
        assert text.count(preferences) == text.count(f"Voorkeuren wijzigen: {preferences}\n") == 1
        # What content and the feed typed is shown as typed.
        for body in (html, " ".join(text.split())):
            assert "Zorg alleen [[slot:preferences_url]]" in body
            assert "Nieuw over stalking [[slot:preferences_url]]" in body
            assert TYPED_BODY in body
            assert "https://evil.example/x?t=[[slot:preferences_url]]" in body

    out = send_settings.out
    pages = [*(out / "stalking").rglob("*.html"), *(out / "archief").rglob("*.html"), out / "feed.xml"]
    shown = "".join(p.read_text(encoding="utf-8") for p in pages)
    assert "/voorkeuren/" not in shown and "/afmelden/" not in shown
    assert "Zorg alleen [[slot:preferences_url]]" in (out / "feed.xml").read_text(encoding="utf-8")
    article = (out / "stalking" / "zorg-alleen-is-niet-voldoende.html").read_text(encoding="utf-8")
    assert "Zorg alleen [[slot:preferences_url]]" in article and TYPED_BODY in article
