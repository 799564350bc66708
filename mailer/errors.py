"""One family for every failure a user can fix, so the CLI can tell them from bugs.

Every expected failure raises a `MailerError` whose message names the file, line or field and
says what to do. The CLI prints it as `error: …` with exit code 1; any other exception is a bug
and keeps its traceback. Each one belongs to exactly one of five branches, by who fixes it where:

- `ContentError`: the content and what is built from it (theme files, brand, calendar,
  templates, partner files, builds and previews); the writer fixes a file.
- `SettingsError`: mailer.toml, MAILER_ variables and keys; the operator fixes a setting.
- `DeliveryError`: a mail server's refusal or trouble during a send (or with DNS); the
  settings may be right, so it is not a settings error: someone looks at the server, or waits.
- `DataError`: lists, ids and what is stored (CSV files, unknown ids, a send or schedule in
  another state, a database that cannot be opened).
- `AccessError`: what is refused to whoever asked until someone allows it: tokens,
  confirmation links, pages, approvals, a send past failing readiness checks.
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

    file: Path | None  # None: nowhere in particular (a template, the compiler, a size check)
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message}"


class ContentError(MailerError):
    """Content that cannot be built, published or previewed; `problems` says where and why.

    The loader gives every problem it found, so one run shows them all; the others give one
    message, which becomes a single problem without a place."""

    def __init__(self, problems: list[Problem] | str):
        self.problems = [Problem(None, None, problems)] if isinstance(problems, str) else problems
        super().__init__("\n".join(str(p) for p in self.problems))


class DeliveryError(MailerError):
    """A message could not be delivered, or the outside world (a mail server, DNS) could not be
    reached. `permanent` says whether retrying can help; `code` is the server's answer code.

    `connection` says the trouble lies with the connection or the session (greeting, TLS,
    login, the sender, a 421, a drop), not with this recipient: the message was not refused for
    them, so it must not count as their attempt.
    """

    def __init__(self, message: str, permanent: bool = False, code: int | None = None, *,
                 connection: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.connection = connection


class SettingsError(MailerError):
    """Settings that do not allow what was asked: mailer.toml, a MAILER_ variable, a key."""


class DataError(MailerError):
    """A list, an id or stored state that does not allow what was asked."""


class AccessError(MailerError):
    """A token, a link, a page, an approval or a send that is refused to whoever asked."""


class ConfigError(SettingsError):
    """A settings file or environment variable that cannot be used."""


class ConfigWarning(UserWarning):
    """A setting that is ignored (an unknown name); the CLI shows it as `warning: …`."""


class DatabaseError(DataError):
    """The configured database cannot be opened or is not at the schema this code needs."""


class FileError(DataError):
    """A file or folder named on the command line cannot be read or written."""


@contextmanager
def user_file(path: Path | str, doing: str = "read") -> Iterator[None]:
    """Turn an OS error on a path the user gave into a FileError naming that path."""
    try:
        yield
    except OSError as exc:
        raise FileError(f"cannot {doing} {path}: {exc.strerror or exc}") from exc
