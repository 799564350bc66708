"""One family for every failure a user can fix, so the CLI can tell them from bugs.

Every expected failure (content, settings, lists, partners, schedules, sends, the database)
raises a `MailerError` whose message names the file, line or field and says what to do. The
CLI prints it as `error: …` with exit code 1; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BUG_REPORT = ("this is a bug in mailer, not a problem with your input or settings: please report "
              "it to the mailer maintainers with the command you ran and the traceback below")


class MailerError(Exception):
    """A failure the user can fix; the message says where (file, line or field) and what to do."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the content, located as precisely as the source allows."""

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message}"


class ContentError(MailerError):
    """The content of a theme cannot be built; `problems` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DeliveryError(MailerError):
    """A message could not be delivered. `permanent` says whether retrying can help.

    `connection` says the trouble lies with the connection or the session (greeting, TLS,
    login, the sender, a 421, a drop), not with this recipient: the message was not refused for
    them, so it must not count as their attempt.
    """

    def __init__(self, message: str, permanent: bool, code: int | None = None, *,
                 connection: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.connection = connection


class ConfigError(MailerError):
    """A settings file or environment variable that cannot be used."""


class ConfigWarning(UserWarning):
    """A setting that is ignored (an unknown name); the CLI shows it as `warning: …`."""


class DatabaseError(MailerError):
    """The configured database cannot be opened or is not at the schema this code needs."""


class FileError(MailerError):
    """A file or folder named on the command line cannot be read or written."""


@contextmanager
def user_file(path: Path | str, doing: str = "read") -> Iterator[None]:
    """Turn an OS error on a path the user gave into a FileError naming that path."""
    try:
        yield
    except OSError as exc:
        raise FileError(f"cannot {doing} {path}: {exc.strerror or exc}") from exc
