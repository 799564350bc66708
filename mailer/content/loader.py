"""Load `content/<theme>/` into a Mailing and refuse anything a build could not stand behind.

Every problem is reported with the file and, where YAML gives one, the line, so the person who
wrote the block can fix it without reading Python. All problems of a theme are collected and
reported together instead of one per run.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from mailer import taxonomy
from mailer.errors import ContentError, Problem

BLOCK_TYPES = ("interview", "article", "links", "partner", "event", "case")
BLOCK_FIELDS = {
    "type", "title", "subtitle", "lead", "people", "media", "links", "regions", "audiences",
    "organisation", "url", "date", "event_kind", "starts", "ends", "place", "online",
    "verbeteractiviteit",
    "example", "slug",
}
MAILING_FIELDS = {
    "kind", "title", "subject", "preheader", "date", "topic", "greeting", "greeting_named",
    "intro", "sign_off", "bundle_title", "about", "toc", "keywords", "partners", "header_image",
}
IMAGE_FIELDS = {"src", "alt", "width", "url", "name"}
PARTNERS_FIELDS = {"title", "max", "chosen", "suggest", "after"}
PERSON_FIELDS = {"name", "role", "region", "photo", "photo_alt"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FILE_RE = re.compile(r"^(?:\d+-)?(?P<slug>.+)\.md$")


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    region: str
    photo: str
    photo_alt: str


@dataclass(frozen=True)
class Link:
    title: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class Media:
    label: str
    title: str
    url: str


@dataclass(frozen=True)
class Image:
    """A logo or header image: a file under the folder it was named in, with its alt text."""

    src: str
    alt: str
    width: int = 0
    url: str = ""  # where the image links to (partner logos)
    name: str = ""


@dataclass(frozen=True)
class PartnerItem:
    """One partner publication shown in a "Van onze partners" block."""

    organisation: str
    title: str
    url: str
    published: dt.date | None = None
    summary: str = ""
    regions: frozenset[str] | None = None  # None: of interest to every region


@dataclass(frozen=True)
class PartnersConfig:
    """How a mailing fills its "Van onze partners" block from the stored publications."""

    title: str = "Van onze partners"
    max: int = 3
    chosen: tuple[str, ...] = ()
    suggest: bool = True
    after: str = ""


@dataclass(frozen=True)
class Block:
    """One content block: a file `NN-slug.md` in the theme folder."""

    id: str
    type: str
    title: str
    source: Path
    body: str = ""
    subtitle: str = ""
    lead: str = ""
    people: tuple[Person, ...] = ()
    media: Media | None = None
    links: tuple[Link, ...] = ()
    regions: frozenset[str] | None = None
    audiences: frozenset[str] | None = None
    organisation: str = ""
    url: str = ""
    date: dt.date | None = None
    event_kind: str = ""
    starts: dt.datetime | None = None  # event: None = "Datum volgt" (a webinar: on demand)
    ends: dt.datetime | None = None
    place: str = ""
    online: str = ""  # event: the link to join online
    verbeteractiviteit: str = ""
    example: bool = False
    items: tuple[PartnerItem, ...] = ()

    def applies_to(self, region: str, audience: str) -> bool:
        return (self.regions is None or region in self.regions) and (
            self.audiences is None or audience in self.audiences
        )

    @property
    def has_page(self) -> bool:
        """Blocks with a body get their own web page ("Los artikel")."""
        return bool(self.body.strip())


@dataclass(frozen=True)
class Mailing:
    theme: str
    kind: str
    title: str
    subject: str
    preheader: str
    date: dt.date
    topic: str
    source: Path
    blocks: tuple[Block, ...]
    toc: tuple[str, ...]
    greeting: str = ""
    greeting_named: str = ""
    intro: str = ""
    sign_off: str = ""
    bundle_title: str = ""
    about: Block | None = None
    keywords: tuple[str, ...] = ()
    partners: PartnersConfig | None = None
    header_image: Image | None = None

    def block(self, block_id: str) -> Block:
        return next(b for b in self.blocks if b.id == block_id)


def shown_path(path: Path, root: Path) -> Path:
    """How a problem names a file: relative to the project root when it lies inside."""
    return path.relative_to(root) if path.is_relative_to(root) else path


class _Reader:
    """Collects problems for one file while reading its fields."""

    def __init__(self, path: Path, root: Path, offset: int):
        self.path = path
        self.shown = shown_path(path, root)
        self.lines: dict[str, int] = {}  # top-level key → line, from read_yaml
        self.offset = offset
        self.problems: list[Problem] = []

    def fail(self, message: str, key: str | None = None) -> None:
        line = self.lines.get(key) if key else None
        self.problems.append(Problem(self.shown, line + self.offset if line else None, message))

    def text(self, data: dict, key: str, required: bool = False, one_line: bool = False) -> str:
        """A text field; `one_line` for values that end up in a mail header."""
        value = data.get(key)
        if value is None:
            if required:
                self.fail(f"missing required field {key!r}", key)
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.fail(f"field {key!r} must be text, not {type(value).__name__}", key)
            return ""
        value = str(value).strip()
        if required and not value:
            self.fail(f"field {key!r} is empty", key)
        if one_line and any(c in value for c in "\r\n\x0b\x0c\x85\u2028\u2029"):
            self.fail(f"field {key!r} must be one line: it contains a line break", key)
        return value

    def slugs(self, data: dict, key: str) -> frozenset[str] | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(f"field {key!r} must be a non-empty list of slugs", key)
            return None
        for problem in taxonomy.problems(key[:-1], value):
            self.fail(problem, key)
        return frozenset(str(v) for v in value)


def read_yaml(text: str) -> tuple[object, dict[str, int]]:
    """The data of one YAML document and the line (1-based) of each top-level key, so problems
    can point at it. Parsed once, by libyaml when PyYAML has it (ten times faster than PyYAML's
    own parser); what libyaml refuses goes to PyYAML's parser, which reads it as before or
    raises with the messages our users know."""
    try:
        return _read_yaml(text, _LOADER)
    except yaml.YAMLError:
        if _LOADER is yaml.SafeLoader:
            raise
        return _read_yaml(text, yaml.SafeLoader)


def _read_yaml(text: str, loader_class: type) -> tuple[object, dict[str, int]]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    if not isinstance(node, yaml.MappingNode):
        return data, {}
    return data, {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def yaml_problem(exc: yaml.YAMLError, shown: Path, offset: int = 0) -> Problem:
    """A YAML syntax error as a Problem pointing at the line (offset: lines before the YAML)."""
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or str(exc)
    return Problem(shown, mark.line + 1 + offset if mark else None, f"YAML error: {reason}")


def _load_yaml(text: str, reader: _Reader) -> dict | None:
    try:
        data, reader.lines = read_yaml(text)
    except yaml.YAMLError as exc:
        reader.problems.append(yaml_problem(exc, reader.shown, reader.offset))
        return None
    data = data or {}
    if not isinstance(data, dict):
        reader.fail("front matter must be a mapping of fields")
        return None
    return data


def read_mapping_file(path: Path, root: Path, fields: set[str]) -> tuple[dict, _Reader]:
    """A YAML file of fields (mailing.yaml, brand.yaml): refused at once on a syntax error;
    unknown fields are noted in the returned reader, which collects the file's problems."""
    text = path.read_text(encoding="utf-8")
    reader = _Reader(path, root, 0)
    data = _load_yaml(text, reader)
    if data is None:
        raise ContentError(reader.problems)
    for key in sorted(set(data) - fields):
        reader.fail(f"unknown field {key!r}", key)
    return data, reader


