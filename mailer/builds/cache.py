"""Compiled HTML kept by the hash of its MJML source, so a rebuild compiles only what changed.

MJML compilation and CSS inlining are the expensive part of a build. Their input is the MJML
text a variant's blocks render to, so that text (with the code that compiles it) is the key: an
edit to one block changes the source of only the variants that contain it. Each theme has its
own folder under `out/.cache/`, written only when the build succeeded and pruned to what it used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mailer.fingerprint import code_digest
from mailer.render.renderer import mjml_to_html


class CompileCache:
    """A callable MJML → inlined HTML that remembers its answers on disk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()
        self.new: dict[str, str] = {}
        self._code = code_digest()

    def __call__(self, source: str) -> str:
        key = hashlib.sha256(self._code + source.encode()).hexdigest()
        self.used.add(key)
        path = self.folder / f"{key}.html"
        if path.exists():
            return path.read_bytes().decode("utf-8")
        html = self.new[key] = mjml_to_html(source)
        return html

    def save(self) -> None:
        """Keep what this build compiled and forget every entry it did not use."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for key, html in self.new.items():
            tmp = self.folder / f".{key}.tmp-{os.getpid()}"
            tmp.write_bytes(html.encode("utf-8"))
            os.replace(tmp, self.folder / f"{key}.html")
        for path in self.folder.glob("*.html"):
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
