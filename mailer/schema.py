"""The schema version this code needs, known without loading Alembic, and the error for a
database at another version.

`mailer build` reads the partner publications through the database driver alone
(`mailer.partners.rows`), so it cannot ask Alembic; both it and `mailer.db` check the version
found in a database's `alembic_version` table here.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from mailer.errors import DatabaseError

_REVISION = re.compile(r"""^(revision|down_revision)\b[^=\n]*=\s*(?:None|["']([^"']+)["'])""", re.M)


class SchemaError(DatabaseError):
    """The database exists but is not at the schema version this code needs."""


@functools.cache
def head_revision() -> str:
    """The newest migration: the one that no other migration follows."""
    revisions, followed = set(), set()
    for script in (files("mailer") / "migrations" / "versions").iterdir():
        if script.name.endswith(".py"):
            found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
            revisions.add(found["revision"])
            followed.add(found.get("down_revision"))
    [head] = revisions - followed
    return head


def check_revision(found: str | None) -> None:
    """Refuse a database at another schema version (None: a new, empty database)."""
    if found is not None and found != head_revision():
        raise SchemaError(f"the database is at schema version {found}, this mailer needs "
                          f"{head_revision()}: run `mailer db upgrade`")
