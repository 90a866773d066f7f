"""Few-shot baselines: the solved training rows shown before each prompt."""

import numpy as np
import pandas as pd

from arabic_sft.data.arabic import words
from arabic_sft.data.columns import DataSpec
from arabic_sft.data.mixture import SOURCE
from arabic_sft.runtime.errors import UserError


def choose_shots(pool: pd.DataFrame, answered: pd.DataFrame, spec: DataSpec, k: int, seed: int) -> list[int]:
    """Positions of `k` rows of `pool` (the training split) for few-shot prompts: drawn once with `seed` and the same
    for every answered row (one fixed context: rows stay comparable, reruns identical), skipping any pool row whose
    inputs equal an answered row's after Arabic normalization, so that no row is ever shown its own answer."""
    if k < 0:
        raise UserError(f"--shots {k}: must be 0 or more")

    def key(row: dict) -> tuple:
        return tuple(tuple(words(row.get(name, ""))) for name in spec.inputs)

    answered_keys = {key(row) for row in answered.to_dict("records")}
    records = pool.to_dict("records")
    order = np.random.RandomState(seed).permutation(len(records))
    chosen = [int(i) for i in order if key(records[i]) not in answered_keys][:k]
    if len(chosen) < k:
        raise UserError(
            f"--shots {k}: the training split has only {len(chosen)} rows whose inputs differ from every answered row"
        )
    return chosen


def choose_shots_by_source(pool: pd.DataFrame, answered: pd.DataFrame, spec: DataSpec, k: int, seed: int) -> dict:
    """A mixture's shots (data.mixture: rows marked with their source): {source: positions in `pool`} of `k` rows of
    that source, chosen as `choose_shots` chooses them among its rows, for each source that has rows to answer."""
    chosen = {}
    for name in dict.fromkeys(answered[SOURCE]):
        own = pool[pool[SOURCE] == name]
        found = choose_shots(own.reset_index(drop=True), answered[answered[SOURCE] == name], spec, k, seed)
        chosen[name] = [int(own.index[i]) for i in found]
    return chosen
