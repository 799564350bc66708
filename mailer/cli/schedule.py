"""`mailer schedule`, `mailer scheduler` and `mailer calendar`: sends planned for a moment."""

from __future__ import annotations

import signal

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mailer.accounts.roles import Person
from mailer.audit import command_line, os_user
from mailer.check.gate import SendChecks
from mailer.cli.common import (
    database,
    database_session,
    json_option,
    log_format_option,
    print_json,
    recording_failed_start,
    settings,
)
from mailer.cli.identity import acting, by_option, password_stdin_option
from mailer.config import Settings
from mailer.content.loader import ContentError
from mailer.errors import MailerError
from mailer.models import Schedule, utcnow
from mailer.schedule.calendar import (
    Entry,
    apply,
    check,
    check_document,
    load_calendar,
    states,
)
from mailer.schedule.scheduler import (
    Request,
    ScheduleError,
    Scheduler,
    cancel,
    check_requests,
    count_recipients,
    get_schedule,
    local_time,
    move,
    overview,
    parse_when,
    plan,
)
from mailer.send import approval


class PlanByDefault(click.Group):
    """A group whose first argument, when it names no subcommand, is the THEME of `add`."""

    default_command = "add"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _segments(schedule: Schedule) -> str:
    regions = ", ".join(schedule.regions) or "every region"
    audiences = ", ".join(schedule.audiences) or "every audience"
    return f"{regions}; {audiences}"


@click.group("schedule", cls=PlanByDefault)
def schedule() -> None:
    """Plan sends for a moment, per region and audience; list, cancel and move them.

    `mailer schedule THEME --at …` is short for `mailer schedule add THEME --at …`.
    A running `mailer scheduler` starts each send at its time.

    \b
    Example:
      mailer schedule stalking --at "2026-12-01 09:00" --region oost-nederland
    """


@schedule.command("add")
@click.argument("theme")
@click.option("--at", "at", required=True,
              help='When, e.g. "2026-12-01 09:00" (Europe/Amsterdam unless an offset is given).')
@click.option("--region", "regions", multiple=True, help="Region slug; repeat for more. Default: all.")
@click.option("--audience", "audiences", multiple=True,
              help="Audience slug; repeat for more. Default: all.")
@click.option("--note", default="", help="A note shown by `mailer schedule list`.")
@by_option
@password_stdin_option
def add(theme: str, at: str, regions: tuple[str, ...], audiences: tuple[str, ...], note: str,
        by: str | None, password_stdin: bool) -> None:
    """Plan THEME to be sent at a moment to some regions and audiences.

    The theme must build now (it is built again when the send starts). A time in the past is
    refused.

    \b
    Example:
      mailer schedule add stalking --at "2026-12-08 09:00" --region limburg --audience netwerk
    """
    config = settings()
    database(config)
    now = utcnow()
    creator = acting(config, by, password_stdin, "create", regions)
    request = Request(theme, parse_when(at, config.timezone), regions, audiences, note=note,
                      created_by=creator.name)
    [problems] = check_requests(config, [request], now)
    if problems:
        raise ScheduleError("nothing planned: " + "\n  ".join(problems))
    [planned] = plan(config, [request], now, creator)
    with database_session() as session:
        reach = count_recipients(session, config, planned)
    click.echo(f"Planned schedule {planned.id}: {theme} for {_segments(planned)} at "
               f"{local_time(planned.due_at, config.timezone)}; {reach} recipients now.")
    if approval.required(config):
        click.echo(f"It goes out only once someone other than {planned.created_by} approves it: "
                   f"`mailer schedule approve {planned.id} --by NAME`.")


def _acting_on(config: Settings, schedule_id: int, by: str | None, password_stdin: bool,
               action: str) -> Person:
    """Who acts on schedule ID, once accounts exist allowed to for every region it reaches."""
    regions = get_schedule(config, schedule_id).regions
    return acting(config, by, password_stdin, action, regions, subject=f"schedule {schedule_id}")


