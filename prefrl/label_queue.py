"""A queue of preference queries that people answer: post, lease, answer.

A *query* shows K >= 2 segments (K = 2: a pair, "which is better?"; K > 2: a
ranking, InstructGPT-style) to one person, each as a media item rendered by
whoever posts it (:mod:`prefrl.media`): an animated GIF of the clip (:func:`gif_media`,
:func:`frames_to_gif`) or a text (:func:`text_media`), with an optional prompt
above them. The poster renders only the segments it queries.

The queue lives in the preference store's own SQLite file (tables
``queries`` and ``query_media``), so pending queries survive a crash and
``prefrl label STORE`` can serve them later without a training run. An
answer is written in one transaction together with its labels in the
store's ``labels`` table (with the annotator, the time and the query id), so
a label is never lost nor written twice.

Life of a query::

    pending --lease--> leased --answer--> answered (labels written) | skipped ("can't tell", no label)
       ^                 |                     ^                          |
       +--- requeue -----+                     +------- change -----------+  (by the same annotator)
          lease expired after ``timeout_s`` (``on_timeout="drop"``: -> dropped)

A changed answer (:meth:`LabelQueue.change`, the page's undo and the review page's "change") replaces the
query's labels in one transaction: the old rows stay in the file, marked ``replaced_at``, and are no longer
trained on or exported.

Every method is thread-safe (it holds the store's lock); a web server may
answer on its own threads while a training thread posts queries and reads
``store.tensors()``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch

from prefrl.label_query import (  # noqa: F401  (the queue's errors and Query, importable from here as before)
    _COLS, _INDEXES, _MEDIA_SCHEMA, _QUERIES_SCHEMA, _QUERY_EXTRA_COLUMNS, MAX_ANNOTATOR_CHARS, PAIR_ANSWERS,
    AlreadyAnswered, LabelQueueError, LeaseError, LeaseExpired, MalformedAnswer, NotAnswered, NotLeased, Query,
    QueueReading, UnknownQuery, _check_annotator, _parse_answer,
)
from prefrl.media import MEDIA_KINDS, _check_media, frames_to_gif, gif_media, gif_to_strip, text_media  # noqa: F401
from prefrl.oracle import ranking_to_pairs
from prefrl.segments import Segments
from prefrl.store import PreferenceStore, _from_blob, _to_blob

__all__ = [
    "LabelQueue", "Query", "frames_to_gif", "gif_media", "gif_to_strip", "text_media", "PAIR_ANSWERS",
    "LabelQueueError", "UnknownQuery", "LeaseError", "NotLeased", "LeaseExpired", "AlreadyAnswered",
    "MalformedAnswer", "NotAnswered",
]

class LabelQueue(QueueReading):
    """Queries waiting for people, kept in a :class:`PreferenceStore`'s SQLite file.

    This class writes (post, lease, answer, change, drop); what a page or a loop reads (``get``, ``media``,
    ``segments``, ``answered``, ``stats``, ``answered_since``, ``team``) is :class:`prefrl.label_query.QueueReading`.

    Args:
        store: where answers go (as labels) and, when it has a file, where the
            queries are kept. A store without a file keeps them in memory.
        timeout_s: how long a lease lasts (default 300 s); a page that asks
            again renews it.
        on_timeout: ``"requeue"`` (default: an expired query goes back to the
            front of the queue) or ``"drop"`` (it is dropped, never labeled).
        clock: the time source, ``time.time`` by default (tests pass a fake).
        repeat_share: share of answered queries asked once more (default 0: none), to measure how often
            answers agree (InstructGPT reports agreement between labelers): the copy goes to the back of the
            queue, to whoever asks next (another person, or the same one later), and its answer writes no
            label (the first answer is the one trained on). Which queries repeat depends on their random ids.

    Raises:
        ValueError: a bad ``timeout_s`` / ``on_timeout`` / ``repeat_share``, or a closed store.
    """

    def __init__(self, store: PreferenceStore, timeout_s: float = 300.0, on_timeout: str = "requeue",
                 clock: Callable[[], float] = time.time, repeat_share: float = 0.0):
        if not (isinstance(repeat_share, (int, float)) and 0.0 <= repeat_share < 1.0):
            raise ValueError(f"repeat_share must be a share in [0, 1) (0 = no repeated queries), got {repeat_share!r}")
        if not timeout_s > 0 or math.isinf(timeout_s):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        if on_timeout not in ("requeue", "drop"):
            raise ValueError(f"on_timeout must be 'requeue' or 'drop', got {on_timeout!r}")
        if store.path is not None and store._db is None:
            raise ValueError(f"the store {store.path} is closed; open it again (PreferenceStore(path))")
        self.store = store
        self.timeout_s = float(timeout_s)
        self.on_timeout = on_timeout
        self.repeat_share = float(repeat_share)
        self._clock = clock
        self._lock = store._lock
        self._own_db = store._db is None
        self._db = sqlite3.connect(":memory:", check_same_thread=False) if self._own_db else store._db
        with self._lock:
            with self._db:
                self._db.execute(_QUERIES_SCHEMA)
                have = {r[1] for r in self._db.execute("PRAGMA table_info(queries)")}
                for col, sql_type in _QUERY_EXTRA_COLUMNS.items():  # a store written before these gains them
                    if col not in have:
                        self._db.execute(f"ALTER TABLE queries ADD COLUMN {col} {sql_type}")
                self._db.execute(_MEDIA_SCHEMA)
                for sql in _INDEXES:
                    self._db.execute(sql)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """The store's lock and one write transaction covering the queue and the labels."""
        with self.store._transaction():
            if not self._own_db:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.commit()
            except BaseException:
                if self._db.in_transaction:
                    self._db.rollback()
                raise

    # -- posting ---------------------------------------------------------------
    def post(self, sides: Sequence[Segments], media: Sequence[Sequence[dict]],
             prompts: Sequence[str | None] | None = None, gold: Sequence | None = None) -> list[str]:
        """Posts N queries of K sides each.

        Args:
            sides: K >= 2 batches of N segments; query n shows ``sides[k][n]``
                as side k (k = 0 is shown on the left).
            media: ``media[n][k]``, what a person sees of side k of query n:
                ``{"kind": "gif", "data": bytes}`` (:func:`gif_media`) or
                ``{"kind": "text", "data": str}`` (:func:`text_media`).
            prompts: N prompts shown above the sides (None: no prompt), or None.
            gold: N known answers (as for :meth:`answer`, not ``"skip"``; None for a query without one), or
                None: gold queries, whose answers measure each annotator's agreement with the known answer
                (:meth:`team`). The page never shows them; the person's answer is the label.

        Returns:
            The N query ids, in posting order (they are served oldest first).

        Raises:
            ValueError: fewer than 2 sides, sides of different sizes or shapes,
                segments of another shape than the store's labels, or media /
                prompts not matching N x K. Nothing is posted then.
        """
        sides = list(sides)
        if len(sides) < 2 or not all(isinstance(s, Segments) for s in sides):
            raise ValueError(f"a query needs K >= 2 sides, each a Segments batch; got {len(sides)}")
        k, n = len(sides), len(sides[0])
        for name in ("obs", "act", "true_reward"):
            shapes = {tuple(getattr(s, name).shape) for s in sides}
            if len(shapes) > 1:
                raise ValueError(f"all sides must hold N segments of one shape; their {name} shapes are {sorted(shapes)}")
        media = list(media)
        if len(media) != n or any(len(m) != k for m in media):
            raise ValueError(f"media must be media[n][k] for N={n} queries of K={k} sides, "
                             f"got {len(media)} lists of lengths {sorted({len(m) for m in media})}")
        prompts = [None] * n if prompts is None else list(prompts)
        if len(prompts) != n or not all(p is None or isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be N={n} strings (or None), got {len(prompts)} items")
        gold = [None] * n if gold is None else list(gold)
        if len(gold) != n:
            raise ValueError(f"gold must hold N={n} answers (or None), got {len(gold)}")
        try:
            gold = [None if g is None else _parse_answer(g, k)[0] for g in gold]
        except MalformedAnswer as err:
            raise ValueError(f"a gold answer: {err}") from None
        if "skip" in gold:
            raise ValueError("a gold answer must order the sides; 'skip' (can't tell) is not one")
        if n == 0:
            return []
        items = [[_check_media(media[i][j], f"media[{i}][{j}]") for j in range(k)] for i in range(n)]
        first = sides[0][0]
        pair = {name: torch.stack([getattr(first, name)] * 2, dim=1) for name in ("obs", "act", "true_reward")}
        ids = [uuid.uuid4().hex for _ in range(n)]
        obs = torch.stack([s.obs.detach().cpu() for s in sides], dim=1)  # [N, K, L, ...]
        act = torch.stack([s.act.detach().cpu() for s in sides], dim=1)
        rew = torch.stack([s.true_reward.detach().cpu() for s in sides], dim=1)
        media_rows = [(qid, j, kind, data) for i, qid in enumerate(ids) for j, (kind, data) in enumerate(items[i])]
        with self._tx() as db:
            self._check_fits(db, {key: v.detach().cpu() for key, v in pair.items()})
            now = self._clock()
            db.executemany(
                "INSERT INTO queries (id, created, status, k, obs, act, true_reward, media_kinds, prompt, gold) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(qid, now, "pending", k, _to_blob(obs[i]), _to_blob(act[i]), _to_blob(rew[i]),
                  json.dumps([kind for kind, _ in items[i]]), prompts[i],
                  None if gold[i] is None else json.dumps(gold[i])) for i, qid in enumerate(ids)])
            db.executemany("INSERT INTO query_media (query_id, side, kind, data) VALUES (?,?,?,?)", media_rows)
        return ids

    def _check_fits(self, db: sqlite3.Connection, pair: dict[str, torch.Tensor]) -> None:
        """Raises ValueError unless a label of ``pair`` ([1, 2, L, ...] arrays) fits the store and the queued queries."""
        if not self.store._buf and not self.store._staged:  # no label yet: the queries posted so far set the shapes
            row = db.execute("SELECT obs, act, true_reward FROM queries ORDER BY seq LIMIT 1").fetchone()
            if row is not None:
                held = [_from_blob(b)[:1] for b in row]
                for name, h in zip(("obs", "act", "true_reward"), held):
                    if tuple(h.shape[1:]) != tuple(pair[name].shape[2:]):
                        raise ValueError(
                            f"new queries have {name} of shape {tuple(pair[name].shape[2:])} per clip, the queued "
                            f"ones {tuple(h.shape[1:])}; use a separate store for segments of another length or "
                            "environment")
        self.store._check_shapes(pair)  # answers must fit the labels stored

    # -- leasing ---------------------------------------------------------------
    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        if self.on_timeout == "requeue":
            db.execute("UPDATE queries SET status = 'pending', annotator = NULL, lease_until = NULL, "
                       "requeues = requeues + 1 WHERE status = 'leased' AND lease_until < ?", (now,))
        else:
            db.execute("UPDATE queries SET status = 'dropped' WHERE status = 'leased' AND lease_until < ?", (now,))

    def lease(self, annotator: str) -> Query | None:
        """Gives ``annotator`` a query to answer, leased to them alone for ``timeout_s``.

        An annotator holds at most one lease: while it runs, asking again
        returns the same query with its lease renewed (a reloaded page shows
        the query it showed). Otherwise the oldest pending query is leased.

        Returns:
            The query, or None when none is pending.

        Raises:
            MalformedAnswer: an empty or overlong annotator name.
        """
        name = _check_annotator(annotator)
        with self._tx() as db:
            now = self._clock()
            self._expire(db, now)
            row = db.execute(f"SELECT {_COLS} FROM queries WHERE status = 'leased' AND annotator = ? "
                             "ORDER BY seq LIMIT 1", (name,)).fetchone()
            if row is None:
                row = db.execute(f"SELECT {_COLS} FROM queries WHERE status = 'pending' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            until = now + self.timeout_s
            db.execute("UPDATE queries SET status = 'leased', annotator = ?, lease_until = ?, "
                       "leased_at = CASE WHEN status = 'leased' THEN leased_at ELSE ? END WHERE id = ?",
                       (name, until, now, row[0]))
        q = Query._from_row(row)
        return Query(q.id, q.k, q.prompt, q.media_kinds, "leased", name, until, q.created)

    # -- answering -------------------------------------------------------------
    def answer(self, query_id: str, annotator: str, ranking: str | Sequence[int]) -> int:
        """Records ``annotator``'s answer to a query they lease, with its labels, in one transaction.

        Args:
            query_id: the id :meth:`lease` gave.
            annotator: the name the query is leased to.
            ranking: for a pair ``"left"`` (mu = 1: side 0 better), ``"right"``
                (mu = 0), ``"equal"`` (mu = 0.5) or ``"skip"`` (can't tell: no
                label); for any K a list of K ranks, 0 = best, ties allowed,
                stored as its C(K, 2) pairs (:func:`prefrl.ranking_to_pairs`),
                each row carrying the query id; or ``"skip"``.

        Returns:
            The number of labels written (0 for a skip, 1 for a pair, C(K, 2)).

        Raises:
            UnknownQuery: no query has this id.
            NotLeased: the query is pending or leased to someone else.
            LeaseExpired: the lease ran out (or the query was dropped).
            AlreadyAnswered: it was answered or skipped already.
            MalformedAnswer: the answer or the annotator name is invalid.
            Nothing is changed when any of these is raised.
        """
        name = _check_annotator(annotator)
        with self._lock:
            now = self._clock()
            row = self._db.execute("SELECT status, annotator, lease_until, k, repeat_of FROM queries WHERE id = ?",
                                   (str(query_id),)).fetchone()
            if row is None:
                raise UnknownQuery(f"no query has id {str(query_id)!r:.80}")
            status, holder, lease_until, k, repeat_of = row
            if status in ("answered", "skipped"):
                raise AlreadyAnswered(f"query {query_id} was {status} already (by {holder})")
            if status == "dropped":
                raise LeaseExpired(f"query {query_id} was dropped when its lease expired; ask for the next query")
            if status == "pending" or holder != name:
                raise NotLeased(f"query {query_id} is not leased to {name!r}; ask for the next query (GET /api/next)")
            if lease_until < now:
                raise LeaseExpired(f"the lease of query {query_id} ran out after {self.timeout_s:g} s; "
                                   "ask for the next query")
            stored, ranks = _parse_answer(ranking, k)
            staged = None
            with self._tx() as db:
                n_labels = 0
                if ranks is not None and repeat_of is None:  # a repeat only measures agreement: no label
                    staged, n_labels = self._write_labels(db, query_id, ranks, name)
                if repeat_of is None and self._repeats(query_id):
                    self._post_repeat(db, query_id, now)
                seq = db.execute("SELECT COALESCE(MAX(answer_seq), 0) + 1 FROM queries").fetchone()[0]
                db.execute("UPDATE queries SET status = ?, answered_at = ?, answer = ?, n_labels = ?, answer_seq = ? "
                           "WHERE id = ?", ("skipped" if ranks is None else "answered", now, json.dumps(stored),
                                            n_labels, seq, query_id))
            if staged is not None:
                self.store._stage(staged)
            return n_labels

    def _write_labels(self, db: sqlite3.Connection, query_id: str, ranks: torch.Tensor, annotator: str):
        """Checks and writes (inside ``db``'s transaction) the C(K, 2) pair labels a query's ranks give.

        Returns:
            ``(staged, n)``: the prepared labels, for :meth:`PreferenceStore._stage` once committed, and how many.
        """
        seg = self.segments(query_id)
        first, second, mu = ranking_to_pairs(ranks[None])
        staged = self.store._prepare(seg[first], seg[second], mu)
        if not self._own_db:  # a store without a file keeps its labels in memory only
            self.store._write_rows(db, staged, annotator, query_id)
        return staged, len(mu)

    def _repeats(self, query_id: str) -> bool:
        """Whether this query is asked once more when answered: its random id decides, at ``repeat_share``."""
        return self.repeat_share > 0 and int(str(query_id)[:8], 16) / 2**32 < self.repeat_share

    def _post_repeat(self, db: sqlite3.Connection, query_id: str, now: float) -> None:
        """Posts a copy of a query (same clips, media and prompt) at the back of the queue, inside ``db``'s
        transaction."""
        copy = uuid.uuid4().hex
        db.execute("INSERT INTO queries (id, created, status, k, obs, act, true_reward, media_kinds, prompt, repeat_of, "
                   "gold) SELECT ?, ?, 'pending', k, obs, act, true_reward, media_kinds, prompt, id, gold FROM queries "
                   "WHERE id = ?",
                   (copy, now, query_id))
        db.execute("INSERT INTO query_media (query_id, side, kind, data) "
                   "SELECT ?, side, kind, data FROM query_media WHERE query_id = ?", (copy, query_id))

    def change(self, query_id: str, annotator: str, ranking: str | Sequence[int]) -> int:
        """Replaces ``annotator``'s own answer to a query (an undo, or a correction from the review page).

        The old labels stay in the file marked replaced (never trained on again); the new ones are written in
        the same transaction, so a crash keeps one answer or the other, never both or neither. Labels a
        training loop counted when the first answer came in are not counted again.

        Args:
            query_id: an answered or skipped query.
            annotator: the name that answered it; nobody else may change it.
            ranking: the new answer, as for :meth:`answer`.

        Returns:
            The number of labels the query now has (0 for "can't tell").

        Raises:
            UnknownQuery: no query has this id.
            NotAnswered: the query is not answered yet, another annotator answered it, or the store keeps its
                labels in memory only (no file to mark them in).
            MalformedAnswer: the answer or the annotator name is invalid.
            Nothing is changed when any of these is raised.
        """
        name = _check_annotator(annotator)
        with self._lock:
            row = self._db.execute("SELECT status, annotator, k, repeat_of FROM queries WHERE id = ?",
                                   (str(query_id),)).fetchone()
            if row is None:
                raise UnknownQuery(f"no query has id {str(query_id)!r:.80}")
            status, holder, k, repeat_of = row
            if status not in ("answered", "skipped"):
                raise NotAnswered(f"query {query_id} is {status}, not answered: answer it first (POST /api/answer)")
            if holder != name:
                raise NotAnswered(f"query {query_id} was answered by {holder!r}; only they can change the answer")
            if self._own_db:
                raise NotAnswered("this queue's store keeps labels in memory only: an answer can be changed only "
                                  "in a store with a file (PreferenceStore(path))")
            stored, ranks = _parse_answer(ranking, k)
            with self._tx() as db:
                n_labels = 0
                if repeat_of is None:
                    self.store._replace_rows(db, "query_id", query_id, self._clock())
                if ranks is not None and repeat_of is None:
                    n_labels = self._write_labels(db, query_id, ranks, name)[1]
                db.execute("UPDATE queries SET status = ?, answered_at = ?, answer = ?, n_labels = ? WHERE id = ?",
                           ("skipped" if ranks is None else "answered", self._clock(), json.dumps(stored), n_labels,
                            query_id))
            self.store.total_added += n_labels  # labels ever written; tensors() reads the ones that count from the file
            return n_labels

    def drop_annotator(self, annotator: str) -> int:
        """Stops training on everything one annotator labeled (e.g. after poor agreement): their labels stay in
        the file, marked replaced, and are no longer trained on or exported. Their later answers count again.

        Returns:
            The number of labels dropped.

        Raises:
            NotAnswered: the store keeps its labels in memory only.
            MalformedAnswer: an empty or overlong name.
        """
        name = _check_annotator(annotator)
        if self._own_db:
            raise NotAnswered("this queue's store keeps labels in memory only: labels can be dropped only in a "
                              "store with a file (PreferenceStore(path))")
        with self._tx() as db:
            return self.store._replace_rows(db, "annotator", name, self._clock())
