"""The loop's memory of recent steps: a ring buffer of the last vector-env steps, as numpy arrays.

Query candidates, calibration steps and fresh-correlation segments are drawn
from it; only the drawn steps are copied out.
"""

from __future__ import annotations

import numpy as np
import torch

from prefrl.segments import Segments, segment_windows

__all__ = ["RolloutRecorder"]


class RolloutRecorder:
    """Ring buffer of the last ``capacity`` vector-env steps, kept as numpy arrays.

    Args:
        capacity: steps (per env) to keep.
        n_envs: environments in the vector env.
    """

    def __init__(self, capacity: int, n_envs: int):
        self.capacity, self.n_envs = capacity, n_envs
        self._buf: dict[str, np.ndarray] = {}
        self._next = 0
        self.size = 0
        self.total = 0

    def add(self, obs: np.ndarray, act: np.ndarray, true_reward: np.ndarray, done: np.ndarray, valid=None,
            state=None) -> None:
        """Appends one vector step: obs [n, ...], act [n, ...], true_reward [n], done [n], valid [n].

        ``state`` [n, *state_shape] (optional) is what a person needs to see the
        step, e.g. MuJoCo's qpos + qvel after it (``info["sim_state"]``). Its
        buffer is allocated on the first step that brings one, and only then:
        capacity x n_envs x state size (MuJoCo, float64: 10k steps x 4 envs x
        ~30 numbers = ~10 MB). Steps recorded without a state keep NaN there.
        """
        step = {
            "obs": np.asarray(obs),
            "act": np.asarray(act),
            "true_reward": np.asarray(true_reward, dtype=np.float32),
            "done": np.asarray(done, dtype=bool),
            "valid": np.ones(self.n_envs, bool) if valid is None else np.asarray(valid, dtype=bool),
        }
        for k, v in step.items():
            if len(v) != self.n_envs:
                raise ValueError(f"{k} has {len(v)} rows, expected one per env ({self.n_envs})")
        # what the reward model reads must be finite: one NaN would turn every later fit to NaN. (A non-finite
        # true reward is recorded: no clip that holds it is ever labeled, see ``sample``'s callers.)
        for k in ("obs", "act"):
            v = step[k]
            if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
                bad = np.nonzero(~np.isfinite(v.reshape(self.n_envs, -1)).all(axis=1))[0]
                raise ValueError(f"non-finite {k} (NaN or inf) at vector step {self.total} in env(s) "
                                 f"{bad.tolist()}: the step was not recorded. Fix the environment (or clip its "
                                 "output) before preference learning: a fit on it would be NaN")
        if not self._buf:
            self._buf = {k: np.zeros((self.capacity, *v.shape), v.dtype) for k, v in step.items()}
        if state is not None:
            state = np.asarray(state)
            if len(state) != self.n_envs:
                raise ValueError(f"state has {len(state)} rows, expected one per env ({self.n_envs})")
            if "state" not in self._buf:
                dtype = state.dtype if np.issubdtype(state.dtype, np.floating) else np.float64
                self._buf["state"] = np.full((self.capacity, *state.shape), np.nan, dtype)
            step["state"] = state
        elif "state" in self._buf:
            self._buf["state"][self._next] = np.nan
        for k, v in step.items():
            self._buf[k][self._next] = v
        self._next = (self._next + 1) % self.capacity
        self.size = min(self.capacity, self.size + 1)
        self.total += 1

    def mark_episode_break(self) -> None:
        """Ends every env's episode at the last recorded step (e.g. after a manual reset)."""
        if self.size:
            self._buf["done"][(self._next - 1) % self.capacity] = True

    def arrays(self, last: int | None = None) -> dict[str, np.ndarray]:
        """The recorded steps in time order, each [T, n_envs, ...] (only the newest ``last`` if given): copies."""
        order = self._order(last)
        return {name: v[order] for name, v in self._buf.items()}

    def _order(self, last: int | None) -> np.ndarray:
        """Ring positions of the newest ``last`` (default: all) recorded steps, oldest first."""
        if self.size == 0:
            raise ValueError("no steps recorded yet: step the wrapped environment first")
        k = self.size if last is None else min(last, self.size)
        return (self._next - k + np.arange(k)) % self.capacity

    def sample(self, n: int, length: int, generator: torch.Generator, last: int | None = None) -> Segments:
        """N segments of ``length`` steps from the recorded steps (the newest ``last`` steps if given).

        The same draws as ``sample_segments`` on ``arrays(last)``, but only the
        drawn steps' observations are copied out of the ring buffer (Atari:
        N x L frames instead of all 80k recorded ones, ~570 MB, per call).
        The segments carry the recorded render states (``Segments.state``) when
        steps were recorded with one.
        """
        order = self._order(last)
        buf = self._buf
        steps, env = segment_windows(buf["true_reward"][order], buf["done"][order], length, n, generator,
                                     buf["valid"][order])
        rows, cols = order[steps.numpy()], env.numpy()
        state = torch.from_numpy(buf["state"][rows, cols]) if "state" in buf else None
        return Segments(torch.from_numpy(buf["obs"][rows, cols]), torch.from_numpy(buf["act"][rows, cols]),
                        torch.from_numpy(buf["true_reward"][rows, cols]).float(), state)

    def transitions(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Up to n recorded transitions (step t and step t + 1 of the same episode) drawn at random.

        A step that ended its episode (``done``) or whose next step is an autoreset step is never a
        transition's first step. Only the drawn steps are copied out of the ring buffer.

        Returns:
            ``obs``, ``act``, ``next_obs``, ``next_act``, each [m, ...] with m <= n (m = 0 if no step has
            a successor yet).
        """
        order = self._order(None)
        buf = self._buf
        ok = buf["valid"][order[:-1]] & ~buf["done"][order[:-1]] & buf["valid"][order[1:]]  # [T-1, n_envs]
        flat = ok.reshape(-1).nonzero()[0]
        pick = np.sort(rng.choice(flat, size=min(n, len(flat)), replace=False))
        t, e = np.divmod(pick, self.n_envs)
        now, nxt = order[t], order[t + 1]
        return {"obs": buf["obs"][now, e], "act": buf["act"][now, e],
                "next_obs": buf["obs"][nxt, e], "next_act": buf["act"][nxt, e]}

    def random_steps(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Up to n recorded (obs, act) steps drawn at random: obs [n, ...], act [n, ...].

        Only the drawn steps are copied out of the ring buffer.
        """
        order = self._order(None)
        flat = self._buf["valid"][order].reshape(-1).nonzero()[0]
        pick = rng.choice(flat, size=min(n, len(flat)), replace=False)
        t, e = np.divmod(pick, self.n_envs)
        return self._buf["obs"][order[t], e], self._buf["act"][order[t], e]
