"""The one protocol the preference loop labels through: post queries, collect answers, count what waits.

``PreferenceLoop`` talks to every labeler through :class:`QueryLabeler`:

* ``post(seg1, seg2)`` asks N pair queries;
* ``collect()`` returns what was answered since the last call (``queries`` answered or skipped,
  ``labels`` written to the store);
* ``outstanding()`` counts the queries posted and not answered yet.

A person answers later (:class:`~prefrl.queue_labeler.QueueLabeler`, what the web app serves). A
synchronous :class:`~prefrl.oracle.Labeler` (``SyntheticOracle``, or any ``label(seg1, seg2)``) is
wrapped in :class:`ImmediateLabeler`, which answers at ``post`` and stores the labels at once, so
nothing is ever outstanding and every round fits on the labels it asked for.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from prefrl.oracle import Labeler
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
    no label but counts as asked); ``collect`` returns the counts since its last call; nothing is
    ever outstanding.

    Args:
        labeler: answers ``label(seg1, seg2) -> (mu [N], answered [N])``.
        store: where the labels go.
    """

    def __init__(self, labeler: Labeler, store: PreferenceStore):
        self.labeler, self.store = labeler, store
        self._queries = self._labels = 0

    def post(self, seg1: Segments, seg2: Segments) -> int:
        """Labels N pairs now; returns the labels stored."""
        mu, answered = self.labeler.label(seg1, seg2)
        self.store.add(seg1[answered], seg2[answered], mu[answered])
        stored = int(answered.sum())
        self._queries += len(seg1)
        self._labels += stored
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
