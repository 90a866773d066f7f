"""Did fine-tuning help? The comparison engine: every metric with its bootstrap confidence interval and, against a
baseline, the paired difference, its interval and a paired bootstrap p-value, from the per-example scores score
writes, overall and within each group of a column. One matrix of resampled row indices serves every run and every
metric, so differences are paired by construction. It computes numbers only: `scoring.tables` renders them."""

import warnings

import numpy as np
import pandas as pd

from arabic_sft.scoring.scored import Run, check_same_examples, metric_keys
from arabic_sft.stats import interval, paired_p_value, resample_indices, resampled_means, seed_share, two_level


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
    n = len(scored[0].references) if scored else 0
    indices = resample_indices(n, resamples, seed) if n else None
    seeded = {run.name: np.random.default_rng([seed, 1]).integers(0, len(run.seeds), (resamples, len(run.seeds)))
              for run in runs if run.seeds}  # fmt: skip
    rows = []
    keys = metric_keys(key for run in [baseline, *runs] for key in run.metrics)
    for run in [baseline, *runs]:
        for key in keys:
            value = run.metrics.get(key)
            row = {
                "run": run.name,
                "metric": key,
                "value": value,
                "ci_low": None,
                "ci_high": None,
                "diff": None,
                "diff_ci_low": None,
                "diff_ci_high": None,
                "p_value": None,
            }
            seeds = run.name in seeded and key in run.scores  # two levels: the seeds, then the rows within them
            if seeds:
                per_seed = [seed_run.metrics.get(key) for seed_run in run.seeds]
                row.update(
                    seeds=len(run.seeds), seed_sd=float(np.std(per_seed, ddof=1)) if None not in per_seed else None
                )
            if key in run.scores:
                stacked = np.stack([seed_run.scores[key] for seed_run in run.seeds]) if seeds else None
                samples = (
                    two_level(stacked, indices, seeded[run.name])["both"]
                    if seeds
                    else resampled_means(run.scores[key], indices)
                )
                row["ci_low"], row["ci_high"] = interval(samples, level)
            if run is not baseline and value is not None and baseline.metrics.get(key) is not None:
                row["diff"] = value - baseline.metrics[key]
                if key in run.scores and key in baseline.scores:
                    differences = (stacked if seeds else run.scores[key]) - baseline.scores[key]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        by_row = np.nanmean(differences, axis=0) if seeds else differences  # seeds averaged
                    observed = float(np.nanmean(by_row)) if not np.isnan(by_row).all() else np.nan
                    if seeds:
                        parts = two_level(differences, indices, seeded[run.name])
                        samples, row["seed_share"] = parts["both"], seed_share(parts)
                    else:
                        samples = resampled_means(differences, indices)
                    row["diff"] = observed  # paired: over the examples where both runs have a score
                    row["diff_ci_low"], row["diff_ci_high"] = interval(samples, level)
                    row["p_value"] = paired_p_value(samples, observed)
            if value is not None or key in run.scores:
                rows.append(row)
    return pd.DataFrame(rows)


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
