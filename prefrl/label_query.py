"""What a labeling query is: its tables in the store's file, the ``Query`` a page shows, how an answer parses,
and the errors of the queue (:mod:`prefrl.label_queue` holds the queue itself).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from prefrl.segments import Segments
from prefrl.store import PreferenceStore, _from_blob

__all__ = [
    "PAIR_ANSWERS", "MAX_ANNOTATOR_CHARS", "Query", "LabelQueueError", "UnknownQuery", "LeaseError", "NotLeased",
    "LeaseExpired", "AlreadyAnswered", "MalformedAnswer", "NotAnswered", "QueueReading",
]

_QUERIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    k INTEGER NOT NULL,
    obs BLOB NOT NULL,
    act BLOB NOT NULL,
    true_reward BLOB NOT NULL,
    media_kinds TEXT NOT NULL,
    prompt TEXT,
    annotator TEXT,
    lease_until REAL,
    requeues INTEGER NOT NULL DEFAULT 0,
    answered_at REAL,
    answer TEXT,
    n_labels INTEGER,
    answer_seq INTEGER,
    leased_at REAL,
    repeat_of TEXT,
    gold TEXT
)
"""
_QUERY_EXTRA_COLUMNS = {"leased_at": "REAL", "repeat_of": "TEXT", "gold": "TEXT"}
"""``queries`` columns added later (when the current annotator's lease began; the query a repeat copies; a
gold query's known answer); opening an older store adds them."""
_MEDIA_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_media (
    query_id TEXT NOT NULL,
    side INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (query_id, side)
)
"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS queries_by_status ON queries (status, seq)",
    "CREATE INDEX IF NOT EXISTS queries_by_annotator ON queries (annotator, status)",
    "CREATE INDEX IF NOT EXISTS queries_by_answer ON queries (answer_seq)",
)
_COLS = "id, k, prompt, media_kinds, status, annotator, lease_until, created, answer, answered_at"

PAIR_ANSWERS = {"left": (0, 1), "right": (1, 0), "equal": (0, 0)}
"""A pair's answers as ranks of (left, right); ``"skip"`` (can't tell) is allowed for any K."""

MAX_ANNOTATOR_CHARS = 64


class LabelQueueError(ValueError):
    """A request the queue refuses; nothing was changed."""


class UnknownQuery(LabelQueueError, KeyError):
    """No query has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LeaseError(LabelQueueError):
    """The query is not (or no longer) leased to this annotator."""


class NotLeased(LeaseError):
    """The query is pending or leased to someone else."""


class LeaseExpired(LeaseError):
    """This annotator's lease ran out (the query was requeued or dropped)."""


class AlreadyAnswered(LabelQueueError):
    """The query was answered (or skipped) already."""


class MalformedAnswer(LabelQueueError):
    """The answer (or the annotator name) is not one the query accepts."""


class NotAnswered(LabelQueueError):
    """A change of answer to a query this annotator has not answered (or that cannot be changed)."""


@dataclass(frozen=True)
class Query:
    """One query as the queue holds it (segments and media bytes are fetched separately).

    Attributes:
        id: random, unguessable id (32 hex digits).
        k: number of sides, K >= 2.
        prompt: text shown above the sides, or None.
        media_kinds: per side ``"gif"`` or ``"text"`` (bytes via :meth:`LabelQueue.media`).
        status: ``pending``, ``leased``, ``answered``, ``skipped`` or ``dropped``.
        annotator: who holds (or answered, or let expire) it; None while pending.
        lease_until: Unix time at which the lease ends, or None.
        created: Unix time it was posted.
        answer: ``"left"``/``"right"``/``"equal"``/``"skip"`` or a list of K ranks, once answered.
        answered_at: Unix time of the answer, or None.
    """

    id: str
    k: int
    prompt: str | None
    media_kinds: tuple[str, ...]
    status: str
    annotator: str | None
    lease_until: float | None
    created: float
    answer: str | list[int] | None = None
    answered_at: float | None = None

    @property
    def kind(self) -> str:
        """``"pair"`` (K = 2) or ``"ranking"`` (K > 2)."""
        return "pair" if self.k == 2 else "ranking"

    @staticmethod
    def _from_row(row: tuple) -> "Query":
        qid, k, prompt, kinds, status, annotator, lease_until, created, answer, answered_at = row
        return Query(qid, int(k), prompt, tuple(json.loads(kinds)), status, annotator, lease_until, created,
                     json.loads(answer) if answer is not None else None, answered_at)


