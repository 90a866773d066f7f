"""The one place that reads data: files of any format or a `datasets` dataset, the recipe's columns, the splits, and
the checks (missing columns, empty cells, leakage between splits).

What is specific to a dataset (column names, the prompt, the predictions' column names) lives in its recipe: `columns`
maps each `{placeholder}` of `prompt_template` to the column that holds it, `answer_column` names the answer's
placeholder. Data already in TRL's formats needs neither: a `messages` column (chat turns) or `prompt`/`completion`.
"""

import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.cli import UserError


logger = logging.getLogger(__name__)

FORMATS = ".csv, .jsonl, .json, .parquet, or a directory written by datasets' save_to_disk"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataSpec:
    """How rows become examples. `kind`: 'template' (the prompt template filled with input columns, one answer
    column), 'messages' (TRL's conversational format) or 'prompt_completion' (TRL's prompt/completion columns).
    `accepted`: each field (placeholder) and the column names that may hold it; `answer`: the answer's field;
    `output`: predictions CSV names the recipe sets (`output_columns`; `generated` names the generated column)."""

    kind: str
    template: str | None
    accepted: dict[str, tuple[str, ...]]
    answer: str
    output: dict[str, str]

    @property
    def inputs(self) -> list[str]:
        return [name for name in self.accepted if name != self.answer]


