"""One family for every failure a user can fix, so the CLI can tell them from bugs.

Every expected failure (content, settings, lists, partners, schedules, sends, the database)
raises a `MailerError` whose message names the file, line or field and says what to do. The
CLI prints it as `error: …` with exit code 1; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUG_REPORT = ("this is a bug in mailer, not a problem with your input or settings: please report "
              "it to the mailer maintainers with the command you ran and the traceback below")


class MailerError(Exception):
    """A failure the user can fix; the message says where (file, line or field) and what to do."""


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