def split_front_matter(text: str) -> tuple[str, str] | None:
    """Return (front matter, body) of a Markdown file that starts with a `---` line."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    return None


def _people(data: dict, r: _Reader, theme_dir: Path) -> tuple[Person, ...]:
    raw = data.get("people") or []
    if not isinstance(raw, list):
        r.fail("field 'people' must be a list", "people")
        return ()
    people = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            r.fail(f"people[{n}] must be a mapping with name, role, region, photo, photo_alt", "people")
            continue
        for key in sorted(set(item) - PERSON_FIELDS):
            r.fail(f"people[{n}]: unknown field {key!r}", "people")
        person = Person(**{k: str(item.get(k) or "").strip() for k in PERSON_FIELDS})
        if not person.name:
            r.fail(f"people[{n}]: missing name", "people")
        if person.photo and not person.photo_alt:
            r.fail(f"people[{n}] ({person.name}): photo {person.photo!r} has no photo_alt text", "people")
        if person.photo and not (theme_dir / person.photo).is_file():
            r.fail(f"people[{n}] ({person.name}): photo file {person.photo!r} not found", "people")
        people.append(person)
    return tuple(people)


def _links(data: dict, r: _Reader) -> tuple[Link, ...]:
    raw = data.get("links") or []
    if not isinstance(raw, list):
        r.fail("field 'links' must be a list of {title, url, note}", "links")
        return ()
    links = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not item.get("title") or not item.get("url"):
            r.fail(f"links[{n}] needs a title and a url", "links")
            continue
        url = _url(str(item["url"]), r, "links")
        links.append(Link(str(item["title"]), url, str(item.get("note") or "")))
    return tuple(links)


def _url(url: str, r: _Reader, key: str) -> str:
    if not re.match(r"^(https?://|mailto:)\S+$", url):
        r.fail(f"{key}: {url!r} is not an http(s) or mailto URL", key)
    return url


def _media(data: dict, r: _Reader) -> Media | None:
    raw = data.get("media")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw.get("url") or not raw.get("title"):
        r.fail("field 'media' needs label, title and url", "media")
        return None
    url = _url(str(raw["url"]), r, "media")
    return Media(str(raw.get("label") or "Bekijk online"), str(raw["title"]), url)


def _datetime(data: dict, key: str, r: _Reader) -> dt.datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        r.fail(f"field {key!r}: {value!r} is not a date and time like 2027-03-10 14:00", key)
        return None


def _ends(data: dict, starts: dt.datetime | None, r: _Reader) -> dt.datetime | None:
    """An event's end: a date and time, or only a time on the day it starts."""
    value = data.get("ends")
    if value is None:
        return None
    if starts is None:
        r.fail("field 'ends' needs 'starts' as well", "ends")
        return None
    if isinstance(value, int):  # YAML reads 16:30 unquoted as minutes (sexagesimal)
        value = f"{value // 60:02d}:{value % 60:02d}"
    ends: dt.datetime | None
    try:
        ends = dt.datetime.combine(starts.date(), dt.time.fromisoformat(str(value)))
    except ValueError:
        ends = _datetime(data, "ends", r)
    one_day = starts.time() == dt.time() and ends == starts  # an all-day event ending that day
    if ends is not None and ends <= starts and not one_day:
        r.fail(f"field 'ends': {value!r} is not after 'starts'", "ends")
    return ends


