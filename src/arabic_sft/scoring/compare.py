"""Did fine-tuning help? Bootstrap confidence intervals of every metric and paired bootstrap tests against a baseline,
from the per-example scores score.py writes (`metrics_<split>.examples.csv`). Vectorized with numpy: one matrix of
resampled row indices serves every run and every metric, so differences are paired by construction."""

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.runs import RecipeResults, beside, is_split_file, metrics_files, seed_number
from arabic_sft.runtime.errors import UserError
from arabic_sft.scoring.metrics import CORPUS_KEYS, METRIC_KEYS


# Means over examples, from the per-example scores; `empty_rate` is the mean of the `empty` column.
EXAMPLE_KEYS = tuple(key for key in METRIC_KEYS[1:] if key not in CORPUS_KEYS)
# A judge's criteria (scripts/judge.py: judge_X.json beside metrics_X.json) are metrics like the others.
JUDGE_PREFIX = "judge_"
# General ability (arabic_sft.general): a task's per-question score, GENERAL_PREFIX + the task's name.
GENERAL_PREFIX = "general:"


def metric_keys(names) -> list[str]:
    """The metrics to show, in order: score.py's, then the judge's criteria and the general-ability tasks found among
    `names`."""
    names = list(dict.fromkeys(names))
    judged = [name for name in names if str(name).startswith(JUDGE_PREFIX)]
    general = [name for name in names if str(name).startswith(GENERAL_PREFIX)]
    return [*METRIC_KEYS[1:], *judged, *general]


def judge_beside(metrics_path: Path) -> Path | None:
    """judge_X.json beside metrics_X.json (X.judge.json beside X.metrics.json), when the run was judged."""
    judged = beside(metrics_path, "judge")
    return judged if judged.is_file() else None


def add_judge_scores(metrics_path: Path, metrics: dict, scores: dict, references: list[str]) -> None:
    """The judge's mean and per-example scores of each criterion into `metrics` and `scores`, checked to be of the
    same examples."""
    judged = judge_beside(metrics_path)
    if judged is None:
        return
    summary = json.loads(judged.read_text(encoding="utf-8"))
    examples = pd.read_csv(judged.with_suffix(".examples.csv"), keep_default_na=False, na_values=[""], dtype=str)
    if examples["reference"].fillna("").tolist() != references:
        raise UserError(f"{judged}: judged other examples than {metrics_path} scored; judge the predictions again")
    for key in summary:
        if key.startswith(JUDGE_PREFIX) and key in examples:
            metrics[key] = summary[key]
            scores[key] = pd.to_numeric(examples[key], errors="coerce").to_numpy(dtype=float)


def _pairwise_row(run_name: str, path: Path) -> str:
    found = json.loads(path.read_text(encoding="utf-8"))
    shares = [
        f"{found[key]['share']:.0%} [{found[key]['low']:.0%}, {found[key]['high']:.0%}]" if key in found else "n/a"
        for key in ("win", "tie", "loss")
    ]
    order = f"{found['order_dependent']:.0%}" if "order_dependent" in found else "n/a"
    against = path.stem.split(".vs_", 1)[1]
    return f"| {run_name} | {against} | {' | '.join(shares)} | {order} | {found['unusable']} of {found['pairs']} |"


