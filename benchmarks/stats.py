"""Statistics over seeds for sweep reports, from rliable (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"): the interquartile mean and percentile-bootstrap intervals, as the papers that use
rliable compute them.

Conventions (what the figures in ``aggregate.md`` mean):

- :func:`iqm` is ``rliable.metrics.aggregate_iqm``: ``scipy.stats.trim_mean(x, 0.25)``, the mean after
  dropping ``floor(n / 4)`` values at each end. With 1-3 seeds nothing is dropped (the plain mean);
  with 5 seeds, the lowest and the highest.
- :func:`bootstrap_ci` is ``rliable.library.get_interval_estimates`` (percentile method, arch's bootstrap
  over runs) with numpy's global generator seeded for the call (rliable draws from it), so the same inputs
  give the same interval. With
  few seeds (3-5) it is narrower than the true coverage asks for; read it as a spread, not a guarantee.

rliable comes with the ``sweep`` extra (``pip install -e ".[sweep]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["finite", "iqm", "bootstrap_ci", "describe"]


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The values as a float array, without None, NaN and infinities (a run that reports no figure)."""
    xs = [float(v) for v in values if v is not None]
    arr = np.asarray(xs, dtype=float)
    return arr[np.isfinite(arr)]


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean over all values (rliable's ``aggregate_iqm``: a 25% trimmed mean); NaN when empty.

    Args:
        values: one figure per seed ``[n]``, or rliable's score matrix ``[runs, tasks]`` (all cells pooled).

    >>> iqm([1, 2, 3, 4, 5, 6, 7, 8])  # drops 2 at each end: (3 + 4 + 5 + 6) / 4
    4.5
    >>> iqm([1, 2, 3, 4, 100])  # drops 1 at each end: (2 + 3 + 4) / 3
    3.0
    """
    from rliable import metrics

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan")
    return float(metrics.aggregate_iqm(x.reshape(x.shape[0], -1)))


def _mean(scores: np.ndarray) -> float:
    return float(np.mean(scores))


def bootstrap_ci(values: Sequence[float] | np.ndarray, statistic: Callable[[np.ndarray], float] = _mean,
                 confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` over runs (rliable's interval estimate).

    Args:
        values: one figure per seed ``[n]``.
        statistic: score matrix ``[n, 1]`` -> a number; the default is the mean, :func:`iqm` also fits.
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
    if x.size == 1:  # every resample is the value itself
        return float(x[0]), float(x[0])
    import warnings

    from rliable import library

    # rliable's StratifiedBootstrap draws its resamples from numpy's global generator (np.random.choice),
    # not from the random_state it is given: seed the global one for the call and put it back after
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch >= 7 deprecates the random_state argument rliable passes
            warnings.simplefilter("ignore", FutureWarning)
            _, intervals = library.get_interval_estimates(
                {"x": x[:, None]}, lambda scores: np.array([statistic(scores)]), reps=n_resamples,
                confidence_interval_size=confidence, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)
    lo, hi = intervals["x"][:, 0]
    return float(lo), float(hi)


def describe(values: Sequence[float | None], n_resamples: int = 2000, seed: int = 0) -> dict:
    """n, mean, 95% percentile-bootstrap CI of the mean, and IQM of the finite values (NaN when none)."""
    x = finite(values)
    if x.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "ci_low": nan, "ci_high": nan, "iqm": nan}
    lo, hi = bootstrap_ci(x, n_resamples=n_resamples, seed=seed)
    return {"n": int(x.size), "mean": float(np.mean(x)), "ci_low": lo, "ci_high": hi, "iqm": iqm(x)}
