"""An arm's checkpoint (agent, observation normalisation, loop state, progress) and its episode log."""

from __future__ import annotations

import json
import os
import shutil
from collections import deque
from pathlib import Path

from benchmarks.kit.report import json_safe


def atomic_json(path: Path, data) -> None:
    """Writes ``data`` as JSON to ``path`` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(data)) + "\n")
    os.replace(tmp, path)


class EpisodeLog:
    """Finished training episodes: how many, and the true returns of the last ``keep`` (constant memory)."""

    def __init__(self, count: int = 0, recent: list[float] | None = None, keep: int = 10):
        self.count = count
        self.recent: deque[float] = deque(recent or [], maxlen=keep)

    def add(self, ret: float) -> None:
        self.count += 1
        self.recent.append(ret)

    def state(self) -> dict:
        return {"count": self.count, "recent": list(self.recent)}

    @classmethod
    def from_state(cls, state) -> "EpisodeLog":
        if isinstance(state, list):  # checkpoints before the log was bounded: [(step, return), ...]
            return cls(len(state), [r for _, r in state])
        return cls(state["count"], state["recent"])


class Checkpoint:
    """One arm's checkpoint directory ``<out>/checkpoints/<arm>-seed<k>``, replaced atomically.

    Files: ``agent.zip`` (SB3, with its optimizer and step count), ``vecnormalize.pkl``
    when the agent normalises observations, ``loop.pt`` (``PreferenceLoop.state_dict``)
    and ``progress.json`` (curve rows, episode returns, time spent). A new checkpoint is
    written next to the old one and swapped in by renames, so a kill at any moment leaves
    one complete checkpoint. ``result.json`` marks a finished arm.
    """

    def __init__(self, out: Path, arm: str, seed: int):
        self.root = out / "checkpoints"
        self.path = self.root / f"{arm}-seed{seed}"
        self.result_path = self.root / f"{arm}-seed{seed}.result.json"
        self.reached_path = self.root / f"{arm}-seed{seed}.reached.json"

    def latest(self) -> Path | None:
        for p in (self.path, self.path.with_name(self.path.name + ".old")):
            if (p / "progress.json").exists():
                return p
        return None

    def write(self, agent, loop, progress: dict) -> None:
        import torch
        from stable_baselines3.common.vec_env import VecNormalize

        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        agent.save(tmp / "agent.zip")
        env = agent.get_env()
        if isinstance(env, VecNormalize):
            env.save(str(tmp / "vecnormalize.pkl"))
        if loop is not None:
            torch.save(loop.state_dict(), tmp / "loop.pt")
        (tmp / "progress.json").write_text(json.dumps(json_safe(progress)))  # last: marks it complete
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        if old.exists():
            shutil.rmtree(old)

    def restore(self, agent_cls, env, loop, device: str):
        """Loads the latest checkpoint: returns (agent, progress)."""
        import torch
        from stable_baselines3.common.vec_env import VecNormalize

        path = self.latest()
        if isinstance(env, VecNormalize) and (path / "vecnormalize.pkl").exists():
            saved = VecNormalize.load(str(path / "vecnormalize.pkl"), env.venv)
            env.obs_rms, env.ret_rms = saved.obs_rms, saved.ret_rms
        agent = agent_cls.load(path / "agent.zip", env=env, device=device)
        if loop is not None:
            loop.load_state_dict(torch.load(path / "loop.pt", weights_only=False))
        return agent, json.loads((path / "progress.json").read_text())
