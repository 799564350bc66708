"""`mailer users`: the team's accounts, their roles and regions, disabling and resetting them."""

from __future__ import annotations

import datetime as dt
import sys

import click

from mailer.accounts import users
from mailer.accounts.roles import ROLES, Person, a, region_names
from mailer.audit import Actor, command_line, os_user
from mailer.cli.common import Term, database, json_option, print_json, settings
from mailer.cli.identity import acting, by_option, password_stdin_option
from mailer.config import Settings

role_option = click.option("--role", required=True, type=click.Choice(ROLES),
                           help="writer: creates sends and schedules; editor: also approves "
                                "them and may force a send; admin: also manages accounts.")
region_option = click.option("--region", "regions", multiple=True, type=Term("region"),
                             help="A region the account acts for (repeatable; none: every "
                                  "region).")


def _config() -> Settings:
    config = settings()
    database(config)
    return config


def _admin(config: Settings, by: str | None, password_stdin: bool, name: str | None,
           enrolling: bool = False) -> Person:
    """The admin running a users command on account `name` (None: all of them); anyone,
    while there are no accounts."""
    return acting(config, by, password_stdin, "users",
                  subject=f"account {name}" if name else "accounts", enrolling=enrolling)


def _link(link: str) -> None:
    click.echo(f"One-time link to set a password (valid {users.SETUP_VALID.total_seconds() / 3600:g} "
               f"hours; give it to its owner only):\n  {link}")


@click.group("users")
def users_group() -> None:
    """The team's accounts: add, list, set-role, disable, reset, totp.

    With no accounts mailer works as before accounts existed. The first account must be an
    admin and needs no log-in; from then on every users command is run by an admin, with
    --by NAME and that admin's password.

    --password-stdin always reads the password of whoever runs the command (and a TOTP code
    from its second line): on the very first `users add` that is the new admin's own password;
    once accounts exist, the password of the admin given with --by. A later account always
    gets a one-time link on which its owner sets their password: an admin never knows it.

    \b
    Example:
      mailer users add anna --role admin
      mailer users add bert --role editor --region limburg --by anna
    """


@users_group.command("add")
@click.argument("name")
@role_option
@region_option
@click.option("--totp", is_flag=True,
              help="Also set up a TOTP second factor; its otpauth:// address is shown once.")
@by_option
@password_stdin_option
def add_command(name: str, role: str, regions: tuple[str, ...], totp: bool, by: str | None,
                password_stdin: bool) -> None:
    """Add the account NAME with a role and, optionally, regions (none: every region).

    Prints a one-time link, valid for 24 hours, on which NAME sets their own password. Only on
    the very first account (which must be an admin) may --password-stdin give that password
    instead. Passwords shorter than 12 characters or easy to guess (in Dutch or English) are
    refused, with the reason. The otpauth:// address of --totp is shown this once: scan it
    into an authenticator app.

    \b
    Example:
      mailer users add anna --role admin --totp
      mailer users add bert --role editor --region limburg --region oost-nederland --by anna
      printf '%s\n' "$NEW_PASSWORD" | mailer users add anna --role admin --password-stdin
    """
    config = _config()
    password = None
    actor: Actor
    if users.any_accounts(config):
        actor = _admin(config, by, password_stdin, name)
    else:  # the first account: nobody to log in as yet; stdin holds the new admin's password
        actor = command_line((by or os_user()).strip())
        if password_stdin:
            lines = sys.stdin.read().splitlines()
            password = lines[0] if lines else ""
    account, link, uri = users.add(config, actor, name, role, regions, password, totp)
    click.echo(f"Added {account.name}: {account.role} for {region_names(account.regions)}.")
    if link:
        _link(link)
    if uri:
        click.echo(f"TOTP: scan this once into an authenticator app (it is not shown again):\n"
                   f"  {uri}")


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


