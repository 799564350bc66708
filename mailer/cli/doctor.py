"""`mailer doctor`: check what a real send depends on and print the DNS records to publish."""

from __future__ import annotations

import click

from mailer.check.doctor import diagnose, dns_records
from mailer.cli.common import settings
from mailer.errors import MailerError

MARKS = {"ok": "ok     ", "warning": "WARNING", "error": "ERROR  "}


@click.command("doctor")
@click.option("--no-dns", is_flag=True, help="Do not read the published DNS records.")
def doctor_command(no_dns: bool) -> None:
    """Check what a real send depends on and print the DNS records to publish.

    Checks From/DKIM alignment, the bounce address, TLS, the DKIM key, the public URL and the
    unsubscribe address; prints the DKIM, SPF and DMARC records and, where DNS is reachable,
    compares them with what is published. Exits 1 on any error.

    \b
    Example:
      mailer doctor
      MAILER_SMTP_HOST=smtp.example.org mailer doctor --no-dns
    """
    config = settings()
    found = diagnose(config, dns=not no_dns)
    for check in found:
        click.echo(f"{MARKS[check.level]} {check.topic}: {check.message}")
    click.echo("\nPublish these DNS records (TXT):")
    for kind, (name, value) in dns_records(config).items():
        click.echo(f"  {kind:<5} {name}.  IN TXT  \"{value}\"")
    errors = sum(c.level == "error" for c in found)
    if errors:
        raise MailerError(f"{errors} problem(s) to fix before a real send")


COMMANDS = [doctor_command]
