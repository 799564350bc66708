"""`mailer send THEME` and `mailer sends …`: deliver a built mailing, watch it, steer it."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailer.accounts.roles import Person
from mailer.check.gate import Checked, gate
from mailer.cli.build import build_errors
from mailer.cli.common import (
    Term,
    database,
    json_option,
    log_format_option,
    print_json,
    settings,
)
from mailer.cli.identity import acting, by_option, password_stdin_option
from mailer.config import Settings
from mailer.content.loader import shown_path
from mailer.errors import user_file
from mailer.send import approval
from mailer.send import runner as sending
from mailer.send.report import SendReport, html_report, newest_sends, send_report
from mailer.transport.transports import outbox_path, security_warning

region_option = click.option("--region", "regions", multiple=True, type=Term("region"),
                             help="Only this region (repeatable; default: every region).")
audience_option = click.option("--audience", "audiences", multiple=True,
                               type=Term("audience"),
                               help="Only this audience (repeatable; default: every audience).")
rate_option = click.option("--rate", type=click.FloatRange(min=0),
                           help="At most this many messages per second (overrides smtp_rate).")
PAUSED_EXIT = 3  # the send ended paused (too many errors, or a mail server that needs a person)


def _warn_insecure(config: Settings, console: Console) -> None:
    """Say so when a real send would cross a network in plain text (smtp security none)."""
    warning = security_warning(config)
    if warning:
        console.print(f"[yellow]Warning:[/yellow] {warning}", soft_wrap=True)


def _say_where(config: Settings, console: Console) -> None:
    """After "sent": say so when the messages only went to the local outbox."""
    outbox = outbox_path(config)
    if outbox is not None:
        console.print(f"Written to the local outbox {shown_path(outbox, config.root)}/ "
                      "(no SMTP host configured): no mail left this machine.", soft_wrap=True)


def _settings(rate: float | None) -> Settings:
    config = settings()
    database(config)  # a clean message when the database is missing or outdated
    return config if rate is None else replace(config, smtp_rate=rate)


def _acting_on(config: Settings, send_id: int, by: str | None, password_stdin: bool,
               action: str) -> Person:
    """Who acts on send SEND_ID, once accounts exist allowed to for every region it reaches."""
    send = sending.get_send(config, send_id)
    return acting(config, by, password_stdin, action, send.regions, subject=f"send {send_id}")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM or Ctrl-C lets the batch in flight finish and be recorded before the command
    ends; a second one acts as usual (interrupting the batch, which a resume sends again)."""
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def handle(*_: object) -> None:
        stop.set()
        restore()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield stop
    finally:
        restore()


def _deliver(config: Settings, run: Callable[..., sending.SendSummary | list[sending.SendSummary]],
             console: Console) -> None:
    """Run a delivery function with a progress bar; SIGTERM and Ctrl-C stop between batches."""
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _stop_on_signals() as stop, Progress(*columns, console=console,
                                              transient=True) as bar:
        task = bar.add_task("send", total=None)
        result = run(progress=lambda done, total: bar.update(task, completed=done, total=total),
                     stop=stop)
    summaries = result if isinstance(result, list) else [result]
    for summary in summaries:
        _print_summary(summary, console)
    if any(summary.counts.get("sent") for summary in summaries):
        _say_where(config, console)
    if stop.is_set():
        console.print("Stopped on request; the batch in flight was recorded. "
                      "Carry on with `mailer sends resume ID`.")
    elif any(summary.status == "paused" for summary in summaries):
        sys.exit(PAUSED_EXIT)


def _print_summary(summary: sending.SendSummary, console: Console) -> None:
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(summary.counts.items()))
    console.print(f"Send {summary.send_id}: {summary.status}; {summary.total:,} recipients "
                  f"({counts or 'none'})")
    if summary.status == "paused":
        console.print(f"[red]Paused:[/red] {summary.pause_reason}. Fix the cause, then "
                      f"`mailer sends resume {summary.send_id}`.")


def _dry_run(config: Settings, checked: Checked, regions: tuple[str, ...],
             audiences: tuple[str, ...], console: Console) -> None:
    """Who would get which variant, and whether the real send would be refused now."""
    count = 0
    for address, segment, variant in sending.dry_run(config, checked.manifest, regions, audiences):
        click.echo(f"{address}\t{segment}\t{variant}")
        count += 1
    console.print(f"{count:,} recipients (dry run: nothing sent or recorded)")
    failed = checked.readiness.failed
    if failed:
        console.print(f"[red]A real send would be refused:[/red] {len(failed)} readiness check(s) "
                      f"fail; see `mailer check {checked.theme}` (or --force --reason).",
                      soft_wrap=True)


@click.command("send")
@click.argument("theme")
@region_option
@audience_option
@click.option("--dry-run", is_flag=True, help="List each recipient and variant; send nothing.")
@click.option("--test", "test_addresses", multiple=True, metavar="ADDRESS",
              help="Send each variant of the segment only to ADDRESS, marked [TEST] (repeatable); "
                   "'Name <address>' greets that name, else a subscriber's own name or the neutral "
                   "greeting.")
