"""Reading data: a file of any format the project accepts, a directory written by `datasets`' save_to_disk, or a
`datasets` dataset (Hub id or local directory), as a pandas frame; every unreadable source is one `UserError`."""

import json
from pathlib import Path

import pandas as pd

from arabic_sft.named import data_source_holding
from arabic_sft.runtime.errors import UserError


FORMATS = ".csv, .jsonl, .json, .parquet, or a directory written by datasets' save_to_disk"


def _json_line_error(path: Path) -> str:
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                return f"line {number} is not valid JSON: {error.msg[0].lower()}{error.msg[1:]} column {error.colno}"
    return "not JSON Lines"


def where_data_comes_from(path: Path) -> str:
    """For a missing file: how to get it, when a data source's folder holds it; else, under the project's data/
    folder, where data/README.md says it comes from."""
    if (source := data_source_holding(path)) and source["get"]:
        return f"; {source['get']}"
    readme = Path("data") / "README.md"
    if path.parts[:1] == ("data",) and readme.is_file():
        return f"; {readme} says where this data comes from and how to get it (make data for the proverbs)"
    return ""


def _json_lines(path: Path) -> bool:
    """Whether a .json/.jsonl file is JSON Lines (a .jsonl, or a .json that is not one array)."""
    return path.suffix.lower() == ".jsonl" or not path.read_text(encoding="utf-8-sig").lstrip().startswith("[")


def _json(path: Path, encoding: str, rows: int | None) -> pd.DataFrame:
    lines = _json_lines(path)
    return pd.read_json(path, lines=lines, dtype=False, encoding="utf-8-sig", nrows=rows if lines else None)


# Every CSV cell as text: "NA" or "0" in an answer is an answer, not a missing value or a number.
READERS = {
    ".csv": lambda path, encoding, rows: pd.read_csv(
        path, encoding=encoding, dtype=str, keep_default_na=False, nrows=rows
    ),  # fmt: skip
    ".jsonl": _json,
    ".json": _json,
    ".parquet": lambda path, encoding, rows: pd.read_parquet(path),
}


def read_table(path: str | Path, encoding: str = "utf-8-sig", rows: int | None = None) -> pd.DataFrame:
    """A data file or saved dataset as a frame, by extension: CSV (every cell as text), JSON Lines / JSON, Parquet,
    or a `save_to_disk` directory; `rows`: the first rows only where the format reads them alone (CSV, JSON Lines).
    A missing, empty, undecodable or malformed source is a `UserError` naming it."""
    path = Path(path)
    if path.is_dir():
        return _read_saved_dataset(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found{where_data_comes_from(path)}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: unsupported file type '{path.suffix.lower() or path.name}' (accepted: {FORMATS})")
    try:
        return reader(path, encoding, rows)
    except (ValueError, OSError) as error:  # pandas' and pyarrow's errors are ValueErrors and OSErrors
        raise _unreadable(path, encoding, error) from None


def _unreadable(path: Path, encoding: str, error: Exception) -> Exception:
    """The one line for a file its reader refused (or the error itself, when it is not the file's fault)."""
    suffix = path.suffix.lower()
    if isinstance(error, UnicodeDecodeError):
        if suffix == ".csv":
            hint = (
                "; if the file is in another encoding (e.g. Arabic Windows cp1256), set `csv_encoding` in the recipe"
            )
            return UserError(f"{path}: not valid {encoding} text (byte {error.start}){hint}")
        return UserError(f"{path}: not valid UTF-8 text (byte {error.start}); JSON must be UTF-8")
    if isinstance(error, pd.errors.EmptyDataError):
        return UserError(f"{path}: file is empty")
    if isinstance(error, pd.errors.ParserError):
        return UserError(f"{path}: malformed CSV ({str(error).strip().splitlines()[-1]})")
    reason = str(error).splitlines()[0].split("': ")[-1]  # without the path again
    if suffix in (".jsonl", ".json"):
        return UserError(f"{path}: malformed JSON ({_json_line_error(path) if _json_lines(path) else reason})")
    if suffix == ".parquet":
        return UserError(f"{path}: not a readable Parquet file ({reason})")
    return error


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


def read_csv(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Every cell of a CSV as text; a missing, empty, undecodable or malformed file is a `UserError` naming it."""
    if Path(path).suffix.lower() != ".csv":
        raise UserError(f"{path}: expected a .csv file")
    return read_table(path, encoding)
