"""The report of a recipe's results (`make report`): the comparison with its intervals, the plots, a breakdown by a
group column, every test row with each run's answer and scores, and the runs' provenance, in one HTML file that opens
from disk with nothing fetched (figures as PNG data URIs, the page's own CSS and script inline). Every value from the
runs' files goes through Jinja2's autoescaping: a model's answer that holds `</script>` or HTML is text."""

import base64
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from arabic_sft.data.columns import template_fields
from arabic_sft.runs import LOG_HISTORY, MANIFEST, TRAINER_STATE, RecipeResults, beside, manifest_of
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.manifest import read_json
from arabic_sft.scoring.compare import compare, compare_groups
from arabic_sft.scoring.metrics import arabic_share
from arabic_sft.scoring.plots import interval_figure
from arabic_sft.scoring.predictions import prediction_rows
from arabic_sft.scoring.scored import Run, group_labels, load_run, load_system, metric_keys, recipe_runs
from arabic_sft.scoring.tables import ComparisonTable, figure, judge_section, label, seed_markdown, tone
from arabic_sft.training.loss_curve import generation_figure, loss_figure


TEMPLATES = Path(__file__).parent / "templates"
# The per-example scores the examples browser shows and sorts by (when a run has them), then the judge's criteria.
EXAMPLE_METRICS = ("rougeL", "bleu4", "bertscore_f1", "semantic_similarity")
# An answer longer than this is folded (<details>) in the examples browser.
FOLD_CHARACTERS = 280


def data_uri(fig) -> str | None:
    """A matplotlib figure as a PNG data URI (closed after), or None for no figure."""
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def direction(text: str) -> dict[str, str]:
    """The `dir` and `lang` of a cell: right-to-left Arabic when most of its letters are Arabic, else the browser's
    own choice from the first strong letter."""
    share = arabic_share(str(text))
    return {"dir": "rtl", "lang": "ar"} if share is not None and share >= 0.5 else {"dir": "auto", "lang": ""}


def log_history(output_dir: Path) -> list[dict]:
    """The trainer's log: log_history.json beside the model (sft.py writes it), else the last checkpoint's state."""
    if (output_dir / LOG_HISTORY).is_file():
        return json.loads((output_dir / LOG_HISTORY).read_text(encoding="utf-8"))
    states = sorted(output_dir.glob(f"checkpoint-*/{TRAINER_STATE}"), key=lambda path: int(path.parent.name[11:]))
    return json.loads(states[-1].read_text(encoding="utf-8"))["log_history"] if states else []


def comparison_rows(table: pd.DataFrame, baseline: str) -> tuple[list[str], list[dict], list[dict]]:
    """(metric labels, a row per run with each metric's value and interval, a row per run and metric against the
    baseline): the table model's cells (`scoring.tables.ComparisonTable`), as markdown and the card show them."""
    view = ComparisonTable(table, baseline)
    against = [{"run": cell.run, "metric": cell.label, "sign": cell.tone, "difference": cell.difference,
                "p": cell.p} for cell in view.differences()]  # fmt: skip
    return view.labels, view.value_rows(), against


def group_rows(groups: pd.DataFrame, baseline: str) -> tuple[list[str], list[dict]]:
    others = groups[groups["run"] != baseline]
    metrics = [key for key in metric_keys(others["metric"]) if key in set(others["metric"])]
    rows = []
    for (group, run), part in others.groupby(["group", "run"], sort=False):
        by_metric = part.set_index("metric")
        cells = []
        for key in metrics:
            if key not in by_metric.index or pd.isna(by_metric.loc[key, "value"]):
                cells.append({"value": "n/a", "difference": "", "sign": 0})
                continue
            row = by_metric.loc[key]
            difference = "" if pd.isna(row["diff"]) else figure(row["diff"], row["diff_ci_low"], row["diff_ci_high"])
            cells.append({"value": figure(row["value"]), "difference": difference,
                          "sign": tone(key, row["diff"], row["diff_ci_low"], row["diff_ci_high"])})  # fmt: skip
        size, small = int(part["group_rows"].iloc[0]), bool(part["too_small"].iloc[0])
        rows.append({"group": group, "rows": size, "too_small": small, "run": run, "cells": cells, **direction(group)})
    return [label(key) for key in metrics], rows