@users_group.command("list")
@by_option
@password_stdin_option
@json_option("the accounts")
def list_command(by: str | None, password_stdin: bool, as_json: bool) -> None:
    """Every account: its role, regions, whether it has a password and a TOTP code, and
    whether it is disabled or locked after failed log-ins (until when).

    \b
    Example:
      mailer users list --by anna
      mailer users list --json --by anna --password-stdin < password.txt
    """
    config = _config()
    _admin(config, by, password_stdin, None)
    found = users.listing(config)
    if as_json:
        print_json([users.account_document(account, locked) for account, locked in found])
        return
    rows = [("name", "role", "regions", "password", "TOTP", "disabled", "locked until")]
    for account, locked in found:
        rows.append((account.name, account.role, ", ".join(account.regions) or "every region",
                     "set" if account.password_hash else "not yet",
                     "yes" if account.totp_secret else "no", _when(account.disabled_at),
                     _when(locked)))
    if len(rows) == 1:
        click.echo("No accounts: mailer works without log-ins. Add an admin with "
                   "`mailer users add NAME --role admin`.")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


@users_group.command("set-role")
@click.argument("name")
@role_option
@region_option
@click.option("--all-regions", is_flag=True, help="Let NAME act for every region.")
@by_option
@password_stdin_option
def set_role_command(name: str, role: str, regions: tuple[str, ...], all_regions: bool,
                     by: str | None, password_stdin: bool) -> None:
    """Give NAME another role and, with --region or --all-regions, other regions (without
    either, their regions stay). The last admin cannot be made something else.

    \b
    Example:
      mailer users set-role bert --role editor --region limburg --by anna
      mailer users set-role carla --role writer --all-regions --by anna
    """
    if regions and all_regions:
        raise click.UsageError("give --region or --all-regions, not both")
    config = _config()
    actor = _admin(config, by, password_stdin, name)
    held = [] if all_regions else (list(regions) if regions else None)
    account = users.set_role(config, actor, name, role, held)
    click.echo(f"{account.name} is now {a(account.role)} for {region_names(account.regions)}.")


@users_group.command("disable")
@click.argument("name")
@by_option
@password_stdin_option
def disable_command(name: str, by: str | None, password_stdin: bool) -> None:
    """NAME can no longer log in, and their studio sessions end; the account and its history
    stay (`users list` shows it, `users reset` enables it again). The last admin cannot be
    disabled.

    \b
    Example:
      mailer users disable carla --by anna
    """
    config = _config()
    account = users.disable(config, _admin(config, by, password_stdin, name), name)
    click.echo(f"{account.name} is disabled: they can no longer log in.")


@users_group.command("reset")
@click.argument("name")
@by_option
@password_stdin_option
def reset_command(name: str, by: str | None, password_stdin: bool) -> None:
    """Forget NAME's password, end their sessions, lift a log-in lock and enable a disabled
    account; prints a new one-time link on which NAME sets a new password.

    \b
    Example:
      mailer users reset bert --by anna
    """
    config = _config()
    link = users.reset(config, _admin(config, by, password_stdin, name), name)
    click.echo(f"{name}'s password is forgotten; they set a new one on the link.")
    _link(link)


@users_group.command("totp")
@click.argument("name")
@by_option
@password_stdin_option
def totp_command(name: str, by: str | None, password_stdin: bool) -> None:
    """Set up a new TOTP second factor for NAME and show its otpauth:// address once (an old
    one stops working).

    An admin may do this for themselves without a code yet, so that with
    [auth] mfa = "admins" they can enrol.

    \b
    Example:
      mailer users totp anna --by anna
    """
    config = _config()
    yourself = users.name_key(by or os_user()) == users.name_key(name)
    actor = _admin(config, by, password_stdin, name, enrolling=yourself)
    uri = users.enrol_totp(config, actor, name)
    click.echo(f"TOTP for {name}: scan this once into an authenticator app (it is not shown "
               f"again):\n  {uri}")


COMMANDS = [users_group]
