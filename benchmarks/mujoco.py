"""``python -m benchmarks.mujoco --synthetic-oracle --env Hopper-v5`` (or ``--labeler web`` to label yourself)

PPO (or A2C) on a reward learned from synthetic preferences vs the same agent
on the true reward, on gymnasium's MuJoCo v5 tasks.

By default the tasks run in Christiano et al.'s variant (``envs.mujoco``):
no early termination (fixed 1000-step episodes, so the reward model cannot
learn from episode length and a zero-mean learned reward does not teach the
agent to fall) and no control cost in the true reward the oracle ranks by and
the curves report. ``--standard-env`` uses gymnasium's tasks unchanged.
Both arms train on ``VecNormalize`` (observations and rewards normalised),
as the SB3 zoo does for MuJoCo.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from benchmarks.kit import cli
from benchmarks.kit.family import Family

DEFAULTS = dict(steps=300_000, labels=700, agent="ppo", n_envs=4)
QUICK = dict(steps=4096, labels=40, eval_episodes=8)


@dataclass(frozen=True)
class MujocoOptions:
    """The MuJoCo benchmark's own flags."""

    standard_env: bool = False
    """use gymnasium's tasks unchanged (termination, control costs) instead of the paper's variant"""


def _check_env_id(env_id: str) -> str:
    from envs.mujoco import MUJOCO_TASKS

    if env_id not in MUJOCO_TASKS:
        raise ValueError(f"unknown MuJoCo task {env_id!r}; choose one of {', '.join(MUJOCO_TASKS)}")
    return env_id


def _make_venv(cfg, n_envs: int, seed: int, threads: int | None = None):
    from envs.mujoco import make_mujoco_vec_env

    return make_mujoco_vec_env(cfg.env, n_envs, seed, paper_variant=not cfg.options.standard_env)


def _make_ensemble(venv, cfg):
    from prefrl import MLPEnsemble

    return MLPEnsemble(venv.observation_space.shape, venv.action_space.shape, n_members=3, hidden=(64, 64))


def _wrap_agent_env(venv, arm: str, cfg):
    from stable_baselines3.common.vec_env import VecNormalize

    return VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=0.99)


def _make_render(cfg):
    from envs.mujoco import segment_renderer

    return segment_renderer(cfg.env, width=160, height=160)


FAMILY = Family(
    name="mujoco",
    check_env_id=_check_env_id,
    default_env="HalfCheetah-v5",
    env_flag="--env",
    defaults=DEFAULTS,
    quick=QUICK,
    options=MujocoOptions,
    make_venv=_make_venv,
    make_ensemble=_make_ensemble,
    wrap_agent_env=_wrap_agent_env,
    segment_length=25,
    random_steps=1000,
    make_render=_make_render,  # --labeler web: clips rendered from the recorded simulator states
    keep_render_state=True,
)


def main(argv: list[str] | None = None) -> dict:
    """``python -m benchmarks.mujoco``: returns the summary."""
    return cli.main("benchmarks.mujoco", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
