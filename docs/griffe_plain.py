"""A Griffe extension for the API pages: audioprune's docstrings are plain text, not Google or
NumPy style, and this turns their conventions into Markdown as mkdocstrings reads them.

  name      what it is        an aligned list of arguments (the name, two or more spaces, the
            continued here    text, continuation lines indented to the text) -> a bullet list
  :func:`audioprune.prune`    a Sphinx role -> `audioprune.prune`
  Example::                   a reST literal-block marker -> "Example:" (the indented block
                              after it is a Markdown code block already)

Nothing in the source changes; `mkdocs.yml` loads it (mkdocstrings' `extensions` option).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_ITEM = re.compile(r"^(?P<name>[\w*][\w*.,/=()\[\]-]*(?: [\w*.,/=()\[\]-]+){0,2})(?P<gap> {2,})"
                   r"(?P<text>\S.*)$")
_NARROW = re.compile(r"^(?P<name>[\w*][\w*.,/=()\[\]-]*)(?P<gap> )(?P<text>\S.*)$")  # name fills it


def _escape_html(line: str) -> str:
    """`<name>` outside code spans would be read as an HTML tag: show it as text."""
    if line.startswith("    "):  # an indented code block
        return line
    parts = re.split(r"(`+[^`]*`+)", line)
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in parts)


def plain_to_markdown(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = [_escape_html(x) for x in text.splitlines()]
    out: list[str] = []
    i = 0
    while i < len(lines):
        items = _aligned_list(lines, i)
        if items is None:
            line = lines[i]
            if line.rstrip().endswith("::") and not line.lstrip().startswith(">>>"):
                line = line.rstrip()[:-1]
            out.append(line)
            i += 1
            continue
        entries, i = items
        if out and out[-1].strip():
            out.append("")
        out.extend(f"- `{name}`: {body}" for name, body in entries)
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


def _aligned_list(lines: list[str], start: int) -> tuple[list[tuple[str, str]], int] | None:
    """The aligned list starting at line `start` ((name, text) pairs, the line after it), or None."""
    first = _ITEM.match(lines[start])
    if first is None or (start > 0 and lines[start - 1].strip() and
                         not _ITEM.match(lines[start - 1])):
        return None
    col = len(first.group("name")) + len(first.group("gap"))
    if col < 8:
        return None
    entries: list[tuple[str, str]] = []
    i = start
    while i < len(lines):
        m = _ITEM.match(lines[i]) or _NARROW.match(lines[i])
        width = len(m.group("name")) + len(m.group("gap")) if m else 0
        if m and (width == col or (width > col and len(m.group("gap")) >= 2)):
            entries.append((m.group("name"), m.group("text").strip()))
        elif entries and lines[i].startswith(" " * col) and lines[i].strip():
            name, body = entries[-1]
            entries[-1] = (name, f"{body} {lines[i].strip()}")
        else:
            break
        i += 1
    return (entries, i) if len(entries) >= 2 else None


class PlainDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_to_markdown(obj.docstring.value)
