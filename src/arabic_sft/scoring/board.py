"""Which model to ship: every system evaluated on the same test rows, in one table. A system is a recipe's fine-tuned
run (its seeds as one system, or each seed), one of its baselines, or a model behind an endpoint (make endpoint), of
one recipe or of several whose test rows are the same: a digest of each system's rows (inputs and references, as its
predictions CSV holds them) decides, and a system on other rows is named and left out, never mixed in.

The numbers are the comparison engine's (scoring.compare): each system against the best, ranked by the metric the
user names, is `compare([system], best)` — the very call `scripts/compare.py SYSTEM --baseline BEST` makes, so the
board's figures for a pair are make compare's for it by construction — and the p-values of each metric are corrected
for the number of systems compared with the best (Holm). It computes numbers only: `scoring.tables` renders them."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.runs import RecipeResults, beside, manifest_of, read_record
from arabic_sft.runtime.errors import UserError
from arabic_sft.scoring.compare import compare
from arabic_sft.scoring.scored import Run, System, identical_predictions, load_system, metric_keys, recipe_systems
from arabic_sft.scoring.tables import LOWER_IS_BETTER, label


def rows_digest(metrics: Path) -> tuple[str, int]:
    """(a sha256 of the test rows a scored system answered: each row's inputs and reference, in order, as the
    predictions CSV beside its metrics holds them; the number of rows). Two systems with the same digest were asked
    the same questions against the same references."""
    from arabic_sft.scoring.predictions import prediction_rows

    predictions = beside(metrics, "predictions").with_suffix(".csv")
    if not predictions.is_file():
        raise UserError(f"{predictions}: not found; the board checks each system's test rows from its predictions")
    frame, columns = prediction_rows(predictions)
    inputs = [name for name in frame.columns if name != columns["prediction"] and name != columns["reference"]]
    rows = frame[[*inputs, columns["reference"]]].fillna("").astype(str).values.tolist()
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest(), len(rows)


def endpoint_cost(metrics: Path) -> dict:
    """What an endpoint's answers cost, from its generation manifest: tokens per request (prompt and completion, as
    the server reported them) and seconds per request (each request's own time; with several in flight the run took
    less); {} for a local model's run."""
    record = read_record(manifest_of(beside(metrics, "predictions").with_suffix(".csv")))
    usage = ((record.get("config") or {}).get("generation") or {}).get("usage") or {}
    if not usage.get("requests"):
        return {}
    requests = usage["requests"]
    tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    return {"tokens_per_row": tokens / requests if tokens else None, "seconds_per_row": usage["seconds"] / requests}


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down correction of `p_values` for their number (None: not tested, left out of the count). Written
    here: scipy offers Benjamini-Hochberg only, and statsmodels for these five lines would be a dependency."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if p is not None and p == p)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for step, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - step) * p))
        adjusted[index] = running
    return adjusted


def ranked(runs: list[Run], metric: str) -> list[Run]:
    """`runs`, best first by `metric` (lower first where less is better), those without it last, ties in the order
    given."""

    def key(item):
        position, run = item
        value = run.metrics.get(metric)
        if value is None or value != value:
            return (1, 0.0, position)
        return (0, value if metric in LOWER_IS_BETTER else -value, position)

    return [run for _, run in sorted(enumerate(runs), key=key)]


def check_metric(runs: list[Run], metric: str) -> str:
    """The metric's key (given as a key, or as the tables label it), when some system has it; else one line."""
    keys = metric_keys(key for run in runs for key in run.metrics)
    found = [key for key in keys if metric in (key, label(key)) and any(run.metrics.get(key) is not None
                                                                         for run in runs)]  # fmt: skip
    if not found:
        have = [key for key in keys if any(run.metrics.get(key) is not None for run in runs)]
        raise UserError(f"--metric {metric}: no system has it (they have: {', '.join(have)})")
    return found[0]


