"""Message building: headers, safety of recipient values, golden files, DKIM, bodies."""

from __future__ import annotations

import binascii
import os
import random
import re
import stat
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from dkim.canonicalization import Relaxed

from mailer.cli.main import main
from mailer.config import Settings
from mailer.message.assembly import MessageAssembler, MessageError, format_address
from mailer.message.encoding import EncodedBody, encoded_size
from mailer.message.identity import Reference, parse_bounce_address
from mailer.message.signing import HEADER_LIST, fold, relaxed_body
from mailer.render.renderer import CompiledVariant, slot_value
from tests.slots import stored

GOLDEN = Path(__file__).parent / "data" / "eml"
INSTALL = "0123456789abcdef"
UNSUBSCRIBE = "https://nieuws.veiligheidvoorop.nl/afmelden/tok-345"
TEXT = "Beste José,\n\nLees de verdieping over (ex-)partnerstalking.\n\nAfmelden: " + UNSUBSCRIBE
HTML = ("<!doctype html>\n<html lang=\"nl\"><body><h1>Thematische verdieping</h1>\n"
        "<p>Beste José, lees de verdieping over (ex-)partnerstalking: één plek, 100% = alles."
        " Deze regel is langer dan zesenzeventig tekens zodat quoted-printable hem afbreekt.</p>\n"
        f"<p><a href=\"{UNSUBSCRIBE}\">Afmelden</a></p></body></html>\n")


def assembler(test: bool = False, **settings: str) -> MessageAssembler:
    return MessageAssembler(
        Settings(**settings), subject="Thematische verdieping: (Ex-)Partnerstalking",
        list_slug="verdiepingen", list_name="Thematische verdiepingen", send_id=12,
        install=INSTALL, test=test, clock=lambda: datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    )


def build(f: MessageAssembler, name: str = "Jan de Vries", address: str = "jan@example.org",
          token: str = ""):
    return f.build(address=address, name=name, html=HTML, text=TEXT,
                   unsubscribe_url=UNSUBSCRIBE, recipient_id=345, unsubscribe_token=token)


def normalised(data: bytes) -> str:
    """Readable LF text with the random MIME boundary and test-send id replaced."""
    text = data.decode("ascii").replace("\r\n", "\n")
    text = re.sub(r"<test\.[0-9a-f]+\.", "<test.RANDOM.", text)
    return re.sub(r"=_mailer_[0-9a-f]+", "=_mailer_BOUNDARY", text)


@pytest.mark.parametrize(("golden", "name", "test"), [
    ("plain.eml", "Jan de Vries", False),
    ("non-ascii-name.eml", "José Müller-Öztürk", False),
    ("test-send.eml", "Jan de Vries", True),
])
def test_golden_messages(golden: str, name: str, test: bool) -> None:
    """Compare with tests/data/eml; UPDATE_GOLDEN=1 rewrites the files after a deliberate change."""
    actual = normalised(build(assembler(test), name).data)
    path = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="ascii")
    assert actual == path.read_text(encoding="ascii")


def test_headers_and_parts_read_back() -> None:
    message = build(assembler(test=True), "José Müller-Öztürk").email()
    assert message["To"].addresses[0].display_name == "José Müller-Öztürk"
    assert message["Subject"] == "[TEST] Thematische verdieping: (Ex-)Partnerstalking"
    assert re.fullmatch(r"<test\.[0-9a-f]{12}\.345\.0123456789abcdef@veiligheidvoorop\.nl>",
                        message["Message-ID"])
    assert message["List-Id"] == "Thematische verdiepingen <verdiepingen.veiligheidvoorop.nl>"
    assert message["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, <mailto:afmelden@veiligheidvoorop.nl?subject=unsubscribe>")
    assert build(assembler(), token="tok-345").email()["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, "
        "<mailto:afmelden@veiligheidvoorop.nl?subject=unsubscribe%20verdiepingen%20tok-345>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Reply-To"] == "info@ovv.nl"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == TEXT
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == HTML


def test_message_ids_are_deterministic_per_recipient_and_test_sends_unique() -> None:
    first, again = build(assembler()), build(assembler())
    assert first.message_id == again.message_id == "<12.345.0123456789abcdef@veiligheidvoorop.nl>"
    other = assembler().build(address="a@example.org", name="", html=HTML, text=TEXT,
                            unsubscribe_url=UNSUBSCRIBE, recipient_id=346)
    assert other.message_id != first.message_id
    assert build(assembler(test=True)).message_id != build(assembler(test=True)).message_id


def test_the_envelope_sender_is_a_verp_bounce_address_on_the_list_domain() -> None:
    settings = Settings()
    first = build(assembler())
    assert first.sender.startswith("bounces+12-345-") and first.sender.endswith(
        "@veiligheidvoorop.nl")
    assert parse_bounce_address(settings, first.sender) == Reference(12, "345")
    assert parse_bounce_address(settings, first.sender.replace("-345-", "-346-")) is None
    assert parse_bounce_address(replace(settings, secret_key="other"), first.sender) is None
    assert build(assembler(test=True)).sender == "bounces@veiligheidvoorop.nl"
    assert first.email()["Reply-To"] == "info@ovv.nl"  # replies still reach people


