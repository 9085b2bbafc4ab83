"""Choosing which pairs to ask about.

From a pool of candidate pairs (default 10x the labels wanted), pick the
ones the ensemble is least sure about (``disagreement``: variance of the
members' P[s1 > s2]; ``entropy``: entropy of the mean P; ``gap``: the mean
return gap plus its spread over members, for tasks where most pairs tie), or
pick at random (the baseline).
"""

from __future__ import annotations

import torch

from prefrl.losses import disagreement, gap_upper_bound, mean_entropy
from prefrl.reward_model import RewardEnsemble
from prefrl.segments import Segments

__all__ = ["QUERY_METHODS", "pair_probabilities", "pair_return_gaps", "select_groups", "select_queries"]

QUERY_METHODS = ("disagreement", "entropy", "gap", "random")


@torch.no_grad()
def pair_return_gaps(
    ensemble: RewardEnsemble, seg1: Segments, seg2: Segments, batch_size: int = 256
) -> torch.Tensor:
    """Each member's return difference R_e(s1) - R_e(s2) for N pairs, in chunks, in eval mode.

    Returns:
        [E, N] differences (on the CPU).
    """
    dev = next(ensemble.parameters()).device
    was_training = ensemble.training
    ensemble.eval()
    out = []
    for s in range(0, len(seg1), batch_size):
        sl = slice(s, s + batch_size)
        obs = torch.stack([seg1.obs[sl], seg2.obs[sl]], dim=1).to(dev)  # [b, 2, L, ...]
        act = torch.stack([seg1.act[sl], seg2.act[sl]], dim=1).to(dev)
        R = ensemble.segment_returns(obs, act)  # [E, b, 2]
        out.append((R[..., 0] - R[..., 1]).cpu())
    ensemble.train(was_training)
    return torch.cat(out, dim=1)


def pair_probabilities(
    ensemble: RewardEnsemble, seg1: Segments, seg2: Segments, batch_size: int = 256
) -> torch.Tensor:
    """Each member's P[s1 > s2] for N pairs, in chunks, in eval mode.

    Returns:
        [E, N] probabilities (on the CPU).
    """
    return torch.sigmoid(pair_return_gaps(ensemble, seg1, seg2, batch_size))


def _pair_scores(ensemble: RewardEnsemble, seg1: Segments, seg2: Segments, method: str) -> torch.Tensor:
    """[N] informativeness of N candidate pairs by ``method`` (not "random")."""
    if method == "gap":
        return gap_upper_bound(pair_return_gaps(ensemble, seg1, seg2))
    p = pair_probabilities(ensemble, seg1, seg2)
    return disagreement(p) if method == "disagreement" else mean_entropy(p)


def select_queries(
    ensemble: RewardEnsemble,
    seg1: Segments,
    seg2: Segments,
    n: int,
    method: str = "disagreement",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of the ``n`` candidate pairs to send to the labeler.

    Args:
        ensemble: the current reward model.
        seg1: M candidate first segments.
        seg2: M candidate second segments.
        n: how many to pick (<= M).
        method: "disagreement", "entropy", "gap" or "random".
        generator: RNG for "random".

    Returns:
        [n] long indices into the candidates, most informative first.
    """
    if method not in QUERY_METHODS:
        raise ValueError(f"unknown query method {method!r}; choose one of {QUERY_METHODS}")
    M = len(seg1)
    if len(seg2) != M:
        raise ValueError(f"candidate pools differ in size: {M} vs {len(seg2)}")
    if not 0 < n <= M:
        raise ValueError(f"cannot pick {n} queries from {M} candidates")
    if method == "random":
        return torch.randperm(M, generator=generator)[:n]
    return torch.topk(_pair_scores(ensemble, seg1, seg2, method), n).indices


def select_groups(
    ensemble: RewardEnsemble,
    groups: list[Segments],
    n: int,
    method: str = "disagreement",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of the ``n`` groups of K candidates to send for ranking.

    A group's score is the mean, over its C(K, 2) pairs, of the pairwise
    score (disagreement, entropy or gap); ``random`` picks uniformly.

    Args:
        groups: K Segments of G each: ``groups[k][g]`` is item k of group g.
        n: how many groups to pick (<= G).

    Returns:
        [n] long indices into the G groups, most informative first.
    """
    if method not in QUERY_METHODS:
        raise ValueError(f"unknown query method {method!r}; choose one of {QUERY_METHODS}")
    if len(groups) < 2 or len({len(g) for g in groups}) != 1:
        raise ValueError("need K >= 2 candidate lists of equal length")
    G = len(groups[0])
    if not 0 < n <= G:
        raise ValueError(f"cannot pick {n} groups from {G} candidates")
    if method == "random":
        return torch.randperm(G, generator=generator)[:n]
    K = len(groups)
    scores = []
    for a in range(K):
        for b in range(a + 1, K):
            scores.append(_pair_scores(ensemble, groups[a], groups[b], method))
    return torch.topk(torch.stack(scores).mean(0), n).indices
