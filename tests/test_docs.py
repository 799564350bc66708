"""The documentation and the CLI agree: every command and option is documented, and every
`mailer …` command the documentation shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from mailer.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_SPAN = re.compile(r"`([^`\n]+)`")
NOT_DOCUMENTED = {"--help", "-h", "--version"}


def code_lines(text: str) -> list[list[str]]:
    """Per line of the docs, the code in it: fenced lines whole, other lines their `spans`."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        lines.append([line.split("  #")[0]] if fenced else CODE_SPAN.findall(line))
    return lines


def words(code: str) -> list[str]:
    try:
        return shlex.split(code)
    except ValueError:
        return code.split()


CTX = click.Context(main)


def sub(group: click.Group, name: str) -> click.Command | None:
    """A command of a group, through click's API (the top group imports its commands lazily)."""
    return group.get_command(CTX, name) if name in group.list_commands(CTX) else None


def resolve(group: click.Group, tokens: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """(command path, the rest) for tokens after `group`; None when they name no command."""
    path: tuple[str, ...] = ()
    command: click.Command = group
    while isinstance(command, click.Group) and tokens:
        name = tokens[0]
        found = sub(command, name)
        if found is not None:
            path, command, tokens = (*path, name), found, tokens[1:]
        elif getattr(command, "default_command", None) and not name.startswith("-"):
            default = command.default_command  # type: ignore[attr-defined]
            path, command = (*path, default), sub(command, default)  # type: ignore[assignment]
        else:
            return None
    if isinstance(command, click.Group) and path:
        return None  # a group named without one of its commands documents nothing to run
    return path, tokens


def documented() -> tuple[dict[tuple[str, ...], set[str]], list[str]]:
    """Documented command paths → the options shown with them; and mentions of no command.

    In a line such as "`mailer sends list` / `show ID`", a span without `mailer` names a
    command of the group named before it (or of `mailer` itself: "`schedule list`").
    """
    found: dict[tuple[str, ...], set[str]] = {}
    unknown: list[str] = []
    for doc in DOCS:
        for number, spans in enumerate(code_lines(doc.read_text(encoding="utf-8")), 1):
            context: list[tuple[click.Group, tuple[str, ...]]] = []
            for part in (p for span in spans for p in re.split(r"&&|\|\||;", span)):
                tokens = words(part)
                start = next((i for i, t in enumerate(tokens) if re.fullmatch(r"(.*/)?mailer", t)),
                             None)
                if start is not None:
                    tokens, candidates = tokens[start + 1:], [(main, ())]
                else:
                    candidates = [*context, (main, ())] if context else []
                resolved = next(((prefix, r) for group, prefix in candidates
                                 if tokens and (r := resolve(group, tokens))), None)
                if resolved is None:
                    if start is not None and tokens:
                        unknown.append(f"{doc.name}:{number}: {part.strip()}")
                    continue
                prefix, (path, rest) = resolved
                path = (*prefix, *path)
                found.setdefault(path, set()).update(t.split("=")[0] for t in rest
                                                     if t.lstrip("[").startswith("-"))
                if len(path) > 1:
                    context = [(sub(main, path[0]), path[:1])]  # type: ignore[list-item]
    return found, unknown


def commands(command: click.Command = main, path: tuple[str, ...] = ()):
    if isinstance(command, click.Group):
        for name in command.list_commands(CTX):
            yield from commands(sub(command, name), (*path, name))  # type: ignore[arg-type]
    else:
        yield path, command


def clean(options: set[str]) -> set[str]:
    return {o.strip("[]…,.") for o in options}


def test_every_command_and_option_is_documented() -> None:
    found, _ = documented()
    missing = []
    for path, command in commands():
        if path not in found:
            missing.append(f"mailer {' '.join(path)}")
            continue
        shown = clean(found[path])
        for param in command.params:
            if isinstance(param, click.Option) and not set(param.opts) & (shown | NOT_DOCUMENTED):
                missing.append(f"mailer {' '.join(path)} {param.opts[-1]}")
    assert not missing, "not in README.md or docs/: " + ", ".join(missing)


def test_every_documented_command_exists() -> None:
    _, unknown = documented()
    assert not unknown, "documented but no such command: " + "; ".join(unknown)


def test_the_checks_can_fail() -> None:
    assert resolve(main, ["sends", "list"]) == (("sends", "list"), [])
    assert resolve(main, ["schedule", "stalking", "--at", "x"]) == (("schedule", "add"),
                                                                   ["stalking", "--at", "x"])
    assert resolve(main, ["sends", "explode", "3"]) is None
    assert resolve(main, ["nosuch"]) is None
