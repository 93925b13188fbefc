"""Text from the code (a command's help, an OpenAPI description) made safe for Markdown.

Help texts and docstrings are written for a terminal: ``<VARIABLE>`` is a placeholder, not
an HTML tag, ``*`` and ``_`` are characters, not emphasis, and ``|`` would split a table's
cell. Spans in backticks (``fmn_``, `Idempotent-Replayed: true`) stay code spans: that is what
their authors meant, and Markdown shows them as code.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["cell", "escape", "paragraphs"]

#: A code span: a run of backticks, its text, the same run again (CommonMark's rule).
_CODE: Final = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_SPECIAL: Final = re.compile(r"([\\*_\[\]<>|#])")


def escape(text: str) -> str:
    """``text`` with Markdown's special characters escaped outside its code spans."""
    out, end = [], 0
    for match in _CODE.finditer(text):
        out.append(_SPECIAL.sub(r"\\\1", text[end : match.start()]))
        out.append(match.group(0))  # a table splits no cell inside a code span
        end = match.end()
    out.append(_SPECIAL.sub(r"\\\1", text[end:]))
    return "".join(out)


def cell(text: str) -> str:
    """``text`` on one line, escaped, for a table's cell."""
    return escape(" ".join(text.split()))


def paragraphs(text: str) -> str:
    """A help text or description as Markdown paragraphs: lines re-joined (they were wrapped
    for a terminal), blank lines kept, click's ``\\b`` paragraphs kept verbatim."""
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.lstrip().startswith("\b"):
            blocks.append("```text\n" + block.lstrip()[1:].strip("\n") + "\n```")
        elif block.lstrip().startswith(("- ", "* ")):
            items = re.split(r"\n\s*[-*] ", "\n" + block.strip())
            blocks.append("\n".join(f"- {cell(item)}" for item in items if item.strip()))
        else:
            blocks.append(cell(block))
    return "\n\n".join(blocks)
