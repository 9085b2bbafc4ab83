"""Statistics over seeds for sweep reports: interquartile mean and percentile-bootstrap intervals.

Small pure functions on 1-D samples (one value per seed), used by ``benchmarks.sweep`` to
aggregate runs, in the spirit of Agarwal et al. (2021), "Deep RL at the Edge of the
Statistical Precipice": report an interval and a robust point estimate, not a bare mean.

Conventions (what the figures in ``aggregate.md`` mean):

- :func:`iqm` is the mean of the middle 50% of the values *with fractional weights*: each of
  the n sorted values owns a 1/n slice of the quantile axis [0, 1], and the IQM is the average
  of the empirical quantile function over [0.25, 0.75]. A value whose slice straddles the 25th
  or 75th percentile counts with the share of its slice that lies inside. For n divisible by 4
  this is the plain mean of the middle n/2 values (``scipy.stats.trim_mean(x, 0.25)``); for
  other n it differs from ``trim_mean``, which drops ``floor(n/4)`` whole values at each end.
  n = 1 and n = 2 give the mean; n = 3 gives weights 1/6, 2/3, 1/6.
- :func:`bootstrap_ci` is the percentile bootstrap: resample the n values with replacement
  ``n_resamples`` times (numpy ``default_rng(seed)``, so the interval is reproducible), compute
  the statistic on each resample, and take its 2.5th and 97.5th percentiles (for 95%). With
  few seeds (3-5) it is narrower than the true coverage asks for; read it as a spread, not a
  guarantee.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["finite", "iqm", "iqm_weights", "bootstrap_ci", "describe"]


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The values as a float array, without None, NaN and infinities (a run that reports no figure)."""
    xs = [float(v) for v in values if v is not None]
    arr = np.asarray(xs, dtype=float)
    return arr[np.isfinite(arr)]


def iqm_weights(n: int) -> np.ndarray:
    """Weights (summing to 1) of the n sorted values in the interquartile mean.

    Value i (0-based, sorted ascending) owns the slice [i/n, (i+1)/n] of the quantile axis;
    its weight is the length of that slice inside [0.25, 0.75], divided by 0.5.

    >>> iqm_weights(4).tolist()
    [0.0, 0.5, 0.5, 0.0]
    >>> [round(float(w), 4) for w in iqm_weights(3)]
    [0.1667, 0.6667, 0.1667]
    """
    if n < 1:
        raise ValueError(f"need at least one value, got n={n}")
    lo = np.arange(n) / n
    hi = np.arange(1, n + 1) / n
    overlap = np.clip(np.minimum(hi, 0.75) - np.maximum(lo, 0.25), 0.0, None)
    return overlap / 0.5


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of ``values``, fractional weights at the quartiles.

    ``values`` may be 2-D (e.g. bootstrap resamples): the IQM is taken along ``axis``.
    Returns NaN for an empty sample.

    >>> iqm([1, 2, 3, 4, 5, 6, 7, 8])  # the middle four: (3 + 4 + 5 + 6) / 4
    4.5
    >>> iqm([1, 2, 3, 4, 100])  # 0.3 * 2 + 0.4 * 3 + 0.3 * 4: the outlier has no weight
    3.0
    """
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        return float("nan")
    w = iqm_weights(n)
    out = np.tensordot(np.moveaxis(x, axis, -1), w, axes=([-1], [0]))
    return float(out) if np.ndim(out) == 0 else out


def _mean(x: np.ndarray, axis: int = -1):
    return np.mean(x, axis=axis)


def bootstrap_ci(values: Sequence[float] | np.ndarray, statistic: Callable = _mean, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` over ``values``.

    Args:
        values: one figure per seed (1-D).
        statistic: (array [n_resamples, n], axis=-1) -> array [n_resamples]; ``np.mean``-like.
            The default is the mean; :func:`iqm` also fits.
        confidence: coverage of the interval, in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling (the same inputs give the same interval).

    Returns:
        (low, high). A single value gives (x, x); an empty sample (nan, nan).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D (one figure per seed), got shape {x.shape}")
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    stats = np.asarray(statistic(x[idx], axis=-1), dtype=float)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def describe(values: Sequence[float | None], n_resamples: int = 2000, seed: int = 0) -> dict:
    """n, mean, 95% percentile-bootstrap CI of the mean, and IQM of the finite values (NaN when none)."""
    x = finite(values)
    if x.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "ci_low": nan, "ci_high": nan, "iqm": nan}
    lo, hi = bootstrap_ci(x, n_resamples=n_resamples, seed=seed)
    return {"n": int(x.size), "mean": float(np.mean(x)), "ci_low": lo, "ci_high": hi, "iqm": iqm(x)}
