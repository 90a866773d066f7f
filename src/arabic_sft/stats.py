"""The bootstrap, numpy only: resampled row indices, means over each resample, two-level (seeds, then rows)
resampling, percentile intervals and paired p-values. The comparison engine (scoring.compare), the judge's pairwise
verdicts and general ability all resample through these functions."""

import warnings

import numpy as np


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def two_level(values: np.ndarray, rows: np.ndarray, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """The mean of `values` (seeds x examples) over each resample of a two-level bootstrap: the seeds resampled
    (`seeds`: resamples x seeds), then the rows within them (`rows`: resamples x examples, the same rows for every
    seed, so that a difference from a baseline stays paired). Also each level alone: rows only (every seed kept) and
    seeds only (every row kept), whose variances say where the interval's width comes from."""
    by_seed = np.stack([resampled_means(row_values, rows) for row_values in values], axis=1)  # resamples x seeds
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


def resampled_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The mean of `values` over each resample (NaN-aware: arabic_ratio is undefined for text without letters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[indices], axis=1)


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    low, high = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def paired_p_value(samples: np.ndarray, observed: float) -> float:
    """Two-sided paired bootstrap p-value: the share of resampled differences, centred on zero, at least as far from
    zero as the observed one (with the observed one counted among them)."""
    centred = np.abs(samples - observed) >= abs(observed) - 1e-12
    return float((centred.sum() + 1) / (len(samples) + 1))
