"""Did fine-tuning help? The comparison engine: every metric with its bootstrap confidence interval and, against a
baseline, the paired difference, its interval and a paired bootstrap p-value, from the per-example scores score
writes, overall and within each group of a column. One matrix of resampled row indices serves every run and every
metric, so differences are paired by construction. It computes numbers only: `scoring.tables` renders them."""

import warnings

import numpy as np
import pandas as pd

from arabic_sft.scoring.scored import Run, check_same_examples, metric_keys
from arabic_sft.stats import Bootstrap, interval, paired_p_value, seed_share, two_level


# A group with fewer rows than this gets its means but no interval or p-value: a bootstrap over a handful of rows
# says little and looks precise.
MIN_GROUP_ROWS = 10


def compare(runs: list[Run], baseline: Run, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per (run, metric): value with its bootstrap interval and, against `baseline`, the paired difference,
    its interval and a two-sided paired bootstrap p-value (the share of resampled differences, centred on zero, at
    least as far from zero as the observed one). Published runs and corpus-level metrics get values only."""
    scored = [run for run in [baseline, *runs] if run.references is not None]
    if scored:
        check_same_examples(scored)
    seeded = {run.name: np.random.default_rng([seed, 1]).integers(0, len(run.seeds), (resamples, len(run.seeds)))
              for run in runs if run.seeds}  # fmt: skip
    keys = metric_keys(key for run in [baseline, *runs] for key in run.metrics)
    columns = bootstrap_columns([baseline, *runs], baseline, keys, seeded)
    means = resampled(columns, len(scored[0].references) if scored else 0, resamples, seed)
    rows = [
        metric_row(run, baseline, key, means, seeded.get(run.name), level) for run in [baseline, *runs] for key in keys
    ]
    return pd.DataFrame([row for row in rows if row is not None])


def bootstrap_columns(runs: list[Run], baseline: Run, keys: list[str], seeded: dict) -> dict[tuple, np.ndarray]:
    """Every column whose resampled means a row needs (a run's scores, each seed's, their differences from the
    baseline's), to be averaged over the resamples in one pass: (run, metric, "value"|"diff", part) -> values."""
    columns: dict[tuple, np.ndarray] = {}
    for run in runs:
        for key in (key for key in keys if key in run.scores):
            differs = run is not baseline and key in baseline.scores and run.metrics.get(key) is not None
            differs = differs and baseline.metrics.get(key) is not None
            parts = [seed_run.scores[key] for seed_run in run.seeds] if run.name in seeded else [run.scores[key]]
            for part, values in enumerate(parts):
                columns[(run.name, key, "value", part)] = values
                if differs:
                    columns[(run.name, key, "diff", part)] = values - baseline.scores[key]
    return columns


def metric_row(run: Run, baseline: Run, key: str, means: dict, seeded, level: float) -> dict | None:
    """`compare`'s row of one run and metric (None when the run has neither its value nor its scores); `seeded`: the
    run's resampled seeds when it is a system of several seeds."""
    value = run.metrics.get(key)
    if value is None and key not in run.scores:
        return None
    row = {"run": run.name, "metric": key, "value": value, "ci_low": None, "ci_high": None, "diff": None,
           "diff_ci_low": None, "diff_ci_high": None, "p_value": None}  # fmt: skip
    seeds = seeded is not None and key in run.scores  # two levels: the seeds, then the rows within them
    stacked = np.stack([seed_run.scores[key] for seed_run in run.seeds]) if seeds else None
    if seeds:
        per_seed = [seed_run.metrics.get(key) for seed_run in run.seeds]
        row.update(seeds=len(run.seeds), seed_sd=float(np.std(per_seed, ddof=1)) if None not in per_seed else None)
    if key in run.scores:
        values = means[(run.name, key, "value")]
        samples = two_level(stacked, values, seeded)["both"] if seeds else values[:, 0]
        row["ci_low"], row["ci_high"] = interval(samples, level)
    if run is not baseline and value is not None and baseline.metrics.get(key) is not None:
        row["diff"] = value - baseline.metrics[key]
        if key in run.scores and key in baseline.scores:
            scores = stacked if seeds else run.scores[key]
            diffs = means[(run.name, key, "diff")]
            row.update(paired_difference(scores, baseline.scores[key], diffs, seeded if seeds else None, level))
    return row


def paired_difference(scores: np.ndarray, baseline: np.ndarray, means: np.ndarray, seeded, level: float) -> dict:
    """The paired difference of `scores` (per row; or seeds x rows with `seeded`) from the baseline's, over the rows
    where both have a score, with its interval and p-value from the resampled `means` of the differences."""
    differences = scores - baseline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        by_row = np.nanmean(differences, axis=0) if seeded is not None else differences  # seeds averaged
    observed = float(np.nanmean(by_row)) if not np.isnan(by_row).all() else np.nan
    found = {"diff": observed}  # paired: over the examples where both runs have a score
    if seeded is not None:
        parts = two_level(differences, means, seeded)
        samples, found["seed_share"] = parts["both"], seed_share(parts)
    else:
        samples = means[:, 0]
    found["diff_ci_low"], found["diff_ci_high"] = interval(samples, level)
    found["p_value"] = paired_p_value(samples, observed)
    return found


def resampled(columns: dict[tuple, np.ndarray], n: int, resamples: int, seed: int) -> dict[tuple, np.ndarray]:
    """The bootstrap means of `columns` ((run, metric, kind, part) -> per-example values) over the resamples of `n`
    rows drawn with `seed`: (run, metric, kind) -> resamples x parts (a part: one seed's run, or the run itself)."""
    if not columns:
        return {}
    averaged = Bootstrap(n, resamples, seed).means(np.column_stack(list(columns.values())))
    means: dict[tuple, list] = {}
    for position, (run, key, kind, _) in enumerate(columns):
        means.setdefault((run, key, kind), []).append(averaged[:, position])
    return {name: np.stack(parts, axis=1) for name, parts in means.items()}


def compare_groups(
    runs: list[Run],
    baseline: Run,
    labels: list[str],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_rows: int = MIN_GROUP_ROWS,
) -> pd.DataFrame:
    """`compare` within each group of examples (`labels`: each example's group), largest group first: the table of
    `compare` with `group` and `group_rows` columns; a group under `min_rows` rows keeps its means and differences
    but no interval or p-value (`too_small`). Published runs, without per-example scores, are left out."""
    scored = [run for run in runs if run.references is not None]
    labels = np.asarray(labels, dtype=object)
    sizes = pd.Series(labels).value_counts()
    frames = []
    for group in sorted(sizes.index, key=lambda name: (-sizes[name], str(name))):
        rows = np.flatnonzero(labels == group)
        table = compare([run.subset(rows) for run in scored], baseline.subset(rows), resamples, seed, level)
        table.insert(0, "group", group)
        table.insert(1, "group_rows", len(rows))
        table["too_small"] = len(rows) < min_rows
        if len(rows) < min_rows:
            table[["ci_low", "ci_high", "diff_ci_low", "diff_ci_high", "p_value"]] = None
        frames.append(table)
    return pd.concat(frames, ignore_index=True)
