"""The final policy and the uniformly random one on fresh episodes, built the family's way (true returns, 95% CI)."""

from __future__ import annotations

import numpy as np

from benchmarks.kit.config import RunConfig
from benchmarks.kit.family import Family

__all__ = ["EVAL_SEED_OFFSET", "evaluate_final_policy", "random_policy_return"]


EVAL_SEED_OFFSET = 30_000
"""Evaluation envs are seeded with seed + this (training uses seed, the random baseline seed + 10_000)."""


def _eval_venv(family: Family, cfg: RunConfig, seed: int, agent=None, threads: int | None = None):
    """Fresh envs for evaluation; observation normalisation (VecNormalize) copied from the agent's, frozen."""
    from stable_baselines3.common.vec_env import VecNormalize

    make = family.make_eval_venv or family.make_venv
    venv = make(cfg, min(cfg.n_envs, cfg.eval_episodes), seed, threads)
    train_env = agent.get_env() if agent is not None else None
    if isinstance(train_env, VecNormalize):
        venv = VecNormalize(venv, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        venv.obs_rms = train_env.obs_rms
    return venv


def evaluate_final_policy(family: Family, cfg: RunConfig, seed: int, agent, threads: int | None = None) -> dict:
    """The final policy (sampling its actions, as in training) on ``cfg.eval_episodes`` fresh episodes.

    Returns:
        ``eval_returns`` (true return of each episode), ``eval_mean``, ``eval_ci95`` [low, high].
    """
    from benchmarks.evaluation import mean_ci, run_episodes

    venv = _eval_venv(family, cfg, seed + EVAL_SEED_OFFSET, agent, threads)
    try:
        returns, _ = run_episodes(lambda obs: agent.predict(obs, deterministic=False)[0], venv, cfg.eval_episodes)
    finally:
        venv.close()
    mean, lo, hi = mean_ci(returns, seed=seed)
    return {"eval_returns": returns, "eval_mean": mean, "eval_ci95": [lo, hi]}


def random_policy_return(family: Family, cfg: RunConfig, seed: int, threads: int | None = None) -> dict:
    """The uniformly random policy on ``cfg.eval_episodes`` episodes (seeded actions and envs), as above."""
    from benchmarks.evaluation import mean_ci, run_episodes

    venv = _eval_venv(family, cfg, seed + 10_000, threads=threads)
    space, n = venv.action_space, venv.num_envs
    space.seed(seed + 10_000)
    try:
        returns, _ = run_episodes(lambda obs: np.stack([space.sample() for _ in range(n)]), venv, cfg.eval_episodes)
    finally:
        venv.close()
    mean, lo, hi = mean_ci(returns, seed=seed)
    return {"eval_returns": returns, "eval_mean": mean, "eval_ci95": [lo, hi]}
