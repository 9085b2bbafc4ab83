"""A labeler that works through a :class:`~prefrl.label_queue.LabelQueue`: people (or the oracle) answer later.

``PreferenceLoop`` and ``TextPreferenceLoop`` given a ``QueueLabeler`` post their
queries and go on training; each ``update`` collects the answers that came in
since the last one (``queue.answered_since``), counts them against the label
schedule and refits on them. A person answers in the web app
(:func:`prefrl.web.serve` over the same queue); with ``answer_with=SyntheticOracle(...)``
the labeler answers every query it posts itself, right after posting and in
order, through the very same lease/answer path, so a run is deterministic and
tests exercise what people use.

This module does not import the web app (FastAPI is optional).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from prefrl.label_queue import LabelQueue
from prefrl.oracle import Labeler
from prefrl.segments import Segments

__all__ = ["QueueLabeler", "ORACLE_ANNOTATOR", "mu_to_answer"]

ORACLE_ANNOTATOR = "synthetic-oracle"
"""The annotator name under which ``answer_with`` answers (kept with each label in the store)."""


def mu_to_answer(mu: float, answered: bool = True) -> str:
    """A pair label as the queue's answer: mu 1 -> ``"left"``, 0 -> ``"right"``, 0.5 -> ``"equal"``, unanswered -> ``"skip"``."""
    if not answered:
        return "skip"
    m = float(mu)
    if m == 1.0:
        return "left"
    if m == 0.0:
        return "right"
    if m == 0.5:
        return "equal"
    raise ValueError(f"a pair label must be 0, 0.5 or 1, got {m}")


class QueueLabeler:
    """Posts queries to a queue and collects the answers as they arrive (asynchronous labels).

    Args:
        queue: where queries wait; its store receives the labels.
        render: what a person sees of a batch of N segments: ``segments -> N media
            dicts`` (:func:`~prefrl.label_queue.gif_media` /
            :func:`~prefrl.label_queue.text_media`). Called only on queried segments.
        answer_with: a labeler with ``label`` (and ``rank`` for K > 2), e.g.
            :class:`~prefrl.SyntheticOracle`, that answers every posted query at
            once through the queue (lease + answer as ``annotator``); ``None``:
            people answer (the web app).
        annotator: the name ``answer_with`` answers under.

    Attributes:
        cursor: position in the queue's answer log; :meth:`collect` returns
            answers after it (saved with a loop's checkpoint).
        posted: queries posted by this labeler.
    """

    def __init__(self, queue: LabelQueue, render: Callable[[Segments], list[dict]],
                 answer_with: Labeler | None = None, annotator: str = ORACLE_ANNOTATOR):
        if not isinstance(queue, LabelQueue):
            raise TypeError(f"queue must be a LabelQueue, got {type(queue).__name__}")
        if not callable(render):
            raise TypeError("render must be a function segments -> list of media dicts (e.g. gif_media per clip)")
        self.queue, self.render, self.answer_with, self.annotator = queue, render, answer_with, annotator
        self.cursor = 0
        self.posted = 0

    # -- posting -----------------------------------------------------------------
    def post(self, seg1: Segments, seg2: Segments, prompts: Sequence[str | None] | None = None) -> list[str]:
        """Renders and posts N pair queries (``seg1[n]`` left, ``seg2[n]`` right); returns their ids."""
        return self.post_groups([seg1, seg2], prompts)

    def post_groups(self, sides: Sequence[Segments], prompts: Sequence[str | None] | None = None) -> list[str]:
        """Renders and posts N queries of K sides (K >= 2: a pair or a ranking); returns their ids.

        Args:
            sides: K batches of N segments; query n shows ``sides[k][n]`` as side k.
            prompts: N texts shown above the sides, or None.

        Raises:
            ValueError: ``render`` gave another number of media than segments,
                or the queue refused the queries (see :meth:`LabelQueue.post`).
        """
        sides = list(sides)
        n = len(sides[0]) if sides else 0
        if n == 0:
            return []
        rendered = []
        for k, s in enumerate(sides):
            media = list(self.render(s))
            if len(media) != len(s):
                raise ValueError(f"render gave {len(media)} media for the {len(s)} segments of side {k}; "
                                 "it must return one media dict per segment")
            rendered.append(media)
        ids = self.queue.post(sides, [[m[i] for m in rendered] for i in range(n)], prompts)
        self.posted += len(ids)
        if self.answer_with is not None:
            self._answer_all(ids, sides)
        return ids

    def _answers(self, sides: list[Segments]) -> list:
        if len(sides) == 2:
            mu, answered = self.answer_with.label(sides[0], sides[1])
            return [mu_to_answer(m, a) for m, a in zip(mu.tolist(), answered.tolist())]
        ranks = self.answer_with.rank(torch.stack([s.true_reward for s in sides], dim=1))
        return [r.tolist() for r in ranks]

    def _answer_all(self, ids: list[str], sides: list[Segments]) -> None:
        """Answers the queries just posted, in posting order, through lease + answer."""
        answers = dict(zip(ids, self._answers(sides)))
        left = set(ids)
        while left:
            q = self.queue.lease(self.annotator)
            if q is None:
                raise RuntimeError(f"{len(left)} queries posted for {self.annotator!r} were taken by someone else; "
                                   "do not serve a queue that an answer_with labeler answers")
            answer = answers.get(q.id)
            if answer is None:  # a query that waited from before (e.g. a resumed store): answer it by its own clips
                seg = self.queue.segments(q.id)
                answer = self._answers([seg[k] for k in range(q.k)])[0]
            self.queue.answer(q.id, self.annotator, answer)
            left.discard(q.id)

    # -- collecting ----------------------------------------------------------------
    def collect(self) -> dict:
        """The answers that arrived since the last call (see :meth:`LabelQueue.answered_since`).

        Returns:
            dict with ``queries`` (answered or skipped since), ``labels``
            (pairwise labels they wrote), ``skipped``, ``ids`` and ``cursor``.
        """
        new = self.queue.answered_since(self.cursor)
        self.cursor = new["cursor"]
        return new

    def outstanding(self) -> int:
        """Queries posted and not resolved yet: pending or leased (an expired lease counts per ``on_timeout``)."""
        return int(self.queue.stats()["outstanding"])  # repeats asked for agreement are not the loop's
