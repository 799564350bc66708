"""Email addresses: the one check of whether an address may be stored or put into a header.

The syntax is email-validator's (RFC 5321/5322 as real servers accept it, no DNS look-up).
On top of it the address must be plain ASCII: no SMTPUTF8, so it never needs encoding in a
header and cannot smuggle a line break into one.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from mailer.models import EMAIL_MAX


def normalise(value: str) -> str:
    """How addresses are stored and compared: trimmed and lower-case."""
    return value.strip().lower()


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
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False,
                       allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError as exc:
        return f"not a valid email address: {address!r} ({str(exc).rstrip('.')})"
    return None
