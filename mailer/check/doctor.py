"""`mailer doctor`: is the configuration one that receivers accept, and what must DNS say?

DMARC passes when From's domain aligns (relaxed: the same organisational domain) with the DKIM
`d=` domain or with the envelope sender's (SPF) domain. Gmail and Yahoo require it from 5,000
messages a day, and Dutch public bodies must apply DMARC, SPF and DKIM (Forum
Standaardisatie). The doctor checks the settings a real send depends on, prints the DNS
records to publish, and reads the published ones where DNS is reachable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from mailer import urls
from mailer.config import Settings
from mailer.errors import DeliveryError
from mailer.message.dkimkeys import public_der, record_value
from mailer.message.signing import load_key
from mailer.transport.transports import security_warning

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Check:
    level: Level
    topic: str
    message: str


if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList


@cache
def _suffixes() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList  # the list ships with the package

    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registered domain (RFC 7489 3.2): nieuws.veiligheidvoorop.nl → veiligheidvoorop.nl."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def aligned(a: str, b: str) -> bool:
    """Relaxed DMARC alignment of two domains."""
    return organisational_domain(a) == organisational_domain(b)


def alignment_problem(settings: Settings) -> str:
    """Why From and DKIM are not aligned, or "". A real SMTP send refuses to start on it."""
    sender = _domain(settings.sender_email)
    if not (settings.dkim_selector and settings.dkim_domain and settings.dkim_key_file):
        return (f"no DKIM key is configured (dkim_selector, dkim_domain, dkim_key_file): "
                f"From {sender} cannot align with a signature, so DMARC rests on SPF alone. "
                "Make a key with `mailer dkim keygen`, then set those three in mailer.toml")
    if not aligned(sender, settings.dkim_domain):
        return (f"From is on {sender} but DKIM signs as d={settings.dkim_domain}: not the same "
                f"organisational domain, so DMARC fails. Set dkim_domain to {sender} (or a "
                f"subdomain of {organisational_domain(sender)}), or send From an address on "
                f"{settings.dkim_domain}")
    return ""


def checks(settings: Settings) -> Iterator[Check]:
    """Every check of the configuration, in the order a reader follows them."""
    sender = _domain(settings.sender_email)
    problem = alignment_problem(settings)
    yield Check("error" if problem else "ok", "From and DKIM",
                problem or f"From {sender} aligns with d={settings.dkim_domain}")
    yield from _key(settings)
    envelope = _domain(settings.envelope_sender)
    if settings.envelope_sender.lower() in (settings.reply_to.lower(),
                                            settings.sender_email.lower()):
        yield Check("error", "bounce address", f"the envelope sender {settings.envelope_sender} "
                    "is a human mailbox: bounces would land among replies. Set bounce_address")
    elif not aligned(envelope, sender):
        yield Check("warning", "bounce address", f"the envelope sender is on {envelope}, From on "
                    f"{sender}: SPF cannot align, so DMARC rests on DKIM alone")
    else:
        yield Check("ok", "bounce address", f"{settings.envelope_sender} (VERP: bounces+<token>@"
                    f"{envelope}), aligned with From for SPF")
    if not settings.smtp_host:
        yield Check("warning", "TLS", "no smtp host: messages go to the local outbox")
    else:
        warning = security_warning(settings)
        yield Check("warning" if warning else "ok", "TLS", warning or
                    f"{settings.smtp_security} to {settings.smtp_host}:{settings.smtp_port}")
    url = urlsplit(settings.public_base_url)
    if url.scheme != "https" or not url.hostname or _is_example(url.hostname):
        yield Check("error", "public base URL", f"{settings.public_base_url} must be a public "
                    "https address: unsubscribe links and one-click (RFC 8058) need it")
    else:
        yield Check("ok", "public base URL", "one-click unsubscribe POSTs go to "
                    + urls.shown(settings.public_base_url, urls.UNSUBSCRIBE))
    mailto = _domain(settings.unsubscribe_address)
    yield Check("ok" if aligned(mailto, sender) else "warning", "unsubscribe address",
                f"mailto:{settings.unsubscribe_address}; process its mailbox with "
                "`mailer bounces process` (it also reads bounces)")


def _is_example(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return host in ("localhost", "testserver") or host.endswith(
            (".example", ".test", ".invalid", ".localhost", "example.org", "example.com"))


def _key(settings: Settings) -> Iterator[Check]:
    if not settings.dkim_key_file:
        return
    path = settings.path("dkim_key_file")
    try:
        key = load_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        yield Check("error", "DKIM key", f"{path}: {exc}")
        return
    size = key.key_size
    yield Check("ok" if size >= 2048 else "error", "DKIM key",
                f"{path}: RSA {size} bits" + ("" if size >= 2048 else "; use 2048 or more"))


def public_key(settings: Settings) -> str:
    """The DKIM record value of the configured key, or "" when there is none."""
    try:
        return record_value(public_der(load_key(settings.path("dkim_key_file").read_bytes())))
    except (OSError, ValueError):
        return ""


def dns_records(settings: Settings) -> dict[str, tuple[str, str]]:
    """What to publish: kind → (name, TXT value)."""
    sender = _domain(settings.sender_email)
    envelope = _domain(settings.envelope_sender)
    organisation = organisational_domain(sender)
    records = {}
    if settings.dkim_selector and settings.dkim_domain:
        records["DKIM"] = (f"{settings.dkim_selector}._domainkey.{settings.dkim_domain}",
                           public_key(settings) or "v=DKIM1; k=rsa; p=<public key>")
    senders = f"a:{settings.smtp_host}" if settings.smtp_host else "mx"
    records["SPF"] = (envelope, f"v=spf1 {senders} -all")
    records["DMARC"] = (f"_dmarc.{organisation}",
                        f"v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:dmarc@{organisation}")
    return records


Lookup = Callable[[str], list[str]]


class DnsUnreachable(DeliveryError):
    """No usable DNS here: the published records cannot be read."""


PROBE = "gmail.com"  # a name that has MX records wherever DNS works


def dns_lookup(timeout: float = 3.0) -> Lookup:
    """TXT records of a name through the system resolver (dnspython).

    A resolver that cannot find gmail.com's MX (no network, or a sandbox that answers
    NXDOMAIN to everything) would make every record look missing: it raises DnsUnreachable.
    """
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    try:
        resolver.resolve(PROBE, "MX")
    except dns.exception.DNSException as exc:
        raise DnsUnreachable(f"{type(exc).__name__}: {exc}") from exc

    def lookup(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise DnsUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return [b"".join(r.strings).decode(errors="replace") for r in answer]

    return lookup


def published(settings: Settings, lookup: Lookup) -> Iterator[Check]:
    """The published records against what they should say; one warning when DNS is out of
    reach (no resolver, no network), since that says nothing about the records."""
    for kind, (name, _) in dns_records(settings).items():
        found = lookup(name)
        tag = {"DKIM": "v=DKIM1", "SPF": "v=spf1", "DMARC": "v=DMARC1"}[kind]
        records = [r for r in found if r.replace(" ", "").lower().startswith(tag.lower())]
        if not records:
            yield Check("error", f"DNS {kind}", f"no {kind} record at {name}")
        elif kind == "DKIM" and _p(public_key(settings)) not in ("", _p(records[0])):
            yield Check("error", "DNS DKIM", f"{name} publishes another key than {settings.dkim_key_file}")
        else:
            yield Check("ok", f"DNS {kind}", f"{name}: {records[0]}")


def _p(record: str) -> str:
    """The p= tag of a DKIM record, whitespace and quotes removed."""
    flat = record.replace(" ", "").replace('"', "")
    return flat.partition("p=")[2].partition(";")[0]


def diagnose(settings: Settings, dns: bool = True) -> list[Check]:
    """All checks, and the published records' when `dns` and DNS is reachable."""
    found = list(checks(settings))
    if dns:
        try:
            found += published(settings, dns_lookup())
        except (DnsUnreachable, ImportError) as exc:
            found.append(Check("warning", "DNS", f"DNS is not reachable ({exc}): the published "
                               "records were not checked"))
    return found
