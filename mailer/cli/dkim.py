"""`mailer dkim keygen`: a DKIM key pair and the DNS record that goes with it."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli.common import settings
from mailer.message.dkimkeys import dns_record, generate_key


@click.group()
def dkim() -> None:
    """DKIM signing keys.

    \b
    Example:
      mailer dkim keygen --selector nieuws2026
    """


@dkim.command()
@click.option("--selector", help="DNS selector; default: dkim_selector setting, else 'mailer'.")
@click.option("--domain", help="Signing domain; default: dkim_domain, else list_domain.")
@click.option("--output", type=click.Path(path_type=Path),
              help="Private key file; default: dkim_key_file, else dkim/<selector>.pem.")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def keygen(selector: str | None, domain: str | None, output: Path | None, force: bool) -> None:
    """Write a new RSA 2048 private key (mode 0600) and print the DNS TXT record to publish.

    Set dkim_selector, dkim_domain and dkim_key_file in mailer.toml once the record is live.

    \b
    Example:
      mailer dkim keygen --selector nieuws2026 --domain veiligheidvoorop.nl \\
        --output dkim/nieuws2026.pem
    """
    config = settings()
    selector = selector or config.dkim_selector or "mailer"
    domain = domain or config.dkim_domain or config.list_domain
    if output is None:  # the setting is relative to the project root, an option to the shell
        output = (config.path("dkim_key_file") if config.dkim_key_file
                  else config.root / "dkim" / f"{selector}.pem")
    public = generate_key(output, force=force)
    click.echo(f"Private key written to {output}. Publish this DNS record:")
    click.echo(dns_record(selector, domain, public))


COMMANDS = [dkim]
