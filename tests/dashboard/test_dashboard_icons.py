"""The dashboard's icons are Streamlit's Material icons, never emoji: a browser without an emoji font
(many Linux desktops, kiosks) draws an emoji as an empty box."""
from __future__ import annotations

import ast
import re

from tests import REPO

DASHBOARD = REPO / "dashboard"
# Emoji blocks: pictographs, symbols and dingbats, technical symbols (⏹, ⏩), arrows and stars (⬆, ⭐),
# and the variation selector that asks for the emoji form of a plain character (▶️).
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2300-\u23FF\u2B00-\u2BFF\uFE0F]")


def sources() -> dict[str, str]:
    return {str(p.relative_to(DASHBOARD)): p.read_text(encoding="utf-8") for p in sorted(DASHBOARD.rglob("*.py"))}


def test_no_emoji_anywhere_in_the_dashboard():
    found = [f"{name}:{number}: {line.strip()}" for name, text in sources().items()
             for number, line in enumerate(text.splitlines(), 1) if EMOJI.search(line)]
    assert not found, "emoji in the dashboard:\n" + "\n".join(found)


def test_every_icon_is_a_material_icon():
    icons = [(name, keyword.value) for name, text in sources().items() for node in ast.walk(ast.parse(text))
             if isinstance(node, ast.Call) for keyword in node.keywords
             if keyword.arg in ("icon", "page_icon")]
    assert icons  # the scan sees the buttons and pages
    not_material = [f"{name}: {ast.unparse(value)}" for name, value in icons
                    if not (isinstance(value, ast.Constant) and re.fullmatch(r":material/[a-z0-9_]+:", value.value))]
    assert not not_material, "icons that are not :material/...: shortcodes:\n" + "\n".join(not_material)
