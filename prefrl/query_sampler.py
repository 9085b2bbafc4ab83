"""Which pairs of clips a round asks about: :class:`QuerySampler`, the preference loop's sampler piece.

A round draws ``candidate_factor`` x n candidate pairs of recent clips (some second clips replaced by
clips labeled before, ``anchor_fraction``) and keeps the n the ensemble is least sure of
(:func:`prefrl.queries.select_queries`). ``PreferenceLoop(sampler=...)`` takes any object with the same
``select`` method.
"""

from __future__ import annotations

import torch

from prefrl.queries import QUERY_METHODS, select_queries
from prefrl.recorder import RolloutRecorder
from prefrl.reward_model import RewardEnsemble
from prefrl.segments import Segments
from prefrl.store import PreferenceStore

__all__ = ["QuerySampler"]


class QuerySampler:
    """Draws candidate pairs from the recent steps and picks the queries among them.

    Args:
        segment_length: L, steps per clip.
        candidate_factor: candidate pairs drawn per query wanted (the paper: ~10).
        method: "disagreement", "entropy", "gap" or "random" (an unfit model always picks at random).
        anchor_fraction: share of candidates whose second clip is a clip labeled before (0: the paper).
        generator: the torch generator every draw comes from (the loop shares its own).
    """

    def __init__(self, segment_length: int, candidate_factor: int = 10, method: str = "disagreement",
                 anchor_fraction: float = 0.0, generator: torch.Generator | None = None):
        if method not in QUERY_METHODS:
            raise ValueError(f"unknown query method {method!r}; choose one of {QUERY_METHODS}")
        self.segment_length, self.candidate_factor = segment_length, candidate_factor
        self.method, self.anchor_fraction = method, anchor_fraction
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def select(self, recorder: RolloutRecorder, store: PreferenceStore, ensemble: RewardEnsemble, n: int,
               fitted: bool) -> tuple[Segments, Segments]:
        """n query pairs picked from ``candidate_factor`` x n candidates: (seg1 [n, L, ...], seg2 [n, L, ...])."""
        m = n * self.candidate_factor
        L = self.segment_length
        seg1 = recorder.sample(m, L, self.generator)
        seg2 = recorder.sample(m, L, self.generator)
        n_anchor = round(m * self.anchor_fraction) if len(store) else 0
        if n_anchor:
            seg2 = Segments.cat([seg2[: m - n_anchor], self.labeled_clips(store, n_anchor, like=seg2)])
        method = self.method if fitted else "random"  # an unfit model cannot disagree
        pick = select_queries(ensemble, seg1, seg2, n, method, self.generator)
        return seg1[pick], seg2[pick]

    def labeled_clips(self, store: PreferenceStore, n: int, like: Segments) -> Segments:
        """n clips drawn uniformly (with replacement) from both sides of the stored labels, as ``like``'s dtypes."""
        t = store.tensors()
        pick = torch.randint(2 * len(t["mu"]), (n,), generator=self.generator)
        pair, side = pick // 2, pick % 2
        return Segments(t["obs"][pair, side].to(like.obs.dtype), t["act"][pair, side].to(like.act.dtype),
                        t["true_reward"][pair, side].to(like.true_reward.dtype))