def _check_annotator(annotator) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise MalformedAnswer("annotator must be a non-empty name (the labeling page asks for one)")
    name = annotator.strip()
    if len(name) > MAX_ANNOTATOR_CHARS or any(not c.isprintable() for c in name):
        raise MalformedAnswer(f"annotator must be at most {MAX_ANNOTATOR_CHARS} printable characters, got {name!r:.80}")
    return name


def _parse_answer(answer, k: int) -> tuple[object, torch.Tensor | None]:
    """-> (the answer as stored, ranks [K] long or None for a skip)."""
    if isinstance(answer, str):
        a = answer.strip().lower()
        if a == "skip":
            return "skip", None
        if k == 2 and a in PAIR_ANSWERS:
            return a, torch.tensor(PAIR_ANSWERS[a])
        allowed = "'left', 'right', 'equal' or 'skip'" if k == 2 else f"a list of {k} ranks (0 = best) or 'skip'"
        raise MalformedAnswer(f"answer {answer!r:.40} is not one of {allowed}")
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if isinstance(answer, (list, tuple)):
        if len(answer) != k or not all(isinstance(r, int) and not isinstance(r, bool) for r in answer):
            raise MalformedAnswer(f"a ranking must be a list of {k} integer ranks (0 = best, ties allowed), "
                                  f"got {list(answer)!r:.80}")
        if not all(0 <= r < k for r in answer):
            raise MalformedAnswer(f"ranks must be in 0..{k - 1} (0 = best), got {list(answer)}")
        return list(answer), torch.tensor(answer)
    raise MalformedAnswer(f"answer must be a string or a list of {k} ranks, got {type(answer).__name__}")


# -- the queue -------------------------------------------------------------------