def _date(data: dict, key: str, r: _Reader, required: bool = False) -> dt.date | None:
    value = data.get(key)
    if value is None:
        if required:
            r.fail(f"missing required field {key!r}", key)
        return None
    if isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        r.fail(f"field {key!r}: {value!r} is not a date like 2026-12-01", key)
        return None


def load_block(path: Path, root: Path, theme_dir: Path) -> tuple[Block | None, list[Problem]]:
    """Read one `NN-slug.md` block file."""
    text = path.read_text(encoding="utf-8")
    parts = split_front_matter(text)
    reader = _Reader(path, root, 1)
    if parts is None:
        reader.fail("a block file must start with '---' and YAML front matter closed by '---'")
        return None, reader.problems
    front, body = parts
    data = _load_yaml(front, reader)
    if data is None:
        return None, reader.problems
    for key in sorted(set(data) - BLOCK_FIELDS):
        reader.fail(f"unknown field {key!r}", key)
    btype = reader.text(data, "type", required=True)
    if btype and btype not in BLOCK_TYPES:
        reader.fail(f"unknown block type {btype!r} (known: {', '.join(BLOCK_TYPES)})", "type")
    named = FILE_RE.match(path.name)
    slug = reader.text(data, "slug") or (named.group("slug") if named else path.stem)
    if not SLUG_RE.match(slug):
        reader.fail(f"slug {slug!r} must be lowercase letters, digits and hyphens", "slug")
    block = Block(
        id=slug,
        type=btype,
        title=reader.text(data, "title", required=True),
        source=reader.shown,
        body=body.strip(),
        subtitle=reader.text(data, "subtitle"),
        lead=reader.text(data, "lead"),
        people=_people(data, reader, theme_dir),
        media=_media(data, reader),
        links=_links(data, reader),
        regions=reader.slugs(data, "regions"),
        audiences=reader.slugs(data, "audiences"),
        organisation=reader.text(data, "organisation"),
        url=_url(reader.text(data, "url"), reader, "url") if data.get("url") else "",
        date=_date(data, "date", reader),
        event_kind=reader.text(data, "event_kind"),
        starts=(starts := _datetime(data, "starts", reader)),
        ends=_ends(data, starts, reader),
        place=reader.text(data, "place"),
        online=_url(reader.text(data, "online"), reader, "online") if data.get("online") else "",
        verbeteractiviteit=reader.text(data, "verbeteractiviteit"),
        example=bool(data.get("example", False)),
    )
    if btype == "interview" and not block.people:
        reader.fail("an interview needs 'people' (one or two person cards)", "type")
    if len(block.people) > 2:
        reader.fail("an interview shows at most two person cards", "people")
    if btype == "partner" and not (block.organisation and block.url):
        reader.fail("a partner block needs 'organisation' and 'url'", "type")
    if btype == "links" and not block.links:
        reader.fail("a links block needs 'links'", "type")
    return (None if reader.problems else block), reader.problems


