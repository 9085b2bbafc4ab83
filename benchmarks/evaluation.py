"""Evaluating a final policy: true returns of fresh episodes, and their mean with a 95% interval.

The last training episodes of a run swing widely (Atari: +-100 within a
run) and mix several policies; every benchmark therefore also plays its
final policy for ``n_episodes`` fresh episodes (own seeds, never trained on)
and reports their mean true return with a bootstrap 95% interval.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["episode_quotas", "run_episodes", "mean_ci"]


def episode_quotas(n_episodes: int, n_envs: int) -> np.ndarray:
    """How many episodes each env contributes: [n_envs] ints summing to n_episodes.

    Fixed quotas avoid the bias of "the first n episodes to finish", which
    favours short episodes when envs run in parallel.
    """
    if n_episodes < 1 or n_envs < 1:
        raise ValueError(f"need >= 1 episode and >= 1 env, got {n_episodes}, {n_envs}")
    q = np.full(n_envs, n_episodes // n_envs)
    q[: n_episodes % n_envs] += 1
    return q


def run_episodes(act: Callable[[np.ndarray], np.ndarray], venv, n_episodes: int, max_steps: int = 10_000_000
                 ) -> tuple[list[float], int]:
    """Plays ``n_episodes`` whole episodes on an SB3 VecEnv whose infos carry ``episode`` at each episode end.

    Args:
        act: observations [n_envs, ...] -> actions [n_envs, ...].
        venv: the evaluation envs (seeded by the caller; closed by the caller).
        n_episodes: episodes to complete, split over the envs by :func:`episode_quotas`.
        max_steps: safety bound on vector steps; reaching it raises.

    Returns:
        (true returns of the episodes in completion order, vector steps taken).

    Raises:
        RuntimeError: if ``max_steps`` vector steps did not complete the episodes.
    """
    quota = episode_quotas(n_episodes, venv.num_envs)
    done_count = np.zeros(venv.num_envs, int)
    returns: list[float] = []
    obs = venv.reset()
    for step in range(1, max_steps + 1):
        obs, _, _, infos = venv.step(act(obs))
        for i, info in enumerate(infos):
            if "episode" in info and done_count[i] < quota[i]:
                returns.append(float(info["episode"]["r"]))
                done_count[i] += 1
        if (done_count >= quota).all():
            return returns, step
    raise RuntimeError(f"{n_episodes} evaluation episodes did not finish in {max_steps} vector steps")


def mean_ci(xs, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean.

    Args:
        xs: [N] values (N >= 1).
        level: coverage of the interval.
        n_boot: bootstrap resamples.
        seed: seeds the resampling (the interval is reproducible).

    Returns:
        (mean, low, high); low == high == mean when N == 1.
    """
    x = np.asarray(xs, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"need a non-empty 1-d array of finite values, got shape {x.shape}")
    if len(x) == 1:
        return float(x[0]), float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    a = (1 - level) / 2
    return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