@click.option("--queue", is_flag=True,
              help="Snapshot the recipients and leave delivering to `mailer sends work`.")
@rate_option
@by_option
@password_stdin_option
@click.option("--force", is_flag=True,
              help="Send although readiness checks fail (needs --reason; both are recorded).")
@click.option("--reason", help="Why the send must go out despite failing checks (with --force).")
@click.option("--offline", is_flag=True,
              help="Skip the link check of the readiness checks (also those of --dry-run).")
@log_format_option(text_level=logging.WARNING)
def send_command(theme: str, regions: tuple[str, ...], audiences: tuple[str, ...], dry_run: bool,
                 test_addresses: tuple[str, ...], queue: bool, rate: float | None, by: str | None,
                 password_stdin: bool, force: bool, reason: str | None, offline: bool) -> None:
    """Send the built mailing THEME to every subscriber of its topic in the segment.

    Builds first when out/THEME is stale and checks DKIM, the smtp settings and the header
    values before anything is recorded (also for --dry-run and --test). Then records one
    delivery per recipient and delivers with a progress bar. Interrupted? `mailer sends resume
    ID` carries on without sending anyone twice (except the few messages in flight). Exits
    with 3 when the send paused itself (the reason is printed), 1 on any other problem.

    A real send first runs `mailer check THEME` and refuses while a check fails, unless
    --force --reason "…"; --dry-run says when it would. With approval_mode = "required" it
    is only created, and starts after `mailer sends approve ID` by someone else and
    `mailer sends resume ID`.

    \b
    Example:
      mailer send stalking --region limburg --audience netwerk --test me@example.org
      mailer send stalking --region limburg --dry-run
      mailer send stalking --rate 20
      mailer send stalking --force --reason "placeholder text approved by the editor" --by anna
    """
    if force and not reason:
        raise click.UsageError("--force needs --reason \"why it must go out now\" (it is recorded)")
    config = _settings(rate)
    console = Console()
    with build_errors(theme):
        if dry_run:
            _dry_run(config, gate(config, theme, offline=offline), regions, audiences, console)
            return
        if test_addresses:
            for address, variant in sending.send_test(config, theme, test_addresses, regions,
                                                      audiences):
                console.print(f"[TEST] variant {variant} sent to {address}")
            _say_where(config, console)
            return
        _warn_insecure(config, console)
        creator = acting(config, by, password_stdin, "force" if force else "create", regions)
        checked = gate(config, theme, offline=offline)
        record = checked.release(creator.name, reason if force else None)
        send_id = sending.create_send(config, checked.manifest, regions, audiences, record=record,
                                      actor=creator)
    console.print(f"Send {send_id} of {theme} created by {creator.name}.")
    if "forced_by" in record:
        console.print(f"[yellow]Forced past failing checks[/yellow] (recorded): {reason}")
    if approval.required(config):
        console.print(f"It waits for approval by someone other than {creator.name}: "
                      f"`mailer sends approve {send_id} --by NAME`, then `mailer sends resume {send_id}`.")
        return
    if queue:
        sending.snapshot_send(config, send_id, checked.manifest)
        _print_summary(sending.summary(config, send_id), console)
        return
    _deliver(config, lambda **kw: sending.run_send(config, send_id, manifest=checked.manifest,
                                                   **kw), console)


@click.group("sends")
def sends() -> None:
    """Look at and steer sends: list, show, pause, resume, cancel, work.

    \b
    Example:
      mailer sends list
    """


@sends.command("list")
@click.option("--limit", default=20, show_default=True, help="How many of the newest sends.")
@json_option("the sends, with their recipients counted per delivery status,")
def list_command(limit: int, as_json: bool) -> None:
    """The newest sends with their status.

    \b
    Example:
      mailer sends list --limit 5
      mailer sends list --json
    """
    found = newest_sends(_settings(None), limit)
    if as_json:
        print_json([row.document() for row in found])
        return
    if not found:
        click.echo("No sends yet. Start one with `mailer send THEME`.")
        return
    rows = [row.send for row in found]
    table = Table("id", "theme", "topic", "segment", "status", "created (UTC)")
    for send in rows:
        segment = f"{','.join(send.regions) or 'all'} / {','.join(send.audiences) or 'all'}"
        table.add_row(str(send.id), send.theme, send.topic, segment, send.status,
                      f"{send.created_at:%Y-%m-%d %H:%M}")
    console = Console()
    console.print(table)
    for send in rows:
        if send.pause_reason:  # long reasons read better below the table than wrapped in it
            console.print(f"Send {send.id} paused: {send.pause_reason}", soft_wrap=True)