def test_no_bare_line_feed_even_in_bodies_without_line_breaks() -> None:
    """binascii writes `=\\n` soft breaks for text without a line break of its own."""
    body = EncodedBody(["x" * 300 + "é" * 50, "slot", "y" * 200], str).fill({"slot": "z" * 150})
    message = assembler().build(address="jan@example.org", name="Jan", html="<p>" + "é" * 400,
                              text="t" * 500, unsubscribe_url=UNSUBSCRIBE, recipient_id=1)
    for data in (body, message.data):
        assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")


def test_the_unsubscribe_mailto_is_configurable() -> None:
    message = build(assembler(unsubscribe_mailto="stop@example.org")).email()
    assert "<mailto:stop@example.org?subject=unsubscribe>" in message["List-Unsubscribe"]


@pytest.mark.parametrize("name", [f"{first}{breaker}Bcc: evil@example.org"
                                  for first in ("Jan", "Jöhn")
                                  for breaker in ("\r\n", "\n", "\r", "\u2028", "\x00\x0b")])
def test_a_name_can_never_start_a_header_line(name: str) -> None:
    outgoing = build(assembler(), name)
    header_block = outgoing.data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(^|\r\n)Bcc:", header_block, re.IGNORECASE)
    message = outgoing.email()
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["jan@example.org"]


@pytest.mark.parametrize("address", ["jan@example.org\r\nBcc: evil@example.org", "jan",
                                     "Jan <jan@example.org>", "jan@example.org, evil@example.org"])
def test_unusable_addresses_are_refused(address: str) -> None:
    with pytest.raises(MessageError):
        build(assembler(), address=address)


@pytest.mark.parametrize("url", ["http://x.nl/a", "https://x.nl/a>\r\nBcc: e@x.nl",
                                 "https://x.nl/a b", "https://x.nl/a,b"])
def test_unusable_unsubscribe_urls_are_refused(url: str) -> None:
    with pytest.raises(MessageError):
        assembler().build(address="jan@example.org", name="Jan", html=HTML, text=TEXT,
                        unsubscribe_url=url, recipient_id=1)


def test_names_with_specials_are_quoted() -> None:
    assert format_address('Vries, Jan "JdV"', "jan@example.org") == (
        '"Vries, Jan \\"JdV\\"" <jan@example.org>')


def published_key(tmp_path: Path, runner: CliRunner):
    """Run `mailer dkim keygen`; return the key and a dnsfunc serving the printed record."""
    key = tmp_path / "dkim" / "nieuws.pem"
    result = runner.invoke(main, ["dkim", "keygen", "--selector", "nieuws",
                                  "--domain", "veiligheidvoorop.nl", "--output", str(key)])
    assert result.exit_code == 0, result.output
    record = next(line for line in result.output.splitlines() if "IN TXT" in line)
    name, _, rest = record.partition(" IN TXT ")
    value = "".join(re.findall(r'"([^"]*)"', rest)).encode()

    def dnsfunc(domain: bytes, timeout: int = 5) -> bytes | None:
        return value if domain.decode().rstrip(".") == name.rstrip(".") else None

    return key, dnsfunc


