"""Who runs a command that acts as a person (send, schedule, approve, pause, resume, cancel,
move, users, audit).

Without accounts: the name given with --by (default: the login name), as before accounts
(checked against `approval_staff`, when set, for creating, forcing and approving only).
Once accounts exist: that account, proven by its password (asked on the terminal, or read from
standard input with --password-stdin) and, when it has one, its TOTP code; then its role and
regions must allow the act. Without the password nothing is created or changed; a refusal is in
the audit trail.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from mailer.accounts import logins, users
from mailer.accounts.roles import Person, refusal
from mailer.audit import command_line, os_user, record_now
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import AccessError
from mailer.send import approval

by_option = click.option("--by", help="Who you are: your account once accounts exist, else the "
                                      "name recorded (default: $USER).")
password_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read your password from standard input (and your TOTP code from its second line) "
         "instead of asking on the terminal.")


def _has_code(config: Settings, name: str) -> bool:
    with session_scope(config) as session:
        account = users.find(session, name)
        return bool(account and account.totp_secret)


def _secrets(config: Settings, name: str, from_stdin: bool) -> tuple[str, str | None]:
    """The password and the TOTP code (None when the account has no TOTP)."""
    wants_code = _has_code(config, name)
    if from_stdin:
        lines = sys.stdin.read().splitlines()
        password = lines[0] if lines else ""
        return password, (lines[1].strip() if len(lines) > 1 else "") if wants_code else None
    if not sys.stdin.isatty():
        raise AccessError(f"mailer has accounts: give {name}'s password on a terminal, or "
                          "with --password-stdin")
    password = click.prompt(f"Password for {name}", hide_input=True, err=True)
    return password, click.prompt("TOTP code", err=True) if wants_code else None


STAFF_ACTIONS = ("create", "force", "approve")  # without accounts: names on approval_staff only


def acting(config: Settings, by: str | None, password_stdin: bool, action: str,
           regions: Sequence[str] = (), *, subject: str = "", enrolling: bool = False) -> Person:
    """The person running this command, allowed to do `action` (mailer.accounts.roles) for
    `regions` (empty: every region) on `subject` (e.g. "send 3", for the audit trail)."""
    if not users.any_accounts(config):
        if action in STAFF_ACTIONS:
            return approval.person(config, by)
        return Person((by or os_user()).strip(), command_line().origin)
    name = (by or os_user()).strip()
    password, code = _secrets(config, name, password_stdin)
    who = logins.log_in(config, name, password, code, command_line().origin, enrolling=enrolling)
    why = refusal(who, action, regions)
    if why:
        record_now(config, who, "refused", subject, outcome=why, wanted=action,
                   regions=list(regions))
        raise AccessError(why)
    return who
