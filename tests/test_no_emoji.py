"""No emoji in what the app and the engine show: a lab PC without an emoji font draws each one as an
empty box. Icons are Streamlit's Material icons (":material/name:"), which ship with Streamlit.

Scanned: every source and page file under app/ and vae_core/ (user strings live there). Allowed:
text symbols every font has (★, ⚠, →, ‖, ≈ ...). Refused: anything outside the Basic Multilingual
Plane (where almost all emoji live), the emoji variation selector, the BMP characters Unicode draws
as emoji by default (Emoji_Presentation, listed below from emoji-data.txt), the heavy arrows ⬅ ⬆ ⬇ ➡
that Linux fonts take from an emoji font, and Streamlit's emoji shortcodes (":rocket:").
"""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("app", "vae_core")
SUFFIXES = (".py", ".js", ".mjs", ".html", ".css", ".md", ".toml")

# Emoji_Presentation=Yes in the BMP (Unicode emoji-data.txt), plus the heavy arrows.
_BMP_EMOJI = [
    (0x231A, 0x231B),
    (0x23E9, 0x23EC),
    (0x23F0, 0x23F0),
    (0x23F3, 0x23F3),
    (0x25FD, 0x25FE),
    (0x2614, 0x2615),
    (0x2648, 0x2653),
    (0x267F, 0x267F),
    (0x2693, 0x2693),
    (0x26A1, 0x26A1),
    (0x26AA, 0x26AB),
    (0x26BD, 0x26BE),
    (0x26C4, 0x26C5),
    (0x26CE, 0x26CE),
    (0x26D4, 0x26D4),
    (0x26EA, 0x26EA),
    (0x26F2, 0x26F3),
    (0x26F5, 0x26F5),
    (0x26FA, 0x26FA),
    (0x26FD, 0x26FD),
    (0x2705, 0x2705),
    (0x270A, 0x270B),
    (0x2728, 0x2728),
    (0x274C, 0x274C),
    (0x274E, 0x274E),
    (0x2753, 0x2755),
    (0x2757, 0x2757),
    (0x2795, 0x2797),
    (0x27B0, 0x27B0),
    (0x27BF, 0x27BF),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x2B05, 0x2B07),
    (0x27A1, 0x27A1),
    (0xFE0F, 0xFE0F),
]
# ":name:" outside ":material/name:", as Streamlit reads it in labels, icons and Markdown.
_SHORTCODE = re.compile(r"""["'](?:[^"'\n]*\s)?(:[a-z0-9_+-]{2,}:)(?=[\s"'])""")


def emoji_in(text: str) -> list[str]:
    """The emoji characters and shortcodes in text, in order."""
    found = [ch for ch in text if ord(ch) > 0xFFFF or any(a <= ord(ch) <= b for a, b in _BMP_EMOJI)]
    return found + _SHORTCODE.findall(text)


def _files():
    for top in SCANNED:
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for name in sorted(names):
                if name.endswith(SUFFIXES):
                    yield os.path.join(folder, name)


@pytest.mark.parametrize("text", ["⬇ download", "🚀 go", "st.button('go', icon=':rocket:')", "ok ✅", "❤️"])
def test_the_check_catches_emoji(text):
    assert emoji_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "★ = current z",
        "⚠ z was clipped",
        "x → y",
        "KL(q ‖ p) ≈ 0",
        "−36.32",
        "icon=':material/download:'",
        "st.title(':material/explore: Latent explorer')",
        "x[:2:]",
        "time 10:30:00",
    ],
)
def test_the_check_lets_text_symbols_and_material_icons_pass(text):
    assert not emoji_in(text)


def test_no_emoji_in_the_app_or_the_engine():
    bad = {}
    for path in _files():
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if emoji_in(line):
                    bad[f"{os.path.relpath(path, ROOT)}:{i}"] = emoji_in(line)
    assert not bad, bad
