"""Reward ensembles: E reward predictors r_e(o, a) in one ``nn.Module``.

Every ensemble returns ``[E, *batch]`` from one call. Inputs come in two
forms:

* shared: ``obs [*batch, *obs_shape]`` -> every member scores the same steps
  (inference, query selection);
* per member: ``obs [E, *batch, *obs_shape]`` with ``per_member=True`` ->
  member e scores its own batch (bootstrap training).

``MLPEnsemble`` stores its weights as ``[E, in, out]`` tensors and runs all
members in one batched matmul per layer. ``ModuleEnsemble`` wraps any
``nn.Module`` member (a CNN for Atari frames, a text encoder) and stacks
their outputs.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["RewardEnsemble", "MLPEnsemble", "ModuleEnsemble", "member_linear_layers"]


def member_linear_layers(n_members: int, sizes: list[int]) -> tuple[nn.ParameterList, nn.ParameterList]:
    """E independent stacks of linear layers as ``[E, ...]`` parameters, for ``torch.baddbmm``.

    Layer k maps ``sizes[k] -> sizes[k + 1]``: weights ``[E, in, out]``, biases ``[E, 1, out]``, each member
    initialised as ``nn.Linear`` would be (Kaiming-uniform weights, uniform biases), independently.

    Returns:
        (weights, biases), one entry per layer.
    """
    weights, biases = nn.ParameterList(), nn.ParameterList()
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = torch.empty(n_members, fan_in, fan_out)
        for e in range(n_members):  # same init as nn.Linear, independently per member
            nn.init.kaiming_uniform_(w[e].T, a=math.sqrt(5))
        bound = 1 / math.sqrt(fan_in)
        weights.append(nn.Parameter(w))
        biases.append(nn.Parameter(torch.empty(n_members, 1, fan_out).uniform_(-bound, bound)))
    return weights, biases


class RewardEnsemble(nn.Module):
    """Base class. Subclasses implement ``member_forward`` and ``l2_penalty``.

    Attributes:
        n_members: E.
        obs_shape: shape of one observation.
        act_shape: shape of one action as stored (``()`` for discrete actions).
    """

    def __init__(self, n_members: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]):
        super().__init__()
        if n_members < 1:
            raise ValueError(f"an ensemble needs >= 1 member, got {n_members}")
        self.n_members = n_members
        self.obs_shape = tuple(obs_shape)
        self.act_shape = tuple(act_shape)

    def member_forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Per-member rewards.

        Args:
            obs: [E, B, *obs_shape].
            act: [E, B, *act_shape].

        Returns:
            [E, B] reward of each step under each member.
        """
        raise NotImplementedError

    def l2_penalty(self) -> torch.Tensor:
        """[E] sum of squared weights of each member (biases excluded)."""
        raise NotImplementedError

    latent_dim: int | None = None
    """D, the width of ``member_embed``'s latent; None for models without one (no temporal-consistency loss)."""

    def member_embed(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Per-member latents: the features each member's reward head reads.

        Args:
            obs: [E, B, *obs_shape].
            act: [E, B, *act_shape].

        Returns:
            [E, B, D] (``latent_dim`` = D).
        """
        raise NotImplementedError(f"{type(self).__name__} exposes no latent, so it cannot learn a representation "
                                  "from unlabeled transitions (TrainerConfig.ssl_weight must stay 0)")

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups; the default trains everything at ``lr``.

        Models with pretrained parts (a fine-tuned text encoder) override this
        to give those parts a smaller rate.
        """
        return [{"params": list(self.parameters()), "lr": lr}]

    def forward(self, obs: torch.Tensor, act: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """Rewards of every step under every member.

        Args:
            obs: [*batch, *obs_shape], or [E, *batch, *obs_shape] if per_member.
            act: [*batch, *act_shape], or [E, *batch, *act_shape] if per_member.
            per_member: whether the leading dim of the inputs is the member.

        Returns:
            [E, *batch] rewards.
        """
        n_obs = len(self.obs_shape)
        if tuple(obs.shape[obs.dim() - n_obs :]) != self.obs_shape:
            raise ValueError(f"observations end in {tuple(obs.shape)}, expected trailing {self.obs_shape}")
        batch = obs.shape[: obs.dim() - n_obs]
        act_batch = act.shape[: act.dim() - len(self.act_shape)]
        if act_batch != batch:
            raise ValueError(f"actions {tuple(act.shape)} do not match observations {tuple(obs.shape)}")
        if per_member:
            if not batch or batch[0] != self.n_members:
                raise ValueError(f"per-member inputs must lead with E={self.n_members}, got {tuple(batch)}")
            E, inner = batch[0], batch[1:]
            o = obs.reshape(E, -1, *self.obs_shape)
            a = act.reshape(E, -1, *self.act_shape)
        else:
            E, inner = self.n_members, batch
            o = obs.reshape(1, -1, *self.obs_shape).expand(E, -1, *self.obs_shape)
            a = act.reshape(1, -1, *self.act_shape).expand(E, -1, *self.act_shape)
        return self.member_forward(o, a).reshape(E, *inner)

    def fit_draws_global_rng(self) -> bool:
        """Whether training mode draws from torch's global RNG: dropout with p > 0 or random-shift augmentation."""
        def positive(x) -> bool:
            return isinstance(x, (int, float)) and x > 0

        return any((isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or positive(getattr(m, "shift", 0))
                   or positive(getattr(m, "dropout", 0)) for m in self.modules())

    @torch.inference_mode()
    def mean_reward(self, obs, act) -> np.ndarray:
        """Ensemble-mean reward of a batch, in eval mode: obs [B, *obs_shape], act [B, *act_shape] -> [B] float32.

        Takes numpy arrays (or tensors), moves them to the ensemble's device and
        returns numpy: what the wrappers pay and a saved ``RewardFunction`` gives.
        """
        self.eval()
        dev = next(self.parameters()).device
        return self(torch.as_tensor(obs, device=dev), torch.as_tensor(act, device=dev)).mean(0).float().cpu().numpy()

    def segment_returns(self, obs: torch.Tensor, act: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """Predicted return (sum of rewards) of each segment.

        Args:
            obs: [*batch, L, *obs_shape] (with a leading E if per_member).
            act: [*batch, L, *act_shape] (likewise).

        Returns:
            [E, *batch] sum over the L steps.
        """
        return self.forward(obs, act, per_member=per_member).sum(dim=-1)


class MLPEnsemble(RewardEnsemble):
    """E MLPs over (flattened observation, action), batched in one matmul per layer.

    The paper's member for vector observations: 2 hidden layers of 64 units
    with leaky ReLU. Inputs are standardised with statistics set by
    ``set_input_stats`` (default: identity).

    Args:
        obs_shape: shape of one observation.
        act_shape: shape of one continuous action; ``()`` for discrete.
        n_actions: number of discrete actions (one-hot encoded); ``None`` for
            continuous actions.
        n_members: E, default 3.
        hidden: hidden layer widths, default (64, 64) as in the paper.
        dropout: dropout probability after each hidden layer, default 0.0.
        use_action: feed the action to the model (default True). False gives
            r(o) only.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        act_shape: tuple[int, ...] = (),
        n_actions: int | None = None,
        n_members: int = 3,
        hidden: tuple[int, ...] = (64, 64),
        dropout: float = 0.0,
        use_action: bool = True,
    ):
        super().__init__(n_members, obs_shape, act_shape)
        if n_actions is None and act_shape == () and use_action:
            raise ValueError("give n_actions for discrete actions, or act_shape for continuous ones")
        self.n_actions = n_actions
        self.use_action = use_action
        self.dropout = dropout
        act_dim = (n_actions if n_actions is not None else math.prod(act_shape)) if use_action else 0
        in_dim = math.prod(obs_shape) + act_dim
        self.in_dim = in_dim
        self.weights, self.biases = member_linear_layers(n_members, [in_dim, *hidden, 1])
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))

    def features(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """[E, B, *obs_shape], [E, B, *act_shape] -> [E, B, in_dim] raw features."""
        E, B = obs.shape[:2]
        parts = [obs.reshape(E, B, -1).float()]
        if self.use_action:
            if self.n_actions is not None:
                parts.append(F.one_hot(act.long().reshape(E, B), self.n_actions).float())
            else:
                parts.append(act.reshape(E, B, -1).float())
        return torch.cat(parts, dim=-1)

    @torch.no_grad()
    def set_input_stats(self, obs: torch.Tensor, act: torch.Tensor) -> None:
        """Standardise inputs with the mean/std of these samples.

        Args:
            obs: [B, *obs_shape] representative observations.
            act: [B, *act_shape] matching actions.
        """
        x = self.features(obs.unsqueeze(0), act.unsqueeze(0))[0]
        self.in_mean.copy_(x.mean(0))
        std = x.std(0) if len(x) > 1 else torch.ones_like(self.in_std)
        self.in_std.copy_(torch.where(std < 1e-3, torch.ones_like(std), std))  # constant inputs stay unscaled
        if self.use_action and self.n_actions is not None:  # leave one-hot columns as they are
            self.in_mean[-self.n_actions :] = 0.0
            self.in_std[-self.n_actions :] = 1.0

    def mean_reward(self, obs, act) -> np.ndarray:
        """Ensemble-mean reward of a batch, in eval mode: obs [B, *obs_shape], act [B, *act_shape] -> [B] float32.

        On the CPU this runs in numpy: the same function as
        ``forward(obs, act).mean(0)`` in eval mode (no dropout) without torch's
        per-call overhead. The wrappers score a handful of steps on every
        vector step, where torch spends ~130 us per call on dispatch and this
        path ~30 us (3 members of 64x64, 4 steps; this machine). It reads the
        parameters through numpy views of their memory, kept between calls and
        rebuilt when a parameter's storage moves (``.to()``, a deep copy), so it
        always uses the current weights. Float32 throughout; it agrees with
        ``forward`` to float32 rounding (~1e-7 of the reward's scale). On other
        devices: the torch path.
        """
        if self.in_mean.device.type != "cpu":
            return super().mean_reward(obs, act)
        if self.training:
            self.eval()  # as the torch path leaves it
        views = self._numpy_views()
        mean, std = views[0], views[1]
        layers = list(zip(views[2::2], views[3::2]))
        obs, act = np.asarray(obs), np.asarray(act)
        B = len(obs)
        parts = [np.asarray(obs, dtype=np.float32).reshape(B, -1)]
        if self.use_action:
            a = np.asarray(act)
            if self.n_actions is not None:
                parts.append(np.eye(self.n_actions, dtype=np.float32)[a.reshape(B).astype(np.int64)])
            else:
                parts.append(a.astype(np.float32, copy=False).reshape(B, -1))
        x = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        x = ((x - mean) / std)[None]  # [1, B, in]
        last = len(layers) - 1
        for i, (w, b) in enumerate(layers):
            x = np.matmul(x, w) + b  # [E, B, out]
            if i < last:
                x = np.maximum(x, np.float32(0.01) * x)  # leaky ReLU, slope 0.01
        return x[..., 0].mean(0, dtype=np.float32)

    def _numpy_views(self) -> list[np.ndarray]:
        """[in_mean, in_std, w0, b0, w1, b1, ...] as numpy views of the parameters' memory.

        Cached; rebuilt when a parameter or buffer is replaced (``load_state_dict(assign=True)``) or its
        storage moves (``.to()``, a deep copy).
        """
        tensors = [self._buffers["in_mean"], self._buffers["in_std"],
                   *(p for wb in zip(self.weights._parameters.values(), self.biases._parameters.values()) for p in wb)]
        cache = self.__dict__.get("_np_cache")
        if cache is None or len(cache) != len(tensors) or any(
                t is not c or t.data_ptr() != ptr for t, (c, _, ptr) in zip(tensors, cache)):
            cache = [(t, t.detach().numpy(), t.data_ptr()) for t in tensors]
            self.__dict__["_np_cache"] = cache
        return [arr for _, arr, _ in cache]

    @property
    def latent_dim(self) -> int:
        """D: the width of the last hidden layer, what the reward head reads."""
        return self.weights[-1].shape[1]

    def member_embed(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """[E, B, *obs_shape], [E, B, *act_shape] -> [E, B, D]: the last hidden layer's activations."""
        x = (self.features(obs, act) - self.in_mean) / self.in_std
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = F.leaky_relu(torch.baddbmm(b, x, w), 0.01)  # [E, B, out]
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x

    def member_forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[-1], self.member_embed(obs, act), self.weights[-1]).squeeze(-1)

    def l2_penalty(self) -> torch.Tensor:
        return sum(w.pow(2).sum(dim=(1, 2)) for w in self.weights)


class ModuleEnsemble(RewardEnsemble):
    """E independent ``nn.Module`` members, stacked into ``[E, B]``.

    Use for members that do not batch as matrices: CNNs with batch norm over
    frames, text encoders. Each member maps (obs [B, *obs_shape],
    act [B, *act_shape]) -> [B].

    Args:
        make_member: builds one fresh member (called E times).
        n_members: E, default 3.
        obs_shape: shape of one observation.
        act_shape: shape of one action as stored.
    """

    def __init__(
        self,
        make_member: Callable[[], nn.Module],
        obs_shape: tuple[int, ...],
        act_shape: tuple[int, ...] = (),
        n_members: int = 3,
    ):
        super().__init__(n_members, obs_shape, act_shape)
        self.members = nn.ModuleList([make_member() for _ in range(n_members)])

    def member_forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        out = [m(obs[e], act[e]) for e, m in enumerate(self.members)]
        for e, r in enumerate(out):
            if r.shape != obs.shape[1:2]:
                raise ValueError(f"member {e} returned {tuple(r.shape)}, expected [B] = {tuple(obs.shape[1:2])}")
        return torch.stack(out)

    def l2_penalty(self) -> torch.Tensor:
        return torch.stack(
            [sum(p.pow(2).sum() for n, p in m.named_parameters() if p.dim() > 1) for m in self.members]
        )

    @property
    def latent_dim(self) -> int | None:
        """D of the members' ``embed`` (their ``latent_dim`` attribute), or None when they have none."""
        return getattr(self.members[0], "latent_dim", None)

    def member_embed(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Each member's ``embed(obs [B, ...], act [B, ...]) -> [B, D]``, stacked to [E, B, D]."""
        if self.latent_dim is None:
            return super().member_embed(obs, act)
        return torch.stack([m.embed(obs[e], act[e]) for e, m in enumerate(self.members)])

