"""Fixed-length segments of behaviour, sampled from rollouts.

A segment is L consecutive steps (o_t, a_t, r_t) of one environment of a
vector env. A segment never crosses an episode end and never contains a
vector env's autoreset step (the step whose action is ignored because the
sub-env was resetting).
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Segments", "valid_starts", "sample_segments"]


@dataclass
class Segments:
    """A batch of N segments of length L.

    Attributes:
        obs: [N, L, *obs_shape] observations o_t.
        act: [N, L, *act_shape] actions a_t taken at o_t.
        true_reward: [N, L] the environment's own reward r_t. For the oracle
            and for evaluation only: never shown to the agent.
        state: optional [N, L, *state_shape] what a person needs to see the
            clip that the observation alone cannot give (e.g. MuJoCo simulator
            states qpos + qvel, rendered with ``envs.mujoco.render_states``),
            or None. Never seen by the reward model; the store does not keep it.
    """

    obs: torch.Tensor
    act: torch.Tensor
    true_reward: torch.Tensor
    state: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.true_reward.dim() != 2:
            raise ValueError(f"true_reward must be [N, L], got {tuple(self.true_reward.shape)}")
        n, length = self.true_reward.shape
        for name in ("obs", "act") + (("state",) if self.state is not None else ()):
            shape = tuple(getattr(self, name).shape[:2])
            if shape != (n, length):
                raise ValueError(f"{name} leads with {shape}, expected (N, L) = {(n, length)}")

    def __len__(self) -> int:
        return self.true_reward.shape[0]

    @property
    def length(self) -> int:
        """L, the number of steps in each segment."""
        return self.true_reward.shape[1]

    @property
    def true_return(self) -> torch.Tensor:
        """[N] sum of the true reward over each segment."""
        return self.true_reward.sum(dim=1)

    def __getitem__(self, idx) -> "Segments":
        """Selects segments along N (an int keeps the N dim: ``segs[3]`` is 1 segment)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return Segments(self.obs[idx], self.act[idx], self.true_reward[idx],
                        None if self.state is None else self.state[idx])

    @staticmethod
    def cat(parts: list["Segments"]) -> "Segments":
        """Concatenates batches of segments along N (``state`` is kept only when every part has one)."""
        states = [p.state for p in parts]
        return Segments(
            torch.cat([p.obs for p in parts]),
            torch.cat([p.act for p in parts]),
            torch.cat([p.true_reward for p in parts]),
            torch.cat(states) if all(s is not None for s in states) else None,
        )


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def valid_starts(dones: torch.Tensor, length: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Where a segment of ``length`` steps may start.

    A start (t, e) is valid iff steps t .. t+L-1 of env e lie inside the
    rollout, none of steps t .. t+L-2 ended an episode (the last step may),
    and all L steps are valid (not autoreset steps).

    Args:
        dones: [T, n_envs] bool, True where step t was the last of its episode
            (terminated or truncated).
        length: L >= 1.
        valid: [T, n_envs] bool, False on steps to exclude (a vector env's
            autoreset steps). ``None`` = all valid.

    Returns:
        [T - L + 1, n_envs] bool mask of valid starts (empty if T < L).
    """
    dones = _as_tensor(dones).bool()
    if dones.dim() != 2:
        raise ValueError(f"dones must be [T, n_envs], got {tuple(dones.shape)}")
    if length < 1:
        raise ValueError(f"segment length must be >= 1, got {length}")
    T, n = dones.shape
    if T < length:
        return torch.zeros(0, n, dtype=torch.bool)
    invalid = torch.zeros_like(dones) if valid is None else ~_as_tensor(valid).bool()
    if invalid.shape != dones.shape:
        raise ValueError(f"valid {tuple(invalid.shape)} must match dones {tuple(dones.shape)}")
    zero = torch.zeros(1, n, dtype=torch.long)
    # Prefix sums: count of events in [t, t+k) = c[t+k] - c[t].
    c_done = torch.cat([zero, dones.long().cumsum(0)])
    c_bad = torch.cat([zero, invalid.long().cumsum(0)])
    starts = torch.arange(T - length + 1)
    dones_inside = c_done[starts + length - 1] - c_done[starts]  # steps t .. t+L-2
    bad_inside = c_bad[starts + length] - c_bad[starts]  # steps t .. t+L-1
    return (dones_inside == 0) & (bad_inside == 0)


def sample_segments(
    obs,
    act,
    reward,
    dones,
    length: int,
    n: int,
    generator: torch.Generator | None = None,
    valid=None,
    state=None,
) -> Segments:
    """Samples N segments uniformly among all valid windows of a rollout.

    Args:
        obs: [T, n_envs, *obs_shape] observation at which each action was taken.
        act: [T, n_envs, *act_shape] actions.
        reward: [T, n_envs] the environment's true reward for each step.
        dones: [T, n_envs] True where the step ended its episode.
        length: L, steps per segment.
        n: N, segments to draw (with replacement across windows).
        generator: torch RNG, for reproducible draws.
        valid: optional [T, n_envs] mask, False on autoreset steps.
        state: optional [T, n_envs, *state_shape] render states (e.g. MuJoCo
            qpos + qvel after each step), cut like the observations.

    Returns:
        Segments with obs [N, L, ...], act [N, L, ...], true_reward [N, L]
        and state [N, L, ...] (None when no ``state`` was given).

    Raises:
        ValueError: on mismatched shapes, NaN rewards, or a rollout with no
            window of ``length`` steps inside one episode.
    """
    obs, act, reward = _as_tensor(obs), _as_tensor(act), _as_tensor(reward)
    dones = _as_tensor(dones)
    if reward.dim() != 2:
        raise ValueError(f"reward must be [T, n_envs], got {tuple(reward.shape)}")
    T, n_envs = reward.shape
    extra = (("state", _as_tensor(state)),) if state is not None else ()
    for name, x in (("obs", obs), ("act", act), ("dones", dones), *extra):
        if tuple(x.shape[:2]) != (T, n_envs):
            raise ValueError(f"{name} leads with {tuple(x.shape[:2])}, expected [T, n_envs] = {(T, n_envs)}")
    steps, env = segment_windows(reward, dones, length, n, generator, valid)
    cut = None if state is None else _as_tensor(state)[steps, env]
    return Segments(obs[steps, env], act[steps, env], reward[steps, env].float(), cut)


def segment_windows(
    reward, dones, length: int, n: int, generator: torch.Generator | None = None, valid=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where N segments are cut: the (time, env) index of each of their steps, drawn as ``sample_segments`` draws them.

    What ``sample_segments`` cuts with, for callers that gather the
    observations themselves (the loop's ring buffer gathers only the drawn
    steps instead of copying every recorded frame first).

    Args:
        reward: [T, n_envs] true rewards (NaN steps are never inside a segment).
        dones: [T, n_envs] True where the step ended its episode.
        length: L, steps per segment.
        n: N, segments to draw (with replacement across windows).
        generator: torch RNG, for reproducible draws.
        valid: optional [T, n_envs] mask, False on autoreset steps.

    Returns:
        ``steps`` [N, L] and ``env`` [N, L] long indices into the [T, n_envs] arrays.

    Raises:
        ValueError: n < 1, or no window of ``length`` steps inside one episode.
    """
    reward, dones = _as_tensor(reward), _as_tensor(dones)
    T, n_envs = reward.shape
    if n < 1:
        raise ValueError(f"number of segments must be >= 1, got {n}")
    nan = ~torch.isfinite(reward.float())
    if nan.any():  # a broken env step (NaN or inf): clips around it cannot be judged, the others still can
        warnings.warn(f"{int(nan.sum())} steps have a NaN true reward; no clip includes them", stacklevel=2)
        valid = ~nan if valid is None else _as_tensor(valid).bool() & ~nan
    ok = valid_starts(dones, length, valid)
    t_idx, e_idx = ok.nonzero(as_tuple=True)
    if len(t_idx) == 0:
        raise ValueError(
            f"no window of {length} steps inside one episode in a rollout of {T} steps x {n_envs} envs; "
            "collect longer rollouts or use shorter segments"
        )
    pick = torch.randint(len(t_idx), (n,), generator=generator)
    t0, e = t_idx[pick], e_idx[pick]
    steps = t0[:, None] + torch.arange(length)[None, :]  # [N, L]
    return steps, e[:, None].expand(-1, length)
