"""Scored runs as the comparison engine reads them: a run's metrics JSON, its per-example scores beside it (and the
judge's, when it was judged), the runs of one recipe (its baselines, its fine-tuned run, its seeds) found through
`arabic_sft.runs`, and a paper's published figures as a run without per-example scores."""

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft import named
from arabic_sft.runs import RecipeResults, beside, examples_of, is_split_file, metrics_files, seed_number
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
    examples = pd.read_csv(examples_of(judged), keep_default_na=False, na_values=[""], dtype=str)
    if examples["reference"].fillna("").tolist() != references:
        raise UserError(f"{judged}: judged other examples than {metrics_path} scored; judge the predictions again")
    for key in summary:
        if key.startswith(JUDGE_PREFIX) and key in examples:
            metrics[key] = summary[key]
            scores[key] = pd.to_numeric(examples[key], errors="coerce").to_numpy(dtype=float)


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict
    references: list[str] | None  # None: a paper's figures, without per-example scores
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


@dataclass
class System:
    """A scored system of a recipe: its name on the board, its kind, and its metrics JSON (a list: one system of
    several seeds)."""

    name: str
    recipe: str
    kind: str  # fine-tuned, baseline or endpoint
    metrics: Path | list[Path]

    @property
    def first(self) -> Path:
        return self.metrics[0] if isinstance(self.metrics, list) else self.metrics


def recipe_systems(recipe: str, split: str = "test", each_seed: bool = False) -> list[System]:
    """The systems scored on `split` in results/RECIPE/: the fine-tuned run (the seeds as one system, or each seed
    with `each_seed`), the baselines (zero-shot first), the endpoints; those not scored are not there."""
    results = RecipeResults(recipe)
    systems = []
    if results.tuned.metrics(split).is_file():
        systems.append(System(recipe, recipe, "fine-tuned", results.tuned.metrics(split)))
    seeds = [(seed, path) for seed in results.seeds() if (path := results.seed(seed).metrics(split)).is_file()]
    if seeds and each_seed:
        systems += [System(f"{recipe}/seed-{seed}", recipe, "fine-tuned", path) for seed, path in seeds]
    elif seeds:
        numbers = ", ".join(str(seed) for seed, _ in seeds)
        systems.append(System(f"{recipe} (seeds {numbers})", recipe, "fine-tuned", [path for _, path in seeds]))
    for kind, folders in (("baseline", [results.baseline(), *results.few_shot_baselines()]),
                          ("endpoint", results.endpoints())):  # fmt: skip
        systems += [System(f"{recipe}/{folder.path.name}", recipe, kind, folder.metrics(split))
                    for folder in folders if folder.metrics(split).is_file()]  # fmt: skip
    return systems


def recipe_runs(name: str, split: str) -> tuple[Path, list[Path | list[Path]]]:
    """(the zero-shot baseline's metrics, [each few-shot baseline's, then the fine-tuned run's]) of a recipe's
    results/NAME folder (`recipe_systems`, endpoints aside). Runs trained with several seeds (results/NAME/seed-N/,
    make train SEEDS=...) come last, as one list: one system (`load_system`)."""
    results = RecipeResults(name)
    baseline = results.baseline().metrics(split)
    if not baseline.is_file():
        raise UserError(f"{baseline}: not found; run make baseline RECIPE={name} first")
    systems = recipe_systems(name, split)
    tuned = [system.metrics for system in systems if system.kind == "fine-tuned"]
    if not tuned:
        raise UserError(f"{results.tuned.metrics(split)}: not found; run make eval RECIPE={name} first")
    shots = [system.metrics for system in systems if system.kind == "baseline" and system.metrics != baseline]
    return baseline, [*shots, *tuned]


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
    examples_path = examples_of(path)
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


def paper_figures(name: str) -> dict:
    """A paper's results (`data/paper_results/<name>.yaml`): title, note, and figures per split."""
    if named.is_path(name):
        raise UserError(f"paper results '{name}': give a name (known: {', '.join(named.names('paper'))})")
    return named.read("paper", name)[1]


def paper_run(name: str, split: str) -> Run:
    """A paper's figures for `split` as a run without per-example scores."""
    source = paper_figures(name)
    figures = source["splits"].get(split)
    if figures is None:
        raise UserError(f"--paper {name}: no figures for the {split} split")
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
