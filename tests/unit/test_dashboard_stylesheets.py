"""The dashboard's stylesheets close every block they open: a block left open (an ``@media``
without its ``}``) is closed by the browser at the end of the file, so every rule after it
would apply to phones only, silently (it happened once: the management pages' banners and
field errors were unstyled on laptops)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fulmen.coordinator.dashboard import STATIC

SHEETS = sorted(STATIC.glob("*.css"))


@pytest.mark.parametrize("sheet", SHEETS, ids=[sheet.name for sheet in SHEETS])
def test_every_block_is_closed(sheet: Path) -> None:
    text = re.sub(r"/\*.*?\*/", "", sheet.read_text(encoding="utf-8"), flags=re.S)
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"{sheet.name}:{number} closes a block it never opened"
        if line.startswith("@media"):
            assert depth == 1, f"{sheet.name}:{number}: an @media inside another block"
    assert depth == 0, f"{sheet.name} leaves {depth} block(s) open"
