"""Reading what is scored: a predictions CSV (its reference and generated columns found by name), or two text files
with one example per line (SHEFAA's layout)."""

import logging
from pathlib import Path

import pandas as pd

from arabic_sft.data.columns import columns_by_name
from arabic_sft.data.formats import read_csv
from arabic_sft.runtime.errors import UserError


logger = logging.getLogger(__name__)


# Predictions CSVs: generate.py writes Reference_<answer> and Generated_<answer>; then common names of other tools.
REFERENCE_PREFIX, PREDICTION_PREFIX = "reference_", "generated_"

REFERENCE_COLUMNS = ("reference", "references", "answer")
PREDICTION_COLUMNS = ("generated", "prediction", "predictions")


def _find_column(
    frame: pd.DataFrame, path: Path, given: str | None, candidates: tuple[str, ...], prefix: str, role: str
) -> str:
    found = columns_by_name(frame)
    if given:
        match = found.get(given.lower())
    else:
        prefixed = [found[name] for name in found if name.startswith(prefix)]
        if len(prefixed) > 1:
            raise UserError(
                f"{path}: several {role} columns ({', '.join(map(str, prefixed))}); name one with --{role}_column"
            )
        match = prefixed[0] if prefixed else next((found[name] for name in candidates if name in found), None)
    if match is None:
        accepted = f"{prefix.capitalize()}<answer>, {', '.join(candidates)}"
        hint = "" if given else f" (accepted: {accepted}; or name it with --{role}_column)"
        found_names = ", ".join(map(str, frame.columns))
        missing = f"column '{given}'" if given else f"{role} column"
        nothing = "; there is nothing to score against" if role == "reference" else ""
        raise UserError(f"{path}: no {missing} (found: {found_names}){hint}{nothing}")
    return match


def prediction_rows(
    path: str | Path, reference_column: str | None = None, prediction_column: str | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the rows of a predictions CSV that have a reference, texts stripped; the reference and prediction columns,
    found by name when not given). Rows whose reference is empty are dropped with a count (there is nothing to score
    them against); an empty prediction stays, and scores zero."""
    path = Path(path)
    frame = read_csv(path)
    if frame.empty:
        raise UserError(f"{path}: has a header but no rows")
    reference = _find_column(frame, path, reference_column, REFERENCE_COLUMNS, REFERENCE_PREFIX, "reference")
    prediction = _find_column(frame, path, prediction_column, PREDICTION_COLUMNS, PREDICTION_PREFIX, "prediction")
    frame = frame.assign(**{reference: frame[reference].str.strip(), prediction: frame[prediction].str.strip()})
    keep = frame[reference] != ""
    if not keep.any():
        raise UserError(f"{path}: every '{reference}' cell is empty; there is nothing to score against")
    if not keep.all():
        logger.warning("%s: dropped %d row(s) with an empty reference", path, int((~keep).sum()))
    return frame[keep].reset_index(drop=True), {"reference": str(reference), "prediction": str(prediction)}


def load_predictions(
    path: str | Path, reference_column: str | None = None, prediction_column: str | None = None
) -> tuple[list[str], list[str], dict[str, str]]:
    """(predictions, references, columns used) of a predictions CSV (`prediction_rows`)."""
    frame, columns = prediction_rows(path, reference_column, prediction_column)
    return frame[columns["prediction"]].tolist(), frame[columns["reference"]].tolist(), columns


def questions(frame: pd.DataFrame, columns: dict[str, str]) -> list[str]:
    """Each row's inputs, as a judge reads them: the one input's text, or `column: text` lines for several."""
    inputs = [name for name in frame.columns if name not in (columns["reference"], columns["prediction"])]
    if len(inputs) == 1:
        return frame[inputs[0]].astype(str).tolist()
    return ["\n".join(f"{name}: {row[name]}" for name in inputs) for _, row in frame.iterrows()]


def load_text_pairs(predictions_path: str | Path, references_path: str | Path) -> tuple[list[str], list[str]]:
    """(predictions, references) from two UTF-8 text files with one example per line (SHEFAA's layout)."""
    texts = []
    for path in (Path(predictions_path), Path(references_path)):
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        try:
            texts.append([line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()])
        except UnicodeDecodeError as error:
            raise UserError(f"{path}: not valid UTF-8 text (byte {error.start})") from None
    predictions, references = texts
    if len(predictions) != len(references):
        raise UserError(
            f"{predictions_path} has {len(predictions)} lines but {references_path} has {len(references)}; "
            "they must hold one example per line, in the same order"
        )
    if not predictions:
        raise UserError(f"{predictions_path}: file is empty")
    pairs = [(p, r) for p, r in zip(predictions, references) if r]
    if len(pairs) < len(predictions):
        logger.warning(
            "%s: dropped %d line(s) with an empty reference", references_path, len(predictions) - len(pairs)
        )
    if not pairs:
        raise UserError(f"{references_path}: every line is empty; there is nothing to score against")
    return [p for p, _ in pairs], [r for _, r in pairs]
