"""How good is the learned reward? Accuracy and correlation with the true reward."""

from __future__ import annotations

import torch

from prefrl.reward_model import RewardEnsemble
from prefrl.segments import Segments

__all__ = ["pearson", "spearman", "segment_return_correlation", "event_triggered_average", "window_correlation"]


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two [N] tensors (NaN if either is constant or N < 2)."""
    assert x.shape == y.shape and x.dim() == 1, f"need two [N] tensors, got {tuple(x.shape)}, {tuple(y.shape)}"
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.norm() * y.norm()).item()
    return float("nan") if len(x) < 2 or denom == 0 else float((x @ y).item() / denom)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank), as float64."""
    order = torch.argsort(x)
    _, inverse, counts = torch.unique_consecutive(x[order], return_inverse=True, return_counts=True)
    position = torch.arange(len(x), dtype=torch.float64)
    group_sum = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, position)
    ranks = torch.empty(len(x), dtype=torch.float64)
    ranks[order] = (group_sum / counts)[inverse]
    return ranks


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of two [N] tensors (ties get average ranks)."""
    assert x.shape == y.shape and x.dim() == 1, f"need two [N] tensors, got {tuple(x.shape)}, {tuple(y.shape)}"
    return pearson(_ranks(x), _ranks(y))


@torch.no_grad()
def segment_return_correlation(ensemble: RewardEnsemble, segments: Segments, batch_size: int = 256) -> dict[str, float]:
    """Correlation of learned (ensemble-mean) and true segment returns.

    Args:
        ensemble: the reward model.
        segments: fresh segments, not used for training.

    Returns:
        ``corr/pearson`` and ``corr/spearman``.
    """
    dev = next(ensemble.parameters()).device
    was_training = ensemble.training
    ensemble.eval()
    pred = torch.cat(
        [
            ensemble.segment_returns(segments.obs[s : s + batch_size].to(dev), segments.act[s : s + batch_size].to(dev))
            .mean(0)
            .cpu()
            for s in range(0, len(segments), batch_size)
        ]
    )
    ensemble.train(was_training)
    true = segments.true_return
    return {"corr/pearson": pearson(pred, true), "corr/spearman": spearman(pred, true)}


def event_triggered_average(learned: torch.Tensor, true: torch.Tensor, span: int = 6) -> list[float]:
    """What the agent is taught around the events that score.

    z = (learned - mean) / std over all steps; for every step (t, e) whose
    true reward is > 0, the mean of z[t + d, e] for d = -span..span (steps
    outside the rollout are left out). A reward model that credits the right
    moments peaks at d = 0 (or d = 1: the event shows in the next frame).

    Args:
        learned: [T, n_envs] learned rewards.
        true: [T, n_envs] true rewards.
        span: offsets on each side.

    Returns:
        2 * span + 1 means (NaN where no event had that offset inside the rollout).
    """
    assert learned.shape == true.shape and learned.dim() == 2, f"need two [T, n] tensors, got {tuple(learned.shape)}"
    z = (learned.double() - learned.double().mean()) / learned.double().std().clamp_min(1e-12)
    ts, es = (true > 0).nonzero(as_tuple=True)
    out = []
    for d in range(-span, span + 1):
        ok = (ts + d >= 0) & (ts + d < len(z))
        out.append(float(z[ts[ok] + d, es[ok]].mean()) if ok.any() else float("nan"))
    return out


def window_correlation(learned: torch.Tensor, true: torch.Tensor, k: int) -> float:
    """Pearson correlation of k-step sums of learned and true reward (windows inside each env's column).

    Args:
        learned: [T, n_envs]; true: [T, n_envs]; k: window length (1 = per step).
    """
    assert learned.shape == true.shape and learned.dim() == 2, f"need two [T, n] tensors, got {tuple(learned.shape)}"
    T = (len(learned) // k) * k
    if T == 0:
        return float("nan")
    n = learned.shape[1]
    return pearson(learned[:T].reshape(-1, k, n).sum(1).flatten(), true[:T].reshape(-1, k, n).sum(1).flatten())
