"""``Family``: how a family of environments (MuJoCo, Atari) plugs into the benchmark kit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Family:
    """How a family of environments plugs into the benchmark.

    Every callable takes the run's frozen :class:`benchmarks.kit.config.RunConfig` (``cfg``); the
    family's own flags are ``cfg.options``, an instance of ``options``.

    Attributes:
        name: "mujoco" or "atari" (also picks the agent defaults).
        check_env_id: raises ValueError for an id the family does not support;
            returns the canonical id.
        make_venv: (cfg, n_envs, seed, threads) -> SB3 VecEnv for ``cfg.env`` whose
            envs are wrapped in SB3's Monitor (true episode returns in info); ``threads``:
            the env's own threads where it has any (None: its default).
        make_ensemble: (venv, cfg) -> RewardEnsemble for its observations.
        default_env: the env flag's default.
        env_flag: "--env" or "--game".
        defaults: the family's values of the flags without a shared default
            (steps, labels, agent, n_envs).
        quick: flag values that ``--quick`` sets (explicit flags win).
        options: the frozen dataclass of the family's own flags, or None.
        wrap_agent_env: (venv, arm, cfg) -> the VecEnv the agent trains on (e.g.
            observation normalisation); the same for both arms.
        obs_transform: cfg -> the loop's obs_transform (what the reward
            model sees), or ``None`` for the observation as it is.
        episode_end_key: info key marking the true episode end for segments.
        segment_length: default L.
        random_steps: steps per env of the initial random policy, whose
            segments make the first ~25% of the labels.
        trainer_overrides: TrainerConfig fields to change for this family.
        loop_overrides: LoopConfig fields to change for this family.
        gpu_defaults: flag values that replace the CPU defaults when the
            device resolves to CUDA and the user did not set the flag.
        record_agent: (agent, cfg, seed, path) -> None, writes a short clip
            of the trained learned-reward agent to ``path`` (a GIF), or None.
        make_eval_venv: (cfg, n_envs, seed, threads) -> the VecEnv the final policy
            is evaluated on (e.g. with a cap on episode length); default
            ``make_venv``.
        make_render: cfg -> ``render(segments) -> list of media dicts``, what a
            person sees of the queried segments with ``--labeler web``.
        keep_render_state: the loop records ``info["sim_state"]`` for ``make_render``
            (MuJoCo) with ``--labeler web``.
        defer_rewards: the learned arm scores its steps once per rollout
            (``LearnedRewardVecEnv(defer_rewards=True)``), which needs every
            wrapper of ``wrap_agent_env`` to pass the reward through (Atari: yes;
            MuJoCo's ``VecNormalize`` normalises rewards: no).
    """

    name: str
    check_env_id: Callable[[str], str]
    make_venv: Callable
    make_ensemble: Callable
    default_env: str = ""
    env_flag: str = "--env"
    defaults: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    options: type | None = None
    wrap_agent_env: Callable = lambda venv, arm, cfg: venv
    obs_transform: Callable | None = None
    episode_end_key: str | None = None
    segment_length: int = 25
    random_steps: int = 1000
    trainer_overrides: dict = field(default_factory=dict)
    loop_overrides: dict = field(default_factory=dict)
    gpu_defaults: dict = field(default_factory=dict)
    record_agent: Callable | None = None
    make_eval_venv: Callable | None = None
    make_render: Callable | None = None
    keep_render_state: bool = False
    defer_rewards: bool = False
