"""Arabic text compared as the same text whatever its spelling variants: the one normalization that the data check
(repeated and contaminated rows), few-shot choice and scoring (`--normalize`) share."""

import functools
import re

import pyarabic.araby as araby


WORD = re.compile(r"\w+")


def pyarabic_normalization(text: str) -> str:
    """Orthographic normalization with pyarabic: diacritics and tatweel removed, alef forms to bare alef, alef
    maksura to yaa, taa marbuta to haa."""
    # Alef maksura first: pyarabic's normalize_alef would turn it into alef.
    text = araby.strip_tatweel(araby.strip_diacritics(text)).replace(araby.ALEF_MAKSURA, araby.YEH)
    return araby.normalize_teh(araby.normalize_alef(text))


# The Unicode blocks of Arabic letters and marks: every character pyarabic's normalization changes is in them.
ARABIC_BLOCKS = ((0x0600, 0x0700), (0x0750, 0x0780), (0x08A0, 0x0900), (0xFB50, 0xFE00), (0xFE70, 0xFF00))


@functools.cache
def normalization_table() -> dict[int, str | None]:
    """pyarabic's normalization as one `str.translate` table, read off it character by character: each of its
    steps removes or replaces single characters (its two-character rule, small alef beside alef maksura, never
    meets either: both are gone by then), so the table gives the same text as the steps, in one pass of C instead
    of a dozen passes of Python (tests/test_data.py checks every character of the BMP)."""
    table = {}
    for start, stop in ARABIC_BLOCKS:
        for code in range(start, stop):
            if (normalized := pyarabic_normalization(chr(code))) != chr(code):
                table[code] = normalized or None
    return table


def normalize_arabic(text: str) -> str:
    """Orthographic normalization (pyarabic's, `pyarabic_normalization`): diacritics and tatweel removed, alef forms
    to bare alef, alef maksura to yaa, taa marbuta to haa."""
    return text.translate(normalization_table())


def words(value) -> list[str]:
    """The normalized words of a cell, case folded, punctuation dropped (chat turns: their contents)."""
    if isinstance(value, list):
        value = " ".join(str(turn.get("content", "")) if isinstance(turn, dict) else str(turn) for turn in value)
    return WORD.findall(normalize_arabic(str(value)).casefold())