def prompt_columns(recipe) -> set[str]:
    """The names (lowercase) a prompt input can have in a predictions CSV: its placeholder, or its output column."""
    placeholders = set(template_fields(recipe.prompt_template or ""))  # read as data_spec reads it
    output = recipe.output_columns if isinstance(recipe.output_columns, dict) else {}
    return {name.lower() for name in placeholders} | {str(output.get(name, name)).lower() for name in placeholders}


# Test rows a packed part of the examples holds: the first page is drawn from the first part alone, and the others
# are unpacked when a page, a sort or a search needs them.
PART_ROWS = 2000


def packed(data: bytes) -> Markup:
    """`data` gzipped and base64-encoded, for the browser's own `DecompressionStream` to unpack: a page of 100,000
    rows stays a few times smaller than its CSVs, and base64 holds no character that could end a <script> element
    (`A-Z a-z 0-9 + / =` only)."""
    return Markup(base64.b64encode(gzip.compress(data, compresslevel=6, mtime=0)).decode("ascii"))


def examples(
    tuned: Run, baseline: Run, others: list[Run], labels: list[str] | None, hidden: frozenset[str] = frozenset()
) -> dict:
    """Every test example, for the page's examples browser: `meta` (the input columns, the runs, the metrics the rows
    sort by, the groups, each row's group), `scores` (every run's per-example score of each metric, float64,
    run-major then metric then row: what the page sorts by and shows, the fine-tuned − baseline difference computed
    from them) and `parts` (each PART_ROWS rows' texts as JSON: inputs, reference, each run's answer), packed.
    `hidden`: columns (lowercase) that are not inputs (the group column when the prompt does not use it: it has a
    column of its own). Texts reach the page only as data that its script puts in `textContent`: never markup."""
    predictions = beside(tuned.path, "predictions").with_suffix(".csv")
    frame, columns = prediction_rows(predictions)
    if len(frame) != len(tuned.references):
        raise UserError(f"{predictions}: {len(frame)} rows but {len(tuned.references)} scored; score it again")
    inputs = [name for name in frame.columns
              if name not in (columns["reference"], columns["prediction"]) and name.lower() not in hidden]  # fmt: skip
    keys = [key for key in (*EXAMPLE_METRICS, *sorted(k for k in tuned.scores if k.startswith("judge_")))
            if key in tuned.scores and key in baseline.scores]  # fmt: skip
    runs = [tuned, baseline, *others]
    n = len(frame)
    texts = [frame[name].fillna("").astype(str).tolist() for name in [*inputs, columns["reference"]]]
    texts += [list(run.predictions) if run.predictions else [""] * n for run in runs]
    scores = np.full((len(runs), len(keys), n), np.nan)
    for r, run in enumerate(runs):
        for k, key in enumerate(keys):
            if key in run.scores:
                scores[r, k] = run.scores[key]
    groups = list(dict.fromkeys(labels)) if labels else []
    codes = {group: code for code, group in enumerate(groups)}
    meta = {
        "rows": n,
        "inputs": inputs,
        "runs": [run.name for run in runs],
        "keys": keys,
        "labels": [label(key) for key in keys],
        "groups": groups,
        "group_of": [codes[group] for group in labels] if labels else [],
        "part_rows": PART_ROWS,
        "fold": FOLD_CHARACTERS,
    }
    parts = [packed(json.dumps([list(row) for row in zip(*(column[start : start + PART_ROWS] for column in texts))],
                               ensure_ascii=False).encode("utf-8"))
             for start in range(0, n, PART_ROWS)]  # fmt: skip
    return {"meta": meta, "scores": packed(scores.astype("<f8").tobytes()), "parts": parts}


def provenance(recipe_path: Path, output_dir: Path, runs: list[Run]) -> dict:
    manifest = read_json(output_dir / MANIFEST) or {}
    config = manifest.get("config", {})
    model = config.get("model", {})
    generations = [
        {"run": run.name, "manifest": read_json(manifest_of(beside(run.path, "predictions")))} for run in runs
    ]
    return {
        "recipe": recipe_path.read_text(encoding="utf-8") if recipe_path.is_file() else "",
        "recipe_path": str(recipe_path),
        "model": model.get("model_name_or_path"),
        "revision": model.get("model_revision") or "(none: a local path or the default branch)",
        "files": manifest.get("data_sha256", {}),
        "versions": manifest.get("versions", {}),
        "hardware": manifest.get("device", {}),
        "python": manifest.get("python"),
        "times": {key: manifest[key] for key in ("started", "finished") if key in manifest},
        "git": manifest.get("git_commit"),
        "generations": [
            {
                "run": item["run"],
                "started": (item["manifest"] or {}).get("started"),
                "finished": (item["manifest"] or {}).get("finished"),
            }
            for item in generations
        ],  # fmt: skip
        "trained": bool(manifest),
    }


