"""Every link of our own site in a mail as sent opens something: a page `mailer serve` answers,
or a file the build published. A route renamed on one side only fails here."""

from __future__ import annotations

import email
import email.policy
import re
from urllib.parse import unquote, urlsplit

from starlette.testclient import TestClient

from mailer import urls
from mailer.config import Settings
from mailer.web.app import create_app
from tests.conftest import outbox

LINK = re.compile(r"""(?:href|src)="([^"]+)"|<(https://[^>]+)>|(https://\S+)""")


def test_path_fills_and_quotes_each_value() -> None:
    assert urls.path(urls.UNSUBSCRIBE, token="a.b_c-d") == "/afmelden/a.b_c-d"
    assert urls.path(urls.UNSUBSCRIBE, token="x y?") == "/afmelden/x%20y%3F"
    assert urls.absolute("https://example.org/", urls.SIGNUP) == "https://example.org/aanmelden"
    assert urls.site_path("https://example.org/nieuws", "https://example.org/nieuws/a.html") == "/a.html"
    assert urls.site_path("https://example.org/nieuws", "https://example.org/other") is None


def own_links(message: email.message.EmailMessage, base: str) -> set[str]:
    """The addresses on our own site in the headers and both bodies of one message."""
    texts = [str(message["List-Unsubscribe"])]
    texts += [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    found = {next(g for g in m.groups() if g) for text in texts for m in LINK.finditer(text)}
    return {link.replace("&amp;", "&") for link in found if urls.site_path(base, link) is not None}


def test_every_own_link_in_a_sent_mail_opens(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    sent = run("send", "stalking", "--region", "limburg", "--offline", "--force", "--reason", "test")
    assert sent.exit_code == 0, sent.output
    [first, *_] = outbox(send_settings)
    message = email.message_from_bytes(first.as_bytes(), policy=email.policy.default)
    base = send_settings.public_base_url
    links = own_links(message, base)  # type: ignore[arg-type]
    assert any("/afmelden/" in link for link in links) and any("/voorkeuren/" in link for link in links)
    assert any(link.endswith(".html") for link in links)
    served, published = [], []
    with TestClient(create_app(send_settings), base_url=base) as client:
        for link in sorted(links):
            path = urls.site_path(base, link) or ""
            file = send_settings.out / unquote(urlsplit(path).path).lstrip("/")
            if file.is_file():
                published.append(link)
                continue
            answer = client.get(link, follow_redirects=False)
            assert answer.status_code < 400, f"{link} answers {answer.status_code}"
            served.append(link)
    assert len(served) >= 2 and published, (served, published)
