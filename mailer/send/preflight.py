"""Everything a send needs, checked before anything is written: one clear line on failure.

`mailer send`, `--dry-run`, `--test` and the scheduler all pass through `preflight` before a
Send row exists, so a DKIM key that cannot sign or a header with a line break stops the send
instead of leaving it half-started. Each setting on its own (smtp port, DKIM set in full) is
checked when the settings load (`config_checks`); these checks need the mailing or a file. A
check is a function of the settings and the fresh manifest that raises PreflightError; add one
by appending it to CHECKS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from mailer import taxonomy, urls
from mailer.builds.builder import build
from mailer.builds.manifest import Manifest
from mailer.config import Settings
from mailer.errors import SettingsError
from mailer.message.assembly import DkimSigner, MessageAssembler, MessageError
from mailer.message.signing import unusable_key

_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # line breaks and control characters


class PreflightError(SettingsError):
    """A send that cannot start as configured; the message says what to fix, in one line."""


Check = Callable[[Settings, Manifest], None]


def current_manifest(settings: Settings, theme: str) -> Manifest:
    """The manifest of `out/<theme>`, built first when missing or older than what it reads
    (content, templates, settings, partner publications)."""
    return build(settings, theme).manifest


def header_values(settings: Settings, manifest: Manifest) -> None:
    """Every value that goes into a header is one line: a line break would start a new header."""
    values = {"subject": manifest.subject, "preheader": manifest.preheader,
              "sender_name": settings.sender_name, "sender_email": settings.sender_email,
              "reply_to": settings.reply_to, "list_domain": settings.list_domain,
              "unsubscribe_mailto": settings.unsubscribe_address}
    for name, value in values.items():
        if not value.strip():
            raise PreflightError(f"{name} is empty")
        if _BREAKS.search(value):
            raise PreflightError(f"{name} contains a line break or control character: {value!r}")


def sample_message(settings: Settings, manifest: Manifest) -> None:
    """A message of this mailing builds, and is DKIM-signed when DKIM is configured."""
    assembler = MessageAssembler(settings, subject=manifest.subject, list_slug=manifest.topic,
                                 list_name=taxonomy.TOPICS[manifest.topic], send_id=0,
                                 install="preflight")  # a key that cannot load is a ConfigError
    try:
        assembler.build(address="preflight@example.org", name="Anna de Vries", html="<p>x</p>",
                        text="x", recipient_id="preflight",
                        unsubscribe_url=urls.absolute(settings.public_base_url, urls.UNSUBSCRIBE,
                                                      token="x"))
    except MessageError as exc:
        raise PreflightError(f"a message cannot be built: {exc} (check public_base_url, "
                             "sender_email and reply_to)") from exc
    except Exception as exc:  # whatever the signer raises on a key it cannot use
        if not isinstance(assembler.signer, DkimSigner):
            raise
        raise PreflightError(unusable_key(settings.path("dkim_key_file"), exc)) from exc


CHECKS: list[Check] = [header_values, sample_message]


def preflight(settings: Settings, theme: str, checks: Sequence[Check] | None = None
              ) -> Manifest:
    """The fresh manifest of THEME (built first when stale) once every check passed."""
    manifest = current_manifest(settings, theme)
    for check in CHECKS if checks is None else checks:
        check(settings, manifest)
    return manifest
