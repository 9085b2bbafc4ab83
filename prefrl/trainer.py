"""Fitting a reward ensemble to preference labels (Bradley-Terry).

Each member is trained on its own bootstrap resample of the training labels;
all members step together in one batched forward/backward. The labels the
store assigned to validation (~1/e) are never trained on: they measure the
held-out loss and accuracy and drive the adaptive L2 penalty, which keeps
each member's validation loss between 1.1x and 1.5x its training loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from prefrl.losses import bt_loss
from prefrl.reward_model import RewardEnsemble
from prefrl.seeding import derive_seed
from prefrl.store import PreferenceStore

__all__ = ["TrainerConfig", "RewardTrainer"]


@dataclass
class TrainerConfig:
    """How the ensemble is fit."""

    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 64
    """Labeled pairs per member per gradient step."""
    label_noise: float = 0.1
    """eps of the noise-aware likelihood P' = (1-eps) P + eps/2 (the paper's 10% random answers)."""
    l2_init: float = 1e-4
    """Starting L2 coefficient on the sum of squared weights, per member."""
    l2_bounds: tuple[float, float] = (1e-7, 1.0)
    """Smallest and largest L2 coefficient the adaptation may reach."""
    target_ratio: tuple[float, float] = (1.1, 1.5)
    """Validation/training loss ratio the adaptive L2 aims for (paper: 1.1-1.5)."""
    l2_factor: float = 2.0
    """Multiplier applied to L2 when the ratio leaves the target band."""
    eval_batch_size: int = 256
    """Pairs per forward pass when evaluating."""
    device: str = "cpu"
    """Where the ensemble trains; batches are moved there."""
    seed: int = 0
    """Seeds bootstrap resamples and minibatch order."""
    bootstrap: bool = True
    """Each member trains on its own bootstrap resample (the paper). False: every member sees the same
    minibatches, so members differ only by initialisation; a shared trunk (the fine-tuned text model)
    then reads each text once per step instead of once per member."""


@dataclass
class RewardTrainer:
    """Fits a ``RewardEnsemble`` to the labels in a ``PreferenceStore``.

    Args:
        ensemble: the model to fit (moved to ``config.device``).
        config: hyper-parameters; see ``TrainerConfig``.
    """

    ensemble: RewardEnsemble
    config: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        self.ensemble.to(cfg.device)
        self.optimizer = torch.optim.Adam(self.ensemble.parameter_groups(cfg.lr))
        self.l2 = torch.full((self.ensemble.n_members,), cfg.l2_init)
        self._rng = torch.Generator().manual_seed(derive_seed(cfg.seed, "trainer"))

    def _returns(self, data: dict, idx: torch.Tensor, per_member: bool) -> torch.Tensor:
        """Predicted returns of pairs: idx [E, B] (per member) or [B] -> [E, B, 2]."""
        dev = self.config.device
        obs = data["obs"][idx].to(dev, non_blocking=True)
        act = data["act"][idx].to(dev, non_blocking=True)
        return self.ensemble.segment_returns(obs, act, per_member=per_member)

    @torch.no_grad()
    def evaluate(self, data: dict, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss and accuracy of each member and of the ensemble on some labels.

        Args:
            data: ``PreferenceStore.tensors()``.
            idx: [M] label indices.

        Returns:
            ``loss`` [E] per-member noise-aware BT loss, ``accuracy`` [] of the
            ensemble-mean return difference on labels with mu != 0.5 (NaN if
            none), ``pred_diff`` [M] mean predicted R1 - R2.
        """
        was_training = self.ensemble.training
        self.ensemble.eval()
        diffs = []
        for chunk in idx.split(self.config.eval_batch_size):
            R = self._returns(data, chunk, per_member=False).cpu()  # [E, b, 2]
            diffs.append(R[..., 0] - R[..., 1])
        self.ensemble.train(was_training)
        diff = torch.cat(diffs, dim=1)  # [E, M]
        mu = data["mu"][idx]
        loss = bt_loss(diff, torch.zeros_like(diff), mu, self.config.label_noise)
        decided = mu != 0.5
        mean_diff = diff.mean(0)
        correct = (mean_diff[decided] > 0) == (mu[decided] > 0.5)
        acc = correct.float().mean() if decided.any() else torch.tensor(float("nan"))
        return {"loss": loss, "accuracy": acc, "pred_diff": mean_diff}

    def fit(self, store: PreferenceStore | dict, epochs: int = 1, min_steps: int = 0) -> dict[str, float]:
        """Trains every member for ``epochs`` passes over its bootstrap resample.

        Args:
            store: the labels (must not be empty), or their ``store.tensors()``
                (what a background fit gets: the store's SQLite connection stays in its thread).
            epochs: passes over the training labels.
            min_steps: at least this many gradient steps (more epochs when the
                store is small, so that a handful of labels still gets fit).

        Returns:
            Metrics: ``rm/train_loss``, ``rm/val_loss``, ``rm/val_accuracy``,
            ``rm/train_accuracy``, ``rm/l2`` (mean coefficient), ``rm/n_train``,
            ``rm/n_val``, ``rm/steps``.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        data = store if isinstance(store, dict) else store.tensors()
        is_val = data["is_val"]
        train_idx = (~is_val).nonzero(as_tuple=True)[0]
        val_idx = is_val.nonzero(as_tuple=True)[0]
        if len(train_idx) == 0:  # tiny stores: train on everything, report no validation
            train_idx, val_idx = torch.arange(len(is_val)), torch.zeros(0, dtype=torch.long)
        cfg, E, n = self.config, self.ensemble.n_members, len(train_idx)
        if cfg.bootstrap:
            boot = train_idx[torch.randint(n, (E, n), generator=self._rng)]  # [E, n] bootstrap resamples
        else:
            boot = train_idx.expand(E, n)
        mu_all = data["mu"]
        l2 = self.l2.to(cfg.device)
        self.ensemble.train()
        epochs = max(epochs, math.ceil(min_steps / math.ceil(n / cfg.batch_size)))
        steps = 0
        for _ in range(epochs):
            perm = torch.argsort(torch.rand(E if cfg.bootstrap else 1, n, generator=self._rng), dim=1).expand(E, n)
            order = torch.gather(boot, 1, perm)
            for start in range(0, n, cfg.batch_size):
                idx = order[:, start : start + cfg.batch_size]  # [E, B]
                R = self._returns(data, idx, per_member=True)  # [E, B, 2]
                mu = mu_all[idx].to(cfg.device)  # [E, B]
                loss = bt_loss(R[..., 0], R[..., 1], mu, cfg.label_noise)  # [E]
                total = loss.sum() + (l2 * self.ensemble.l2_penalty()).sum()
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                steps += 1
        train = self.evaluate(data, train_idx)
        metrics = {
            "rm/train_loss": train["loss"].mean().item(),
            "rm/train_accuracy": train["accuracy"].item(),
            "rm/n_train": float(len(train_idx)),
            "rm/n_val": float(len(val_idx)),
            "rm/steps": float(steps),
        }
        if len(val_idx):
            val = self.evaluate(data, val_idx)
            self._adapt_l2(train["loss"], val["loss"])
            metrics["rm/val_loss"] = val["loss"].mean().item()
            metrics["rm/val_accuracy"] = val["accuracy"].item()
        else:
            metrics["rm/val_loss"] = float("nan")
            metrics["rm/val_accuracy"] = float("nan")
        metrics["rm/l2"] = self.l2.mean().item()
        return metrics

    def _adapt_l2(self, train_loss: torch.Tensor, val_loss: torch.Tensor) -> None:
        """Raises L2 where val/train > upper target, lowers it where < lower target."""
        lo, hi = self.config.target_ratio
        ratio = val_loss / train_loss.clamp_min(1e-8)
        f = self.config.l2_factor
        self.l2 = torch.where(ratio > hi, self.l2 * f, torch.where(ratio < lo, self.l2 / f, self.l2))
        self.l2 = self.l2.clamp(*self.config.l2_bounds)
