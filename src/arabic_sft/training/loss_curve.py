"""The curves a person looks at after training: loss.png beside the model, and (for the report) the generation
metrics logged at each evaluation."""

from pathlib import Path

from arabic_sft.runtime.manifest import atomic_path


def loss_points(log_history: list[dict]) -> tuple[list, list]:
    """(training, validation) loss as (step, loss) pairs. A run that logged no step's loss (logging_steps beyond its
    steps) has its mean training loss at its last step."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    train = train or [(entry["step"], entry["train_loss"]) for entry in log_history if "train_loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    return train, evaluation


def loss_figure(log_history: list[dict]):
    """Training (and validation) loss against the step; None when the log has no loss."""
    train, evaluation = loss_points(log_history)
    if not train and not evaluation:
        return None
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
    return figure


def generation_figure(log_history: list[dict]):
    """Each generation metric logged at an evaluation (eval_bleu4, eval_rougeL, eval_chrf, ...) against the step;
    None when none was logged."""
    from arabic_sft.training.eval_generation import GENERATION_METRICS

    series: dict[str, list] = {}
    for entry in log_history:
        for key in GENERATION_METRICS:
            if isinstance(entry.get(key), (int, float)) and "step" in entry:
                series.setdefault(key, []).append((entry["step"], entry[key]))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 3), squeeze=False)
    for axis, (key, points) in zip(axes.flat, series.items()):
        steps, values = zip(*points)
        axis.plot(steps, values, "o-")
        axis.set_title(key.removeprefix("eval_"), fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_loss_curve(log_history: list[dict], path: str | Path) -> bool:
    """Save training (and evaluation) loss against the step as a PNG; False when the log has no loss to plot."""
    figure = loss_figure(log_history)
    if figure is None:
        return False
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return True
