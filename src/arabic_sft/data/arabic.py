"""Arabic text compared as the same text whatever its spelling variants: the one normalization that the data check
(repeated and contaminated rows), few-shot choice and scoring (`--normalize`) share."""

import re

import pyarabic.araby as araby


WORD = re.compile(r"\w+")


def normalize_arabic(text: str) -> str:
    """Orthographic normalization with pyarabic: diacritics and tatweel removed, alef forms to bare alef, alef
    maksura to yaa, taa marbuta to haa."""
    # Alef maksura first: pyarabic's normalize_alef would turn it into alef.
    text = araby.strip_tatweel(araby.strip_diacritics(text)).replace(araby.ALEF_MAKSURA, araby.YEH)
    return araby.normalize_teh(araby.normalize_alef(text))


def words(value) -> list[str]:
    """The normalized words of a cell, case folded, punctuation dropped (chat turns: their contents)."""
    if isinstance(value, list):
        value = " ".join(str(turn.get("content", "")) if isinstance(turn, dict) else str(turn) for turn in value)
    return WORD.findall(normalize_arabic(str(value)).casefold())
