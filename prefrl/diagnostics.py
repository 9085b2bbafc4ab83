"""How good is the learned reward? Accuracy and correlation with the true reward."""

from __future__ import annotations

import torch

from prefrl.reward_model import RewardEnsemble
from prefrl.segments import Segments

__all__ = ["pearson", "spearman", "segment_return_correlation"]


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
