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

from prefrl.losses import (bt_loss, inverse_dynamics_loss, pseudo_labels, temporal_consistency_loss,
                           temporal_contrastive_loss)
from prefrl.reward_model import RewardEnsemble
from prefrl.seeding import derive_seed
from prefrl.store import PreferenceStore
from prefrl.unlabeled import InverseDynamics, TransitionPredictor, UnlabeledData, temporal_crop

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
    ssl_weight: float = 0.0
    """Weight of the temporal-consistency loss (REED): each member's latent of a recorded step is trained to
    predict the next step's latent, on transitions the loop records (labeled or not). 0 = off. Needs an
    ensemble with a latent (``RewardEnsemble.latent_dim``) and ``fit(..., unlabeled=...)`` transitions."""
    ssl_objective: str = "cosine"
    """The self-supervised objective on recorded transitions: "cosine" (REED/SimSiam: the predicted next latent's
    1 - cosine similarity to the actual one), "contrastive" (InfoNCE: pick the actual next latent among the
    batch's, temperature 0.1) or "inverse" (inverse dynamics: predict the action from the two latents)."""
    ssl_batch_size: int = 64
    """Recorded transitions per member per gradient step of the temporal-consistency loss."""
    ssl_pretrain_steps: int = 200
    """Gradient steps of the temporal-consistency loss alone before the first preference fit (REED trains the
    representation before the reward); must be >= 1 when ``ssl_weight`` > 0."""
    pseudo_threshold: float | None = None
    """SURF: an unlabeled pair whose predicted P[s1 > s2] (each member's own) is at least this confident,
    max(P, 1 - P) >= threshold, becomes a hard label for that member's next step. In (0.5, 1]; None = off."""
    pseudo_weight: float = 1.0
    """Weight of the pseudo-labeled pairs' loss (SURF's lambda)."""
    pseudo_batch_size: int | None = None
    """Unlabeled pairs per gradient step (None: ``batch_size``)."""
    crop_min_length: int = 0
    """SURF's temporal cropping: each gradient step keeps a random window of between this many steps and the
    whole segment, from each clip of every pair (both clips of a pair the same length). 0 = off; at most the
    segment length."""
    stop_tolerance: float = 0.0
    """Early stopping of a fit (cheaper refits of a warm-started ensemble): from the second epoch on, the fit
    ends when the epoch's mean training loss (Bradley-Terry, averaged over the members and the epoch's
    minibatches) fell by less than this fraction of the previous epoch's. 0 = off: a fit always runs its
    ``epochs`` (raised to reach ``min_steps``), which then are its most."""

    def __post_init__(self) -> None:
        finite = (self.lr, self.label_noise, self.ssl_weight, self.pseudo_weight, self.stop_tolerance)
        if not all(math.isfinite(x) for x in finite):
            raise ValueError(f"TrainerConfig numbers must be finite, got lr={self.lr}, label_noise={self.label_noise}, "
                             f"ssl_weight={self.ssl_weight}, pseudo_weight={self.pseudo_weight}, "
                             f"stop_tolerance={self.stop_tolerance}")
        if self.ssl_weight < 0 or self.pseudo_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got ssl_weight={self.ssl_weight}, "
                             f"pseudo_weight={self.pseudo_weight}")
        if self.ssl_weight > 0 and self.ssl_pretrain_steps < 1:
            raise ValueError(f"ssl_pretrain_steps must be >= 1 when the temporal-consistency loss is on "
                             f"(ssl_weight={self.ssl_weight}), got {self.ssl_pretrain_steps}: the reward head would "
                             "first read an untrained representation; set ssl_weight=0 to turn it off")
        for name in ("batch_size", "ssl_batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pseudo_batch_size is not None and self.pseudo_batch_size < 1:
            raise ValueError(f"pseudo_batch_size must be >= 1 (or None for batch_size), got {self.pseudo_batch_size}")
        if self.pseudo_threshold is not None and not 0.5 < self.pseudo_threshold <= 1.0:
            raise ValueError(f"pseudo_threshold must be in (0.5, 1] (a confidence a prediction needs to become a "
                             f"label), got {self.pseudo_threshold}; None turns pseudo-labels off")
        if self.ssl_objective not in ("cosine", "contrastive", "inverse"):
            raise ValueError(f"ssl_objective must be 'cosine', 'contrastive' or 'inverse', got {self.ssl_objective!r}")
        if not 0.0 <= self.stop_tolerance < 1.0:
            raise ValueError(f"stop_tolerance must be in [0, 1) (a relative fall of the training loss per epoch; "
                             f"0 = no early stopping), got {self.stop_tolerance}")
        if self.crop_min_length < 0:
            raise ValueError(f"crop_min_length must be >= 0 steps (0 = no cropping), got {self.crop_min_length}")

    @property
    def uses_unlabeled(self) -> bool:
        """Whether a fit reads recorded steps beyond the labels (``ssl_weight`` > 0 or pseudo-labels on)."""
        return self.ssl_weight > 0 or self.pseudo_threshold is not None


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
        groups = self.ensemble.parameter_groups(cfg.lr)
        self.predictor: TransitionPredictor | InverseDynamics | None = None
        if cfg.ssl_weight > 0:
            if self.ensemble.latent_dim is None:
                raise ValueError(f"ssl_weight={cfg.ssl_weight} needs an ensemble with a latent (latent_dim); "
                                 f"{type(self.ensemble).__name__} has none: set ssl_weight=0")
            head = InverseDynamics if cfg.ssl_objective == "inverse" else TransitionPredictor
            self.predictor = head(self.ensemble.n_members, self.ensemble.latent_dim, self.ensemble.act_shape,
                                  getattr(self.ensemble, "n_actions", None))
            self.predictor.to(cfg.device)
            groups = groups + [{"params": list(self.predictor.parameters()), "lr": cfg.lr}]
        self.optimizer = torch.optim.Adam(groups)
        self.l2 = torch.full((self.ensemble.n_members,), cfg.l2_init)
        self._rng = torch.Generator().manual_seed(derive_seed(cfg.seed, "trainer"))
        self._unlabeled_rng = torch.Generator().manual_seed(derive_seed(cfg.seed, "trainer-unlabeled"))
        self.ssl_pretrained = False
        """Whether the temporal-consistency pretraining ran (it runs once, at the first fit with transitions)."""

    def _returns(self, data: dict, idx: torch.Tensor, per_member: bool, crop: int | None = None) -> torch.Tensor:
        """Predicted returns of pairs: idx [E, B] (per member) or [B] -> [E, B, 2] (clips cropped to ``crop`` steps)."""
        dev = self.config.device
        obs, act = data["obs"][idx], data["act"][idx]  # [(E,) B, 2, L, ...]
        if crop is not None:
            obs, act = temporal_crop(obs, act, crop, self._rng, time_dim=idx.dim() + 1)
        obs = obs.to(dev, non_blocking=True)
        act = act.to(dev, non_blocking=True)
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

    def fit(self, store: PreferenceStore | dict, epochs: int = 1, min_steps: int = 0,
            unlabeled: UnlabeledData | None = None) -> dict[str, float]:
        """Trains every member for ``epochs`` passes over its bootstrap resample.

        Args:
            store: the labels (must not be empty), or their ``store.tensors()``
                (what a background fit gets: the store's SQLite connection stays in its thread).
            epochs: passes over the training labels.
            min_steps: at least this many gradient steps (more epochs when the
                store is small, so that a handful of labels still gets fit), unless
                ``stop_tolerance`` ends the fit earlier.
            unlabeled: recorded steps without labels (``PreferenceLoop`` draws them from its recorder):
                transitions for the temporal-consistency loss (``ssl_weight``), pairs of clips for
                pseudo-labels (``pseudo_threshold``). Required when either is on.

        Returns:
            Metrics: ``rm/train_loss``, ``rm/val_loss``, ``rm/val_accuracy``,
            ``rm/train_accuracy``, ``rm/l2`` (mean coefficient), ``rm/n_train``,
            ``rm/n_val``, ``rm/steps``, ``rm/epochs`` (fewer than asked when ``stop_tolerance`` ended it); with the temporal-consistency loss ``rm/ssl_loss`` (mean over the
            fit's steps) and ``rm/ssl_pretrain_loss``; with pseudo-labels ``rm/pseudo_share`` (share of
            unlabeled pairs confident enough, over the fit) and, when the pairs carry their true returns,
            ``rm/pseudo_accuracy`` (share of those pseudo-labels that agree with the true returns, decided
            pairs only: a diagnostic, never trained on).
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        cfg = self.config
        if cfg.ssl_weight > 0 and (unlabeled is None or unlabeled.n_transitions == 0):
            raise ValueError("ssl_weight > 0 needs recorded transitions: pass unlabeled=UnlabeledData(obs, act, "
                             "next_obs, next_act) (PreferenceLoop does), or set ssl_weight=0")
        if cfg.pseudo_threshold is not None and (unlabeled is None or unlabeled.n_pairs == 0):
            raise ValueError("pseudo_threshold needs unlabeled pairs of clips: pass unlabeled=UnlabeledData("
                             "pair_obs=..., pair_act=...) (PreferenceLoop does), or set pseudo_threshold=None")
        data = store if isinstance(store, dict) else store.tensors()
        is_val = data["is_val"]
        train_idx = (~is_val).nonzero(as_tuple=True)[0]
        val_idx = is_val.nonzero(as_tuple=True)[0]
        if len(train_idx) == 0:  # tiny stores: train on everything, report no validation
            train_idx, val_idx = torch.arange(len(is_val)), torch.zeros(0, dtype=torch.long)
        E, n = self.ensemble.n_members, len(train_idx)
        L = data["obs"].shape[2]
        if cfg.crop_min_length > L:
            raise ValueError(f"crop_min_length={cfg.crop_min_length} is longer than the {L}-step segments: "
                             f"crop to at most {L} steps (or 0 for no cropping)")
        extra: dict[str, float] = {}
        if cfg.ssl_weight > 0 and not self.ssl_pretrained:
            extra["rm/ssl_pretrain_loss"] = self._ssl_pretrain(unlabeled)
        ssl_sum, pseudo_kept, pseudo_seen, pseudo_right, pseudo_judged = 0.0, 0.0, 0, 0.0, 0.0
        if cfg.bootstrap:
            boot = train_idx[torch.randint(n, (E, n), generator=self._rng)]  # [E, n] bootstrap resamples
        else:
            boot = train_idx.expand(E, n)
        mu_all = data["mu"]
        l2 = self.l2.to(cfg.device)
        self.ensemble.train()
        epochs = max(epochs, math.ceil(min_steps / math.ceil(n / cfg.batch_size)))
        steps, epochs_run, previous = 0, 0, math.inf
        for _ in range(epochs):
            epoch_loss, epoch_steps = torch.zeros((), device=cfg.device), 0
            perm = torch.argsort(torch.rand(E if cfg.bootstrap else 1, n, generator=self._rng), dim=1).expand(E, n)
            order = torch.gather(boot, 1, perm)
            for start in range(0, n, cfg.batch_size):
                idx = order[:, start : start + cfg.batch_size]  # [E, B]
                crop = self._crop_length(L)
                R = self._returns(data, idx, per_member=True, crop=crop)  # [E, B, 2]
                mu = mu_all[idx].to(cfg.device)  # [E, B]
                loss = bt_loss(R[..., 0], R[..., 1], mu, cfg.label_noise)  # [E]
                epoch_loss, epoch_steps = epoch_loss + loss.detach().mean(), epoch_steps + 1
                if cfg.pseudo_threshold is not None:
                    lp, kept, right, judged = self._pseudo_loss(unlabeled, crop)
                    loss = loss + cfg.pseudo_weight * lp
                    pseudo_kept, pseudo_right, pseudo_judged = pseudo_kept + kept, pseudo_right + right, pseudo_judged + judged
                    pseudo_seen += 1
                if cfg.ssl_weight > 0:
                    ls = self._ssl_loss(unlabeled)  # [E]
                    loss = loss + cfg.ssl_weight * ls
                    ssl_sum += ls.detach().mean().item()
                total = loss.sum() + (l2 * self.ensemble.l2_penalty()).sum()
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                steps += 1
            epochs_run += 1
            if cfg.stop_tolerance > 0:
                mean = float(epoch_loss) / epoch_steps
                if epochs_run >= 2 and previous - mean < cfg.stop_tolerance * previous:
                    break
                previous = mean
        train = self.evaluate(data, train_idx)
        metrics = {
            "rm/train_loss": train["loss"].mean().item(),
            "rm/train_accuracy": train["accuracy"].item(),
            "rm/n_train": float(len(train_idx)),
            "rm/n_val": float(len(val_idx)),
            "rm/steps": float(steps),
            "rm/epochs": float(epochs_run),
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
        if cfg.ssl_weight > 0:
            metrics["rm/ssl_loss"] = ssl_sum / max(steps, 1)
        if cfg.pseudo_threshold is not None:
            metrics["rm/pseudo_share"] = pseudo_kept / max(pseudo_seen, 1)
            if unlabeled.pair_true_return is not None:
                metrics["rm/pseudo_accuracy"] = pseudo_right / pseudo_judged if pseudo_judged else float("nan")
        return metrics | extra

    # -- learning from unlabeled steps ---------------------------------------
    def _crop_length(self, L: int) -> int | None:
        """This step's crop (SURF): a length drawn in [crop_min_length, L], or None when cropping is off."""
        if not self.config.crop_min_length or self.config.crop_min_length >= L:
            return None
        return int(torch.randint(self.config.crop_min_length, L + 1, (), generator=self._rng))

    def _pseudo_loss(self, unlabeled: UnlabeledData, crop: int | None) -> tuple[torch.Tensor, float, float, float]:
        """SURF's loss on one batch of unlabeled pairs: each member's confident predictions as its labels.

        Returns:
            (loss [E]: mean over the pairs that member kept, 0 where none; share of (member, pair) kept;
            kept pseudo-labels that agree with the true returns; kept ones on decided pairs), the last two
            0 when the pairs carry no true returns.
        """
        cfg, dev = self.config, self.config.device
        B = cfg.pseudo_batch_size or cfg.batch_size
        pick = torch.randint(unlabeled.n_pairs, (B,), generator=self._unlabeled_rng)
        obs, act = unlabeled.pair_obs[pick], unlabeled.pair_act[pick]  # [B, 2, L, ...]
        if crop is not None:
            obs, act = temporal_crop(obs, act, crop, self._rng, time_dim=2)
        R = self.ensemble.segment_returns(obs.to(dev), act.to(dev))  # [E, B, 2]
        p = torch.sigmoid(R[..., 0] - R[..., 1])
        mu_hat, keep = pseudo_labels(p, cfg.pseudo_threshold)  # [E, B]
        per_pair = bt_loss(R[..., 0], R[..., 1], mu_hat, cfg.label_noise, reduction="none")  # [E, B]
        keep_f = keep.to(per_pair.dtype)
        loss = (per_pair * keep_f).sum(-1) / keep_f.sum(-1).clamp_min(1.0)
        right = judged = 0.0
        if unlabeled.pair_true_return is not None:
            tr = unlabeled.pair_true_return[pick].to(dev)  # [B, 2]
            decided = (tr[:, 0] != tr[:, 1]).expand_as(keep) & keep
            truth = (tr[:, 0] > tr[:, 1]).to(mu_hat.dtype).expand_as(mu_hat)
            right = float(((mu_hat == truth) & decided).sum())
            judged = float(decided.sum())
        return loss, float(keep_f.mean()), right, judged

    def _ssl_loss(self, unlabeled: UnlabeledData) -> torch.Tensor:
        """Temporal-consistency loss [E] on one batch of recorded transitions (shared by the members)."""
        cfg, dev, E = self.config, self.config.device, self.ensemble.n_members
        pick = torch.randint(unlabeled.n_transitions, (cfg.ssl_batch_size,), generator=self._unlabeled_rng)
        B = len(pick)

        def per_member(x: torch.Tensor) -> torch.Tensor:
            x = x[pick].to(dev, non_blocking=True)
            return x.unsqueeze(0).expand(E, *x.shape)

        act = per_member(unlabeled.act)
        z = self.ensemble.member_embed(per_member(unlabeled.obs), act)  # [E, B, D]
        z_next = self.ensemble.member_embed(per_member(unlabeled.next_obs), per_member(unlabeled.next_act))
        assert z.shape[:2] == (E, B), f"member_embed gave {tuple(z.shape)}, expected [E={E}, B={B}, D]"
        if cfg.ssl_objective == "inverse":
            return inverse_dynamics_loss(self.predictor(z, z_next), self.predictor.targets(act))
        if cfg.ssl_objective == "contrastive":
            return temporal_contrastive_loss(self.predictor(z, act), z_next)
        return temporal_consistency_loss(self.predictor(z, act), z_next)

    def _ssl_pretrain(self, unlabeled: UnlabeledData) -> float:
        """REED's representation pretraining: ``ssl_pretrain_steps`` steps of the temporal-consistency loss
        alone (the reward head is not trained). Returns the mean loss of the last tenth of the steps."""
        self.ensemble.train()
        losses = []
        for _ in range(self.config.ssl_pretrain_steps):
            loss = self._ssl_loss(unlabeled)
            self.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.optimizer.step()
            losses.append(loss.detach().mean().item())
        self.ssl_pretrained = True
        tail = losses[-max(1, len(losses) // 10):]
        return sum(tail) / len(tail)

    def _adapt_l2(self, train_loss: torch.Tensor, val_loss: torch.Tensor) -> None:
        """Raises L2 where val/train > upper target, lowers it where < lower target."""
        lo, hi = self.config.target_ratio
        ratio = val_loss / train_loss.clamp_min(1e-8)
        f = self.config.l2_factor
        self.l2 = torch.where(ratio > hi, self.l2 * f, torch.where(ratio < lo, self.l2 / f, self.l2))
        self.l2 = self.l2.clamp(*self.config.l2_bounds)