def load_about(content_dir: Path, root: Path) -> tuple[Block | None, list[Problem]]:
    """The fixed "about the Ontwikkelagenda" block shared by mailings that show it."""
    path = content_dir / "about.md"
    if not path.exists():
        return None, [Problem(path, None, "about.md is missing but a mailing asks for it")]
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        text = "---\n---\n" + text
    front, body = split_front_matter(text) or ("", text)
    reader = _Reader(path, root, 1)
    data = _load_yaml(front, reader) or {}
    block = Block(
        id="over-de-ontwikkelagenda",
        type="article",
        title=reader.text(data, "title") or "Ontwikkelagenda Veiligheid voorop",
        source=reader.shown,
        body=body.strip(),
        links=_links(data, reader),
    )
    return (None if reader.problems else block), reader.problems


def read_image(raw: object, key: str, r: _Reader, folder: Path, default_width: int) -> Image | None:
    """An image entry {src, alt, width, url, name}: the file must exist and alt must be given."""
    field = key.split("[")[0]
    if not isinstance(raw, dict) or not raw.get("src"):
        r.fail(f"{key} must be a mapping with at least src and alt", field)
        return None
    for name in sorted(set(raw) - IMAGE_FIELDS):
        r.fail(f"{key}: unknown field {name!r}", field)
    src, alt = str(raw["src"]), str(raw.get("alt") or "").strip()
    if not alt:
        r.fail(f"{key}: image {src!r} has no alt text", field)
    if not (folder / src).is_file():
        r.fail(f"{key}: image file {src!r} not found", field)
    try:
        width = int(raw.get("width") or default_width)
    except (TypeError, ValueError):
        r.fail(f"{key}: width must be a whole number of pixels", field)
        width = default_width
    return Image(src, alt, width, str(raw.get("url") or ""), str(raw.get("name") or ""))


def _partners_config(data: dict, r: _Reader, slugs: dict[str, Path]) -> PartnersConfig | None:
    raw = data.get("partners")
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        r.fail("field 'partners' must be a mapping (title, max, chosen, suggest, after)", "partners")
        return None
    for key in sorted(set(raw) - PARTNERS_FIELDS):
        r.fail(f"partners: unknown field {key!r}", "partners")
    chosen = raw.get("chosen") or []
    if not isinstance(chosen, list):
        r.fail("partners.chosen must be a list of publication URLs", "partners")
        chosen = []
    after = str(raw.get("after") or "")
    if after and after not in slugs:
        r.fail(f"partners.after: no block with slug {after!r}", "partners")
    try:
        limit = int(raw.get("max", 3))
    except (TypeError, ValueError):
        r.fail("partners.max must be a whole number", "partners")
        limit = 3
    return PartnersConfig(str(raw.get("title") or "Van onze partners"), limit,
                          tuple(str(u) for u in chosen), bool(raw.get("suggest", True)), after)


def list_themes(content_dir: Path) -> list[str]:
    return sorted(p.name for p in content_dir.iterdir() if (p / "mailing.yaml").is_file())


