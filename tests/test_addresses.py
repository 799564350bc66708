"""The one address check, and the places that rely on it."""

from __future__ import annotations

import pytest

from mailer import addresses
from mailer.send.messages import MessageError, format_address


@pytest.mark.parametrize("address", [
    "", "plain", "a@b", "a@@example.org", "a b@example.org", "a@example.org\r\nBcc: x@evil.org",
    "a@example.org, b@example.org", "<a@example.org>", '"a"@example.org', "a@-example.org",
    ".a@example.org", "a..b@example.org", "a@example.org\n", "ä@example.org",
    "a@" + "x" * 250 + ".org", "x" * 65 + "@example.org",
])
def test_bad_addresses_are_refused(address):
    assert addresses.problem(address) is not None


@pytest.mark.parametrize("address", ["a@example.org", "anouk.jansen+ovv@sub.example.org",
                                     "o'brien@example.org"])
def test_good_addresses_pass(address):
    assert addresses.problem(address) is None


@pytest.mark.parametrize("address", ["jan@localhost", "jan@straße.de", "jan@x.invalid"])
def test_hosts_that_cannot_be_mailed_are_refused(address):
    """A host without a dot or a reserved name cannot be mailed; a non-ASCII domain needs
    SMTPUTF8 or IDNA encoding, which a stored address should not depend on."""
    assert addresses.problem(address) is not None


def test_a_message_refuses_what_the_check_refuses():
    assert format_address("Jan", "jan@example.org") == "Jan <jan@example.org>"
    with pytest.raises(MessageError, match="not a valid email address: 'jan@example'"):
        format_address("Jan", "jan@example")


def test_the_reason_says_what_is_wrong():
    assert "two periods in a row" in addresses.problem("a..b@example.org")
    assert addresses.problem("x" * 250 + "@example.org") == "email address longer than 254 characters"