@schedule.command("list")
@json_option("the schedules")
def list_command(as_json: bool) -> None:
    """Show every schedule: when, what, for whom, how many recipients now, and its status.

    A planned send that fell due more than grace_period_hours ago while no scheduler ran shows
    as missed: it will not go out by surprise; move it to send it after all.

    \b
    Example:
      mailer schedule list
      mailer schedule list --json
    """
    config = settings()
    database(config)
    rows = overview(config, utcnow())
    if as_json:
        print_json([row.document() for row in rows])
        return
    table = Table(title="Schedules")
    columns = ["id", "when", "theme", "regions; audiences", "recipients now", "status", "send",
               "note"]
    if approval.required(config):
        columns.insert(6, "approval")
    for column in columns:
        table.add_column(column)
    for row in rows:
        s = row.schedule
        status, note = row.status, escape(s.note)
        if row.hold:  # the reason under the note: it can be long
            status = f"{status}, [red]held[/red]"
            note = f"{note}\n[red]held:[/red] {escape(row.hold)}".strip()
        cells = [str(s.id), local_time(s.due_at, config.timezone), s.theme, _segments(s),
                 "-" if row.recipients is None else str(row.recipients), status,
                 str(s.send_id or "-"), note]
        if approval.required(config):
            cells.insert(6, f"[red]{escape(row.approval)}[/red]" if row.held else escape(row.approval))
        table.add_row(*cells)
    Console().print(table)


@schedule.command("approve")
@click.argument("schedule_id", type=int)
@by_option
@password_stdin_option
def approve_command(schedule_id: int, by: str | None, password_stdin: bool) -> None:
    """Approve schedule ID for the content as it is now (four eyes: not by its creator).

    Editing the content afterwards makes the approval stale: the send does not start then,
    and `mailer schedule list` says why.

    \b
    Example:
      mailer schedule approve 2 --by bert
    """
    config = settings()
    database(config)
    approver = _acting_on(config, schedule_id, by, password_stdin, "approve")
    approved = approval.approve(config, "schedule", schedule_id, approver)
    click.echo(f"Schedule {schedule_id} ({approved.theme}): {approval.describe(approved)}.")


@schedule.command("cancel")
@click.argument("schedule_id", type=int)
@by_option
@password_stdin_option
def cancel_command(schedule_id: int, by: str | None, password_stdin: bool) -> None:
    """Cancel schedule ID; refused once its first message has left.

    Once accounts exist, --by NAME and that account's password are needed, and NAME must hold
    every region the schedule reaches.

    \b
    Example:
      mailer schedule cancel 3 --by anna
    """
    config = settings()
    database(config)
    who = _acting_on(config, schedule_id, by, password_stdin, "steer")
    cancelled = cancel(config, schedule_id, utcnow(), who)
    click.echo(f"Cancelled schedule {schedule_id} ({cancelled.theme} for {_segments(cancelled)}).")


@schedule.command("move")
@click.argument("schedule_id", type=int)
@click.option("--at", "at", required=True,
              help='The new time, e.g. "2026-12-08 09:00" (Europe/Amsterdam unless an offset is given).')
@by_option
@password_stdin_option
def move_command(schedule_id: int, at: str, by: str | None, password_stdin: bool) -> None:
    """Move schedule ID to another time; refused once its first message has left.

    A missed send can be moved too, to send it after all. Once accounts exist, --by NAME and
    that account's password are needed.

    \b
    Example:
      mailer schedule move 3 --at "2026-12-15 09:00" --by anna
    """
    config = settings()
    database(config)
    when = parse_when(at, config.timezone)
    who = _acting_on(config, schedule_id, by, password_stdin, "steer")
    moved = move(config, schedule_id, when, utcnow(), who)
    click.echo(f"Moved schedule {schedule_id} ({moved.theme}) to "
               f"{local_time(moved.due_at, config.timezone)}.")


@click.command("scheduler")
@click.option("--offline", is_flag=True,
              help="Skip the link check of the readiness checks (as `mailer send --offline`).")
