"""Building PPO/A2C agents with per-family defaults."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.defaults import DEFAULTS

__all__ = ["AGENTS", "make_agent", "resolve_device"]

AGENTS = ("ppo", "a2c")
_CLASSES = {"ppo": PPO, "a2c": A2C}


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; other values are checked and returned.

    Raises:
        ValueError: "cuda" asked for on a machine without one, or an unknown device.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is visible to torch; use --device cpu or auto")
    try:
        torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from err
    return device


def make_agent(
    name: str,
    env: VecEnv,
    family: str,
    *,
    seed: int = 0,
    device: str = "auto",
    **overrides: Any,
) -> BaseAlgorithm:
    """An SB3 PPO or A2C agent with the family's defaults.

    Args:
        name: "ppo" or "a2c".
        env: the (possibly learned-reward) VecEnv it trains on.
        family: "mujoco" or "atari": picks policy and hyper-parameters.
        seed: seeds the agent (policy init, sampling).
        device: "auto" (GPU when present), "cpu" or "cuda".
        **overrides: any SB3 constructor argument, replacing the default.

    Returns:
        The untrained algorithm.
    """
    if name not in _CLASSES:
        raise ValueError(f"unknown agent {name!r}; choose one of {AGENTS}")
    if (family, name) not in DEFAULTS:
        raise ValueError(f"no defaults for family {family!r}; known: {sorted({f for f, _ in DEFAULTS})}")
    kwargs = dict(DEFAULTS[(family, name)]) | overrides
    policy = kwargs.pop("policy")
    return _CLASSES[name](policy, env, seed=seed, device=resolve_device(device), verbose=0, **kwargs)
