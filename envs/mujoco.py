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

Headless rendering: before MuJoCo is first imported, :func:`gl_backend` picks
``MUJOCO_GL`` (unless the user already set it): ``egl`` if ``libEGL`` is found,
else ``osmesa`` if ``libOSMesa`` is found, else nothing (rendering then raises
:class:`RenderingUnavailableError`). On Debian/Ubuntu EGL software rendering
(Mesa llvmpipe, no GPU needed) comes from ``libegl1 libegl-mesa0
libgl1-mesa-dri``; OSMesa from ``libosmesa6``. A wrong ``MUJOCO_GL`` breaks
``import mujoco`` itself, which is why the backend is probed, not assumed.

This module imports only numpy and gymnasium at import time; mujoco and
stable-baselines3 are imported lazily inside the factories. Note: because this
file is called ``mujoco.py``, never run it as a script from inside ``envs/``
(``sys.path[0]`` would then shadow the real ``mujoco`` package); use
``python -m envs.mujoco`` from the repository root.
"""

from __future__ import annotations

import ctypes.util
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

import gymnasium as gym
import numpy as np

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
    "gl_backend",
    "make_mujoco_env",
    "make_mujoco_vec_env",
    "render_states",
    "sim_state_dims",
]

MUJOCO_TASKS: tuple[str, ...] = (
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Swimmer-v5",
    "Ant-v5",
    "Reacher-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
)
"""The supported gymnasium MuJoCo ids."""

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


class RenderingUnavailableError(RuntimeError):
    """Raised by :func:`render_states` when no headless OpenGL backend exists."""


# --------------------------------------------------------------------------
# Headless GL selection (must run before the first ``import mujoco``).
# --------------------------------------------------------------------------

_GL_LOCK = threading.Lock()
_GL_CHOSEN = False


def gl_backend() -> str | None:
    """Chooses (once) and returns the MuJoCo OpenGL backend for this process.

    If ``MUJOCO_GL`` is already set it is respected. Otherwise ``egl`` is used
    when ``libEGL`` is installed, else ``osmesa`` when ``libOSMesa`` is, else
    the variable is left unset (no headless rendering; physics still works).
    Must be called before ``mujoco`` is imported to have any effect; all
    factories in this module call it first.

    Returns:
        The value of ``MUJOCO_GL`` after the choice, or ``None`` if unset.
    """
    global _GL_CHOSEN
    with _GL_LOCK:
        if not _GL_CHOSEN and "MUJOCO_GL" not in os.environ:
            if ctypes.util.find_library("EGL"):
                os.environ["MUJOCO_GL"] = "egl"
            elif ctypes.util.find_library("OSMesa"):
                os.environ["MUJOCO_GL"] = "osmesa"
        _GL_CHOSEN = True
    return os.environ.get("MUJOCO_GL")


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


def _check_task(env_id: str) -> None:
    if env_id not in MUJOCO_TASKS:
        raise ValueError(
            f"Unsupported MuJoCo task id {env_id!r}; supported ids: "
            f"{', '.join(MUJOCO_TASKS)}"
        )


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
            (1000, or 50 for Reacher).
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
    kwargs: dict[str, Any] = dict(PAPER_VARIANT_KWARGS[env_id]) if paper_variant else {}
    kwargs.update(make_kwargs)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    if paper_variant and env_id in _NEEDS_NO_TERMINATION_WRAPPER:
        env = NoTerminationWrapper(env)
    return SimStateInfoWrapper(env)


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
    if env_id not in _DIMS_CACHE:
        env = make_mujoco_env(env_id)
        model = env.unwrapped.model
        _DIMS_CACHE[env_id] = (int(model.nq), int(model.nv))
        env.close()
    return _DIMS_CACHE[env_id]


_DIMS_CACHE: dict[str, tuple[int, int]] = {}

# Renderer envs are expensive to create (~0.5 s for a GL context and model),
# so one per (env_id, width, height) is kept. Not thread-safe: render from one
# thread, or call close_renderers() in between.
_RENDERERS: dict[tuple[str, int, int], gym.Env] = {}
_SHADOW_SIZE = 1024


def close_renderers() -> None:
    """Closes the cached rendering environments used by :func:`render_states`."""
    while _RENDERERS:
        _, env = _RENDERERS.popitem()
        env.close()


def _renderer(env_id: str, width: int, height: int) -> gym.Env:
    key = (env_id, width, height)
    if key not in _RENDERERS:
        backend = gl_backend()
        if backend is None:
            raise RenderingUnavailableError(
                "No headless OpenGL backend: neither libEGL nor libOSMesa was "
                "found and MUJOCO_GL is unset (install e.g. Debian's libegl1 "
                "libegl-mesa0 libgl1-mesa-dri, or libosmesa6)."
            )
        env = gym.make(env_id, render_mode="rgb_array", width=width, height=height)
        # MuJoCo's default 4096^2 shadow map dominates software (llvmpipe)
        # rendering time; 1024^2 looks the same at these sizes and is ~3x
        # faster (0.17 -> 0.06 s per 240x240 frame on 2 CPU cores). It must be
        # set before the first render() creates the GL context.
        quality = env.unwrapped.model.vis.quality
        quality.shadowsize = min(int(quality.shadowsize), _SHADOW_SIZE)
        env.reset(seed=0)
        try:
            env.render()
        except Exception as err:  # GL libraries present but unusable
            env.close()
            raise RenderingUnavailableError(
                f"MuJoCo rendering with MUJOCO_GL={backend!r} failed: {err!r}"
            ) from err
        _RENDERERS[key] = env
    return _RENDERERS[key]


def render_states(
    env_id: str, states: np.ndarray, width: int = 240, height: int = 240
) -> np.ndarray:
    """Renders simulator states (e.g. a segment's ``info["sim_state"]``) to RGB.

    Uses the task's default ``rgb_array`` camera (the tracking cameras follow
    the body, as in the live env). Each state is set with ``set_state`` (which
    runs ``mj_forward``) and drawn independently.

    Args:
        env_id: One of :data:`MUJOCO_TASKS`.
        states: ``[L, nq + nv]`` (or a single ``[nq + nv]``) qpos/qvel rows.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        uint8 ``[L, height, width, 3]`` frames (``[height, width, 3]`` for a
        single 1-D state).

    Raises:
        ValueError: On an unsupported id or states of the wrong width.
        RenderingUnavailableError: If no headless GL backend works here.
    """
    _check_task(env_id)
    states = np.asarray(states, dtype=np.float64)
    single = states.ndim == 1
    if single:
        states = states[None]
    nq, nv = sim_state_dims(env_id)
    if states.ndim != 2 or states.shape[1] != nq + nv:
        raise ValueError(
            f"{env_id} states must have shape [L, {nq + nv}] (nq={nq}, nv={nv}), "
            f"got {states.shape}"
        )
    env = _renderer(env_id, int(width), int(height))
    sim = env.unwrapped
    frames = np.empty((states.shape[0], height, width, 3), dtype=np.uint8)
    for i, state in enumerate(states):
        sim.set_state(state[:nq], state[nq:])
        frames[i] = env.render()
    return frames[0] if single else frames
