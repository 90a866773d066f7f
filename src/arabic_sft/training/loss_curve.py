"""The loss curve a person looks at after training: loss.png beside the model."""

from pathlib import Path

from arabic_sft.runtime.manifest import atomic_path


def plot_loss_curve(log_history: list[dict], path: str | Path) -> bool:
    """Save training (and evaluation) loss against the step as a PNG; False when the log has no loss to plot. A run
    that logged no step's loss (logging_steps beyond its steps) shows its mean training loss at its last step."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    train = train or [(entry["step"], entry["train_loss"]) for entry in log_history if "train_loss" in entry]
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
