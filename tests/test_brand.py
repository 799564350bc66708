"""The house style: wordmark or logo, partner logos, header image, and colours that stay readable."""

from __future__ import annotations

import json
import shutil

import pytest

from mailer.builds.builder import build
from mailer.config import Settings
from mailer.content.brand import contrast_ratio, load_brand
from mailer.content.loader import ContentError

BRAND = """wordmark: "Veiligheid voorop"
logo: {src: brand/logo.png, alt: "Ontwikkelagenda Veiligheid voorop", width: 180}
partners:
  - {name: Veilig Thuis, src: brand/vt.png, alt: "Veilig Thuis", url: "https://www.veiligthuis.nl"}
  - {name: Politie, src: brand/politie.png, alt: "Politie"}
colours:
  brand: "#004466"
"""


def _mail(settings: Settings) -> str:
    out = build(settings, "stalking").path
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return (out / manifest["segments"]["limburg/netwerk"]["html"]).read_text(encoding="utf-8")


@pytest.fixture
def branded(project: Settings) -> Settings:
    folder = project.content / "brand"
    folder.mkdir()
    photo = project.content / "stalking" / "img" / "rave.png"
    for name in ("logo.png", "vt.png", "politie.png"):
        shutil.copyfile(photo, folder / name)
    (project.content / "brand.yaml").write_text(BRAND, encoding="utf-8")
    shutil.copyfile(photo, project.content / "stalking" / "img" / "kop.png")
    mailing = project.content / "stalking" / "mailing.yaml"
    mailing.write_text(mailing.read_text(encoding="utf-8")
                       + 'header_image: {src: img/kop.png, alt: "Twee handen om een kop koffie"}\n',
                       encoding="utf-8")
    return project


def test_without_brand_file_the_mail_shows_the_wordmark_and_a_readable_badge(project: Settings) -> None:
    html = _mail(project)
    assert "<strong>Ontwikkelagenda Veiligheid voorop</strong>" in html
    assert "background:#b4500b" in html.replace(" ", "") and "#e5731a" not in html
    assert contrast_ratio("#ffffff", "#b4500b") >= 4.5 > contrast_ratio("#ffffff", "#e5731a")


def test_logo_partner_logos_header_image_and_colours_reach_mail_and_pages(branded: Settings) -> None:
    html = _mail(branded)
    base = f"{branded.public_base_url}/stalking"
    assert f'src="{base}/brand/logo.png"' in html and 'alt="Ontwikkelagenda Veiligheid voorop"' in html
    assert "<strong>Veiligheid voorop</strong>" not in html  # the logo replaces the wordmark
    assert 'href="https://www.veiligthuis.nl"' in html
    assert f'<img src="{base}/brand/vt.png" alt="Veilig Thuis"' in html
    assert f'src="{base}/brand/politie.png" alt="Politie"' in html
    assert f'src="{base}/img/kop.png"' in html and 'alt="Twee handen om een kop koffie"' in html
    assert "#004466" in html and "#00567a" not in html
    out = branded.out / "stalking"
    for name in ("brand/logo.png", "brand/vt.png", "brand/politie.png", "img/kop.png"):
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "--brand: #004466;" in page and 'src="../stalking/brand/logo.png"' in page


@pytest.mark.parametrize(("text", "message"), [
    ('colours:\n  accent: "#e5731a"\n',
     "content/brand.yaml:1: colours: white #ffffff on accent #e5731a (badge text) has contrast "
     "3.09:1, WCAG AA needs 4.5:1"),
    ('colours:\n  muted: "#8a949c"\n',
     "content/brand.yaml:1: colours: muted #8a949c on white #ffffff (dates) has contrast"),
    ('colours:\n  ink: "blue"\n', "content/brand.yaml:1: colours.ink: 'blue' is not a colour like #00567a"),
    ("logo: {src: brand/logo.png}\n", "content/brand.yaml:1: logo: image 'brand/logo.png' has no alt text"),
    ('logo: {src: brand/weg.png, alt: "Logo"}\n',
     "content/brand.yaml:1: logo: image file 'brand/weg.png' not found"),
    ("kleur: rood\n", "content/brand.yaml:1: unknown field 'kleur'"),
])
def test_bad_brand_files_are_refused_at_load(branded: Settings, text: str, message: str) -> None:
    (branded.content / "brand.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        load_brand(branded.content, branded.root)
    assert message in str(caught.value)
    before = sorted(p.name for p in branded.out.glob("*")) if branded.out.exists() else []
    with pytest.raises(ContentError):
        build(branded, "stalking")
    assert (sorted(p.name for p in branded.out.glob("*")) if branded.out.exists() else []) == before


def test_a_header_image_needs_alt_text(branded: Settings) -> None:
    mailing = branded.content / "stalking" / "mailing.yaml"
    mailing.write_text(mailing.read_text(encoding="utf-8").replace(
        ', alt: "Twee handen om een kop koffie"', ""), encoding="utf-8")
    with pytest.raises(ContentError, match=r"mailing.yaml:\d+: header_image: image 'img/kop.png' has no alt"):
        build(branded, "stalking")
