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


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
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
    frame = _read_csv(path, encoding)
    if frame.empty:
        raise UserError(f"{path}: has a header but no rows")

    found = {str(column).replace("\ufeff", "").strip().lower(): column for column in frame.columns}
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
    return splits
