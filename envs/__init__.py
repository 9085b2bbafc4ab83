"""Environments for prefrl: MuJoCo control tasks and Atari games.

Importing :mod:`envs` is cheap: it imports neither gymnasium, mujoco, ale_py
nor stable-baselines3. The factories below are resolved lazily on first
attribute access (PEP 562), and the heavy simulators are imported only inside
them::

    from envs import make_mujoco_env, make_atari_vec_env

MuJoCo (``envs.mujoco``): :data:`MUJOCO_TASKS`, :func:`make_mujoco_env`,
:func:`make_mujoco_vec_env`, :func:`render_states`, and the paper-variant
tables :data:`PAPER_VARIANT_CHANGES` / :data:`PAPER_VARIANT_KWARGS`.

Atari (``envs.atari``): :data:`ATARI_GAMES`, :func:`make_atari_vec_env`,
:func:`frames_for_labeling`, :data:`SCORE_MASK_ROWS`, :func:`score_mask`,
:func:`canonical_game_id`.

Note: ``envs/mujoco.py`` shares its name with the ``mujoco`` package; run
scripts from the repository root (``python -m envs.atari``), never from inside
``envs/``, or ``import mujoco`` would find this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Text environment: register "TextGen-v0" here once envs/text.py exists, e.g.
#     gymnasium.register("TextGen-v0", entry_point="envs.text:TextGenEnv")
# (keep it lazy: import gymnasium inside a function or accept its ~0.2 s cost).

_LAZY: dict[str, str] = {
    # MuJoCo
    "MUJOCO_TASKS": "envs.mujoco",
    "PAPER_VARIANT_CHANGES": "envs.mujoco",
    "PAPER_VARIANT_KWARGS": "envs.mujoco",
    "make_mujoco_env": "envs.mujoco",
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
    "make_atari_vec_env": "envs.atari",
}

__all__ = sorted(_LAZY)

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
    from envs.mujoco import (
        MUJOCO_TASKS,
        PAPER_VARIANT_CHANGES,
        PAPER_VARIANT_KWARGS,
        make_mujoco_env,
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
