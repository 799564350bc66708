"""Markdown to readable plain text for the text/plain part: paragraphs wrapped, links listed."""

from __future__ import annotations

import textwrap

from markdown_it import MarkdownIt
from markdown_it.token import Token

_md = MarkdownIt("commonmark", {"html": False})


def _inline(tokens: list[Token]) -> str:
    out: list[str] = []
    href_stack: list[str] = []
    for tok in tokens:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" " if tok.type == "softbreak" else "\n")
        elif tok.type == "link_open":
            href_stack.append(str(tok.attrs.get("href", "")))
        elif tok.type == "link_close":
            href = href_stack.pop() if href_stack else ""
            if href and href not in "".join(out[-1:]):
                out.append(f" ({href})")
        elif tok.type == "image":
            out.append(f"[{tok.content}]")
    return "".join(out)


def markdown_to_text(source: str, width: int = 72) -> str:
    """Render Markdown as text a person reads comfortably in any mail client."""
    lines: list[str] = []
    prefix = ""
    for tok in _md.parse(source):
        if tok.type == "bullet_list_open":
            prefix = "- "
        elif tok.type == "ordered_list_open":
            prefix = "* "
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            prefix = ""
            lines.append("")
        elif tok.type == "inline":
            text = _inline(tok.children or [])
            indent = " " * len(prefix)
            for para in text.split("\n"):
                lines.append(
                    textwrap.fill(para, width, initial_indent=prefix, subsequent_indent=indent,
                                  break_long_words=False, break_on_hyphens=False)
                )
        elif tok.type == "paragraph_close" and not prefix or tok.type == "heading_open":
            lines.append("")
        elif tok.type in ("fence", "code_block"):
            lines.extend([tok.content.rstrip(), ""])
    return "\n".join(lines).strip()
