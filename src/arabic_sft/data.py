"""The one place that reads question/answer CSVs: column aliases, validation and subsampling."""

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from arabic_sft.cli import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """A data format: canonical columns (with accepted aliases) and which of them is the answer."""

    columns: dict[str, tuple[str, ...]]
    answer: str
    # Column names of the predictions CSV: the inputs, the reference answer, and the generated answer.
    output_columns: dict[str, str]
    generated_column: str

    @property
    def inputs(self) -> list[str]:
        return [name for name in self.columns if name != self.answer]


TASKS = {
    # Yemeni proverbs: the real files say `Proverbs,Explanation`, the proverbs document `proverb,reference_explanation`.
    "proverbs": Task(
        columns={
            "proverb": ("proverb", "proverbs", "text"),
            "explanation": ("explanation", "reference_explanation", "explanations"),
        },
        answer="explanation",
        output_columns={"proverb": "Proverb", "explanation": "Reference_Explanation"},
        generated_column="Generated_Explanation",
    ),
    # SHEFAA / AHQAD medical QA: `Question,Category,Answer`.
    "medical_qa": Task(
        columns={
            "question": ("question", "questions"),
            "category": ("category", "categories"),
            "answer": ("answer", "answers", "reference_answer"),
        },
        answer="answer",
        output_columns={"question": "Question", "category": "Category", "answer": "Reference_Answer"},
        generated_column="Generated_Answer",
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[name]


def read_csv(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Every cell of a CSV as text; a missing, empty, undecodable or malformed file is a `UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    try:
        # Everything as text: "NA" or "0" in an answer is an answer, not a missing value or a number.
        return pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not valid {encoding} text (byte {error.start}); if the file is in another encoding "
            "(e.g. Arabic Windows cp1256), set `csv_encoding` in the recipe or on the command line"
        ) from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty") from None
    except pd.errors.ParserError as error:
        raise UserError(f"{path}: malformed CSV ({str(error).strip().splitlines()[-1]})") from None


def columns_by_name(frame: pd.DataFrame) -> dict[str, str]:
    """A frame's columns keyed by their lower-cased name, with a byte-order mark and surrounding spaces removed."""
    return {str(column).replace("\ufeff", "").strip().lower(): column for column in frame.columns}


def load_split(
    path: str | Path,
    task: str,
    require_answer: bool = True,
    empty_cells: str = "drop",
    encoding: str = "utf-8-sig",
) -> pd.DataFrame:
    """Read one CSV split and return its canonical columns (e.g. `proverb`, `explanation`) as stripped text.

    Column names match case-insensitively, with a byte-order mark or surrounding spaces ignored, against the
    task's aliases. Rows with an empty required cell are dropped with a count (`empty_cells="drop"`) or rejected
    (`"error"`). Without `require_answer`, the answer column is optional (a test file without references).
    """
    path = Path(path)
    spec = get_task(task)
    frame = read_csv(path, encoding)
    if frame.empty:
        raise UserError(f"{path}: has a header but no rows")

    found = columns_by_name(frame)
    selected = {}
    for name, aliases in spec.columns.items():
        match = next((found[alias] for alias in aliases if alias in found), None)
        if match is not None:
            selected[name] = match
        elif name != spec.answer or require_answer:
            raise UserError(
                f"{path}: no column for '{name}' (found: {', '.join(map(str, frame.columns))}; "
                f"accepted: {', '.join(aliases)}, in any case)"
            )
    data = pd.DataFrame({name: frame[column].astype(str).str.strip() for name, column in selected.items()})

    empty = (data == "").any(axis=1)
    if empty.any():
        rows = ", ".join(str(i + 2) for i in data.index[empty][:5])  # +2: 1-based, after the header line
        if empty_cells == "error":
            raise UserError(f"{path}: {int(empty.sum())} row(s) with an empty cell (lines {rows}...)")
        logger.warning("%s: dropped %d row(s) with an empty cell (lines %s...)", path, int(empty.sum()), rows)
        data = data[~empty]
    if data.empty:
        raise UserError(f"{path}: no rows left after dropping empty cells")
    return data.reset_index(drop=True)


def subsample(data: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A reproducible random `fraction` of the rows, in their original order (the SHEFAA baseline used 10%)."""
    if not 0 < fraction <= 1:
        raise UserError(f"subsample_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return data
    keep = max(1, round(len(data) * fraction))
    return data.sample(n=keep, random_state=seed).sort_index().reset_index(drop=True)


def load_training_splits(recipe_args, seed: int) -> dict[str, pd.DataFrame]:
    """The recipe's train (and, when set, validation) splits, validated and subsampled; before any model loads."""
    files = {"train": recipe_args.train_file, "validation": recipe_args.validation_file}
    if not files["train"]:
        raise UserError("train_file is not set in the recipe")
    splits = {}
    for split, path in files.items():
        if path:
            frame = load_split(path, recipe_args.task, True, recipe_args.empty_cells, recipe_args.csv_encoding)
            splits[split] = subsample(frame, recipe_args.subsample_fraction, seed)
    if "validation" in splits:
        report_overlap(splits["train"], splits["validation"], files["validation"])
    return splits


def report_overlap(train: pd.DataFrame, validation: pd.DataFrame, name: str) -> int:
    """Warn about validation rows that also appear in train (same inputs and answer): they make the eval loss look
    better than it is. Returns their number."""
    seen = set(train.itertuples(index=False, name=None))
    repeated = sum(row in seen for row in validation.itertuples(index=False, name=None))
    if repeated:
        logger.warning("%s: %d of %d validation row(s) also appear in the training data", name, repeated, len(validation))
    return repeated


# Predictions CSVs: the columns generate.py writes for each task, then common names from other tools.
REFERENCE_COLUMNS = tuple(t.output_columns[t.answer] for t in TASKS.values()) + ("reference", "references", "answer")
PREDICTION_COLUMNS = tuple(t.generated_column for t in TASKS.values()) + ("generated", "prediction", "predictions")


def _find_column(frame: pd.DataFrame, path: Path, given: str | None, candidates: tuple[str, ...], role: str) -> str:
    found = columns_by_name(frame)
    names = [given] if given else candidates
    match = next((found[name.lower()] for name in names if name.lower() in found), None)
    if match is None:
        hint = "" if given else f" (accepted: {', '.join(candidates)}; or name it with --{role}_column)"
        found_names = ", ".join(map(str, frame.columns))
        missing = f"column '{given}'" if given else f"{role} column"
        nothing = "; there is nothing to score against" if role == "reference" else ""
        raise UserError(f"{path}: no {missing} (found: {found_names}){hint}{nothing}")
    return match


def load_predictions(
    path: str | Path, reference_column: str | None = None, prediction_column: str | None = None
) -> tuple[list[str], list[str], dict[str, str]]:
    """(predictions, references, columns used) of a predictions CSV, the columns found by name when not given.

    Rows whose reference is empty are dropped with a count (there is nothing to score them against); an empty
    prediction stays, and scores zero.
    """
    path = Path(path)
    frame = read_csv(path)
    if frame.empty:
        raise UserError(f"{path}: has a header but no rows")
    reference = _find_column(frame, path, reference_column, REFERENCE_COLUMNS, "reference")
    prediction = _find_column(frame, path, prediction_column, PREDICTION_COLUMNS, "prediction")
    references = frame[reference].str.strip()
    keep = references != ""
    if not keep.any():
        raise UserError(f"{path}: every '{reference}' cell is empty; there is nothing to score against")
    if not keep.all():
        logger.warning("%s: dropped %d row(s) with an empty reference", path, int((~keep).sum()))
    predictions = frame.loc[keep, prediction].str.strip().tolist()
    return predictions, references[keep].tolist(), {"reference": str(reference), "prediction": str(prediction)}


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
        logger.warning("%s: dropped %d line(s) with an empty reference", references_path, len(predictions) - len(pairs))
    if not pairs:
        raise UserError(f"{references_path}: every line is empty; there is nothing to score against")
    return [p for p, _ in pairs], [r for _, r in pairs]