def _theme_dir(content_dir: Path, theme: str) -> Path:
    """The theme's folder; an error at once when it or its mailing.yaml is missing."""
    if not content_dir.is_dir():
        raise ContentError([Problem(content_dir, None, (
            "no such folder, so no themes to build. Run mailer in the project folder that holds "
            "content/, or point MAILER_ROOT (or content_dir in mailer.toml) at it"))])
    theme_dir = content_dir / theme
    config = theme_dir / "mailing.yaml"
    if not config.is_file():
        known = ", ".join(list_themes(content_dir)) if content_dir.is_dir() else "none"
        raise ContentError([Problem(config, None, f"no such theme {theme!r} (known: {known})")])
    return theme_dir


def _load_blocks(theme_dir: Path, root: Path, reader: _Reader) -> tuple[list[Block], dict[str, Path]]:
    """The theme's blocks in file order and the file each slug comes from; their problems go to
    the mailing's `reader`."""
    problems = reader.problems
    blocks: list[Block] = []
    first_file: dict[str, Path] = {}
    for path in sorted(theme_dir.glob("*.md")):
        block, found = load_block(path, root, theme_dir)
        problems += found
        if block is None:
            continue
        if block.id in first_file:
            problems.append(
                Problem(block.source, None, f"slug {block.id!r} is already used by {first_file[block.id]}")
            )
            continue
        first_file[block.id] = block.source
        blocks.append(block)
    if not blocks and not problems:
        problems.append(Problem(reader.shown, None, "the theme has no blocks (NN-slug.md files)"))
    return blocks, first_file


def _toc(data: dict, reader: _Reader, blocks: list[Block], first_file: dict[str, Path]
         ) -> tuple[str, ...]:
    """The table of contents: the slugs `toc` lists, else every block in order."""
    toc_raw = data.get("toc")
    if toc_raw is not None and not isinstance(toc_raw, list):
        reader.fail("field 'toc' must be a list of block slugs", "toc")
        toc_raw = None
    if toc_raw is None:
        return tuple(b.id for b in blocks)
    toc = tuple(str(t).lstrip("#") for t in toc_raw)
    for entry in toc:
        if entry not in first_file:
            reader.fail(f"table of contents entry {entry!r} has no block with that slug", "toc")
    return toc


def _keywords(data: dict, reader: _Reader) -> tuple[str, ...]:
    """The mailing's keywords in lower case, or none when the field is not a list of words."""
    keywords = data.get("keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        reader.fail("field 'keywords' must be a list of words", "keywords")
        return ()
    return tuple(k.lower() for k in keywords)


def load_mailing(content_dir: Path, theme: str, root: Path | None = None) -> Mailing:
    """Load and validate a theme; raise ContentError listing every problem found."""
    root = root or content_dir.parent
    theme_dir = _theme_dir(content_dir, theme)
    data, reader = read_mapping_file(theme_dir / "mailing.yaml", root, MAILING_FIELDS)
    kind = reader.text(data, "kind", required=True)
    topic = reader.text(data, "topic") or taxonomy.KIND_TOPICS.get(kind, "")
    for key, value in (("kind", kind), ("topic", topic)):
        problem = taxonomy.problem(key, value) if value else None
        if problem:
            reader.fail(problem, key)
    blocks, first_file = _load_blocks(theme_dir, root, reader)
    toc = _toc(data, reader, blocks, first_file)
    about = None
    if data.get("about", kind == "update"):
        about, found = load_about(content_dir, root)
        reader.problems += found
    mailing_date = _date(data, "date", reader, required=True)
    keywords = _keywords(data, reader)
    mailing = Mailing(
        theme=theme,
        kind=kind,
        title=reader.text(data, "title", required=True),
        subject=reader.text(data, "subject", required=True, one_line=True),
        preheader=reader.text(data, "preheader", required=True, one_line=True),
        date=mailing_date or dt.date.today(),
        topic=topic,
        source=reader.shown,
        blocks=tuple(blocks),
        toc=toc,
        greeting=reader.text(data, "greeting"),
        greeting_named=reader.text(data, "greeting_named"),
        intro=reader.text(data, "intro"),
        sign_off=reader.text(data, "sign_off"),
        bundle_title=reader.text(data, "bundle_title") or f"Bundel {reader.text(data, 'title')}",
        about=about,
        keywords=keywords,
        partners=_partners_config(data, reader, first_file),
        header_image=read_image(data["header_image"], "header_image", reader, theme_dir, 600)
        if data.get("header_image") else None,
    )
    if reader.problems:
        raise ContentError(reader.problems)
    return mailing