def test_keygen_signs_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_ROOT", str(tmp_path))
    runner = CliRunner()
    key, dnsfunc = published_key(tmp_path, runner)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signed = build(assembler(dkim_selector="nieuws", dkim_domain="veiligheidvoorop.nl",
                           dkim_key_file=str(key)), "José Müller-Öztürk").data
    assert signed.startswith(b"DKIM-Signature:")
    signature = signed.split(b"\r\nFrom:", 1)[0].replace(b"\r\n", b"")
    signed_headers = re.search(rb"\bh=([^;]+)", signature).group(1).replace(b" ", b"")
    assert set(signed_headers.lower().split(b":")) >= {
        b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe",
        b"list-unsubscribe-post", b"mime-version", b"content-type"}
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"Beste Jos", b"Beste Kos"), dnsfunc=dnsfunc)

    again = runner.invoke(main, ["dkim", "keygen", "--output", str(key)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert runner.invoke(main, ["dkim", "keygen", "--output", str(key), "--force"]).exit_code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_an_encoded_body_decodes_to_the_filled_variant() -> None:
    html = "<p>[[slot:greeting]]</p>\n" + "<td>lange regel met één accent</td> " * 30 + \
        '\n<a href="[[slot:unsubscribe_url]]">afmelden</a> \n'
    text = "[[slot:greeting]]\n\n" + "tekst " * 40 + "\n[[slot:unsubscribe_url]]\n"
    compiled = CompiledVariant(stored(html), stored(text))
    values = {"greeting": "Beste <Zoë> & co,", "unsubscribe_url": "https://x.example/a?b=1&c=2"}
    filled = compiled.fill(values)
    for parts, escape, expected in [
            (compiled.html_parts, partial(slot_value, html=True), filled[0]),
            (compiled.text_parts, str, filled[1])]:
        encoded = EncodedBody(parts, escape).fill(values)
        assert encoded.endswith(b"\r\n")
        assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
        decoded = binascii.a2b_qp(encoded).decode()
        assert decoded.replace("\r\n", "\n") == expected + "\n"


@pytest.mark.lowest
def test_dkim_is_relaxed_over_signed_and_byte_identical_to_dkimpy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_ROOT", str(tmp_path))
    key, dnsfunc = published_key(tmp_path, CliRunner())
    signed = build(assembler(dkim_selector="nieuws", dkim_domain="veiligheidvoorop.nl",
                           dkim_key_file=str(key)), "José Müller-Öztürk").data
    header, _, unsigned = signed.partition(b"\r\nFrom:")
    unsigned = b"From:" + unsigned
    assert b"c=relaxed/relaxed" in header
    stamp = int(re.search(rb"\bt=(\d+)", header).group(1))
    monkeypatch.setattr("time.time", lambda: stamp)
    reference = dkim.sign(unsigned, b"nieuws", b"veiligheidvoorop.nl", key.read_bytes(),
                          canonicalize=(b"relaxed", b"relaxed"), include_headers=list(HEADER_LIST))
    assert reference + unsigned == signed
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    # relaxed: refolding and trailing whitespace in transit do not break it
    assert dkim.verify(signed.replace(b"Subject: ", b"Subject:   "), dnsfunc=dnsfunc)
    # over-signed: a second From, Subject or List-Unsubscribe added on top breaks it
    for extra in (b"From: Bank <help@bank.example>", b"Subject: Dringend",
                  b"List-Unsubscribe: <https://evil.example/x>"):
        assert not dkim.verify(extra + b"\r\n" + signed, dnsfunc=dnsfunc)


def test_the_size_check_counts_the_html_part_as_sent() -> None:
    data = build(assembler()).data
    part = data.split(b'Content-Type: text/html; charset="utf-8"\r\n'
                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")[1]
    part = part.rsplit(b"--=_mailer", 1)[0]
    assert encoded_size(HTML) == len(part) > len(HTML.encode())


@pytest.mark.parametrize("body", [
    b"a  b \r\n\tc \t d\t\r\n\r\n\r\n", b"x   \r\ny  z\r\n", b"\r\n", b"", b" \r\n \r\n",
    b"a\r\n\r\n", b"=\r\n  lead\r\n", HTML.encode().replace(b"\n", b"\r\n")])
def test_relaxed_body_canonicalisation_is_dkimpys(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


def headers_to_fold(rng: random.Random) -> list[bytes]:
    """Header values of every length around the 72-column edge: words of 1 to 90 characters
    (some too long to break at a space) between single and double spaces or "; ", each value
    also with a final CRLF and after a line folded before."""
    values = []
    for length in range(0, 300, 2):
        words = b"".join(rng.choice((b" ", b"  ", b"; ")) + b"x" * rng.randint(1, 90) for _ in range(12))
        values.append(words[:length])
    return values + [v + b"\r\n" for v in values] + [b"v=1; a=b\r\n " + v for v in values]


@pytest.mark.lowest
def test_fold_is_dkimpys_byte_for_byte() -> None:
    headers = headers_to_fold(random.Random(19))
    for namelen in (0, 1, 14, 16, 40, 70):
        for header in headers:
            assert fold(header, namelen=namelen) == dkim.fold(header, namelen=namelen), (header, namelen)
    folded = [fold(h, namelen=14) for h in headers]
    assert sum(f.count(b"\r\n ") > 1 for f in folded) > 100, "the inputs exercise the folding"


def test_an_encoded_body_without_line_breaks_has_only_crlf_line_ends() -> None:
    """Minified HTML and long slot values: every soft break must be CRLF, or an SMTP server
    reads the part as one over-long line."""
    html = "<p>" + "x" * 300 + '<a href="[[slot:unsubscribe_url]]">afmelden</a>' + "y" * 300 + "</p>"
    values = {"unsubscribe_url": "https://nieuws.example.nl/afmelden/" + "t" * 120}
    compiled = CompiledVariant(stored(html), stored(""))
    encoded = EncodedBody(compiled.html_parts, partial(slot_value, html=True)).fill(values)
    assert re.search(rb"(?<!\r)\n", encoded) is None
    assert max(len(line) for line in encoded.split(b"\r\n")) <= 76
    assert binascii.a2b_qp(encoded).decode() == compiled.fill(values)[0] + "\r\n"
