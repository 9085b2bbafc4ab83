"""Final-policy evaluation: episode quotas, whole episodes on a real env, bootstrap intervals."""

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.evaluation import episode_quotas, mean_ci, run_episodes


def test_episode_quotas_split_evenly():
    assert episode_quotas(30, 8).tolist() == [4, 4, 4, 4, 4, 4, 3, 3]
    assert episode_quotas(3, 8).sum() == 3
    with pytest.raises(ValueError):
        episode_quotas(0, 4)


def test_run_episodes_counts_whole_episodes_per_env():
    venv = make_vec_env("CartPole-v1", n_envs=3, seed=0)  # Monitor puts info["episode"] at each end
    returns, steps = run_episodes(lambda obs: np.zeros(len(obs), int), venv, 7)
    assert len(returns) == 7
    # always pushing left ends CartPole in 8-12 steps; the return is the episode length
    assert all(8 <= r <= 12 for r in returns) and steps <= 3 * 12
    with pytest.raises(RuntimeError, match="did not finish"):
        run_episodes(lambda obs: np.zeros(len(obs), int), venv, 30, max_steps=5)
    venv.close()


def test_mean_ci_known_values_and_reproducible():
    assert mean_ci([5.0, 5.0, 5.0]) == (5.0, 5.0, 5.0)
    assert mean_ci([2.0]) == (2.0, 2.0, 2.0)
    x = np.random.default_rng(0).normal(10, 2, 200)
    m, lo, hi = mean_ci(x)
    assert m == pytest.approx(x.mean()) and lo < m < hi
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.15)  # the normal-theory width
    assert mean_ci(x, seed=3) == mean_ci(x, seed=3)
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError):
        mean_ci([1.0, float("nan")])


def test_curves_figure_draws_one_line_per_seed():
    """Multi-seed curves: every line runs forward in env steps (joined seeds drew a stray diagonal back)."""
    from benchmarks.kit.report import curves_figure

    rows = [{"run": arm, "seed": seed, "env_step": t, "true_return": float(t + seed), "rm_accuracy": 0.7,
             "reward_correlation": 0.5, "labels": t // 10}
            for arm in ("learned", "true") for seed in (0, 1, 2) for t in (100, 200, 300)]
    summary = {"seeds": [0, 1, 2], "true_return_random": 1.0, "env": "X", "agent": "ppo", "labels_used": 30}
    fig = curves_figure(rows, summary)
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if len(ln.get_xdata()) > 1 and ln.get_linestyle() != "--"]
    assert len(lines) == 2 * 3 + 3 + 2, "2 arms x 3 seeds returns, 3 label lines, accuracy and correlation"
    for ln in lines:
        if ln.get_linestyle() == "-":
            assert np.all(np.diff(ln.get_xdata()) > 0), ln.get_label()


def test_save_run_keeps_going_when_one_file_cannot_be_written(tmp_path):
    """An agent that cannot be pickled (here: it holds an SQLite connection) costs its own file only."""
    import sqlite3

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from benchmarks.kit.arms import save_run

    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    agent = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    agent.unpicklable = sqlite3.connect(":memory:")
    failed = save_run(tmp_path, "true", 0, agent)
    assert len(failed) == 1 and failed[0].startswith("agent-true-seed0.zip: TypeError")
    assert (tmp_path / "vecnormalize-true-seed0.pkl").exists()
    del agent.unpicklable
    assert save_run(tmp_path, "true", 0, agent) == []
    assert PPO.load(tmp_path / "agent-true-seed0.zip", device="cpu").n_steps == 32
    venv.close()
