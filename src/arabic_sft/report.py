"""What a person reads after a run: the metrics table (with a published baseline beside ours) and the loss curve."""

from pathlib import Path

from arabic_sft.manifest import atomic_path


# SHEFAA's published results (Jais-family-256m QLoRA, 1,000 examples per split), as its document gives them.
# Its BERTScore was given in percent; here every figure is a fraction. Its ROUGE came from rouge_score's default
# tokenizer, which deletes Arabic letters, so those three figures measure the tokenizer, not the model.
PUBLISHED = {
    "shefaa": {
        "title": "SHEFAA (published)",
        "note": "SHEFAA's ROUGE used rouge_score's default tokenizer, which deletes every Arabic letter: its ROUGE "
        "is an artifact (`--rouge_tokenizer default` reproduces it). BERTScore: bert-base-multilingual-cased, "
        "layer 9 (`lang='ar'`), as here.",
        "splits": {
            "test": {"bleu1": 0.037, "bleu2": 0.015, "bleu4": 0.006, "rouge1": 0.001, "rouge2": 0.000, "rougeL": 0.001,
                     "bertscore_precision": 0.6140, "bertscore_recall": 0.6159, "bertscore_f1": 0.6133},
            "validation": {"bleu1": 0.033, "bleu2": 0.014, "bleu4": 0.006, "rouge1": 0.002, "rouge2": 0.001,
                           "rougeL": 0.002, "bertscore_precision": 0.6075, "bertscore_recall": 0.6066,
                           "bertscore_f1": 0.6057},
        },
    },
}  # fmt: skip

LABELS = {
    "bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu4": "BLEU-4", "rouge1": "ROUGE-1 (F1)", "rouge2": "ROUGE-2 (F1)",
    "rougeL": "ROUGE-L (F1)", "sacrebleu": "sacreBLEU (corpus, 0-100)", "chrf": "chrF++ (corpus, 0-100)",
    "bertscore_precision": "BERTScore P", "bertscore_recall": "BERTScore R",
    "bertscore_f1": "BERTScore F1", "semantic_similarity": "Semantic similarity (cosine)",
    "arabic_ratio": "Arabic share of letters", "empty_rate": "Empty generations",
}  # fmt: skip


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
    published = PUBLISHED[baseline]["splits"].get(split or "test") if baseline else None
    header = ["Metric", "This run"] + ([PUBLISHED[baseline]["title"]] if published else [])
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
        if published:
            row.append(figure(published.get(key)))
        lines.append("| " + " | ".join(row) + " |")
    if published:
        lines += ["", PUBLISHED[baseline]["note"]]
    return "\n".join(lines) + "\n"


def plot_loss_curve(log_history: list[dict], path: str | Path) -> bool:
    """Save training (and evaluation) loss against the step as a PNG; False when the log has no loss to plot."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evaluation:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for points, label, style in ((train, "train", "-"), (evaluation, "validation", "o-")):
        if points:
            steps, losses = zip(*points)
            axes.plot(steps, losses, style, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return True