@sends.command("show")
@click.argument("send_id", type=int)
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a one-page HTML report with a chart to this file.")
@json_option("the send and its counts")
def show_command(send_id: int, html_file: Path | None, as_json: bool) -> None:
    """Counts per delivery status and per region/audience of one send.

    \b
    Example:
      mailer sends show 3 --html report.html
      mailer sends show 3 --json
    """
    config = _settings(None)
    report = send_report(config, send_id)
    if as_json:
        _write_html(config, report, html_file, Console(stderr=True))
        print_json(report.document())
        return
    console = Console()
    send = report.send
    console.print(f"Send {send.id}: {send.theme} ({send.subject}) to topic {send.topic}; "
                  f"status {send.status}" + (f" ({send.pause_reason})" if send.pause_reason else ""))
    console.print(report.approval, soft_wrap=True)
    if send.forced_by:
        console.print(f"Forced past failing checks by {send.forced_by}: {send.forced_reason}\n"
                      f"{send.forced_checks}", soft_wrap=True, markup=False)
    statuses = [s for s in report.counts]
    table = Table("segment", *statuses, title=f"{report.total:,} recipients")
    for key, row in report.segments.items():
        table.add_row(key, *(str(row.get(s, "")) for s in statuses))
    table.add_row("total", *(str(report.counts[s]) for s in statuses), style="bold")
    console.print(table)
    for error, n in report.errors:
        console.print(f"{n:>6}  {error}")
    if report.classes:
        console.print("Refusals by class: " + ", ".join(
            f"{n:,} {kind}" for kind, n in sorted(report.classes.items())))
    if report.alarm:
        console.print(f"[red]{report.alarm}[/red]", soft_wrap=True)
    _write_html(config, report, html_file, console)


def _write_html(config: Settings, report: SendReport, html_file: Path | None,
                console: Console) -> None:
    if html_file:
        with user_file(html_file, "write"):
            html_file.write_text(html_report(config, report), encoding="utf-8")
        console.print(f"Wrote {html_file}")


@sends.command("approve")
@click.argument("send_id", type=int)
@by_option
@password_stdin_option
def approve_command(send_id: int, by: str | None, password_stdin: bool) -> None:
    """Approve send ID for the content as it is now (four eyes: not by its creator).

    Editing the content afterwards makes the approval stale; the send then does not start.

    \b
    Example:
      mailer sends approve 3 --by bert && mailer sends resume 3
    """
    config = _settings(None)
    approver = _acting_on(config, send_id, by, password_stdin, "approve")
    approved = approval.approve(config, "send", send_id, approver)
    click.echo(f"Send {send_id} ({approved.theme}): {approval.describe(approved)}. "
               f"Start it with `mailer sends resume {send_id}`.")


@sends.command("pause")
@click.argument("send_id", type=int)
@by_option
@password_stdin_option
def pause_command(send_id: int, by: str | None, password_stdin: bool) -> None:
    """Pause a send; the batch in flight finishes.

    Once accounts exist, --by NAME and that account's password are needed, and NAME must hold
    every region the send reaches.

    \b
    Example:
      mailer sends pause 3 --by anna
    """
    config = _settings(None)
    who = _acting_on(config, send_id, by, password_stdin, "steer")
    sending.pause_send(config, send_id, actor=who)
    click.echo(f"Send {send_id} paused; `mailer sends resume {send_id}` carries on.")


@sends.command("resume")
@click.argument("send_id", type=int)
@rate_option
@by_option
@password_stdin_option
def resume_command(send_id: int, rate: float | None, by: str | None,
                   password_stdin: bool) -> None:
    """Start, resume or finish a send after a pause, a crash or a kill.

    Messages that were in flight when the previous process died are sent again; nobody else
    is. On SQLite a send has one worker: while another live process holds it, this refuses
    and names it. Exits with 3 when the send paused itself. Once accounts exist, --by NAME and
    that account's password are needed.

    \b
    Example:
      mailer sends resume 3 --by anna
    """
    config = _settings(rate)
    who = _acting_on(config, send_id, by, password_stdin, "steer")
    console = Console()
    _warn_insecure(config, console)
    _deliver(config, lambda **kw: sending.run_send(config, send_id, actor=who, **kw), console)


@sends.command("cancel")
@click.argument("send_id", type=int)
@by_option
@password_stdin_option
def cancel_command(send_id: int, by: str | None, password_stdin: bool) -> None:
    """Call off a send before any message has left (afterwards: pause).

    Once accounts exist, --by NAME and that account's password are needed.

    \b
    Example:
      mailer sends cancel 3 --by anna
    """
    config = _settings(None)
    who = _acting_on(config, send_id, by, password_stdin, "steer")
    sending.cancel_send(config, send_id, actor=who)
    click.echo(f"Send {send_id} cancelled.")


@sends.command("work")
@click.argument("send_id", type=int, required=False)
@rate_option
@log_format_option(text_level=logging.WARNING)
def work_command(send_id: int | None, rate: float | None) -> None:
    """Deliver pending messages of running sends (or of one), beside other workers.

    On PostgreSQL several workers can share one send; nobody is sent twice. On SQLite a send
    has one worker (see `sends resume`). Ends when nothing is left to do; exits with 3 when a
    send paused itself.

    \b
    Example:
      mailer send stalking --queue && mailer sends work 3 & mailer sends work 3
    """
    config = _settings(rate)
    console = Console()
    _warn_insecure(config, console)
    _deliver(config, lambda **kw: sending.work(config, send_id, **kw), console)


COMMANDS = [send_command, sends]
