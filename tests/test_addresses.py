"""The one address check, and the places that rely on it."""

from __future__ import annotations

import random

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email

from mailer import addresses
from mailer.message.assembly import MessageError, format_address


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


# Addresses near the edges of what email-validator accepts: each must get the same verdict
# whether or not the quick check recognises it.
TRICKY = [
    "a@example.org", "A@EXAMPLE.ORG", "a@Example.org", "a.b.c@example.org", "a+b@example.org",
    "a_b-c@sub-domain.example.org", "!#$%&'*+-/=?^_`{|}~@example.org", "1@1.example.org",
    "a@example.c0m", "a@example.123", "a@1.2.3.4", "a@example.o", "a@e.xample", "a@example.org.",
    "a@.example.org", "a@example..org", "a.@example.org", "a@-a.example.org", "a@a-.example.org",
    "a@a.-b.org", "a@ab--cd.example.org", "a@xn--bcher-kva.example", "a@xn--zz.example.org",
    "a@xn--bcher-kva.ch", "a@a--.example.org", "a@ab-c.example.org", "a@example.local",
    "a@example.localhost", "a@localhost", "a@x.invalid", "a@x.onion", "a@x.test", "a@test",
    "a@x.arpa", "a@home.arpa", "a@example.tEst", "a@example", "a@example.org@b.org",
    "a b@example.org", "a\t@example.org", "a@exam ple.org", "a@example.org ", " a@example.org",
    "a@[127.0.0.1]", '"a"@example.org', '"a b"@example.org', "<a@example.org>",
    "A <a@example.org>", "a@example.org>", "a(b)@example.org", "a,b@example.org",
    "a;b@example.org", "a:b@example.org", "a\\b@example.org", "a[b]@example.org",
    "a@ex_ample.org", "a@ex!ample.org", "a@example.org\n", "a@example.org\x00",
    "@example.org", "a@", "a", "a@" + "x" * 63 + ".org", "a@" + "x" * 64 + ".org",
    "a@" + ".".join(["abcdefghi"] * 24) + ".org", "a@" + ".".join(["abcdefghi"] * 25) + ".org",
    "x" * 64 + "@example.org", "x" * 65 + "@example.org", "a@example.org" + "x" * 240,
    "info@example.org", "POSTMASTER@example.org", "a@b.c.d.e.f.g.example.org",
    "a@0.example.org", "a@example.0rg", "a@example.or-g", "a@example.-org", "a@example.org-",
]


def the_library_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False,
                       allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("address", TRICKY)
def test_the_quick_check_accepts_only_what_the_library_accepts(address):
    within_our_limits = len(address) <= 254 and len(address.rpartition("@")[0]) <= 64
    if within_our_limits and addresses.plainly_valid(address):  # `problem` asks it only then
        assert the_library_accepts(address)
    assert (addresses.problem(address) is None) == (the_library_accepts(address) and within_our_limits)


def test_the_quick_check_agrees_on_random_variations():
    """Mutations of plain addresses with the characters that matter at each place."""
    rng = random.Random(13)
    alphabet = "aZ09.-_+@!'\"() ,;:<>[]\\\t\n"
    seeds = ["jan.jansen@example.org", "a@b.co", "x-y@sub.domain.nl", "ab@cd--ef.com",
             "q@xn--abc.org", "p@host.local", "z@1.2"]
    quick = 0
    for _ in range(20_000):
        chars = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(chars) + 1)
            if rng.random() < 0.5 and chars:
                chars[min(at, len(chars) - 1)] = rng.choice(alphabet)
            else:
                chars.insert(at, rng.choice(alphabet))
        address = "".join(chars)
        if addresses.plainly_valid(address):
            quick += 1
            assert the_library_accepts(address), address
    assert quick > 500  # the quick check does recognise the common shape


def test_the_quick_check_follows_the_librarys_reserved_names(monkeypatch):
    assert addresses.problem("jan@mail.example.org") is None
    monkeypatch.setattr(email_validator, "SPECIAL_USE_DOMAIN_NAMES",
                        [*email_validator.SPECIAL_USE_DOMAIN_NAMES, "example.org"])
    assert not addresses.plainly_valid("jan@mail.example.org")
    assert "special-use or reserved name" in addresses.problem("jan@mail.example.org")
