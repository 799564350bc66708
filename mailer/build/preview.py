"""A local preview of a built theme: each variant beside its text part, with a segment picker.

The preview reads only `out/<theme>/` (the build's output), fills the slots with sample values and
points public image URLs at the local copies, so it works offline from the file system.
"""

from __future__ import annotations

import html as html_lib
import shutil
import subprocess
from pathlib import Path

from mailer.build.manifest import Manifest, ManifestError, read_manifest
from mailer.config import Settings
from mailer.content.segments import AUDIENCES, REGIONS, segment_key
from mailer.errors import MailerError
from mailer.render.renderer import CompiledVariant

SAMPLE_READER = "Jan Jansen"  # whom previews and checks greet
SCREEN_WIDTHS = (600, 375)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


class PreviewError(MailerError):
    """The preview cannot be made (no build, unknown segment, no browser for screenshots)."""


def sample_slots(manifest: Manifest, settings: Settings) -> dict[str, str]:
    base = settings.public_base_url.rstrip("/")
    named = manifest.greeting_named or manifest.greeting or ""
    return {
        "greeting": named.replace("{naam}", SAMPLE_READER),
        "unsubscribe_url": f"{base}/afmelden/voorbeeld",
        "preferences_url": f"{base}/voorkeuren/voorbeeld",
        "webversion_url": manifest.public_url,
    }


def _page(theme: str, manifest: Manifest, chosen: str, texts: dict[str, str]) -> str:
    options = []
    for key, seg in manifest.segments.items():
        region, audience = key.split("/")
        label = f"{REGIONS[region]} · {AUDIENCES[audience]} ({seg.variant}, {seg.bytes / 1024:.0f} KB)"
        selected = " selected" if key == chosen else ""
        options.append(f'<option value="{seg.variant}"{selected}>{html_lib.escape(label)}</option>')
    first = manifest.segments[chosen].variant
    pres = "\n".join(
        f'<pre id="text-{name}" tabindex="0" aria-label="Tekstversie" hidden>{html_lib.escape(text)}</pre>'
        for name, text in texts.items()
    )
    return f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Voorbeeld: {html_lib.escape(manifest.title)}</title>
<style>
 body {{ margin: 0; font: 14px Arial, sans-serif; background: #e9edf0; }}
 header {{ padding: 10px 16px; background: #00567a; color: #fff; }}
 h1 {{ display: inline; font-size: 16px; margin: 0 8px 0 0; }}
 select {{ max-width: 100%; font-size: 14px; }}
 main {{ display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }}
 iframe {{ width: 100%; max-width: 640px; height: 85vh; border: 1px solid #b8c2c9; background: #fff; }}
 pre {{ flex: 1 1 320px; min-width: 0; white-space: pre; overflow: auto; background: #fff; padding: 12px;
        border: 1px solid #b8c2c9; max-height: 85vh; margin: 0; }}
 @media (max-width: 480px) {{ main {{ padding: 8px; }} }}
</style></head><body>
<header><h1>Voorbeeld {html_lib.escape(theme)}</h1>
<label for="segment">Segment:</label> <select id="segment">{"".join(options)}</select></header>
<main><iframe id="mail" src="{first}.html" title="HTML-versie"></iframe>{pres}</main>
<script>
 const pick = document.getElementById('segment');
 function show() {{
   document.getElementById('mail').src = pick.value + '.html';
   document.querySelectorAll('pre').forEach(p => p.hidden = p.id !== 'text-' + pick.value);
 }}
 pick.addEventListener('change', show); show();
</script></body></html>
"""


def write_preview(settings: Settings, theme: str, region: str | None = None,
                  audience: str | None = None, screenshot: bool = False) -> list[Path]:
    """Write out/preview/<theme>/index.html (and screenshots); return the files written."""
    built = settings.out / theme
    try:
        manifest = read_manifest(built)
    except ManifestError as exc:
        raise PreviewError(str(exc)) from exc
    for value, known, what in ((region, REGIONS, "region"), (audience, AUDIENCES, "audience")):
        if value and value not in known:
            raise PreviewError(f"unknown {what} {value!r} (known: {', '.join(known)})")
    chosen = segment_key(region or next(iter(REGIONS)), audience or next(iter(AUDIENCES)))
    target = settings.out / "preview" / theme
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    slots = sample_slots(manifest, settings)
    public = manifest.public_url.rsplit("/", 1)[0] + "/"
    texts: dict[str, str] = {}
    for seg in manifest.segments.values():
        name = seg.variant
        if name in texts:
            continue
        compiled = CompiledVariant((built / seg.html).read_text(encoding="utf-8"),
                                   (built / seg.text).read_text(encoding="utf-8"))
        html, texts[name] = compiled.fill(slots)
        (target / f"{name}.html").write_text(html.replace(public, f"../../{theme}/"), encoding="utf-8")
    index = target / "index.html"
    index.write_text(_page(theme, manifest, chosen, texts), encoding="utf-8")
    written = [index]
    if screenshot:
        written += take_screenshots(target / f"{manifest.segments[chosen].variant}.html", target)
    return written


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


def take_screenshots(page: Path, target: Path) -> list[Path]:
    """PNG screenshots of one page at desktop-mail and phone widths, with headless chromium."""
    browser = find_chromium()
    if browser is None:
        raise PreviewError("--screenshot needs chromium (Debian: apt-get install chromium)")
    shots = []
    for width in SCREEN_WIDTHS:
        out = target / f"screenshot-{width}.png"
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", f"--user-data-dir={target / '.chromium'}",
                   f"--window-size={width},4200", f"--screenshot={out}", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0 or not out.exists():
            raise PreviewError(f"chromium could not take the screenshot: {done.stderr.strip()[-400:]}")
        shots.append(out)
    shutil.rmtree(target / ".chromium", ignore_errors=True)
    return shots
