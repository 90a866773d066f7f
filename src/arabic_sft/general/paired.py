"""General ability, base against fine-tuned: lm-eval's per-question samples of both sides made into the comparison
engine's runs (arabic_sft.scoring.compare: one per-question score, each question identified by its document id and
hash), so that each task and group gets both accuracies with their bootstrap intervals, the paired difference with its
interval and a paired p-value, exactly as the generation metrics do."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.runtime.errors import UserError
from arabic_sft.scoring.compare import compare
from arabic_sft.scoring.scored import GENERAL_PREFIX, Run


# The per-question metric of a task: the first of these its samples carry (multiple choice: acc), else the first
# numeric metric lm-eval lists for it.
PREFERRED = ("acc", "acc_norm", "exact_match")


def sample_files(folder: Path) -> dict[str, Path]:
    """A side's per-question files (make general writes lm-eval's samples there), by task: samples_TASK.jsonl."""
    return {path.stem.removeprefix("samples_"): path for path in sorted(folder.glob("samples_*.jsonl"))}


def task_metric(sample: dict) -> str:
    names = [name for name in PREFERRED if name in sample]
    names += [name for name in sample.get("metrics", []) if isinstance(sample.get(name), (int, float))]
    if not names:
        raise UserError(f"task {sample.get('task', '?')}: its samples carry no per-question score")
    return names[0]


def read_samples(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    filters = list(dict.fromkeys(row.get("filter", "none") for row in rows))
    chosen = "none" if "none" in filters else filters[0]  # one row per question: lm-eval's unfiltered responses
    rows = [row for row in rows if row.get("filter", "none") == chosen]
    return sorted(rows, key=lambda row: int(row["doc_id"]))


def side_run(name: str, rows: list[tuple[str, dict]], key: str, path: Path) -> Run:
    """A side's questions ((task, sample) pairs) as a Run of the comparison engine: each question's score under
    `key`; the questions identified by task, document id and hash, so that sides on different questions are
    refused."""
    values = np.array([float(row[task_metric(row)]) for _, row in rows])
    references = [f"{task}/{row['doc_id']}:{row['doc_hash']}" for task, row in rows]
    return Run(name, path, {key: float(values.mean())}, references, {key: values})


def leaf_tasks(group_subtasks: dict, name: str) -> list[str]:
    """The tasks under `name` (itself when it is a task), through nested groups."""
    children = group_subtasks.get(name)
    if children is None:
        return [name]
    return [task for child in children for task in leaf_tasks(group_subtasks, child)]


def general_comparison(folder: Path, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per task and per group (its tasks' questions pooled, as lm-eval's size-weighted group mean): the
    number of questions, the metric, base and fine-tuned values with their intervals, the paired difference, its
    interval and p-value."""
    sides = {}
    for side in ("base", "tuned"):
        files = sample_files(folder / side)
        if not files:
            raise UserError(f"{folder / side}: no samples_*.jsonl; run make general first")
        sides[side] = {task: read_samples(path) for task, path in files.items()}
    if set(sides["base"]) != set(sides["tuned"]):
        only = sorted(set(sides["base"]) ^ set(sides["tuned"]))
        raise UserError(f"{folder}: task(s) {', '.join(only)} evaluated on one side only; run make general again")
    results = json.loads((folder / "tuned" / "results.json").read_text(encoding="utf-8"))
    groups = {name: [t for t in leaf_tasks(results.get("group_subtasks", {}), name) if t in sides["base"]]
              for name in results.get("group_subtasks", {})}  # fmt: skip
    units = [(task, "task", [task]) for task in sorted(sides["base"])]
    units += [(name, "group", tasks) for name, tasks in sorted(groups.items()) if len(tasks) > 1]
    rows = []
    for name, kind, tasks in units:
        metrics = {task_metric(sides["base"][task][0]) for task in tasks}
        metric = metrics.pop() if len(metrics) == 1 else "mixed"
        key = GENERAL_PREFIX + name
        runs = {
            side: side_run(side, [(task, row) for task in tasks for row in sides[side][task]], key, folder / side)
            for side in sides
        }
        try:
            table = compare([runs["tuned"]], runs["base"], resamples, seed)
        except UserError as error:
            raise UserError(f"general ability, {name}: the two sides answered different questions ({error})") from None
        base, tuned = (table[table["run"] == side].iloc[0] for side in ("base", "tuned"))
        rows.append(
            {
                "task": name,
                "kind": kind,
                "questions": len(runs["base"].references),
                "metric": metric,
                "base": base.value,
                "base_ci_low": base.ci_low,
                "base_ci_high": base.ci_high,
                "tuned": tuned.value,
                "tuned_ci_low": tuned.ci_low,
                "tuned_ci_high": tuned.ci_high,
                "diff": tuned["diff"],
                "diff_ci_low": tuned.diff_ci_low,
                "diff_ci_high": tuned.diff_ci_high,
                "p_value": tuned.p_value,
            }
        )
    return pd.DataFrame(rows)


def display_rows(table: pd.DataFrame) -> list[dict]:
    """The comparison's rows as every table shows them (compare's markdown, the report, the model card): the task (a
    group marked), its questions, both sides and the difference with their intervals, p; `tuned_value`, `diff` and
    its interval (`diff_low`, `diff_high`) unformatted."""
    from arabic_sft.scoring.tables import figure

    return [{"task": f"{row.task} (group)" if row.kind == "group" else row.task, "questions": int(row.questions),
             "metric": row.metric, "base": figure(row.base, row.base_ci_low, row.base_ci_high),
             "tuned": figure(row.tuned, row.tuned_ci_low, row.tuned_ci_high),
             "difference": figure(row.diff, row.diff_ci_low, row.diff_ci_high), "p": f"{row.p_value:.3f}",
             "tuned_value": float(row.tuned), "diff": float(row.diff), "diff_low": float(row.diff_ci_low),
             "diff_high": float(row.diff_ci_high)}
            for row in table.itertuples()]  # fmt: skip


def general_markdown(table: pd.DataFrame, resamples: int, seed: int, level: float = 0.95) -> list[str]:
    """The general-ability block of the comparison: a row per task and group."""
    lines = [
        "",
        "## General ability (lm-evaluation-harness)",
        "",
        f"The base model and the fine-tuned one on the same questions, same settings; {level:.0%} bootstrap intervals "
        f"over the questions ({resamples} resamples, seed {seed}); difference: fine-tuned − base, paired (the same "
        "questions resampled together), p: two-sided paired bootstrap. A group pools its tasks' questions.",
        "",
        "| Task | Questions | Metric | Base | Fine-tuned | Difference | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in display_rows(table):
        lines.append(
            f"| {row['task']} | {row['questions']} | {row['metric']} | {row['base']} | {row['tuned']} | "
            f"{row['difference']} | {row['p']} |"
        )
    return lines