def general_rows(results: RecipeResults, fields, seeds, resamples: int, seed: int) -> list[dict] | None:
    """make general's comparison (base against fine-tuned on lm-eval's tasks) as table rows; None before it ran, or
    when its sides are not the recipe's one model as it is now (`RecipeResults.current_general`; `seeds`: the
    compared system's, when it is one of several seeds)."""
    from arabic_sft.general.paired import display_rows, general_comparison

    if not results.current_general(fields.model_name_or_path, fields.output_dir, seeds):
        return None
    rows = display_rows(general_comparison(results.general, resamples, seed))
    for row in rows:
        row["sign"] = tone(row["metric"], row["diff"], row["diff_low"], row["diff_high"])
    return rows


def board_section(results: RecipeResults, split: str) -> dict | None:
    """make board's table as the report shows it (its CSV and record read back: the numbers make board computed,
    rendered by the same view as its markdown); None before make board ran."""
    from arabic_sft.scoring.tables import BoardView

    markdown = results.board(split)
    numbers, record = markdown.with_suffix(".csv"), read_json(markdown.with_suffix(".json"))
    if not numbers.is_file() or not record:
        return None
    view = BoardView(pd.read_csv(numbers, encoding="utf-8", float_precision="round_trip"), record)
    return {"explanation": view.explanation(), "labels": view.labels, "rows": view.rows(), "made": record.get("made"),
            "differences": view.differences(), "left_out": record["left_out"],
            "notes": record.get("notes", [])}  # fmt: skip


def build_report(recipe_path: Path, split: str, group_column: str | None, resamples: int, seed: int) -> str:
    """The report's HTML for the recipe at `recipe_path` (its results/NAME folder)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from arabic_sft.recipe import load_recipe

    recipe = load_recipe(["--config", str(recipe_path)])
    name = recipe_path.stem
    baseline_path, run_paths = recipe_runs(name, split)
    baseline = load_run(baseline_path)
    runs = [load_system(path) for path in run_paths]
    tuned, shots = runs[-1], runs[:-1]
    table = compare(runs, baseline, resamples, seed)
    metrics, comparison, against = comparison_rows(table, baseline.name)
    groups = None
    labels = group_labels(tuned, group_column) if group_column else None
    if labels is not None:
        group_metrics, group_table = group_rows(compare_groups(runs, baseline, labels, resamples, seed), baseline.name)
        groups = {"column": group_column, "metrics": group_metrics, "rows": group_table,
                  "names": list(dict.fromkeys(row["group"] for row in group_table))}  # fmt: skip
    group = (group_column or "").lower()
    hidden = frozenset({group} - prompt_columns(recipe.args)) if labels is not None else frozenset()
    rows = examples(tuned, baseline, shots, labels, hidden)
    general = general_rows(RecipeResults(name), recipe.fields, tuned.seeds, resamples, seed)
    output_dir = Path(recipe.fields.output_dir or "")
    if tuned.seeds:  # several seeds: the first seed's training log and model (each seed's run is in its folder)
        output_dir = tuned.seeds[0].path.parent / "model"
    history = log_history(output_dir) if output_dir.name else []
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    environment.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return environment.get_template("report.html.j2").render(
        name=name,
        split=split,
        resamples=resamples,
        seed=seed,
        baseline=baseline.name,
        tuned=tuned.name,
        metrics=metrics,
        comparison=comparison,
        against=against,
        judge="\n".join(judge_section([baseline, *runs])).strip(),
        seeds="\n".join(seed_markdown(table, baseline.name)).strip(),
        figures={
            "loss": data_uri(loss_figure(history)),
            "generation": data_uri(generation_figure(history)),
            "intervals": data_uri(interval_figure(table)),
        },
        groups=groups,
        general=general,
        board=board_section(RecipeResults(name), split),
        examples=rows,
        provenance=provenance(recipe_path, output_dir, [baseline, *runs]),
    )
