"""An arm's checkpoint (every family: an atomic directory, its reached and result marks) and its episode log."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Callable

from benchmarks.kit.report import json_safe


def atomic_json(path: Path, data, *, safe: bool = True) -> None:
    """Writes ``data`` as JSON to ``path`` through a temporary file and a rename (never half a file).

    ``safe``: strict JSON (NaN as null, see :func:`json_safe`); False writes NaN as Python's JSON does.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(data) if safe else data) + "\n")
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
    """One arm's checkpoint, ``<out>/checkpoints/<arm>-seed<k>``: a directory replaced atomically, and its marks.

    Every family's arms checkpoint here (MuJoCo and Atari through :meth:`write` / :meth:`restore`, the
    text benchmark through :meth:`commit` / :meth:`latest` with its own ``state.pt``):

    * the directory holds the arm's files and ``progress.json`` (curve rows, counters, time spent),
      written last; a new one is written beside the old one and swapped in by renames, so a kill at any
      moment leaves one complete checkpoint;
    * ``<arm>-seed<k>.reached.json``: how far the arm got past its checkpoint (a resume says how much
      it redoes);
    * ``<arm>-seed<k>.result.json``: the finished arm's result (a resume keeps it as it is).
    """

    def __init__(self, out: Path, arm: str, seed: int):
        self.root = out / "checkpoints"
        self.path = self.root / f"{arm}-seed{seed}"
        self.result_path = self.root / f"{arm}-seed{seed}.result.json"
        self.reached_path = self.root / f"{arm}-seed{seed}.reached.json"

    def latest(self) -> Path | None:
        """The complete checkpoint directory (the new one, or the old one a kill left mid-swap), or None."""
        for p in (self.path, self.path.with_name(self.path.name + ".old")):
            if (p / "progress.json").exists():
                return p
        return None

    def progress(self) -> dict | None:
        """``progress.json`` of :meth:`latest`, or None when there is no checkpoint."""
        path = self.latest()
        return None if path is None else json.loads((path / "progress.json").read_text())

    def commit(self, fill: Callable[[Path], None], progress: dict) -> None:
        """Writes a new checkpoint: ``fill(directory)`` writes the arm's files, then ``progress.json``, then the swap."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        fill(tmp)
        (tmp / "progress.json").write_text(json.dumps(json_safe(progress)))  # last: marks it complete
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        if old.exists():
            shutil.rmtree(old)

    def write(self, agent, loop, progress: dict) -> None:
        """An SB3 arm's checkpoint: ``agent.zip`` (with its optimizer and step count), ``vecnormalize.pkl``
        when the agent normalises observations, ``loop.pt`` (``PreferenceLoop.state_dict``)."""
        def fill(d: Path) -> None:
            import torch
            from stable_baselines3.common.vec_env import VecNormalize

            agent.save(d / "agent.zip")
            env = agent.get_env()
            if isinstance(env, VecNormalize):
                env.save(str(d / "vecnormalize.pkl"))
            if loop is not None:
                torch.save(loop.state_dict(), d / "loop.pt")

        self.commit(fill, progress)

    def restore(self, agent_cls, env, loop, device: str):
        """Loads an SB3 arm's latest checkpoint: returns (agent, progress)."""
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

    def reached(self, default: int = 0, unit: str = "env_step") -> int:
        """The last ``unit`` (env step, iteration) the arm completed, checkpointed or not; ``default`` if unknown."""
        return json.loads(self.reached_path.read_text())[unit] if self.reached_path.exists() else default

    def set_reached(self, n: int, unit: str = "env_step") -> None:
        atomic_json(self.reached_path, {unit: n})

    def finished(self) -> dict | None:
        """The result of an arm that finished (before an interruption), or None."""
        return json.loads(self.result_path.read_text()) if self.result_path.exists() else None

    def finish(self, result: dict, *, keep_nan: bool = False) -> None:
        """Marks the arm finished with ``result`` and removes its checkpoint directory (no longer needed).

        Args:
            result: the arm's result, as JSON (tuples come back as lists).
            keep_nan: write NaN as NaN (Python's JSON reads it back) instead of null.
        """
        atomic_json(self.result_path, result, safe=not keep_nan)
        for p in (self.path, self.path.with_name(self.path.name + ".old")):
            shutil.rmtree(p, ignore_errors=True)


def keep_labels_aside(store_path: Path) -> Path | None:
    """Renames a learned arm's label store aside (``labels-seed<k>.before-resume-<time>.sqlite``), or None.

    A resumed arm that died before its first checkpoint starts again; the labels it gathered are kept
    beside its new store, never overwritten.
    """
    if not store_path.exists():
        return None
    aside = store_path.with_name(f"{store_path.stem}.before-resume-{int(time.time())}.sqlite")
    store_path.rename(aside)
    return aside
