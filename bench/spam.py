"""SpamAssassin's score for every variant of a mailing, sent as a real message.

Builds the theme, makes the message one real recipient of each distinct variant gets (DKIM
signed, all headers, slots filled) and runs Debian's `spamassassin -t -L` (local tests only:
this machine has no DNS, so network rules such as DNSBLs and the DKIM key lookup do not run).
Prints the score and the rules that fired per variant; exits 1 when any score is above 0.

    python bench/spam.py [--theme stalking]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.builds.builder import build  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.message.assembly import MessageCommon, MessageTemplate  # noqa: E402
from mailer.message.dkimkeys import generate_key  # noqa: E402
from mailer.send import runner as sending  # noqa: E402
from tests.conftest import REPO  # noqa: E402

_SCORE = re.compile(rb"^X-Spam-Status: \w+, score=(-?[\d.]+).*?tests=(.*?)(?:autolearn|version)",
                    re.MULTILINE | re.DOTALL)


def messages(root: Path, theme: str) -> dict[str, bytes]:
    """Variant name → the message its first recipient gets, as the send builds it."""
    shutil.copytree(REPO / "content", root / "content")
    key = root / "dkim.pem"
    generate_key(key)
    settings = replace(Settings(root=root, database_url=f"sqlite:///{root}/spam.db"),
                       dkim_selector="nieuws2026", dkim_domain="veiligheidvoorop.nl",
                       dkim_key_file=str(key))
    build(settings, theme)
    manifest = sending.current_manifest(settings, theme)
    common = MessageCommon(1, "0123456789abcdef", manifest.subject, manifest.topic,
                           manifest.greeting, manifest.greeting_named)
    found = {}
    for name in sorted({s.variant for s in manifest.segments.values()}):
        template = MessageTemplate(settings, common,
                                   *sending._read_variant(settings, theme, manifest, name))
        url = f"{settings.public_base_url}/afmelden/IjEi.aGVsbG8"
        found[name] = template.message(
            recipient_id=1, address="j.jansen@veiligthuis-voorbeeld.nl", name="Jan Jansen",
            unsubscribe=f"{url}?onderwerp={manifest.topic}",
            preferences=f"{settings.public_base_url}/voorkeuren/IjEi.aGVsbG8",
            token="IjEi.aGVsbG8").data
    return found


@click.command()
@click.option("--theme", default="stalking", show_default=True)
def main(theme: str) -> None:
    if not shutil.which("spamassassin"):
        sys.exit("spamassassin is not installed (Debian: apt-get install spamassassin)")
    worst = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in messages(Path(tmp), theme).items():
            result = subprocess.run(["spamassassin", "-t", "-L"], input=data,
                                    capture_output=True, timeout=300)
            match = _SCORE.search(result.stdout)
            if not match:
                sys.exit(f"no X-Spam-Status for {name}: {result.stderr.decode()[:500]}")
            score = float(match.group(1))
            rules = " ".join(match.group(2).decode().split())
            print(f"variant {name}: score {score:+.1f}  ({rules})", flush=True)
            worst = score if worst is None else max(worst, score)
    print(f"highest score {worst:+.1f} (target: 0 or below)")
    sys.exit(0 if worst is not None and worst <= 0 else 1)


if __name__ == "__main__":
    main()