@log_format_option()
def scheduler_command(offline: bool) -> None:
    """Run the scheduler: start each planned send at its time and resume interrupted ones.

    A due send first passes the checks of `mailer send` (preflight, readiness); one that fails
    them is held, not sent, and `mailer schedule list` says why. It starts once they pass,
    within grace_period_hours. Keeps running until Ctrl-C or SIGTERM; a running send then
    finishes its batch and resumes when a scheduler runs again. Several schedulers may share
    one PostgreSQL database: each send starts once. With [bounce] imap_url set, it also reads
    the bounce mailbox every [bounce] poll_seconds, as `mailer bounces fetch` does.

    \b
    Example:
      mailer scheduler
      mailer scheduler --log-format json
    """
    with recording_failed_start("scheduler"):
        config = settings()
        database(config)
        scheduler = Scheduler(config, checks=SendChecks(config, offline=offline))

    def stop(signum: int, _frame: object) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping after the running batch …")
        scheduler.stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    click.echo(f"Scheduler {scheduler.worker} running; Ctrl-C or SIGTERM stops it.")
    scheduler.run()
    click.echo("Scheduler stopped.")


@click.group("calendar")
def calendar() -> None:
    """The content calendar, content/calendar.yaml: the planned mailings per region.

    \b
    Example:
      mailer calendar check && mailer calendar apply
    """


def _describe(entry: Entry, timezone: str) -> str:
    request = entry.request
    return (f"{entry.key} ({request.theme}, {local_time(request.due_at, timezone)}, "
            f"{', '.join(request.regions) or 'every region'}; "
            f"{', '.join(request.audiences) or 'every audience'})")


@calendar.command("check")
@json_option("the problems and the state of every entry")
def check_command(as_json: bool) -> None:
    """Tell which upcoming calendar entries have no content yet or do not build, and why;
    then the state of each planned entry: its schedule, its approval, and why the scheduler
    held it when it fell due, if it did.

    Builds each theme the calendar names; exit code 1 when an entry has a problem.

    \b
    Example:
      mailer calendar check
      mailer calendar check --json
    """
    config = settings()
    now = utcnow()
    entries = load_calendar(config)
    problems = check(config, entries, now)
    if as_json:
        database(config)
        print_json(check_document(problems, states(config, entries, now)))
        if problems:
            raise SystemExit(1)
        return
    if problems:
        raise ContentError(problems)
    upcoming = [e for e in entries if e.request.due_at > now]
    click.echo(f"{len(upcoming)} upcoming entries of {len(entries)}: every theme builds.")
    database(config)
    for state in states(config, entries, now):
        row = state.row
        if row is None:
            if state.upcoming:
                click.echo(f"{state.entry.key}: not planned yet (`mailer calendar apply`)")
            continue
        held = f"; held: {row.hold}" if row.hold else ""
        click.echo(f"{state.entry.key}: schedule {row.schedule.id}, {row.status}; "
                   f"{state.approval or 'approval not required'}{held}")


@calendar.command("apply")
def apply_command() -> None:
    """Plan every upcoming calendar entry that is not planned yet; safe to run again.

    Each entry id is planned once: a changed time of a planned entry is reported, not applied
    (use `mailer schedule move`). When an entry has a problem, nothing is planned.

    \b
    Example:
      mailer calendar apply
    """
    config = settings()
    database(config)
    entries = load_calendar(config)
    try:
        applied = apply(config, entries, utcnow(), command_line(os_user()))
    except ContentError as exc:
        raise MailerError(f"{exc}\nnothing planned") from exc
    for entry, planned in applied.planned:
        click.echo(f"Planned schedule {planned.id}: {_describe(entry, config.timezone)}")
    for entry, known in applied.known:
        line = f"Already planned as schedule {known.id} ({known.status}): {entry.key}"
        if known.due_at != entry.request.due_at and known.status == "planned":
            line += (f"; the calendar now says {local_time(entry.request.due_at, config.timezone)}, "
                     f"the schedule {local_time(known.due_at, config.timezone)}: "
                     f"use `mailer schedule move {known.id} --at …`")
        click.echo(line)
    for entry in applied.past:
        click.echo(f"In the past, not planned: {_describe(entry, config.timezone)}")
    click.echo(f"{len(applied.planned)} planned, {len(applied.known)} already planned, "
               f"{len(applied.past)} in the past.")


COMMANDS = [schedule, scheduler_command, calendar]
