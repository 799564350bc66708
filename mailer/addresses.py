"""Email addresses: the one check of whether an address may be stored or put into a header.

The syntax is email-validator's (RFC 5321/5322 as real servers accept it, no DNS look-up).
On top of it the address must be plain ASCII: no SMTPUTF8, so it never needs encoding in a
header and cannot smuggle a line break into one.

email-validator costs tens of microseconds an address, which is most of a million-row list
import. So the common plain shape (dot-atom before the @, lower-case letter-digit-hyphen labels
after it) is recognised by one regular expression first; that shape is a strict subset of what
the library accepts (tests/test_addresses.py checks both on a corpus), and everything else is
still decided by the library.
"""

from __future__ import annotations

import re

import email_validator
from email_validator import EmailNotValidError, validate_email

from mailer.models import EMAIL_MAX

_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TOP_LABEL = r"(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]"  # every top-level domain ends with a letter
_PLAIN = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+{_TOP_LABEL}")


def normalise(value: str) -> str:
    """How addresses are stored and compared: trimmed and lower-case."""
    return value.strip().lower()


def plainly_valid(address: str) -> bool:
    """True only for addresses email-validator accepts; False says nothing (ask the library).

    Assumes the length checks of `problem` passed. Left to the library: upper case and "--" in
    the domain (Punycode and the labels RFC 5890 reserves), and special-use names such as .local,
    read from the library's own list so that a change to it holds here too."""
    if _PLAIN.fullmatch(address) is None:
        return False
    domain = address[address.index("@") + 1:]
    if "--" in domain:
        return False
    reserved = email_validator.SPECIAL_USE_DOMAIN_NAMES
    while True:
        if domain in reserved:
            return False
        dot = domain.find(".")
        if dot < 0:
            return True
        domain = domain[dot + 1:]


def problem(address: str) -> str | None:
    """Why `address` cannot be used, or None."""
    if not address:
        return "no email address"
    if len(address) > EMAIL_MAX:
        return f"email address longer than {EMAIL_MAX} characters"
    if not address.isascii():
        return f"not a valid email address: {address!r} (only ASCII addresses can be mailed)"
    if len(address.rpartition("@")[0]) > 64:
        return f"not a valid email address: {address!r} (more than 64 characters before the @)"
    if plainly_valid(address):
        return None
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False,
                       allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError as exc:
        return f"not a valid email address: {address!r} ({str(exc).rstrip('.')})"
    return None
