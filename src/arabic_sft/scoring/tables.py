"""What a person reads: the numbers of scoring and of the comparison engine, formatted once (labels, 4 or 2
decimals, intervals, which direction is better) in one table model, `ComparisonTable`, which the markdown here, the
HTML report and the model card all render: the three show the same figures by construction."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.runs import beside
from arabic_sft.scoring.compare import MIN_GROUP_ROWS
from arabic_sft.scoring.scored import Run, judge_beside, metric_keys, paper_figures


LABELS = {
    "bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu4": "BLEU-4", "rouge1": "ROUGE-1 (F1)", "rouge2": "ROUGE-2 (F1)",
    "rougeL": "ROUGE-L (F1)", "sacrebleu": "sacreBLEU (corpus, 0-100)", "chrf": "chrF++ (corpus, 0-100)",
    "bertscore_precision": "BERTScore P", "bertscore_recall": "BERTScore R",
    "bertscore_f1": "BERTScore F1", "semantic_similarity": "Semantic similarity (cosine)",
    "arabic_ratio": "Arabic share of letters", "empty_rate": "Empty generations",
}  # fmt: skip


# Metrics where less is better: a drop is an improvement (the report's colours, the model card's ▲/▼).
LOWER_IS_BETTER = {"empty_rate"}


def label(key: str) -> str:
    """A metric's name in tables: LABELS, or a judge's criterion (judge_correctness -> Judge: correctness)."""
    return LABELS.get(key) or (f"Judge: {key.removeprefix('judge_')}" if key.startswith("judge_") else key)


def figure(value, low=None, high=None) -> str:
    """A metric as the tables print it: 4 decimals for fractions, 2 for 0-100 scores (sacreBLEU, chrF++), "n/a" when
    not computed; with its interval when `low` and `high` are given."""
    if value is None or value != value:  # None or NaN
        return "n/a"
    digits = 4 if abs(value) <= 1 else 2
    text = f"{value:.{digits}f}"
    return text if low is None or low != low else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def metrics_table(metrics: dict, title: str, baseline: str | None = None, split: str | None = None) -> str:
    """A markdown table of `metrics` (fractions), with a paper's figures in a column when one is named."""
    source = paper_figures(baseline) if baseline else {}
    figures = source.get("splits", {}).get(split or "test")
    header = ["Metric", "This run"] + ([source["title"]] if figures else [])
    lines = [
        f"# {title}",
        "",
        f"{metrics['n']} examples; every figure is a fraction in [0, 1] but sacreBLEU and chrF++ "
        "(0-100, as papers report them); n/a = not computed.",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in LABELS.items():
        row = [label, figure(metrics.get(key))]
        if figures:
            row.append(figure(figures.get(key)))
        lines.append("| " + " | ".join(row) + " |")
    if figures:
        lines += ["", source["note"]]
    return "\n".join(lines) + "\n"


def _pairwise_row(run_name: str, path: Path) -> str:
    found = json.loads(path.read_text(encoding="utf-8"))
    shares = [
        f"{found[key]['share']:.0%} [{found[key]['low']:.0%}, {found[key]['high']:.0%}]" if key in found else "n/a"
        for key in ("win", "tie", "loss")
    ]
    order = f"{found['order_dependent']:.0%}" if "order_dependent" in found else "n/a"
    against = path.stem.split(".vs_", 1)[1]
    return f"| {run_name} | {against} | {' | '.join(shares)} | {order} | {found['unusable']} of {found['pairs']} |"


def judge_section(runs: list[Run]) -> list[str]:
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


def group_markdown(
    groups: pd.DataFrame, column: str, baseline: str, level: float = 0.95, min_rows: int = MIN_GROUP_ROWS
) -> list[str]:
    """Markdown lines: for each group (largest first) and run, each metric's value and its difference from the
    baseline with the interval, in one table."""
    others = groups[groups["run"] != baseline]
    metrics = [key for key in metric_keys(others["metric"]) if key in set(others["metric"])]
    cells = {(row.group, row.run, row.metric): row for row in others.itertuples()}
    lines = [
        "",
        f"By {column}, largest group first: each run's value, then in brackets its difference from {baseline} with "
        f"its {level:.0%} paired bootstrap interval over the group's rows (groups under {min_rows} rows: no "
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


def missing(value) -> bool:
    return value is None or value != value  # None or NaN


def significance(metric: str, low, high) -> int:
    """1 when a difference's interval lies on the better side of 0, -1 on the worse side, else 0."""
    if missing(low) or missing(high):
        return 0
    low, high = (-high, -low) if metric in LOWER_IS_BETTER else (low, high)
    return 1 if low > 0 else -1 if high < 0 else 0


def tone(metric: str, difference, low=None, high=None) -> int:
    """A difference's colour, 1 a gain, -1 a loss, 0 neither: its interval's side of 0, else its sign as shown."""
    if missing(difference):
        return 0
    if not (missing(low) or missing(high)):
        return significance(metric, low, high)
    shown = round(difference, 4 if abs(difference) <= 1 else 2)  # run − baseline, as the tables show it
    return int(np.sign(-shown if metric in LOWER_IS_BETTER else shown))


@dataclass(frozen=True)
class Cell:
    """One run's figures for one metric, formatted once for every rendering."""

    run: str
    metric: str
    label: str
    value: str  # the value with its interval
    bare: str  # the value alone
    difference: str  # from the baseline, with its interval; "" when there is none
    p: str  # the paired p-value; "" when there is none
    tone: int  # how the difference is coloured (`tone`): 1 a gain, -1 a loss, 0 neither
    significant: int  # 1 / -1 when the difference's interval excludes 0 on the better / worse side


class ComparisonTable:
    """The comparison engine's table (scoring.compare.compare) as every rendering shows it: runs, metrics in order,
    and a `Cell` per run and metric. Markdown (`markdown`), the HTML report and the model card read these cells."""

    def __init__(self, frame: pd.DataFrame, baseline: str):
        self.baseline = baseline
        self.metrics = [key for key in metric_keys(frame["metric"]) if key in set(frame["metric"])]
        self.runs = list(dict.fromkeys(frame["run"]))
        self.cells: dict[tuple[str, str], Cell] = {}
        for row in frame.itertuples():
            has_difference = row.run != baseline and not missing(row.diff)
            self.cells[row.run, row.metric] = Cell(
                run=row.run,
                metric=row.metric,
                label=label(row.metric),
                value=figure(row.value, row.ci_low, row.ci_high),
                bare=figure(row.value),
                difference=figure(row.diff, row.diff_ci_low, row.diff_ci_high) if has_difference else "",
                p="" if missing(row.p_value) or not has_difference else f"{row.p_value:.3f}",
                tone=tone(row.metric, row.diff, row.diff_ci_low, row.diff_ci_high) if has_difference else 0,
                significant=significance(row.metric, row.diff_ci_low, row.diff_ci_high) if has_difference else 0,
            )

    @property
    def labels(self) -> list[str]:
        return [label(key) for key in self.metrics]

    def value_rows(self) -> list[dict]:
        """A row per run: its name, and each metric's value with its interval ("n/a" where it has none)."""
        return [
            {"name": run, "values": [self.cells[run, key].value if (run, key) in self.cells else "n/a"
                                     for key in self.metrics]}
            for run in self.runs
        ]  # fmt: skip

    def differences(self) -> list[Cell]:
        """The cells with a difference from the baseline, run by run."""
        return [cell for cell in self.cells.values() if cell.difference]

    def run_cells(self, run: str) -> list[Cell]:
        return [self.cells[run, key] for key in self.metrics if (run, key) in self.cells]


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
    view = ComparisonTable(table, baseline)
    lines = [
        "# Comparison",
        "",
        f"{level:.0%} bootstrap intervals over the examples ({resamples} resamples, seed {seed}); sacreBLEU and "
        "chrF++ are corpus-level (0-100), shown without intervals; published figures have no per-example scores.",
        "",
        "| Run | " + " | ".join(view.labels) + " |",
        "|" + "---|" * (len(view.metrics) + 1),
    ]
    lines += [f"| {row['name']} | " + " | ".join(row["values"]) + " |" for row in view.value_rows()]
    lines += [
        "",
        f"Against the baseline, {baseline} (paired: the same examples resampled together; p: two-sided "
        "paired bootstrap):",
        "",
        "| Run | Metric | Difference [95% interval] | p |",
        "|---|---|---|---|",
    ]
    lines += [f"| {cell.run} | {cell.label} | {cell.difference} | {cell.p} |" for cell in view.differences()]
    lines += seed_markdown(table, baseline, level)
    lines += list(more)
    lines += [line for note in notes for line in ("", f"Note: {note}")]
    return "\n".join(lines) + "\n"


def seed_markdown(table: pd.DataFrame, baseline: str, level: float = 0.95) -> list[str]:
    """Lines on the runs trained with several seeds: the spread across seeds, and how much of the difference's
    interval comes from the seeds and how much from the rows; none when no run has seeds."""
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
    if warning := few_seeds(table):
        lines += ["", warning]
    return lines


# Seeds under this: the seed level of a two-level interval is resampled from too few values to cover a new seed.
ENOUGH_SEEDS = 5


def few_seeds(table: pd.DataFrame) -> str | None:
    """Why the intervals of a system with fewer than ENOUGH_SEEDS training seeds mean little, and how many suffice;
    None when no run of `table` has seeds, or every one has enough."""
    if "seeds" not in table or table["seeds"].isna().all() or (seeds := int(table["seeds"].min())) >= ENOUGH_SEEDS:
        return None
    return (
        f"Few seeds: {seeds}. The seed level of these intervals is resampled from {seeds} values, so it understates "
        "how far one more seed can land: a run with another seed may fall outside them. Train "
        f"{ENOUGH_SEEDS} or more seeds for the two-level interval to mean much (10 for a stable one)."
    )


# The board's headline metrics (every metric is in its CSV and its table of differences), after the ranking one.
HEADLINE = ("rougeL", "bleu4", "chrf", "bertscore_f1", "semantic_similarity")


class BoardView:
    """make board's numbers (scoring.board: the frame its CSV holds and the record its JSON holds) as the markdown
    and the HTML report show them: a row per system in rank order with its headline metrics, its difference from the
    best on the ranking metric and the Holm-corrected p-value, an endpoint's cost; then each system against the best
    on every metric."""

    def __init__(self, frame: pd.DataFrame, record: dict):
        self.record, self.metric, self.best = record, record["metric"], record["best"]
        present = set(frame["metric"])
        keys = [key for key in metric_keys(frame["metric"]) if key in present]
        judged = [key for key in keys if key.startswith("judge_")]
        self.headline = list(dict.fromkeys([self.metric, *(k for k in [*HEADLINE, *judged] if k in present)]))
        self.labels = [label(key) for key in self.headline]
        self.systems = list(dict.fromkeys(frame["system"]))
        self.cells = {(row.system, row.metric): row for row in frame.itertuples()}
        self.comparisons = len(self.systems) - 1

    def rows(self) -> list[dict]:
        """A row per system: rank, name, kind, headline values, Δ best and p (Holm) on the ranking metric, cost."""
        rows = []
        for system in self.systems:
            first = next(row for key, row in self.cells.items() if key[0] == system)
            ranking = self.cells.get((system, self.metric))
            values = [figure(cell.value, cell.ci_low, cell.ci_high) if (cell := self.cells.get((system, key)))
                      else "n/a" for key in self.headline]  # fmt: skip
            best = system == self.best or ranking is None
            rows.append({
                "rank": "" if missing(first.rank) else str(int(first.rank)), "system": system, "kind": first.kind,
                "values": values,
                "difference": "" if best else figure(ranking.diff, ranking.diff_ci_low, ranking.diff_ci_high),
                "p_holm": "" if best or missing(ranking.p_holm) else f"{float(ranking.p_holm):.3f}",
                "tone": 0 if best else tone(self.metric, ranking.diff, ranking.diff_ci_low, ranking.diff_ci_high),
                "tokens": "" if missing(first.tokens_per_row) else f"{first.tokens_per_row:.0f}",
                "seconds": "" if missing(first.seconds_per_row) else f"{first.seconds_per_row:.2f}",
            })  # fmt: skip
        return rows

    def differences(self) -> list[dict]:
        """Each system but the best against it, metric by metric: difference [interval], p, p (Holm)."""
        return [
            {"system": cell.system, "metric": label(cell.metric), "difference": figure(cell.diff, cell.diff_ci_low,
             cell.diff_ci_high), "p": "" if missing(cell.p_value) else f"{float(cell.p_value):.3f}",
             "p_holm": "" if missing(cell.p_holm) else f"{float(cell.p_holm):.3f}",
             "tone": tone(cell.metric, cell.diff, cell.diff_ci_low, cell.diff_ci_high)}
            for cell in self.cells.values() if cell.system != self.best and not missing(cell.diff)
        ]  # fmt: skip

    def explanation(self) -> str:
        record, rows = self.record, self.record["rows"]
        return (
            f"Every system answered the same {rows['rows']} {record['split']} rows (digest {rows['digest'][:12]} of "
            f"their inputs and references, from {rows['from']}). Ranked by {label(self.metric)}; best: {self.best}. "
            f"Values with {record['level']:.0%} bootstrap intervals over the rows ({record['resamples']} resamples, "
            f"seed {record['seed']}); sacreBLEU and chrF++ are corpus-level (0-100), without intervals. Δ best: the "
            f"paired difference from {self.best} over the same rows, with its interval; p (Holm): the two-sided "
            f"paired bootstrap p-value, corrected with Holm's method for the {self.comparisons} "
            f"system{'s' if self.comparisons != 1 else ''} compared with the best. Tokens and seconds: an "
            "endpoint's, per request, as its server reported them."
        )


def board_markdown(frame: pd.DataFrame, record: dict) -> str:
    """make board's table as markdown (what it prints and writes to board_<split>.md)."""
    view = BoardView(frame, record)
    lines = [
        f"# Leaderboard: {', '.join(record['recipes'])}, {record['split']} split",
        "",
        view.explanation(),
        "",
        "| # | System | Kind | " + " | ".join(view.labels) + f" | Δ best ({view.labels[0]}) | p (Holm) | Tokens/row "
        "| s/request |",
        "|" + "---|" * (len(view.labels) + 7),
    ]
    for row in view.rows():
        lines.append(f"| {row['rank']} | {row['system']} | {row['kind']} | " + " | ".join(row["values"]) +
                     f" | {row['difference']} | {row['p_holm']} | {row['tokens']} | {row['seconds']} |")  # fmt: skip
    if differences := view.differences():
        lines += [
            "",
            f"Each system against the best, {view.best} (paired, the same rows resampled together):",
            "",
            "| System | Metric | Difference [95% interval] | p | p (Holm) |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {row['system']} | {row['metric']} | {row['difference']} | {row['p']} | {row['p_holm']} |"
                  for row in differences]  # fmt: skip
    if record["left_out"]:
        lines += ["", "Left out, not on the board's rows:", ""]
        lines += [f"- {item['system']}: {item['why']}" for item in record["left_out"]]
    lines += [line for note in record.get("notes", []) for line in ("", f"Note: {note}")]
    return "\n".join(lines) + "\n"