def judge_section(runs: list["Run"]) -> list[str]:
    """Markdown lines on the judge from its files beside the runs' metrics: pairwise verdicts
    (pairwise_X.vs_NAME.json) and each criterion's rank correlation with the word metrics (judge_X.json); no lines
    when nothing was judged."""
    pairwise, agreement = [], []
    for run in runs:
        if run.references is None:  # published figures
            continue
        first = beside(run.path, "pairwise")
        pairwise += [_pairwise_row(run.name, path) for path in sorted(first.parent.glob(f"{first.stem}.vs_*.json"))]
        judged = judge_beside(run.path)
        spearman = json.loads(judged.read_text(encoding="utf-8")).get("spearman", {}) if judged else {}
        for criterion, values in spearman.items():
            rhos = ["n/a" if values[key] is None else f"{values[key]:+.2f}" for key in ("bleu4", "rougeL", "chrf")]
            agreement.append(f"| {run.name} | {criterion} | {' | '.join(rhos)} | {values['n']} |")
    lines = []
    if pairwise:
        lines += [
            "",
            "Pairwise judge: the run's answer against the other's on each row, judged in both orders (a verdict that "
            "changes with the order counts as a tie); shares of the rows with 95% bootstrap intervals:",
            "",
            "| Run | Against | Win | Tie | Loss | Order-dependent | Unusable |",
            "|---|---|---|---|---|---|---|",
            *pairwise,
        ]
    if agreement:
        lines += [
            "",
            "Where the judge and the word metrics agree: Spearman's rank correlation of each criterion with BLEU-4, "
            "ROUGE-L and chrF++ per example, over the rows the judge scored (n/a: too few rows, or no ranking):",
            "",
            "| Run | Criterion | BLEU-4 | ROUGE-L | chrF++ | Rows |",
            "|---|---|---|---|---|---|",
            *agreement,
        ]
    return lines


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict
    references: list[str] | None  # None: published figures without per-example scores
    scores: dict[str, np.ndarray]  # metric -> per-example values (NaN where undefined)
    predictions: list[str] | None = None
    seeds: list["Run"] | None = None  # one system trained with several seeds: a scored run per seed (seed_system)

    def subset(self, rows: np.ndarray) -> "Run":
        """The run on `rows` of its examples only: per-example scores, and means over those rows (corpus-level
        figures, which are not means over examples, are left out)."""
        scores = {key: values[rows] for key, values in self.scores.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined on every row of the group: NaN
            means = {key: float(np.nanmean(values)) for key, values in scores.items()}
        metrics = {key: None if np.isnan(value) else value for key, value in means.items()}
        pick = lambda texts: None if texts is None else [texts[row] for row in rows]  # noqa: E731
        seeds = [run.subset(rows) for run in self.seeds] if self.seeds else None
        return Run(self.name, self.path, metrics, pick(self.references), scores, pick(self.predictions), seeds)


def seed_system(name: str, runs: list[Run]) -> Run:
    """Scored runs of one recipe trained with different seeds, as one system: each metric the mean over the seeds,
    each example's scores averaged over them (what tables and the examples browser show); `compare` resamples its
    seeds, then rows. One seed is that run as it is."""
    if len(runs) == 1:
        return replace(runs[0], name=name)
    check_same_examples(runs)
    metrics = {}
    for key in metric_keys(runs[0].metrics):
        values = [run.metrics.get(key) for run in runs]
        if all(isinstance(value, (int, float)) for value in values):
            metrics[key] = float(np.mean(values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an example undefined for every seed (arabic_ratio): NaN
        scores = {key: np.nanmean(np.stack([run.scores[key] for run in runs]), axis=0)
                  for key in runs[0].scores if all(key in run.scores for run in runs)}  # fmt: skip
    return Run(name, runs[0].path, metrics, runs[0].references, scores, runs[0].predictions, runs)


# A group with fewer rows than this gets its means but no interval or p-value: a bootstrap over a handful of rows
# says little and looks precise.
MIN_GROUP_ROWS = 10


def group_labels(run: Run, column: str) -> list[str]:
    """Each example's value of `column` (found by name, case and spelling as in the data) in the predictions CSV the
    run was scored from, aligned with its per-example scores."""
    from arabic_sft.data.columns import columns_by_name
    from arabic_sft.scoring.predictions import prediction_rows

    predictions = beside(run.path, "predictions").with_suffix(".csv")
    if not predictions.is_file():
        raise UserError(f"group_column {column}: {predictions} not found (the per-group numbers need the predictions)")
    frame, _ = prediction_rows(predictions)
    found = columns_by_name(frame).get(column.lower())
    if found is None:
        raise UserError(
            f"group_column {column}: not a column of {predictions} (found: {', '.join(map(str, frame.columns))})"
        )
    if len(frame) != len(run.references):
        raise UserError(f"group_column {column}: {predictions} does not match the scores beside it; score it again")
    return frame[found].fillna("").astype(str).str.strip().replace("", "(empty)").tolist()


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


def group_markdown(groups: pd.DataFrame, column: str, baseline: str, level: float = 0.95) -> list[str]:
    """Markdown lines: for each group (largest first) and run, each metric's value and its difference from the
    baseline with the interval, in one table."""
    from arabic_sft.scoring.report import figure, label

    others = groups[groups["run"] != baseline]
    metrics = [key for key in metric_keys(others["metric"]) if key in set(others["metric"])]
    cells = {(row.group, row.run, row.metric): row for row in others.itertuples()}
    lines = [
        "",
        f"By {column}, largest group first: each run's value, then in brackets its difference from {baseline} with "
        f"its {level:.0%} paired bootstrap interval over the group's rows (groups under {MIN_GROUP_ROWS} rows: no "
        "interval, marked too small).",
        "",
        f"| {column} | Rows | Run | " + " | ".join(label(key) for key in metrics) + " |",
        "|" + "---|" * (len(metrics) + 3),
    ]
    for (group, run), rows in others.groupby(["group", "run"], sort=False):
        values = []
        for key in metrics:
            row = cells.get((group, run, key))
            if row is None or row.value is None or pd.isna(row.value):
                values.append("n/a")
                continue
            difference = "" if pd.isna(row.diff) else f" ({figure(row.diff, row.diff_ci_low, row.diff_ci_high)})"
            values.append(f"{figure(row.value)}{difference}")
        size = f"{rows['group_rows'].iloc[0]}" + (" (too small)" if rows["too_small"].iloc[0] else "")
        lines.append(f"| {group} | {size} | {run} | " + " | ".join(values) + " |")
    return lines


def recipe_runs(name: str, split: str) -> tuple[Path, list[Path | list[Path]]]:
    """(the zero-shot baseline's metrics, [each few-shot baseline's, then the fine-tuned run's]) of a recipe's
    results/NAME folder, as `make baseline` and `make eval` write them. Runs trained with several seeds
    (results/NAME/seed-N/, make train SEEDS=...) come last, as one list: one system (`load_system`)."""
    results = RecipeResults(name)
    baseline = results.baseline().metrics(split)
    if not baseline.is_file():
        raise UserError(f"{baseline}: not found; run make baseline RECIPE={name} first")
    tuned = results.tuned.metrics(split)
    seeds = [path for seed in results.seeds() if (path := results.seed(seed).metrics(split)).is_file()]
    if not tuned.is_file() and not seeds:
        raise UserError(f"{tuned}: not found; run make eval RECIPE={name} first")
    shots = [path for folder in results.few_shot_baselines() if (path := folder.metrics(split)).is_file()]
    return baseline, [*shots, *([tuned] if tuned.is_file() else []), *([seeds] if seeds else [])]


def load_system(path: Path | list[Path], name: str | None = None) -> Run:
    """A scored run (`load_run`), or runs of one recipe trained with several seeds (a list of their metrics) as one
    system named after the recipe and its seeds."""
    if not isinstance(path, list):
        return load_run(path, name)
    return seed_system(name or system_name(path), [load_run(item) for item in path])


def system_name(paths: list[Path]) -> str:
    """The name of runs of one recipe trained with several seeds (results/NAME/seed-N/metrics_X.json): NAME (seeds
    1, 2, 3)."""
    seeds = [seed_number(Path(item).parent) for item in paths]
    return f"{Path(paths[0]).parent.parent.name} (seeds {', '.join(map(str, seeds))})"


def find_metrics(path: str | Path) -> Path:
    """A metrics JSON, or the one metrics_*.json in a directory."""
    path = Path(path)
    if path.is_dir():
        found = metrics_files(path)
        if len(found) != 1:
            names = ", ".join(item.name for item in found) or "none"
            raise UserError(f"{path}: expected one metrics_*.json written by score.py (found: {names}); name the file")
        path = found[0]
    if not path.is_file():
        raise UserError(f"{path}: not found; score the run first (make eval, or scripts/score.py)")
    return path


def load_run(path: str | Path, name: str | None = None) -> Run:
    """A scored run: its metrics JSON and the per-example scores beside it."""
    path = find_metrics(path)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not a metrics JSON ({error.msg})") from None
    examples_path = path.with_suffix(".examples.csv")
    if not examples_path.is_file():
        raise UserError(
            f"{examples_path}: not found; compare needs the per-example scores score.py writes beside {path.name}"
        )
    examples = pd.read_csv(
        examples_path, keep_default_na=False, na_values=[""], dtype={"reference": str, "prediction": str}
    )
    if "reference" not in examples:
        raise UserError(f"{examples_path}: no 'reference' column; not written by score.py")
    scores = {}
    for key in EXAMPLE_KEYS:
        column = "empty" if key == "empty_rate" else key
        if column in examples and examples[column].notna().any():
            values = (
                examples[column].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
                if column == "empty"
                else examples[column]
            )
            scores[key] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    references = examples["reference"].fillna("").astype(str).tolist()
    predictions = examples["prediction"].fillna("").astype(str).tolist() if "prediction" in examples else None
    add_judge_scores(path, metrics, scores, references)
    return Run(name or default_name(path), path, metrics, references, scores, predictions)


def identical_predictions(runs: list[Run]) -> list[str]:
    """A note for each group of runs whose predictions are the same on every example: their scores are then equal
    by construction (difference 0, p = 1), which is no bug of the comparison."""
    groups: dict[tuple, list[str]] = {}
    for run in runs:
        if run.predictions is not None:
            groups.setdefault(tuple(run.predictions), []).append(run.name)
    return [
        f"{', '.join(names[:-1])} and {names[-1]} gave the same answer on every example, so their scores are equal "
        "(difference 0, p = 1) by construction."
        for names in groups.values()
        if len(names) > 1
    ]


def default_name(path: Path) -> str:
    """A run's name: the directory holding its metrics (results/demo -> demo; results/demo/baseline-3-shot -> ...)."""
    return path.parent.name if is_split_file(path, "metrics") else f"{path.parent.name}/{path.stem.split('_', 1)[-1]}"


def published_run(name: str, split: str) -> Run:
    from arabic_sft.scoring.report import published

    source = published(name)
    figures = source["splits"].get(split)
    if figures is None:
        raise UserError(f"--published {name}: no figures for the {split} split")
    return Run(source["title"], Path(name), dict(figures), None, {})


def check_same_examples(runs: list[Run]) -> None:
    """Paired comparisons need the same examples in the same order: refuse, saying how they differ."""
    first = runs[0]
    for run in runs[1:]:
        if run.references == first.references:
            continue
        if len(run.references) != len(first.references):
            how = f"{len(first.references)} examples in {first.path} but {len(run.references)} in {run.path}"
        elif sorted(run.references) == sorted(first.references):
            how = f"the same references in another order ({first.path}, {run.path})"
        else:
            row = next(i for i, (a, b) in enumerate(zip(first.references, run.references)) if a != b)
            how = (
                f"different references from example {row + 1} on ({first.path}: {first.references[row][:40]!r}, "
                f"{run.path}: {run.references[row][:40]!r})"
            )
        raise UserError(f"runs scored on different examples: {how}; score every run on the same test rows")


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def two_level(values: np.ndarray, rows: np.ndarray, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """The mean of `values` (seeds x examples) over each resample of a two-level bootstrap: the seeds resampled
    (`seeds`: resamples x seeds), then the rows within them (`rows`: resamples x examples, the same rows for every
    seed, so that a difference from a baseline stays paired). Also each level alone: rows only (every seed kept) and
    seeds only (every row kept), whose variances say where the interval's width comes from."""
    by_seed = np.stack([_means(row_values, rows) for row_values in values], axis=1)  # resamples x seeds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        seed_means = np.nanmean(values, axis=1)
    return {
        "both": np.take_along_axis(by_seed, seeds, axis=1).mean(axis=1),
        "rows": by_seed.mean(axis=1),
        "seeds": seed_means[seeds].mean(axis=1),
    }


def seed_share(parts: dict[str, np.ndarray]) -> float | None:
    """The share of the bootstrap variance that comes from the seeds (the rest comes from the rows); None when
    neither varies."""
    from_seeds, from_rows = float(np.nanvar(parts["seeds"])), float(np.nanvar(parts["rows"]))
    return None if from_seeds + from_rows == 0 else from_seeds / (from_seeds + from_rows)


def _means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The mean of `values` over each resample (NaN-aware: arabic_ratio is undefined for text without letters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[indices], axis=1)


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    low, high = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


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
                    else _means(run.scores[key], indices)
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
                        samples = _means(differences, indices)
                    row["diff"] = observed  # paired: over the examples where both runs have a score
                    row["diff_ci_low"], row["diff_ci_high"] = interval(samples, level)
                    centred = np.abs(samples - observed) >= abs(observed) - 1e-12
                    row["p_value"] = float((centred.sum() + 1) / (len(samples) + 1))
            if value is not None or key in run.scores:
                rows.append(row)
    return pd.DataFrame(rows)


def markdown(
    table: pd.DataFrame,
    baseline: str,
    resamples: int,
    seed: int,
    level: float = 0.95,
    notes: list[str] = (),
    more: list[str] = (),
) -> str:
    """The comparison as markdown: every run's metrics with intervals, then each run against the baseline, then the
    lines `more` (the judge's section), then `notes`."""
    from arabic_sft.scoring.report import figure, label

    metrics = [key for key in metric_keys(table["metric"]) if key in set(table["metric"])]
    runs = list(dict.fromkeys(table["run"]))
    cell = {(row.run, row.metric): row for row in table.itertuples()}
    lines = [
        "# Comparison",
        "",
        f"{level:.0%} bootstrap intervals over the examples ({resamples} resamples, seed {seed}); sacreBLEU and "
        "chrF++ are corpus-level (0-100), shown without intervals; published figures have no per-example scores.",
        "",
        "| Run | " + " | ".join(label(key) for key in metrics) + " |",
        "|" + "---|" * (len(metrics) + 1),
    ]
    for run in runs:
        values = [
            figure(cell[run, key].value, cell[run, key].ci_low, cell[run, key].ci_high)
            if (run, key) in cell
            else "n/a"
            for key in metrics
        ]
        lines.append(f"| {run} | " + " | ".join(values) + " |")
    lines += [
        "",
        f"Against the baseline, {baseline} (paired: the same examples resampled together; p: two-sided "
        "paired bootstrap):",
        "",
        "| Run | Metric | Difference [95% interval] | p |",
        "|---|---|---|---|",
    ]
    for row in table.itertuples():
        if row.run == baseline or row.diff is None or np.isnan(row.diff):
            continue
        p_value = "" if row.p_value is None or np.isnan(row.p_value) else f"{row.p_value:.3f}"
        lines.append(
            f"| {row.run} | {label(row.metric)} | {figure(row.diff, row.diff_ci_low, row.diff_ci_high)} | {p_value} |"
        )
    lines += seed_markdown(table, baseline, level)
    lines += list(more)
    lines += [line for note in notes for line in ("", f"Note: {note}")]
    return "\n".join(lines) + "\n"


def seed_markdown(table: pd.DataFrame, baseline: str, level: float = 0.95) -> list[str]:
    """Lines on the runs trained with several seeds: the spread across seeds, and how much of the difference's
    interval comes from the seeds and how much from the rows; none when no run has seeds."""
    from arabic_sft.scoring.report import figure, label

    if "seeds" not in table or table["seeds"].isna().all():
        return []
    lines = [
        "",
        "## Training seeds",
        "",
        f"A run trained with several seeds is one system: each metric is its mean over the seeds; its {level:.0%} "
        "intervals come from a two-level bootstrap (the seeds resampled, then the rows within them, the rows paired "
        f"with {baseline}'s). SD: the metric's standard deviation across seeds. The difference's bootstrap variance "
        "splits into what resampling the seeds alone and the rows alone give: the shares below.",
        "",
        "| Run | Metric | Seeds | SD across seeds | Difference [interval] | From seeds | From rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table[table["seeds"].notna()].itertuples():
        share = getattr(row, "seed_share", None)
        shares = ("n/a", "n/a") if share is None or pd.isna(share) else (f"{share:.0%}", f"{1 - share:.0%}")
        difference = "" if pd.isna(row.diff) else figure(row.diff, row.diff_ci_low, row.diff_ci_high)
        lines.append(
            f"| {row.run} | {label(row.metric)} | {int(row.seeds)} | {figure(row.seed_sd)} | {difference} | "
            f"{shares[0]} | {shares[1]} |"
        )
    return lines


def plot(table: pd.DataFrame, path: str | Path) -> None:
    """One panel per metric: each run's value with its interval, saved as a PNG."""
    import matplotlib.pyplot as plt

    from arabic_sft.runtime.manifest import atomic_path

    figure = interval_figure(table)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def interval_figure(table: pd.DataFrame):
    """The matplotlib figure of `plot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from arabic_sft.scoring.report import label

    metrics = [key for key in metric_keys(table["metric"]) if key in set(table["metric"])]
    runs = list(dict.fromkeys(table["run"]))
    columns = 4
    rows = -(-len(metrics) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.2 * rows + 0.6), squeeze=False)
    for axis, key in zip(axes.flat, metrics):
        part = table[table["metric"] == key].set_index("run")
        for position, run in enumerate(runs):
            if run not in part.index or part.loc[run, "value"] is None or pd.isna(part.loc[run, "value"]):
                continue
            value, low, high = (
                float(part.loc[run, name]) if not pd.isna(part.loc[run, name]) else np.nan
                for name in ("value", "ci_low", "ci_high")
            )
            # max(0, ...): a constant score's mean can differ from its percentiles in the last bit
            error = None if np.isnan(low) else [[max(0.0, value - low)], [max(0.0, high - value)]]
            axis.errorbar([position], [value], yerr=error, fmt="o", capsize=4)
        axis.set_title(label(key), fontsize=9)
        axis.set_xticks(range(len(runs)), runs, rotation=20, fontsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.axis("off")
    figure.tight_layout()
    return figure
