"""The MuJoCo task ids prefrl supports, in a module of their own: ``envs.mujoco`` and ``envs.mujoco_render``
both import it and not each other."""

from __future__ import annotations

__all__ = ["MUJOCO_TASKS", "check_task"]

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


def check_task(env_id: str) -> None:
    """Raises ValueError naming the supported ids unless ``env_id`` is one."""
    if env_id not in MUJOCO_TASKS:
        raise ValueError(
            f"Unsupported MuJoCo task id {env_id!r}; supported ids: "
            f"{', '.join(MUJOCO_TASKS)}"
        )
