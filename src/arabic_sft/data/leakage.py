"""Rows that are the same after Arabic normalization: a test row whose inputs appear in train flatters the test
scores, a validation row repeated from train flatters the eval loss, and a few-shot example must never be the row it
answers."""

import json
import logging

import pandas as pd
import pyarabic.araby as araby

from arabic_sft.data.columns import DataSpec


logger = logging.getLogger(__name__)


def normalize_arabic(text: str) -> str:
    """Orthographic normalization with pyarabic: diacritics and tatweel removed, alef forms to bare alef, alef
    maksura to yaa, taa marbuta to haa."""
    # Alef maksura first: pyarabic's normalize_alef would turn it into alef.
    text = araby.strip_tatweel(araby.strip_diacritics(text)).replace(araby.ALEF_MAKSURA, araby.YEH)
    return araby.normalize_teh(araby.normalize_alef(text))


def normalized_key(row: dict, fields: list[str]) -> tuple:
    """A row's `fields` compared as Arabic text: diacritics and tatweel removed, alef forms unified, case and spaces
    folded, so that rows that differ only in spelling variants match."""

    def fold(value) -> str:
        if isinstance(value, list):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return " ".join(normalize_arabic(str(value)).casefold().split())

    return tuple(fold(row.get(name, "")) for name in fields)


def report_overlap(train: pd.DataFrame, other: pd.DataFrame, name: str, spec: DataSpec, split: str) -> int:
    """Warn about `split` rows that also appear in train after Arabic normalization: validation rows with the same
    inputs and answer (they flatter the eval loss), test rows with the same inputs (they flatter the test scores).
    Returns their number."""
    if spec.kind == "messages":
        fields = ["messages"]
    else:
        fields = spec.inputs if split == "test" else [*spec.inputs, spec.answer]
    if not set(fields) <= set(other.columns):
        return 0
    seen = {normalized_key(row, fields) for row in train.to_dict("records")}
    repeated = sum(normalized_key(row, fields) in seen for row in other.to_dict("records"))
    if repeated:
        same = "have the same inputs as" if split == "test" and spec.kind != "messages" else "also appear in"
        logger.warning(
            "%s: %d of %d %s row(s) %s the training data (after Arabic normalization: diacritics, tatweel, "
            "alef forms)",
            name,
            repeated,
            len(other),
            split,
            same,
        )
    return repeated