class QueueReading:
    """The reading side of :class:`prefrl.label_queue.LabelQueue`: queries, media, counts, answers since.

    Reads the queue's tables under the store's lock; never writes. ``LabelQueue`` sets the attributes.
    """

    store: PreferenceStore
    on_timeout: str
    _db: sqlite3.Connection
    _lock: threading.RLock
    _clock: Callable[[], float]

    def team(self) -> dict:
        """Per-annotator counts, speed and agreement (:func:`prefrl.annotators.team_report`)."""
        from prefrl.annotators import team_report

        with self._lock:
            return team_report(self._db)

    def get(self, query_id: str) -> Query:
        """The query with this id.

        Raises:
            UnknownQuery: no query has this id.
        """
        with self._lock:
            row = self._db.execute(f"SELECT {_COLS} FROM queries WHERE id = ?", (str(query_id),)).fetchone()
        if row is None:
            raise UnknownQuery(f"no query has id {str(query_id)!r:.80}")
        return Query._from_row(row)

    def media(self, query_id: str, side: int) -> dict:
        """What a person sees of one side: ``{"kind": "gif", "data": bytes}`` or ``{"kind": "text", "data": str}``.

        Raises:
            UnknownQuery: no query has this id or no such side.
        """
        row = None
        if 0 <= int(side) < 2**31:  # past SQLite's integers there is no side (and no OverflowError)
            with self._lock:
                row = self._db.execute("SELECT kind, data FROM query_media WHERE query_id = ? AND side = ?",
                                       (str(query_id), int(side))).fetchone()
        if row is None:
            raise UnknownQuery(f"no query {str(query_id)!r:.80} with a side {side}")
        kind, data = row
        return {"kind": kind, "data": bytes(data).decode("utf-8") if kind == "text" else bytes(data)}

    def segments(self, query_id: str) -> Segments:
        """The query's K segments, side k in row k: obs [K, L, ...], act [K, L, ...], true_reward [K, L].

        Raises:
            UnknownQuery: no query has this id.
        """
        with self._lock:
            row = self._db.execute("SELECT obs, act, true_reward FROM queries WHERE id = ?",
                                   (str(query_id),)).fetchone()
        if row is None:
            raise UnknownQuery(f"no query has id {str(query_id)!r:.80}")
        return Segments(*(_from_blob(b) for b in row))

    def answered(self, offset: int = 0, limit: int = 50) -> list[Query]:
        """Answered and skipped queries, most recent answer first (for a review page)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM queries WHERE answer_seq IS NOT NULL "
                                    "ORDER BY answer_seq DESC LIMIT ? OFFSET ?",
                                    (min(max(0, int(limit)), 2**62), min(max(0, int(offset)), 2**62))).fetchall()
        return [Query._from_row(r) for r in rows]

    def stats(self) -> dict:
        """Counts of the queue (read-only: a lease that ran out counts as pending or dropped).

        Returns:
            dict with ``labels_given`` (labels written by answers), ``pending``
            (= the queue's length), ``leased``, ``answered``, ``skipped``,
            ``dropped``, ``queries`` (all ever posted), ``requeued`` (leases
            that ran out and went back), ``labels_in_store`` (all labels,
            the oracle's included), ``annotators`` ({name: queries answered
            or skipped}), ``repeats`` (copies asked again to measure agreement,
            counted in the numbers above) and ``outstanding`` (pending or leased
            queries other than repeats: what a training loop still waits for).
        """
        with self._lock:
            now = self._clock()
            counts = dict.fromkeys(("pending", "leased", "answered", "skipped", "dropped"), 0)
            repeats = outstanding = 0
            for status, expired, repeat, n in self._db.execute(
                    "SELECT status, status = 'leased' AND lease_until < ?, repeat_of IS NOT NULL, COUNT(*) "
                    "FROM queries GROUP BY 1, 2, 3", (now,)):
                if expired:
                    status = "pending" if self.on_timeout == "requeue" else "dropped"
                counts[status] += n
                repeats += n if repeat else 0
                outstanding += n if status in ("pending", "leased") and not repeat else 0
            labels, requeued = self._db.execute(
                "SELECT COALESCE(SUM(n_labels), 0), COALESCE(SUM(requeues), 0) FROM queries").fetchone()
            who = dict(self._db.execute("SELECT annotator, COUNT(*) FROM queries WHERE answer_seq IS NOT NULL "
                                        "GROUP BY annotator ORDER BY 2 DESC").fetchall())
            total = self.store.total_added
        return {"labels_given": int(labels), **counts, "queries": sum(counts.values()), "requeued": int(requeued),
                "labels_in_store": int(total), "annotators": who, "repeats": repeats, "outstanding": outstanding}

    def answered_since(self, cursor: int = 0) -> dict:
        """Answers that came in after ``cursor``, for a training loop that counts labels as they arrive.

        Usage::

            cursor = 0
            while training:
                new = queue.answered_since(cursor)
                cursor, labels_received = new["cursor"], labels_received + new["labels"]

        Args:
            cursor: 0 at first, then the ``cursor`` of the previous call.

        Returns:
            dict with ``cursor`` (pass it next time), ``queries`` (answers and
            skips since), ``labels`` (labels they wrote), ``skipped`` and ``ids``
            (their query ids, in answer order).
        """
        with self._lock:
            rows = self._db.execute("SELECT id, status, n_labels, answer_seq, repeat_of IS NOT NULL FROM queries "
                                    "WHERE answer_seq > ? ORDER BY answer_seq", (int(cursor),)).fetchall()
        new_cursor = rows[-1][3] if rows else int(cursor)
        rows = [r for r in rows if not r[4]]  # repeats measure agreement; the loop did not ask for them
        return {"cursor": new_cursor, "queries": len(rows),
                "labels": sum(r[2] for r in rows), "skipped": sum(r[1] == "skipped" for r in rows),
                "ids": [r[0] for r in rows]}
