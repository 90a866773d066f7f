"""A recipe's splits: each from its file or `datasets` split, or held out of train by a seeded fraction (recorded for
generation), subsampled for training, and checked for rows repeated across splits."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from arabic_sft.data.columns import DataSpec, Split, data_spec, select
from arabic_sft.data.formats import load_dataset_split, read_table
from arabic_sft.data.mixture import MIXTURE, NAMES, SOURCE, ranges, rendered, rows_kept, sources
from arabic_sft.runtime.errors import UserError


SPLITS = ("train", "validation", "test")


def has_source(recipe, split: str) -> bool:
    """Whether the recipe (a source of its `datasets`) names a file or dataset split for `split`."""
    if getattr(recipe, "datasets", None):
        return any(has_source(source.args, split) for source in sources(recipe))
    return bool(getattr(recipe, f"{split}_file") or (recipe.dataset_name and getattr(recipe, f"{split}_split")))


def has_rows(recipe, split: str) -> bool:
    """Whether the recipe (a source of its `datasets`) has rows for `split`: its own, or held out of train."""
    if getattr(recipe, "datasets", None):
        return any(has_rows(source.args, split) for source in sources(recipe))
    return split == "train" or has_source(recipe, split) or bool(getattr(recipe, f"{split}_fraction"))


def data_files(recipe, wanted=SPLITS) -> list[str]:
    """The local files the recipe's splits among `wanted` are read from (every source's), for the sha256 a run
    manifest records."""
    views = [source.args for source in sources(recipe)] if getattr(recipe, "datasets", None) else [recipe]
    return [str(path) for view in views for split in wanted if (path := getattr(view, f"{split}_file"))]


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


def check_first_rows(recipe, wanted=SPLITS, rows: int = 5) -> None:
    """The local data files the recipe names among `wanted`, checked on their first `rows` rows as loading checks
    them (a missing file, a renamed column, an empty answer there: the same one line), without reading them whole:
    the console program refuses those in the command's first second. Hub datasets are left to the full load."""
    if getattr(recipe, "datasets", None):
        for source in sources(recipe):
            check_first_rows(source.args, wanted, rows)
        return
    for split in wanted:
        if path := getattr(recipe, f"{split}_file"):
            frame = read_table(path, recipe.csv_encoding, rows)
            spec = data_spec(recipe, [str(column) for column in frame.columns])
            select(frame, str(path), spec, split != "test", recipe.empty_cells)


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
    recipe,
    seed: int,
    wanted=SPLITS,
    require_answer: bool = True,
    keep: tuple[str, ...] = (),
    keep_if_present: bool = False,
) -> tuple[dict[str, Split], DataSpec, dict | None]:
    """(the recipe's splits among `wanted` that it has, its DataSpec, the fraction split's record or None).

    Each split comes from its file or `dataset_name` split; when the recipe has none for validation or test and sets
    `validation_fraction` / `test_fraction`, those rows are held out of train, seeded (recorded in the run manifest:
    generation later uses exactly those rows). `require_answer` applies to the test split; `keep`: columns carried
    beside the fields, and `keep_if_present` (`select`). A recipe with several sources (`datasets`): `load_mixture`.
    """
    if getattr(recipe, "datasets", None):
        return load_mixture(recipe, seed, wanted, require_answer, keep, keep_if_present)
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
        train = select(*raw["train"], spec, True, recipe.empty_cells, keep, keep_if_present)
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
                positions = tuple(train.positions[i] for i in rows[split])
                splits[split] = Split(part, train.names, f"{train.source} ({split} part)", train.carried, positions)
    for split in wanted:
        if split not in splits and raw.get(split) is not None:
            answer = require_answer or split != "test"
            splits[split] = select(*raw[split], spec, answer, recipe.empty_cells, keep, keep_if_present)
    return splits, spec, record


