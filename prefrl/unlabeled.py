"""Reward learning from the steps nobody labeled: a dynamics-aware representation and SURF's pieces.

The agent records hundreds of thousands of steps; the labeler sees a few hundred clips of them. Two ways
to let the reward model learn from the rest, both options of :class:`prefrl.trainer.TrainerConfig`:

* **Temporal consistency** (REED, Metcalf et al. 2022/2024): every member's latent of a step,
  ``z_t = embed(o_t, a_t)`` (the layer its reward head reads), is trained on recorded transitions to
  predict the next step's latent, ``predictor(z_t, a_t) ~ z_{t+1}``
  (:func:`prefrl.losses.temporal_consistency_loss`), before the first fit and beside every fit. The
  reward head then reads a representation shaped by the dynamics of all recorded play.
* **Semi-supervised preferences** (SURF, Park et al. 2022): pairs of recorded clips nobody labeled get the
  ensemble's own confident predictions as labels (:func:`prefrl.losses.pseudo_labels`), and every pair,
  labeled or not, is trained on random temporal crops of its two clips (:func:`temporal_crop`).

:class:`UnlabeledData` carries what a fit reads of the recorded steps (the loop draws it from its
recorder); :class:`TransitionPredictor` is the ``[E, ...]`` predictor of the temporal-consistency loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from prefrl.reward_model import member_linear_layers

__all__ = ["UnlabeledData", "TransitionPredictor", "InverseDynamics", "draw_unlabeled", "temporal_crop"]


@dataclass
class UnlabeledData:
    """Recorded steps a fit learns from without labels; either part may be None.

    Attributes:
        obs, act: [N, *obs_shape], [N, *act_shape] steps t of N recorded transitions.
        next_obs, next_act: [N, ...] the steps t + 1 of the same episodes.
        pair_obs: [P, 2, L, *obs_shape] P pairs of unlabeled clips (for pseudo-labels).
        pair_act: [P, 2, L, *act_shape] their actions.
        pair_true_return: [P, 2] the pairs' true returns, or None: only for the ``rm/pseudo_accuracy``
            diagnostic, never trained on.
    """

    obs: torch.Tensor | None = None
    act: torch.Tensor | None = None
    next_obs: torch.Tensor | None = None
    next_act: torch.Tensor | None = None
    pair_obs: torch.Tensor | None = None
    pair_act: torch.Tensor | None = None
    pair_true_return: torch.Tensor | None = None

    def __post_init__(self) -> None:
        parts = (self.obs, self.act, self.next_obs, self.next_act)
        if any(p is not None for p in parts):
            if any(p is None for p in parts):
                raise ValueError("transitions need obs, act, next_obs and next_act together")
            n = len(self.obs)
            if any(len(p) != n for p in parts) or self.obs.shape != self.next_obs.shape:
                raise ValueError(f"transition arrays disagree: obs {tuple(self.obs.shape)}, act {tuple(self.act.shape)}, "
                                 f"next_obs {tuple(self.next_obs.shape)}, next_act {tuple(self.next_act.shape)}")
        if (self.pair_obs is None) != (self.pair_act is None):
            raise ValueError("unlabeled pairs need pair_obs and pair_act together")
        if self.pair_obs is not None and (self.pair_obs.dim() < 3 or self.pair_obs.shape[1] != 2
                                          or self.pair_obs.shape[:3] != self.pair_act.shape[:3]):
            raise ValueError(f"unlabeled pairs must be [P, 2, L, ...], got obs {tuple(self.pair_obs.shape)} "
                             f"and act {tuple(self.pair_act.shape)}")

    @property
    def n_transitions(self) -> int:
        """N, the recorded transitions held (0 without)."""
        return 0 if self.obs is None else len(self.obs)

    @property
    def n_pairs(self) -> int:
        """P, the unlabeled pairs held (0 without)."""
        return 0 if self.pair_obs is None else len(self.pair_obs)


class _MemberHead(nn.Module):
    """E small MLPs (one hidden layer, leaky ReLU) batched as ``[E, ...]`` weights, and the action encoding
    shared by the heads below.

    Args:
        n_members: E.
        in_dim, out_dim: widths of the input and the output (``None``: the action's width, see below).
        act_shape: shape of one stored action; ``()`` for discrete actions.
        n_actions: discrete action ids (default 256: any ALE action set); ignored for continuous actions.
        hidden: width of the hidden layer.
    """

    def __init__(self, n_members: int, in_dim: int | None, out_dim: int | None, act_shape: tuple[int, ...],
                 n_actions: int | None, hidden: int):
        super().__init__()
        self.discrete = tuple(act_shape) == ()
        self.n_actions = (n_actions or 256) if self.discrete else None
        self.act_dim = self.n_actions if self.discrete else math.prod(act_shape)
        self.E = n_members
        self.weights, self.biases = member_linear_layers(
            n_members, [self.act_dim if in_dim is None else in_dim, hidden, self.act_dim if out_dim is None else out_dim])

    def action_ids(self, act: torch.Tensor) -> torch.Tensor:
        """[E, B] discrete actions -> [E, B] int64 ids, checked to lie in [0, n_actions)."""
        ids = act.long().reshape(act.shape[:2])
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n_actions):
            raise ValueError(f"discrete actions must be ids in [0, {self.n_actions}), got {int(ids.min())}.."
                             f"{int(ids.max())}; build the head with n_actions large enough")
        return ids

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        """[E, B, in] -> [E, B, out]."""
        x = F.leaky_relu(torch.baddbmm(self.biases[0], x, self.weights[0]), 0.01)
        return torch.baddbmm(self.biases[1], x, self.weights[1])


def draw_unlabeled(recorder, trainer_config, transitions: int, pairs: int, segment_length: int,
                   rng, gen: torch.Generator) -> UnlabeledData | None:
    """What a fit reads of the recorded steps beyond the labels (None when the trainer reads nothing more).

    Transitions for the temporal-consistency loss and pairs of clips for pseudo-labels, drawn from the
    whole recorder with the caller's generators, in the calling thread.

    Args:
        recorder: the loop's :class:`prefrl.recorder.RolloutRecorder`.
        trainer_config: the :class:`prefrl.trainer.TrainerConfig` (``uses_unlabeled``, ``ssl_weight``,
            ``pseudo_threshold``).
        transitions: transitions to draw ([N] of each part).
        pairs: clip pairs to draw ([P, 2, L, ...]).
        segment_length: L, steps per clip.
        rng: numpy Generator of the transitions; gen: torch Generator of the clips.
    """
    if not trainer_config.uses_unlabeled or recorder.size < 2:
        return None
    parts: dict = {}
    if trainer_config.ssl_weight > 0:
        tr = recorder.transitions(transitions, rng)
        if len(tr["obs"]):
            parts.update({k: torch.from_numpy(v) for k, v in tr.items()})
    if trainer_config.pseudo_threshold is not None:
        try:
            s1 = recorder.sample(pairs, segment_length, gen)
            s2 = recorder.sample(pairs, segment_length, gen)
        except ValueError:  # no window of L steps inside one episode yet
            s1 = None
        if s1 is not None:
            parts.update(pair_obs=torch.stack([s1.obs, s2.obs], 1), pair_act=torch.stack([s1.act, s2.act], 1),
                         pair_true_return=torch.stack([s1.true_return, s2.true_return], 1))
    return UnlabeledData(**parts) if parts else None


class TransitionPredictor(_MemberHead):
    """E small MLPs ``(z_t, a_t) -> z_{t+1}``, one per ensemble member, batched as ``[E, ...]`` weights.

    Args:
        n_members: E.
        latent_dim: D, the width of the members' latents (``RewardEnsemble.latent_dim``).
        act_shape: shape of one stored action; ``()`` for discrete actions.
        n_actions: discrete actions are one-hot encoded over this many ids (default 256: any ALE action
            set); ignored for continuous actions.
        hidden: width of the hidden layer (default 128).
    """

    def __init__(self, n_members: int, latent_dim: int, act_shape: tuple[int, ...] = (), n_actions: int | None = None,
                 hidden: int = 128):
        discrete = tuple(act_shape) == ()
        act_dim = (n_actions or 256) if discrete else math.prod(act_shape)
        super().__init__(n_members, latent_dim + act_dim, latent_dim, act_shape, n_actions, hidden)

    def action_features(self, act: torch.Tensor) -> torch.Tensor:
        """[E, B, *act_shape] -> [E, B, act_dim]: one-hot ids or flattened continuous actions."""
        if self.discrete:
            return F.one_hot(self.action_ids(act), self.n_actions).float()
        return act.reshape(*act.shape[:2], -1).float()

    def forward(self, z: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """z [E, B, D], act [E, B, *act_shape] -> [E, B, D] predicted next latents."""
        assert z.dim() == 3 and z.shape[0] == self.E, f"z must be [E={self.E}, B, D], got {tuple(z.shape)}"
        return self._mlp(torch.cat([z, self.action_features(act).to(z.dtype)], dim=-1))


class InverseDynamics(_MemberHead):
    """E small MLPs ``(z_t, z_{t+1}) -> a_t``: which action led from one step to the next, batched as ``[E, ...]``.

    Args:
        n_members: E.
        latent_dim: D of the members' latents.
        act_shape: shape of one stored action; ``()`` for discrete actions (logits over ``n_actions``).
        n_actions: discrete action ids (default 256: any ALE action set).
        hidden: width of the hidden layer (default 128).
    """

    def __init__(self, n_members: int, latent_dim: int, act_shape: tuple[int, ...] = (), n_actions: int | None = None,
                 hidden: int = 128):
        super().__init__(n_members, 2 * latent_dim, None, act_shape, n_actions, hidden)

    def targets(self, act: torch.Tensor) -> torch.Tensor:
        """What :func:`prefrl.losses.inverse_dynamics_loss` compares with: checked ids (discrete) or the actions."""
        return self.action_ids(act) if self.discrete else act

    def forward(self, z: torch.Tensor, z_next: torch.Tensor) -> torch.Tensor:
        """z, z_next [E, B, D] -> [E, B, A]: action logits (discrete) or predicted actions (continuous)."""
        assert z.shape == z_next.shape and z.dim() == 3, f"z {tuple(z.shape)} vs z_next {tuple(z_next.shape)}"
        return self._mlp(torch.cat([z, z_next], -1))


def temporal_crop(obs: torch.Tensor, act: torch.Tensor, length: int, generator: torch.Generator,
                  time_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SURF's temporal cropping: each clip of each pair keeps a random window of ``length`` consecutive steps.

    Both clips of a pair keep the same number of steps (their returns stay comparable) but start at
    independent offsets, as in SURF; every pair of the batch keeps ``length`` steps so the batch stays one
    tensor (the caller draws ``length`` per batch).

    Args:
        obs: [*lead, L, *obs_shape] clips, where ``lead`` (``time_dim`` dims, e.g. [E, B, 2]) ends with
            the pair's two sides.
        act: [*lead, L, *act_shape] their actions.
        length: steps kept, 1 <= length <= L.
        generator: draws the offsets.
        time_dim: the index of the L dim.

    Returns:
        (obs [*lead, length, *obs_shape], act [*lead, length, *act_shape]).
    """
    lead, L = obs.shape[:time_dim], obs.shape[time_dim]
    assert act.shape[: time_dim + 1] == obs.shape[: time_dim + 1], \
        f"obs {tuple(obs.shape)} and act {tuple(act.shape)} differ before dim {time_dim + 1}"
    if not 1 <= length <= L:
        raise ValueError(f"a temporal crop keeps 1..{L} steps of an {L}-step clip, got {length}")
    if length == L:
        return obs, act
    start = torch.randint(0, L - length + 1, tuple(lead), generator=generator)  # [*lead]
    idx = start.unsqueeze(-1) + torch.arange(length)  # [*lead, length]
    return _gather_time(obs, idx, time_dim), _gather_time(act, idx, time_dim)


def _gather_time(x: torch.Tensor, idx: torch.Tensor, t_dim: int) -> torch.Tensor:
    """x [*lead, L, *rest] gathered at idx [*lead, length] along dim t_dim."""
    rest = x.shape[t_dim + 1:]
    full = idx.reshape(*idx.shape, *([1] * len(rest))).expand(*idx.shape, *rest).to(x.device)
    return torch.gather(x, t_dim, full)
