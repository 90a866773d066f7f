"""What a person reads after scoring: the metrics table, with a paper's published figures beside ours."""

from arabic_sft import named
from arabic_sft.runtime.errors import UserError


def published(name: str) -> dict:
    """A paper's published results (`data/published/<name>.yaml`): title, note, and figures per split."""
    if named.is_path(name):
        raise UserError(f"published results '{name}': give a name (known: {', '.join(named.names('published'))})")
    return named.read("published", name)[1]


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
    """A markdown table of `metrics` (fractions), with a published baseline's column when one is named."""
    source = published(baseline) if baseline else {}
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
