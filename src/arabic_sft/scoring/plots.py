"""The comparison as a figure: each metric's value per run with its interval (compare's FILE.png, the report's)."""

from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.scoring.scored import metric_keys


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

    from arabic_sft.scoring.tables import label

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