def _names(value, key: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise UserError(f"columns: '{key}' must be a column name or a list of names, got {value!r}")
    return tuple(name.replace("\ufeff", "").strip().lower() for name in names)


def template_fields(template: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise UserError(f"prompt_template: {error} (write a literal brace as {{{{ or }}}})") from None
    if "" in names or any(not name.isidentifier() for name in names):
        raise UserError(f"prompt_template: placeholders must be names, like {{question}} (found {names})")
    return list(dict.fromkeys(names))


def data_spec(recipe, columns_found: list[str] | None = None) -> DataSpec:
    """The recipe's `DataSpec`. Without `prompt_template`, data in TRL's own formats (found among `columns_found`):
    a `messages` column, or `prompt` and `completion` columns."""
    output = dict(recipe.output_columns or {})
    if recipe.prompt_template:
        fields = template_fields(recipe.prompt_template)
        mapping = dict(recipe.columns or {})
        answer = recipe.answer_column
        unknown = sorted(set(mapping) - set(fields) - {answer})
        if unknown:
            raise UserError(
                f"columns: {unknown} are not placeholders of prompt_template ({fields}) nor the "
                f"answer_column ('{answer}')"
            )
        if answer in fields:
            raise UserError(
                f"answer_column '{answer}' is also a placeholder of prompt_template: the prompt would "
                "contain its answer"
            )
        accepted = {name: _names(mapping.get(name, name), name) for name in [*fields, answer]}
        return DataSpec("template", recipe.prompt_template, accepted, answer, output)
    found = {name.replace("\ufeff", "").strip().lower() for name in columns_found or []}
    if "messages" in found:
        return DataSpec("messages", None, {"messages": ("messages",)}, "answer", output)  # answer: the last turn
    if {"prompt", "completion"} <= found:
        return DataSpec(
            "prompt_completion", None, {"prompt": ("prompt",), "completion": ("completion",)}, "completion", output
        )
    raise UserError(
        "prompt_template is not set in the recipe, and the data has no `messages` column nor `prompt` and "
        f"`completion` columns (found: {', '.join(columns_found or [])}); set prompt_template and columns, or a task "
        "preset (`task: NAME` in a recipe, generate.py --task NAME)"
    )


def _json_line_error(path: Path) -> str:
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                return f"line {number}: {error.msg}"
    return "not JSON Lines"


def read_table(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """A data file or saved dataset as a frame, by extension: CSV (every cell as text), JSON Lines / JSON, Parquet,
    or a `save_to_disk` directory. A missing, empty, undecodable or malformed source is a `UserError` naming it."""
    path = Path(path)
    if path.is_dir():
        return _read_saved_dataset(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Everything as text: "NA" or "0" in an answer is an answer, not a missing value or a number.
            return pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False)
        if suffix in (".jsonl", ".json"):
            text = path.read_text(encoding="utf-8-sig")
            lines = suffix == ".jsonl" or not text.lstrip().startswith("[")
            return pd.read_json(path, lines=lines, dtype=False, encoding="utf-8-sig")
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except UnicodeDecodeError as error:
        hint = (
            "; if the file is in another encoding (e.g. Arabic Windows cp1256), set `csv_encoding` in the recipe"
            if suffix == ".csv"
            else "; JSON must be UTF-8"
        )
        raise UserError(
            f"{path}: not valid {encoding if suffix == '.csv' else 'UTF-8'} text (byte {error.start}){hint}"
        ) from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty") from None
    except pd.errors.ParserError as error:
        raise UserError(f"{path}: malformed CSV ({str(error).strip().splitlines()[-1]})") from None
    except (ValueError, OSError) as error:  # pyarrow's errors for a damaged Parquet file are both
        reason = str(error).splitlines()[0].split("': ")[-1]  # without the path again
        if suffix in (".jsonl", ".json"):
            raise UserError(f"{path}: malformed JSON ({_json_line_error(path) if lines else reason})") from None
        if suffix == ".parquet":
            raise UserError(f"{path}: not a readable Parquet file ({reason})") from None
        raise
    raise UserError(f"{path}: unsupported file type '{suffix or path.name}' (accepted: {FORMATS})")


def _read_saved_dataset(path: Path) -> pd.DataFrame:
    from datasets import Dataset, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except FileNotFoundError:
        raise UserError(
            f"{path}: a directory, but not one written by datasets' save_to_disk (accepted: {FORMATS})"
        ) from None
    if not isinstance(dataset, Dataset):
        raise UserError(
            f"{path}: holds several splits ({', '.join(dataset)}); name it as `dataset_name: {path}` "
            "with train_split/validation_split/test_split, or give one split's directory"
        )
    return dataset.to_pandas()


def load_dataset_split(name: str, config: str | None, split: str, revision: str | None = None) -> pd.DataFrame:
    """One split of `datasets.load_dataset(name, config)`: a Hub id, or a local directory of data files. A directory
    written by `save_to_disk` is read with `load_from_disk`."""
    import datasets

    local = Path(name)
    if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.Dataset):
            raise UserError(f"{name}: a single saved split; name it as train_file: {name}")
    else:
        try:
            loaded = datasets.load_dataset(name, config, revision=revision)
        except FileNotFoundError as error:
            raise UserError(f"dataset_name {name}: not found ({str(error).splitlines()[0]})") from None
        except (ValueError, datasets.exceptions.DatasetNotFoundError) as error:
            raise UserError(f"dataset_name {name}: {str(error).splitlines()[0]}") from None
    if split not in loaded:
        raise UserError(f"dataset_name {name}: no split '{split}' (found: {', '.join(loaded)})")
    return loaded[split].to_pandas()


def columns_by_name(frame: pd.DataFrame) -> dict[str, str]:
    """A frame's columns keyed by their lower-cased name, with a byte-order mark and surrounding spaces removed."""
    return {str(column).replace("\ufeff", "").strip().lower(): column for column in frame.columns}


def _text(value) -> str:
    """A cell as stripped text; a missing value (None, NaN, pandas' NA) as ""."""
    if value is None or (np.isscalar(value) or value is pd.NA) and pd.isna(value):
        return ""
    return str(value).strip()


def _messages(value, source: str, line: str) -> list[dict] | None:
    """A `messages` cell as a list of {role, content} turns (a JSON string in CSV); None when empty."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise UserError(f"{source}: column 'messages', {line}: not JSON ({error.msg})") from None
    value = list(value) if isinstance(value, (list, tuple, np.ndarray)) else value
    if not value:
        return None
    if not all(isinstance(turn, dict) and {"role", "content"} <= set(turn) for turn in value):
        raise UserError(f"{source}: column 'messages', {line}: each turn must have 'role' and 'content'")
    return [{"role": str(turn["role"]), "content": _text(turn["content"])} for turn in value]


@dataclass
class Split:
    """A split's rows under the spec's field names, and the source column each field came from."""

    frame: pd.DataFrame
    names: dict[str, str]
    source: str


def select(
    frame: pd.DataFrame, source: str, spec: DataSpec, require_answer: bool = True, empty_cells: str = "drop"
) -> Split:
    """The spec's fields of `frame` as stripped text (or chat turns). Column names match case-insensitively, with a
    byte-order mark or surrounding spaces ignored. Rows with an empty cell are dropped with a count
    (`empty_cells="drop"`) or rejected (`"error"`). Without `require_answer`, the answer column is optional."""
    if frame.empty:
        raise UserError(
            f"{source}: has a header but no rows" if source.lower().endswith(".csv") else f"{source}: has no rows"
        )
    found = columns_by_name(frame)
    selected = {}
    for name, accepted in spec.accepted.items():
        match = next((found[alias] for alias in accepted if alias in found), None)
        if match is not None:
            selected[name] = match
        elif name != spec.answer or require_answer:
            raise UserError(
                f"{source}: no column for '{name}' (found: {', '.join(map(str, frame.columns))}; "
                f"accepted: {', '.join(accepted)}, in any case)"
            )
    csv = source.lower().endswith(".csv")

    def line(index) -> str:  # a CSV's line (1-based, after the header), else the row's number (1-based)
        return f"line {int(index) + 2}" if csv else f"row {int(index) + 1}"

    if spec.kind == "messages":
        column = selected["messages"]
        data = pd.DataFrame(
            {"messages": [_messages(v, source, line(i)) for i, v in frame[column].items()]}, index=frame.index
        )
        empty = data["messages"].isna()
    else:
        is_chat = spec.kind == "prompt_completion" and any(
            isinstance(v, (list, np.ndarray)) for v in frame[selected["prompt"]]
        )
        if is_chat:  # TRL's conversational prompt/completion: kept as chat turns
            data = pd.DataFrame(
                {
                    name: [_messages(v, source, line(i)) for i, v in frame[column].items()]
                    for name, column in selected.items()
                },
                index=frame.index,
            )
            empty = data.isna().any(axis=1)
        else:
            data = pd.DataFrame(
                {name: frame[column].map(_text) for name, column in selected.items()}, index=frame.index
            )
            empty = (data == "").any(axis=1)
    if empty.any():
        rows = ", ".join(str(line(i)) for i in data.index[empty][:5])
        if empty_cells == "error":
            raise UserError(f"{source}: {int(empty.sum())} row(s) with an empty cell ({rows}...)")
        logger.warning("%s: dropped %d row(s) with an empty cell (%s...)", source, int(empty.sum()), rows)
        data = data[~empty]
    if data.empty:
        raise UserError(f"{source}: no rows left after dropping empty cells")
    names = {name: str(column).replace("\ufeff", "").strip() for name, column in selected.items()}
    return Split(data.reset_index(drop=True), names, source)


def load_file(
    path: str | Path,
    spec: DataSpec,
    require_answer: bool = True,
    empty_cells: str = "drop",
    encoding: str = "utf-8-sig",
) -> Split:
    """One data file read and checked under `spec` (see `select`)."""
    return select(read_table(path, encoding), str(path), spec, require_answer, empty_cells)


def has_source(recipe, split: str) -> bool:
    return bool(getattr(recipe, f"{split}_file") or (recipe.dataset_name and getattr(recipe, f"{split}_split")))


def read_source(recipe, split: str) -> tuple[pd.DataFrame, str] | None:
    """The raw frame of one split and its name for messages: the recipe's `<split>_file`, else its `dataset_name`'s
    `<split>_split`; None when the recipe names neither."""
    path = getattr(recipe, f"{split}_file")
    if path:
        return read_table(path, recipe.csv_encoding), str(path)
    hub_split = getattr(recipe, f"{split}_split")
    if recipe.dataset_name and hub_split:
        frame = load_dataset_split(recipe.dataset_name, recipe.dataset_config, hub_split, recipe.dataset_revision)
        return frame, f"{recipe.dataset_name}[{hub_split}]"
    return None


def held_out_rows(num_rows: int, validation_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Row positions of a file split into train/validation/test by fractions: a seeded permutation, test rows first,
    then validation; each part keeps the file's order. The same inputs give the same split on every machine."""
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise UserError(f"{name} must be in [0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise UserError("validation_fraction + test_fraction must leave rows to train on")
    order = np.random.RandomState(seed).permutation(num_rows)
    sizes = {
        name: int(round(num_rows * fraction)) if fraction else 0
        for name, fraction in (("test", test_fraction), ("validation", validation_fraction))
    }
    for name, size in sizes.items():
        if size == 0 and (test_fraction if name == "test" else validation_fraction):
            raise UserError(f"{name}_fraction of {num_rows} rows leaves no {name} rows")
    parts = {"test": order[: sizes["test"]], "validation": order[sizes["test"] : sizes["test"] + sizes["validation"]]}
    parts["train"] = order[sizes["test"] + sizes["validation"] :]
    return {name: sorted(int(i) for i in rows) for name, rows in parts.items()}


def load_splits(
    recipe, seed: int, wanted=SPLITS, require_answer: bool = True
) -> tuple[dict[str, Split], DataSpec, dict | None]:
    """(the recipe's splits among `wanted` that it has, its DataSpec, the fraction split's record or None).

    Each split comes from its file or `dataset_name` split; when the recipe has none for validation or test and sets
    `validation_fraction` / `test_fraction`, those rows are held out of train, seeded (recorded in the run manifest:
    generation later uses exactly those rows). `require_answer` applies to the test split.
    """
    fractions = {split: getattr(recipe, f"{split}_fraction") for split in ("validation", "test")}
    held_out = [split for split, fraction in fractions.items() if fraction and not has_source(recipe, split)]
    raw = {split: read_source(recipe, split) for split in SPLITS if split in wanted or (split == "train" and held_out)}
    if raw.get("train") is None and (held_out or "train" in wanted):
        raise UserError("the recipe names no training data: set train_file, or dataset_name (with train_split)")
    first = next((item for item in raw.values() if item is not None), None)
    if first is None:
        raise UserError(f"the recipe names no {' or '.join(wanted)} data")
    spec = data_spec(recipe, [str(column) for column in first[0].columns])
    splits, record = {}, None
    if held_out:
        train = select(*raw["train"], spec, True, recipe.empty_cells)
        rows = held_out_rows(
            len(train.frame),
            fractions["validation"] if "validation" in held_out else 0,
            fractions["test"] if "test" in held_out else 0,
            seed,
        )
        record = {
            "source": train.source,
            "rows": len(train.frame),
            "seed": seed,
            **{f"{split}_fraction": fractions[split] for split in held_out},
            **{f"{split}_rows": rows[split] for split in held_out},
        }
        for split in ("train", *held_out):
            if split in wanted:
                part = train.frame.iloc[rows[split]].reset_index(drop=True)
                splits[split] = Split(part, train.names, f"{train.source} ({split} part)")
    for split in wanted:
        if split not in splits and raw.get(split) is not None:
            splits[split] = select(*raw[split], spec, require_answer or split != "test", recipe.empty_cells)
    return splits, spec, record


def subsample(data: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A reproducible random `fraction` of the rows, in their original order (the SHEFAA baseline used 10%)."""
    if not 0 < fraction <= 1:
        raise UserError(f"subsample_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return data
    keep = max(1, round(len(data) * fraction))
    return data.sample(n=keep, random_state=seed).sort_index().reset_index(drop=True)


def load_training_splits(recipe, seed: int) -> tuple[dict[str, pd.DataFrame], DataSpec, dict | None]:
    """The recipe's train (and validation, when it has one) frames, subsampled, its DataSpec and the fraction split's
    record; before any model loads. Rows repeated across splits are reported (the test split is read for that)."""
    splits, spec, record = load_splits(recipe, seed, require_answer=False)
    frames = {
        name: subsample(splits[name].frame, recipe.subsample_fraction, seed)
        for name in ("train", "validation")
        if name in splits
    }
    if "validation" in splits:
        report_overlap(frames["train"], frames["validation"], splits["validation"].source, spec, "validation")
    if "test" in splits:
        report_overlap(splits["train"].frame, splits["test"].frame, splits["test"].source, spec, "test")
    return frames, spec, record


def normalized_key(row: dict, fields: list[str]) -> tuple:
    """A row's `fields` compared as Arabic text: diacritics and tatweel removed, alef forms unified, case and spaces
    folded, so that rows that differ only in spelling variants match."""
    from arabic_sft.metrics import normalize_arabic

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


def choose_shots(pool: pd.DataFrame, answered: pd.DataFrame, spec: DataSpec, k: int, seed: int) -> list[int]:
    """Positions of `k` rows of `pool` (the training split) for few-shot prompts: drawn once with `seed` and the same
    for every answered row (one fixed context: rows stay comparable, reruns identical), skipping any pool row whose
    inputs equal an answered row's after Arabic normalization, so that no row is ever shown its own answer."""
    if k < 0:
        raise UserError(f"--shots {k}: must be 0 or more")
    answered_keys = {normalized_key(row, spec.inputs) for row in answered.to_dict("records")}
    records = pool.to_dict("records")
    order = np.random.RandomState(seed).permutation(len(records))
    chosen = [int(i) for i in order if normalized_key(records[i], spec.inputs) not in answered_keys][:k]
    if len(chosen) < k:
        raise UserError(
            f"--shots {k}: the training split has only {len(chosen)} rows whose inputs differ from every answered row"
        )
    return chosen


def prediction_columns(spec: DataSpec, names: dict[str, str]) -> dict[str, str]:
    """Names of the predictions CSV's columns: each input under the user's own column name, then
    `Reference_<answer column>` and `Generated_<answer column>`; the recipe's `output_columns` override any."""
    answer = "Answer" if spec.kind == "messages" else names.get(spec.answer, spec.answer)
    columns = {name: names.get(name, name) for name in spec.inputs}
    columns[spec.answer] = f"Reference_{answer}"
    columns["generated"] = f"Generated_{answer}"
    columns.update(spec.output)
    return columns


def read_csv(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Every cell of a CSV as text; a missing, empty, undecodable or malformed file is a `UserError` naming it."""
    if Path(path).suffix.lower() != ".csv":
        raise UserError(f"{path}: expected a .csv file")
    return read_table(path, encoding)


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
    reference = _find_column(frame, path, reference_column, REFERENCE_COLUMNS, REFERENCE_PREFIX, "reference")
    prediction = _find_column(frame, path, prediction_column, PREDICTION_COLUMNS, PREDICTION_PREFIX, "prediction")
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
        logger.warning(
            "%s: dropped %d line(s) with an empty reference", references_path, len(predictions) - len(pairs)
        )
    if not pairs:
        raise UserError(f"{references_path}: every line is empty; there is nothing to score against")
    return [p for p, _ in pairs], [r for _, r in pairs]
