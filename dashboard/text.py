"""Showing text that came from outside (run names, class folder names, paths, file names, error
messages) in Streamlit elements that render Markdown, as exactly those characters.

Most of Streamlit renders its text argument as Markdown: st.markdown, st.caption, st.subheader,
st.info/warning/error/success, st.progress(text=), st.image(caption=), button, expander and popover
labels, help tooltips. A run named `![t](http://host/pixel.png)` would otherwise make every viewer's
browser fetch that address, and `[click](http://host/phish)` would show a live link. Pass such text
through `plain` and put only the page's own wording around it.
"""
from __future__ import annotations

import re

# Characters that open or close something in Streamlit's Markdown: emphasis, code, links and images,
# HTML, headings, quotes, tables, strikethrough, maths ($), entities (&), directive attributes ({}).
# CommonMark shows any of them as itself after a backslash.
_MARKUP = frozenset("\\`*_~[](){}<>#|$&!")
# Streamlit also rewrites the text *after* parsing, where backslashes no longer count: bare URLs and
# e-mail addresses become links (http://, www., name@host) and shortcodes become emoji or icons
# (:smile:, :material/home:, :streamlit:). An invisible word joiner after a ':' or '@' that touches the
# next character, and inside "www.", breaks those patterns; it is zero-width, so the reader sees the
# same characters ("Finished: 2 epochs" keeps its plain colon).
WORD_JOINER = "\u2060"
_JOINED = re.compile(r"([:@])(?=\S)|(?i:(www))(?=\.)")
# At the start of the text, "- ", "+ " or "1. " would begin a list item.
_LIST_START = re.compile(r"^(\s*)([-+]|\d+[.)])(?=\s|$)")


def one_line(text: object) -> str:
    """`text` with every character that is not printable (line and paragraph breaks such as U+2028,
    controls such as NUL, lone surrogates, format characters) replaced by a space."""
    return "".join(ch if ch.isprintable() else " " for ch in str(text))


def plain(text: object) -> str:
    """`text` as Markdown that Streamlit shows character for character, on one line."""
    flat = one_line(text)  # no line breaks, no controls
    escaped = "".join(f"\\{ch}" if ch in _MARKUP else ch for ch in flat)
    escaped = _JOINED.sub(lambda m: m[0] + WORD_JOINER, escaped)
    return _LIST_START.sub(lambda m: m[1] + m[2][:-1] + "\\" + m[2][-1], escaped)