def load_mixture(recipe, seed: int, wanted, require_answer: bool, keep: tuple[str, ...], keep_if_present: bool):
    """`load_splits` of a recipe with several sources (data.mixture): each source's splits among `wanted` read as a
    one-source recipe reads them, its training rows weighted, rendered by its own prompt and stood together in the
    recipe's order; the record says, per source, its weight, the training rows used (positions in its file, as
    runs) and the rows held out."""
    keep = tuple(name for name in keep if name.lower() != SOURCE)  # the mixture's own column
    parts: dict[str, list[tuple]] = defaultdict(list)
    record: dict = {"source": "the mixture", "seed": seed, "sources": []}
    for number, source in enumerate(sources(recipe)):
        have = tuple(split for split in wanted if has_rows(source.args, split))
        if not have:
            continue
        splits, spec, held = load_splits(source.args, seed, have, require_answer, keep, keep_if_present)
        entry = {"id": source.id, "weight": source.weight() or "all", "read": {}}
        for name, split in splits.items():
            frame, positions = rendered(split, spec, source.id), split.positions
            if name == "train" and (kept := rows_kept(len(frame), source)) is not None:
                rows = drawn_rows(len(frame), kept, np.random.default_rng([seed, number]))  # sources draw apart
                frame, positions = frame.iloc[rows].reset_index(drop=True), tuple(positions[i] for i in rows)
            entry["read"][name] = split.source
            entry[f"{name}_rows"] = {"count": len(frame), "of": len(split.frame), "positions": ranges(positions)}
            parts[name].append((frame, positions, source.id))
        for name in ("validation", "test"):
            if held and f"{name}_rows" in held:
                record.setdefault(f"{name}_rows", {})[source.id] = held[f"{name}_rows"]
        record["sources"].append(entry)
    if not parts:
        raise UserError(f"no source of the recipe's datasets has {' or '.join(wanted)} rows")
    splits = {}
    for name in wanted:
        if items := parts.get(name):
            frame = pd.concat([item[0] for item in items], ignore_index=True)
            carried = tuple(column for column in frame.columns if column not in ("prompt", "answer", "input"))
            frame[list(carried)] = frame[list(carried)].fillna("")  # a column one source carries and another lacks
            where = f"the {name} rows of {', '.join(item[2] for item in items)}"
            positions = tuple(position for item in items for position in item[1])
            splits[name] = Split(frame, dict(NAMES), where, carried, positions)
    return splits, MIXTURE, record


def subsample_rows(num_rows: int, fraction: float, seed: int) -> list[int]:
    """The positions a reproducible random `fraction` of `num_rows` rows keeps, in order (SHEFAA used 10%)."""
    if not 0 < fraction <= 1:
        raise UserError(f"subsample_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(range(num_rows))
    return drawn_rows(num_rows, max(1, round(num_rows * fraction)), seed)


def drawn_rows(num_rows: int, keep: int, random_state) -> list[int]:
    """`keep` of `num_rows` positions drawn with `random_state` (a seed or numpy generator, pandas' `sample`), in
    order: the one way rows are drawn (subsampling, a source's weight)."""
    return sorted(int(i) for i in pd.RangeIndex(num_rows).to_series().sample(n=keep, random_state=random_state).index)


def read_as_trained(recipe, seed: int) -> tuple[dict[str, Split], DataSpec, dict | None]:
    """The recipe's splits as training and generation read them: train and validation subsampled as training reads
    them, test as generation reads it; each Split's `positions` say where its rows are in their file."""
    splits, spec, record = load_splits(recipe, seed, require_answer=False)
    for name in ("train", "validation"):
        if name in splits:
            split = splits[name]
            rows = subsample_rows(len(split.frame), recipe.subsample_fraction, seed)
            if len(rows) < len(split.frame):
                frame = split.frame.iloc[rows].reset_index(drop=True)
                splits[name] = replace(split, frame=frame, positions=tuple(split.positions[i] for i in rows))
    return splits, spec, record


def load_training_splits(
    recipe, seed: int, dropped: Callable | None = None
) -> tuple[dict[str, pd.DataFrame], DataSpec, dict | None]:
    """The recipe's train (and validation, when it has one) frames, subsampled, its DataSpec and the fraction split's
    record; before any model loads. `dropped` sees the test split too (the data check compares train with it).
    `dropped(splits, spec)`, when given, names training rows (positions in the train frame) to leave out."""
    splits, spec, record = read_as_trained(recipe, seed)
    if dropped is not None and (drop := set(dropped(splits, spec))):
        train = splits["train"]
        keep = [i for i in range(len(train.frame)) if i not in drop]
        frame = train.frame.iloc[keep].reset_index(drop=True)
        splits["train"] = replace(train, frame=frame, positions=tuple(train.positions[i] for i in keep))
    frames = {name: splits[name].frame for name in ("train", "validation") if name in splits}
    return frames, spec, record
