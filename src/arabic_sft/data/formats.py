"""Reading data: a file of any format the project accepts, a directory written by `datasets`' save_to_disk, or a
`datasets` dataset (Hub id or local directory), as a pandas frame; every unreadable source is one `UserError`."""

import json
from pathlib import Path

import pandas as pd

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
    """For a missing file under the project's data/ folder: where data/README.md says it comes from."""
    readme = Path("data") / "README.md"
    if path.parts[:1] == ("data",) and readme.is_file():
        return f"; {readme} says where this data comes from and how to get it (make data for the proverbs)"
    return ""


def read_table(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """A data file or saved dataset as a frame, by extension: CSV (every cell as text), JSON Lines / JSON, Parquet,
    or a `save_to_disk` directory. A missing, empty, undecodable or malformed source is a `UserError` naming it."""
    path = Path(path)
    if path.is_dir():
        return _read_saved_dataset(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found{where_data_comes_from(path)}")
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


def read_csv(path: str | Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Every cell of a CSV as text; a missing, empty, undecodable or malformed file is a `UserError` naming it."""
    if Path(path).suffix.lower() != ".csv":
        raise UserError(f"{path}: expected a .csv file")
    return read_table(path, encoding)
