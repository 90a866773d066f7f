"""The bootstrap, numpy only: resampled row indices, means over each resample, two-level (seeds, then rows)
resampling, percentile intervals and paired p-values. The comparison engine (scoring.compare), the judge's pairwise
verdicts and general ability all resample through these functions."""

import warnings

import numpy as np


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


class Bootstrap:
    """The resamples of `resample_indices(n, resamples, seed)`, kept as how often each row is drawn (one byte a row
    and resample: 100 MB for 100,000 rows and 1,000 resamples, where the indices take 800 MB), drawn in blocks from
    the same generator (the same draws as one call). A resample's mean of a column is then its count-weighted mean,
    and every column is averaged in one matrix product a block of resamples at a time: numpy's gather-and-nanmean
    per column would read 100M values per column."""

    BLOCK = 100  # resamples a block: the float64 counts of a block of 100,000 rows take 80 MB

    def __init__(self, n: int, resamples: int, seed: int):
        self.n, self.resamples = n, resamples
        generator = np.random.default_rng(seed)
        self.counts = np.empty((resamples, n), dtype=np.uint8)
        for start in range(0, resamples, self.BLOCK):
            size = min(self.BLOCK, resamples - start)
            drawn = generator.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n)
            if counts.max() > np.iinfo(np.uint8).max:  # a row drawn 256 times in one resample: not in this world
                raise ValueError("a row drawn more than 255 times in one resample")
            self.counts[start : start + size] = counts

    def means(self, columns: np.ndarray) -> np.ndarray:
        """Each resample's NaN-aware mean of each column of `columns` (rows x columns, or one column): resamples x
        columns (or resamples); NaN where a resample drew no row with a value (as `np.nanmean`)."""
        columns = np.asarray(columns, dtype=float)
        flat = columns.ndim == 1
        columns = columns.reshape(self.n, -1)
        present = ~np.isnan(columns)
        values, weights = np.where(present, columns, 0.0), present.astype(float)
        out = np.empty((self.resamples, columns.shape[1]))
        for start in range(0, self.resamples, self.BLOCK):
            counts = self.counts[start : start + self.BLOCK].astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + self.BLOCK] = (counts @ values) / (counts @ weights)
        return out[:, 0] if flat else out


def two_level(values: np.ndarray, by_seed: np.ndarray, seeds: np.ndarray) -> dict[str, np.ndarray]:
    """The mean of `values` (seeds x examples) over each resample of a two-level bootstrap: the seeds resampled
    (`seeds`: resamples x seeds), then the rows within them (`by_seed`: each seed's mean over each resample of the
    rows, resamples x seeds, the same rows for every seed, so that a difference from a baseline stays paired). Also
    each level alone: rows only (every seed kept) and seeds only (every row kept), whose variances say where the
    interval's width comes from."""
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


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    low, high = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def paired_p_value(samples: np.ndarray, observed: float) -> float:
    """Two-sided paired bootstrap p-value: the share of resampled differences, centred on zero, at least as far from
    zero as the observed one (with the observed one counted among them)."""
    centred = np.abs(samples - observed) >= abs(observed) - 1e-12
    return float((centred.sum() + 1) / (len(samples) + 1))
