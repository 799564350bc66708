"""A local preview of a built theme: each variant beside its text part, with a segment picker.

The preview reads only `out/<theme>/` (the build's output), fills the slots with sample values and
points public image URLs at the local copies, so it works offline from the file system.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mailer import taxonomy, urls
from mailer.builds.manifest import Manifest, ManifestError, read_manifest
from mailer.config import Settings
from mailer.content.segments import segment_key
from mailer.errors import ContentError
from mailer.render.renderer import CompiledVariant, greeting, jinja_environment
from mailer.taxonomy import AUDIENCES, REGIONS

SAMPLE_READER = "Jan Jansen"  # whom previews and checks greet
SCREEN_WIDTHS = (600, 375)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


class PreviewError(ContentError):
    """The preview cannot be made (no build, unknown segment, no browser for screenshots)."""


def sample_slots(manifest: Manifest, settings: Settings) -> dict[str, str]:
    base = settings.public_base_url
    return {
        "greeting": greeting(manifest.greeting, manifest.greeting_named, SAMPLE_READER),
        "unsubscribe_url": urls.absolute(base, urls.UNSUBSCRIBE, token=urls.SAMPLE_TOKEN),
        "preferences_url": urls.absolute(base, urls.PREFERENCES, token=urls.SAMPLE_TOKEN),
        "webversion_url": manifest.public_url,
    }


def _page(settings: Settings, theme: str, manifest: Manifest, chosen: str,
          texts: dict[str, str]) -> str:
    options = []
    for key, seg in manifest.segments.items():
        region, audience = key.split("/")
        options.append({"variant": seg.variant, "selected": key == chosen,
                        "label": f"{REGIONS[region]} · {AUDIENCES[audience]} "
                                 f"({seg.variant}, {seg.bytes / 1024:.0f} KB)"})
    template = jinja_environment(settings.templates, autoescape=True).get_template(
        "web/preview.html.j2")
    return template.render(title=manifest.title, theme=theme, options=options, texts=texts,
                           first=manifest.segments[chosen].variant)


def write_preview(settings: Settings, theme: str, region: str | None = None,
                  audience: str | None = None, screenshot: bool = False) -> list[Path]:
    """Write out/preview/<theme>/index.html (and screenshots); return the files written."""
    built = settings.out / theme
    try:
        manifest = read_manifest(built)
    except ManifestError as exc:
        raise PreviewError(str(exc)) from exc
    problems = [taxonomy.problem(what, value) for what, value in
                (("region", region), ("audience", audience)) if value]
    if any(problems):
        raise PreviewError("; ".join(p for p in problems if p))
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
    index.write_text(_page(settings, theme, manifest, chosen, texts), encoding="utf-8")
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