def board(runs: list[Run], metric: str, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per (system, metric), systems ranked by `metric`: the comparison engine's value with its interval,
    the paired difference from the best system with its interval and p-value (each system's is `compare([system],
    best)`), `p_holm` (the p-values of each metric corrected for the systems compared with the best) and `rank`."""
    order = ranked(runs, metric)
    best = order[0]
    frames = [compare([], best, resamples, seed, level)]
    for run in order[1:]:
        pair = compare([run], best, resamples, seed, level)
        frames.append(pair[pair["run"] == run.name])
    table = pd.concat(frames, ignore_index=True)
    table["p_holm"] = None
    for rows in table.groupby("metric", sort=False).groups.values():
        table.loc[rows, "p_holm"] = pd.Series(holm(table.loc[rows, "p_value"].tolist()), index=rows, dtype=object)
    ranks = {run.name: position + 1 for position, run in enumerate(order) if run.metrics.get(metric) is not None}
    table.insert(0, "rank", table["run"].map(ranks))
    return table.rename(columns={"run": "system"})


@dataclass
class LeftOut:
    system: str
    why: str


def gather(recipes: list[str], split: str = "test", each_seed: bool = False) -> tuple[list[System], list[LeftOut],
                                                                                       dict]:  # fmt: skip
    """(the systems of `recipes` on the board's test rows, those left out and why, the rows: digest and count). The
    board's rows are those of the first recipe's first system (its fine-tuned run, else its zero-shot baseline)."""
    found = [system for recipe in recipes for system in recipe_systems(recipe, split, each_seed)]
    if not found:
        raise UserError(f"{', '.join(recipes)}: no scored system on the {split} split; make eval, make baseline or "
                        "make endpoint first")  # fmt: skip
    first = [system for system in found if system.recipe == recipes[0]]
    if not first:
        raise UserError(f"{RecipeResults(recipes[0]).path}: nothing scored on the {split} split; the board's rows are "
                        f"its test rows: make eval or make baseline RECIPE={recipes[0]} first")  # fmt: skip
    digests = {system.name: digest_of(system) for system in found}
    rows = {"digest": digests[first[0].name][0], "rows": digests[first[0].name][1], "from": first[0].name}
    kept, left = [], []
    for system in found:
        digest, count = digests[system.name]
        if digest == rows["digest"]:
            kept.append(system)
            continue
        how = f"{count} rows" if count != rows["rows"] else "the same number of rows, other questions or references"
        left.append(LeftOut(system.name, f"other test rows ({how}, digest {digest[:12]}; the board's: {rows['rows']} "
                                         f"rows, {rows['digest'][:12]})"))  # fmt: skip
    return kept, left, rows


def digest_of(system: System) -> tuple[str, int]:
    """The rows' digest of a system; of several seeds, the first's (the seeds are checked to be on the same rows when
    they are loaded as one system)."""
    return rows_digest(system.first)


def system_facts(systems: list[System]) -> pd.DataFrame:
    """A row per system: recipe, kind, seeds, and an endpoint's cost per row."""
    rows = []
    for system in systems:
        seeds = len(system.metrics) if isinstance(system.metrics, list) else None
        rows.append({"system": system.name, "recipe": system.recipe, "kind": system.kind, "seeds": seeds,
                     **endpoint_cost(system.first)})  # fmt: skip
    facts = pd.DataFrame(rows)
    for column in ("tokens_per_row", "seconds_per_row"):
        if column not in facts:
            facts[column] = np.nan
    return facts


def make_board(recipes: list[str], metric: str, split: str = "test", each_seed: bool = False,
               resamples: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """The board of `recipes` (the first's test rows) and its record: the rows' digest, the systems left out, the
    settings. The frame is what board_<split>.csv holds; the record, board_<split>.json."""
    systems, left, rows = gather(recipes, split, each_seed)
    runs = [load_system(system.metrics, system.name) for system in systems]
    key = check_metric(runs, metric)
    table = board(runs, key, resamples, seed)
    facts = system_facts(systems).drop(columns=["seeds"])
    table = table.merge(facts, on="system", how="left")
    columns = ["rank", "system", "recipe", "kind", "metric", "value", "ci_low", "ci_high", "diff", "diff_ci_low",
               "diff_ci_high", "p_value", "p_holm", *(c for c in ("seeds", "seed_sd", "seed_share") if c in table),
               "tokens_per_row", "seconds_per_row"]  # fmt: skip
    record = {"recipes": recipes, "split": split, "metric": key, "best": ranked(runs, key)[0].name,
              "resamples": resamples, "seed": seed, "level": 0.95, "each_seed": each_seed, "rows": rows,
              "systems": [system.name for system in systems],
              "left_out": [{"system": item.system, "why": item.why} for item in left],
              "notes": identical_predictions(runs)}  # fmt: skip
    return table[columns], record
