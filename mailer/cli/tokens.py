"""`mailer tokens`: the REST API's tokens, each with only the scopes it needs."""

from __future__ import annotations

import click

from mailer.accounts import api_tokens
from mailer.cli.common import database, json_option, print_json, settings
from mailer.cli.identity import acting, by_option, password_stdin_option


@click.group("tokens")
def tokens() -> None:
    """Tokens for the REST API under /api/v1: add, list, revoke.

    \b
    Example:
      mailer tokens add crm-veilig-thuis --scope subscribers:read --scope subscribers:write
    """


@tokens.command("add")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(list(api_tokens.SCOPES)),
              help="What the token may do; repeat for more than one.")
@by_option
@password_stdin_option
def add(name: str, scopes: tuple[str, ...], by: str | None, password_stdin: bool) -> None:
    """Make a token and print it once, on the last line: only its hash is kept.

    Once accounts exist, only an admin may add tokens.

    \b
    Example:
      mailer tokens add crm-noord --scope subscribers:read --scope sends:read --by anna
    """
    config = settings()
    database(config)
    who = acting(config, by, password_stdin, "users")
    token, secret = api_tokens.add(config, who, name, scopes)
    click.echo(f"token {token.name} added with scopes {', '.join(token.scopes)}.")
    click.echo("Copy it now; it is not shown again (send it as Authorization: Bearer TOKEN):")
    click.echo(secret)


@tokens.command("list")
@json_option("the tokens")
def list_command(as_json: bool) -> None:
    """List the tokens: name, scopes, made by and when, last use, revoked.

    \b
    Example:
      mailer tokens list --json
    """
    config = settings()
    database(config)
    found = [api_tokens.as_dict(t) for t in api_tokens.tokens(config)]
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no tokens (add one with `mailer tokens add NAME --scope SCOPE`)")
    for t in found:
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "live"
        click.echo(f"{t['name']}\t{','.join(t['scopes'])}\t{state}\tlast used "
                   f"{t['last_used_at'] or 'never'}\tby {t['created_by'] or '?'} {t['created_at']}")


@tokens.command("revoke")
@click.argument("name")
@by_option
@password_stdin_option
def revoke(name: str, by: str | None, password_stdin: bool) -> None:
    """Revoke a token: from now on every call with it is answered 401.

    \b
    Example:
      mailer tokens revoke crm-noord --by anna
    """
    config = settings()
    database(config)
    who = acting(config, by, password_stdin, "users")
    token = api_tokens.revoke(config, who, name)
    click.echo(f"token {token.name} revoked")


COMMANDS = [tokens]
