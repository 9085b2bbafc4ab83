"""The one protocol the preference loop labels through: post queries, collect answers, count what waits.

``PreferenceLoop`` talks to every labeler through :class:`QueryLabeler`:

* ``post(seg1, seg2)`` asks N pair queries (``post_groups(sides, prompts)``: N queries of K sides, rankings
  when K > 2, what the text loop asks);
* ``collect()`` returns what was answered since the last call (``queries`` answered or skipped,
  ``labels`` written to the store);
* ``outstanding()`` counts the queries posted and not answered yet.

A person answers later (:class:`~prefrl.queue_labeler.QueueLabeler`, what the web app serves). A
synchronous :class:`~prefrl.oracle.Labeler` (``SyntheticOracle``, or any ``label(seg1, seg2)``) is
wrapped in :class:`ImmediateLabeler`, which answers at ``post`` and stores the labels at once, so
nothing is ever outstanding and every round fits on the labels it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from prefrl.oracle import Labeler, ranking_to_pairs
from prefrl.segments import Segments
from prefrl.store import PreferenceStore

__all__ = ["ImmediateLabeler", "QueryLabeler", "as_query_labeler"]


@runtime_checkable
class QueryLabeler(Protocol):
    """Answers queries when it can: post, then collect what came in."""

    def post(self, seg1: Segments, seg2: Segments) -> object:
        """Asks N pair queries (``seg1[n]`` against ``seg2[n]``)."""
        ...

    def collect(self) -> dict:
        """What came in since the last call: ``{"queries": answered or skipped, "labels": labels stored}``."""
        ...

    def outstanding(self) -> int:
        """Queries posted and not answered yet."""
        ...


class ImmediateLabeler:
    """A synchronous :class:`~prefrl.oracle.Labeler` behind the :class:`QueryLabeler` protocol.

    ``post`` labels the pairs at once and adds the answered ones to ``store`` (a skipped query writes
    no label but counts as asked); ``post_groups`` with K > 2 sides asks ``rank`` and stores each
    ranking as its C(K, 2) pairs under one query id; ``collect`` returns the counts since its last
    call; nothing is ever outstanding.

    Args:
        labeler: answers ``label(seg1, seg2) -> (mu [N], answered [N])`` (and ``rank`` for K > 2).
        store: where the labels go.

    Attributes:
        asked: queries posted so far; ranking ``g`` of a post is stored under the query id
            ``ranking-{asked + g}`` (a loop that resumes sets it to the queries it had asked).
    """

    def __init__(self, labeler: Labeler, store: PreferenceStore):
        self.labeler, self.store = labeler, store
        self._queries = self._labels = 0
        self.asked = 0

    def post(self, seg1: Segments, seg2: Segments) -> int:
        """Labels N pairs now; returns the labels stored."""
        return self.post_groups([seg1, seg2])

    def post_groups(self, sides: Sequence[Segments], prompts: Sequence[str | None] | None = None) -> int:
        """Labels N queries of K sides now (a pair, or a ranking when K > 2); returns the pairwise labels stored.

        ``prompts`` is what a person would read above the sides; a synthetic labeler does not need it.
        """
        sides = list(sides)
        n = len(sides[0])
        if len(sides) == 2:
            mu, answered = self.labeler.label(sides[0], sides[1])
            self.store.add(sides[0][answered], sides[1][answered], mu[answered])
            stored = int(answered.sum())
        else:
            K = len(sides)
            flat = Segments(*(torch.stack([getattr(side, f) for side in sides], 1).flatten(0, 1)
                              for f in ("obs", "act", "true_reward")))  # item k of group g at g * K + k
            first, second, mu = ranking_to_pairs(self.labeler.rank(flat.true_reward.reshape(n, K, -1)))
            per = K * (K - 1) // 2  # a ranking's pairs are adjacent; they share a query id, so it can be rebuilt
            for g in range(n):
                rows = slice(g * per, (g + 1) * per)
                self.store.add(flat[first[rows]], flat[second[rows]], mu[rows], query_id=f"ranking-{self.asked + g}")
            stored = int(len(mu))
        self._queries += n
        self._labels += stored
        self.asked += n
        return stored

    def collect(self) -> dict:
        """``{"queries": N asked, "labels": stored}`` since the last call."""
        out = {"queries": self._queries, "labels": self._labels}
        self._queries = self._labels = 0
        return out

    def outstanding(self) -> int:
        """Always 0: every query is answered when posted."""
        return 0


def as_query_labeler(labeler: Labeler | QueryLabeler, store: PreferenceStore) -> tuple[QueryLabeler, bool]:
    """The labeler behind the loop's protocol, and whether its answers come later (a person).

    Raises:
        TypeError: ``labeler`` has neither ``label`` nor ``post``/``collect``/``outstanding``.
    """
    if isinstance(labeler, QueryLabeler):
        return labeler, True
    if callable(getattr(labeler, "label", None)):
        return ImmediateLabeler(labeler, store), False
    raise TypeError(f"{type(labeler).__name__} is not a labeler: give one with label(seg1, seg2) (a synthetic "
                    "oracle) or with post/collect/outstanding (a QueueLabeler)")
