"""MuJoCo continuous-control tasks (gymnasium v5) for preference-based RL.

Two flavours of every task are offered by :func:`make_mujoco_env`:

* **standard**: the stock gymnasium ``*-v5`` environment, unchanged.
* **paper variant** (``paper_variant=True``): the modifications of Christiano
  et al. (2017), "Deep reinforcement learning from human preferences", App. A.1.
  The authors removed the variable episode length (a reward model trained on
  fixed-length segments could otherwise learn "long episode = good" from the
  termination signal alone) and removed the torque/control penalties (torques
  are invisible in a rendered clip, so no human could express a preference
  about them). Concretely:

  - No early termination: every episode lasts exactly the time limit and ends
    only by truncation. Where the v5 class has ``terminate_when_unhealthy`` it
    is set to ``False``; otherwise (the two inverted pendulums) a small wrapper
    forces ``terminated=False`` and the simulation simply keeps running. In all
    those tasks the "alive"/"healthy" reward term is recomputed from the state
    at every step (``is_healthy * healthy_reward`` in v5, ``int(not fallen)``
    for the pendulums), so after a fall it becomes 0 instead of staying
    positive: the old termination turns into the per-step penalty (loss of the
    alive bonus) that the paper describes ("we replaced these termination
    conditions by a penalty which encourages the parameters to remain in the
    range").
  - Zero control-cost weight in the reward (``ctrl_cost_weight=0`` or, for
    Reacher, ``reward_control_weight=0``). For Ant the contact-force cost
    (``contact_cost_weight``) is zeroed as well: like torques, contact forces
    are not visible in a clip. The inverted pendulums have no control cost.

  The exact per-task changes are in :data:`PAPER_VARIANT_CHANGES` (readable
  text, for benchmark reports) and :data:`PAPER_VARIANT_KWARGS` (the kwargs
  passed to ``gym.make``). The kwarg names were checked against the installed
  gymnasium 1.x ``gymnasium/envs/mujoco/*_v5.py`` sources.

Every environment built here puts the full simulator state in each ``info``
(``info["sim_state"]``: float64 ``[nq + nv]`` = concatenated ``qpos`` and
``qvel``), at reset and at every step, so a segment can be re-rendered later
with :func:`render_states` (e.g. for a human labelling UI). qpos/qvel is the
full physical state for all eight tasks here (none has actuator activations).

Headless rendering (:func:`gl_backend`, which picks ``MUJOCO_GL`` before MuJoCo
is first imported, :func:`render_states`, :func:`close_renderers` and
:class:`RenderingUnavailableError`) lives in :mod:`envs.mujoco_render` and is
re-exported here.

This module imports only numpy and gymnasium at import time; mujoco and
stable-baselines3 are imported lazily inside the factories. Note: because this
file is called ``mujoco.py``, never run it as a script from inside ``envs/``
(``sys.path[0]`` would then shadow the real ``mujoco`` package); use
``python -m envs.mujoco`` from the repository root.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

import gymnasium as gym
import numpy as np

# Rendering helpers, re-exported as part of this module's API. Cheap (numpy and
# gymnasium only); envs.mujoco_render does not import this module.
from envs.mujoco_render import _dims as _model_dims  # noqa: E402
from envs.mujoco_render import (
    RenderingUnavailableError,
    close_renderers,
    frame_rate,
    gl_backend,
    render_states,
    segment_renderer,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from stable_baselines3.common.vec_env import VecEnv

__all__ = [
    "MUJOCO_TASKS",
    "PAPER_VARIANT_CHANGES",
    "PAPER_VARIANT_KWARGS",
    "NoTerminationWrapper",
    "RenderingUnavailableError",
    "SimStateInfoWrapper",
    "close_renderers",
    "frame_rate",
    "gl_backend",
    "make_mujoco_env",
    "make_mujoco_paper_env",
    "make_mujoco_vec_env",
    "render_states",
    "segment_renderer",
    "sim_state_dims",
]

from envs.mujoco_tasks import MUJOCO_TASKS  # noqa: E402
from envs.mujoco_tasks import check_task as _check_task  # noqa: E402

PAPER_VARIANT_KWARGS: dict[str, dict[str, Any]] = {
    "HalfCheetah-v5": {"ctrl_cost_weight": 0.0},
    "Hopper-v5": {"ctrl_cost_weight": 0.0, "terminate_when_unhealthy": False},
    "Walker2d-v5": {"ctrl_cost_weight": 0.0, "terminate_when_unhealthy": False},
    "Swimmer-v5": {"ctrl_cost_weight": 0.0},
    "Ant-v5": {
        "ctrl_cost_weight": 0.0,
        "contact_cost_weight": 0.0,
        "terminate_when_unhealthy": False,
    },
    "Reacher-v5": {"reward_control_weight": 0.0},
    "InvertedPendulum-v5": {},
    "InvertedDoublePendulum-v5": {},
}
"""``gym.make`` keyword arguments that implement the paper variant, per task."""

_NEEDS_NO_TERMINATION_WRAPPER: frozenset[str] = frozenset(
    {"InvertedPendulum-v5", "InvertedDoublePendulum-v5"}
)

PAPER_VARIANT_CHANGES: dict[str, str] = {
    "HalfCheetah-v5": (
        "ctrl_cost_weight 0.1 -> 0. Never terminated early anyway "
        "(fixed 1000 steps)."
    ),
    "Hopper-v5": (
        "ctrl_cost_weight 1e-3 -> 0; terminate_when_unhealthy True -> False "
        "(fixed 1000 steps; healthy_reward 1 is paid only while healthy, so a "
        "fall costs 1 per step instead of ending the episode)."
    ),
    "Walker2d-v5": (
        "ctrl_cost_weight 1e-3 -> 0; terminate_when_unhealthy True -> False "
        "(fixed 1000 steps; healthy_reward 1 only while healthy)."
    ),
    "Swimmer-v5": (
        "ctrl_cost_weight 1e-4 -> 0. Never terminated early anyway "
        "(fixed 1000 steps)."
    ),
    "Ant-v5": (
        "ctrl_cost_weight 0.5 -> 0; contact_cost_weight 5e-4 -> 0 (contact "
        "forces are as invisible as torques); terminate_when_unhealthy "
        "True -> False (fixed 1000 steps; healthy_reward 1 only while healthy)."
    ),
    "Reacher-v5": (
        "reward_control_weight 1 -> 0 (reward = -distance to target). Never "
        "terminated early anyway (fixed 50 steps)."
    ),
    "InvertedPendulum-v5": (
        "No control cost exists. Termination (|pole angle| > 0.2 rad) removed "
        "by a wrapper (terminated forced to False, simulation continues; fixed "
        "1000 steps); the reward int(|angle| <= 0.2) is recomputed from the "
        "state each step, so it is 0 while the pole is down."
    ),
    "InvertedDoublePendulum-v5": (
        "No control cost exists. Termination (pole tip height y <= 1) removed "
        "by a wrapper (terminated forced to False, simulation continues; fixed "
        "1000 steps); the alive bonus 10 is paid only while y > 1, the "
        "distance and velocity penalties are unchanged."
    ),
}
"""Human-readable description of what the paper variant changes, per task."""


# --------------------------------------------------------------------------
# Wrappers.
# --------------------------------------------------------------------------


class SimStateInfoWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds ``info["sim_state"]`` (float64 ``[nq + nv]``: qpos then qvel).

    The state is copied after every ``reset`` and ``step``, so it describes the
    simulator *after* the transition, i.e. the state shown by the returned
    observation. Feed a stack of them to :func:`render_states` to re-render.
    (``RecordConstructorArgs`` lets ``env.spec.make()`` rebuild the stack.)
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def _sim_state(self) -> np.ndarray:
        data = self.env.unwrapped.data
        return np.concatenate([data.qpos, data.qvel]).astype(np.float64, copy=True)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Resets the env and adds ``info["sim_state"]``."""
        obs, info = self.env.reset(**kwargs)
        info = dict(info)
        info["sim_state"] = self._sim_state()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Steps the env and adds ``info["sim_state"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["sim_state"] = self._sim_state()
        return obs, reward, terminated, truncated, info


class NoTerminationWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turns ``terminated`` into ``False`` so the episode only ends by truncation.

    The wrapped simulation keeps running past the state that would have ended
    the episode; use it outside a ``TimeLimit`` so episodes still end at the
    time limit. ``info["would_terminate"]`` keeps the original flag for
    diagnostics (it must not be shown to a reward model).
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Steps the env, reporting ``terminated=False`` always."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["would_terminate"] = bool(terminated)
        return obs, reward, False, truncated, info


# --------------------------------------------------------------------------
# Factories.
# --------------------------------------------------------------------------


_KNOWN_ASSET_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"
"""MuJoCo 4 says this on every load of gymnasium 1.4's own half_cheetah.xml; the model is still built the same."""


def _mujoco_warning(message: str) -> None:
    if not message.startswith(_KNOWN_ASSET_DEPRECATION):
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def _route_mujoco_warnings() -> None:
    """Sends MuJoCo's C-level warnings to Python's ``warnings`` (filterable), minus gymnasium's asset deprecation.

    Installed only when no one else set a MuJoCo warning handler.
    """
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def make_mujoco_env(
    env_id: str,
    *,
    paper_variant: bool = False,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    **make_kwargs: Any,
) -> gym.Env:
    """Builds one MuJoCo task, standard or in the Christiano et al. variant.

    Args:
        env_id: One of :data:`MUJOCO_TASKS`, e.g. ``"Hopper-v5"``.
        paper_variant: If True, remove early termination and control costs
            (see :data:`PAPER_VARIANT_CHANGES`).
        render_mode: Passed to ``gym.make`` (``None`` or ``"rgb_array"``).
        max_episode_steps: Time limit; ``None`` keeps the registered default
            (1000, or 50 for Reacher); ``-1`` applies no ``TimeLimit``
            (gymnasium's convention).
        **make_kwargs: Extra ``gym.make`` kwargs (e.g. ``width``/``height``);
            they override the paper-variant kwargs.

    Returns:
        The environment. Observations are float64 ``[obs_dim]``; every
        ``info`` has ``"sim_state"`` float64 ``[nq + nv]``.

    Raises:
        ValueError: If ``env_id`` is not a supported MuJoCo task.
    """
    _check_task(env_id)
    gl_backend()
    _route_mujoco_warnings()
    kwargs: dict[str, Any] = dict(PAPER_VARIANT_KWARGS[env_id]) if paper_variant else {}
    kwargs.update(make_kwargs)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    if paper_variant and env_id in _NEEDS_NO_TERMINATION_WRAPPER:
        env = NoTerminationWrapper(env)
    return SimStateInfoWrapper(env)


def make_mujoco_paper_env(
    task: str, *, render_mode: str | None = None, **make_kwargs: Any
) -> gym.Env:
    """Entry point of the registered ``prefrl/<Task>Paper-v5`` ids (envs/__init__.py).

    :func:`make_mujoco_env` with ``paper_variant=True`` but without a
    ``TimeLimit`` (gymnasium's ``max_episode_steps=-1``) and without an inner
    env checker: ``gymnasium.make`` adds both on top, from the registered
    ``max_episode_steps`` (the task's own: 1000, or 50 for Reacher) or its own
    ``max_episode_steps`` argument. Use it through ``gymnasium.make``; to build
    the variant directly, call :func:`make_mujoco_env`.

    Args:
        task: One of :data:`MUJOCO_TASKS`, e.g. ``"Hopper-v5"``.
        render_mode: ``None`` or ``"rgb_array"``.
        **make_kwargs: Extra keyword arguments of the gymnasium v5 class; they
            override the paper-variant kwargs.

    Returns:
        The paper variant of ``task`` with ``info["sim_state"]``, no time limit.
    """
    return make_mujoco_env(
        task,
        paper_variant=True,
        render_mode=render_mode,
        max_episode_steps=-1,
        disable_env_checker=True,
        **make_kwargs,
    )


def make_mujoco_vec_env(
    env_id: str,
    n_envs: int,
    seed: int,
    *,
    paper_variant: bool = False,
    max_episode_steps: int | None = None,
) -> VecEnv:
    """Builds a seeded SB3 ``DummyVecEnv`` of Monitor-wrapped MuJoCo envs.

    Sub-env ``i`` is reset with seed ``seed + i`` on the first ``reset()`` and
    its action space is seeded the same way, so equal seeds give identical
    rollouts for identical actions. Each sub-env is wrapped in SB3's
    ``Monitor`` (outermost), so at the end of an episode ``info["episode"]``
    holds ``{"r": return, "l": length, "t": wall time}`` of the env's own
    reward (the paper-variant reward when ``paper_variant=True``).

    Args:
        env_id: One of :data:`MUJOCO_TASKS`.
        n_envs: Number of sub-environments (>= 1).
        seed: Base seed.
        paper_variant: See :func:`make_mujoco_env`.
        max_episode_steps: See :func:`make_mujoco_env`.

    Returns:
        A ``DummyVecEnv``: observations float32 ``[n_envs, obs_dim]``
        (SB3 buffers), per-env infos with ``"sim_state"`` ``[nq + nv]``.

    Raises:
        ValueError: If ``env_id`` is unsupported or ``n_envs < 1``.
    """
    _check_task(env_id)
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def thunk(rank: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            env = make_mujoco_env(
                env_id, paper_variant=paper_variant, max_episode_steps=max_episode_steps
            )
            env.action_space.seed(seed + rank)
            return Monitor(env)

        return _init

    venv = DummyVecEnv([thunk(i) for i in range(n_envs)])
    venv.seed(seed)
    return venv


def sim_state_dims(env_id: str) -> tuple[int, int]:
    """Returns ``(nq, nv)`` of a task, i.e. the layout of ``info["sim_state"]``.

    Args:
        env_id: One of :data:`MUJOCO_TASKS`.

    Returns:
        ``(nq, nv)``; a sim state has ``nq + nv`` entries.
    """
    _check_task(env_id)
    return _model_dims(env_id)  # one cache, shared with render_states
