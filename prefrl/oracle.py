"""Labelers: who answers "which of these two segments is better?".

A labeler takes two batches of segments and returns, for each pair, the label
mu (the mass on segment 1: 1 = segment 1 better, 0 = segment 2 better,
0.5 = equally good) and whether the pair was answered at all (a labeler may
skip a query).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import torch

from prefrl.seeding import derive_seed
from prefrl.segments import Segments

__all__ = ["Labeler", "SyntheticOracle", "ranking_to_pairs"]


class Labeler(Protocol):
    """Anything that labels pairs of segments (synthetic oracle, a person)."""

    def label(self, seg1: Segments, seg2: Segments) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels N pairs.

        Args:
            seg1: N segments.
            seg2: N segments, paired index by index with ``seg1``.

        Returns:
            (mu [N] float in {0, 0.5, 1}, answered [N] bool).
        """
        ...


@dataclass
class SyntheticOracle:
    """Prefers the segment with the larger true return, with B-Pref's teacher options.

    With the defaults this is Christiano et al.'s synthetic labeler with their
    noise assumption: it answers correctly, except that with probability
    ``noise`` it answers uniformly at random; equal returns get mu = 0.5.

    Attributes:
        noise: probability of a uniformly random answer (0 or 1), default 0.1,
            the paper's assumption about human labelers.
        beta: Boltzmann rationality (B-Pref). ``inf`` (default) = always pick
            the better segment; finite beta samples mu = 1 with probability
            sigmoid(beta * (R1 - R2)).
        gamma: myopic discount (B-Pref), default 1 (none). Step t of an
            L-step segment is weighted gamma^(L-1-t): later steps count more.
        skip_threshold: skip the pair when both (discounted) returns are below
            this value (B-Pref's "skip" teacher). Default -inf: never skip.
        equal_threshold: answer 0.5 when |R1 - R2| <= this value. Default 0:
            only exactly equal returns are "equally good".
        mistake: probability of flipping the answer (B-Pref's "mistake"
            teacher), default 0.
        seed: seeds the oracle's own RNG; the same seed gives the same labels.
    """

    noise: float = 0.1
    beta: float = math.inf
    gamma: float = 1.0
    skip_threshold: float = -math.inf
    equal_threshold: float = 0.0
    mistake: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("noise", "beta", "gamma", "skip_threshold", "equal_threshold", "mistake"):
            if math.isnan(getattr(self, name)):
                raise ValueError(f"{name} is NaN; give a number (see the SyntheticOracle docstring)")
        for name in ("noise", "mistake"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0 (inf = perfectly rational), got {self.beta}")
        if self.equal_threshold < 0:
            raise ValueError(f"equal_threshold must be >= 0, got {self.equal_threshold}")
        self._rng = torch.Generator().manual_seed(derive_seed(self.seed, "oracle"))

    def returns(self, reward: torch.Tensor) -> torch.Tensor:
        """[N, L] true rewards -> [N] (myopically discounted) returns."""
        L = reward.shape[1]
        w = self.gamma ** torch.arange(L - 1, -1, -1, dtype=torch.float64)
        return (reward.double() * w).sum(dim=1)

    def label(self, seg1: Segments, seg2: Segments) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels N pairs by their true returns (see class docstring).

        Returns:
            (mu [N] float32 in {0, 0.5, 1}, answered [N] bool).
        """
        if len(seg1) != len(seg2):
            raise ValueError(f"cannot pair {len(seg1)} segments with {len(seg2)}")
        R1, R2 = self.returns(seg1.true_reward), self.returns(seg2.true_reward)
        broken = torch.isnan(R1) | torch.isnan(R2)
        if broken.any():  # the env gave a NaN reward: such a pair cannot be judged, the rest still can
            warnings.warn(f"{int(broken.sum())} of {len(R1)} pairs have a NaN true return (the environment gave "
                          "a NaN reward); they are left unanswered", stacklevel=2)
            R1, R2 = R1.nan_to_num(0.0), R2.nan_to_num(0.0)
        n = len(R1)
        if math.isinf(self.beta):
            mu = (R1 > R2).float()
        else:
            p1 = torch.sigmoid(self.beta * (R1 - R2))
            mu = (torch.rand(n, generator=self._rng, dtype=torch.float64) < p1).float()
        mu[(R1 - R2).abs() <= self.equal_threshold] = 0.5
        flip = torch.rand(n, generator=self._rng) < self.mistake
        mu[flip] = 1.0 - mu[flip]
        rand = torch.rand(n, generator=self._rng) < self.noise
        coin = torch.randint(0, 2, (n,), generator=self._rng).float()
        mu[rand] = coin[rand]
        answered = (torch.maximum(R1, R2) >= self.skip_threshold) & ~broken
        return mu, answered


    def rank(self, true_reward: torch.Tensor) -> torch.Tensor:
        """Ranks K segments per group by their true returns (InstructGPT-style K-wise labels).

        Rank 0 is the best; equal returns share a rank. With probability
        ``noise`` a whole group gets a uniformly random permutation instead
        (the ranking analogue of a random answer). Boltzmann, skip and
        mistake options apply to pairwise ``label`` only.

        Args:
            true_reward: [G, K, L] true rewards of G groups of K segments.

        Returns:
            [G, K] long ranks.
        """
        if true_reward.dim() != 3 or true_reward.shape[1] < 2:
            raise ValueError(f"true_reward must be [G, K >= 2, L], got {tuple(true_reward.shape)}")
        G, K, L = true_reward.shape
        R = self.returns(true_reward.reshape(G * K, L)).reshape(G, K)
        if torch.isnan(R).any():
            raise ValueError("segment true rewards contain NaN; cannot rank")
        ranks = (R.unsqueeze(1) > R.unsqueeze(2)).sum(2)  # [g, i] = how many segments beat segment i
        rand = torch.rand(G, generator=self._rng) < self.noise
        perms = torch.argsort(torch.rand(G, K, generator=self._rng), dim=1)
        ranks[rand] = perms[rand]
        return ranks


def ranking_to_pairs(ranks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All C(K, 2) pairwise labels implied by G rankings of K items.

    Item k of group g has flat index g * K + k. For i < j within a group,
    mu = 1 if i is ranked above j, 0 if below, 0.5 if they tie. Fitting the
    Bradley-Terry loss (eps = 0) on all pairs of a ranking equals InstructGPT's
    K-wise loss ``kwise_ranking_loss`` of that ranking, summed rather than averaged.

    Args:
        ranks: [G, K] ranks, 0 = best.

    Returns:
        (first [G*C], second [G*C] flat indices, mu [G*C] float32), C = K(K-1)/2.
    """
    if ranks.dim() != 2 or ranks.shape[1] < 2:
        raise ValueError(f"ranks must be [G, K >= 2], got {tuple(ranks.shape)}")
    G, K = ranks.shape
    i, j = torch.triu_indices(K, K, offset=1)
    ri, rj = ranks[:, i], ranks[:, j]  # [G, C]
    mu = torch.where(ri < rj, 1.0, torch.where(ri > rj, 0.0, 0.5)).float()
    base = (torch.arange(G) * K).unsqueeze(1)
    return (base + i).reshape(-1), (base + j).reshape(-1), mu.reshape(-1)
