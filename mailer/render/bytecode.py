"""Compiled templates kept between runs, as Python keeps its own bytecode.

Turning the templates into Python code took 60–70 ms of a 0.3 s first build, and the result
depends only on the template, the environment and the code, not on the content. Jinja's file
cache keeps it in the user's cache folder (`$XDG_CACHE_HOME/mailer/templates`, by default
`~/.cache/mailer/templates`), so a first build of a new project or a new `out/` reuses it. Jinja
uses an entry only while its template's source is the same; the key also holds the environment's
escaping and `mailer.fingerprint` (our code and the rendering libraries), so an edit or an
upgrade never runs old code. A folder that cannot be written costs only the time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jinja2 import FileSystemBytecodeCache
from jinja2.bccache import Bucket

from mailer.fingerprint import code_digest

KEEP_SECONDS = 30 * 24 * 3600  # an entry not rewritten for this long is removed when another is written


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mailer" / "templates"


class TemplateBytecodeCache(FileSystemBytecodeCache):
    """Jinja's file cache, keyed also by escaping and code, and quiet when it cannot write."""

    def __init__(self, autoescape: bool):
        super().__init__(str(cache_folder()))
        self.prefix = f"{code_digest().hex()[:32]}-{'html' if autoescape else 'text'}-"
        self.pruned = False  # old entries are looked for once per run, at the first write

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return self.prefix + super().get_cache_key(name, filename)

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
            if not self.pruned:
                self.pruned = True
                self._forget_old()
        except OSError:
            pass

    def _forget_old(self) -> None:
        """Entries of code since replaced would stay forever: drop those not written for a month."""
        cutoff = time.time() - KEEP_SECONDS
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".cache") and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
