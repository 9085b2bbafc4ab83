"""The preference store: labels with their segments, on disk and in memory.

Every label is written to an SQLite file as it arrives (one transaction per
batch, so a crash loses at most the batch being written) and kept in a
bounded in-memory ring buffer of the most recent ``capacity`` labels (the
paper trained on the last 3000). Reopening the file reloads the most recent
labels, so a run can be resumed and labels are never lost.

A store may be written from several threads (a web labeling server answering
while a training thread fits): every method takes the store's lock, and labels
added from any thread are on disk at once but enter the in-memory buffer only
at the next :meth:`PreferenceStore.tensors` call, so the views a training
thread got from ``tensors()`` change only when that thread asks for new ones.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from prefrl.seeding import derive_seed
from prefrl.segments import Segments
from prefrl.store_file import (  # noqa: F401  (importable from prefrl.store as before)
    StoreInUse, _acquire, _from_blob, _lock_file, _release, _to_blob, blob_to_array, store_in_use,
)

__all__ = ["PreferenceStore", "StoreInUse", "TEXT_FORMAT", "blob_to_array", "LABEL_EXTRA_COLUMNS", "store_in_use"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    mu REAL NOT NULL,
    is_val INTEGER NOT NULL,
    obs BLOB NOT NULL,
    act BLOB NOT NULL,
    true_reward BLOB NOT NULL
)
"""

_META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

TEXT_FORMAT = "text-utf8-v1"
"""``meta['obs_format']`` of a store whose observations are texts (:func:`prefrl.text_reward.encode_texts`)."""

LABEL_COLUMNS = frozenset({"id", "created", "mu", "is_val", "obs", "act", "true_reward"})
"""The columns every prefrl store's ``labels`` table has (``_SCHEMA``); a table lacking one is not a store."""

LABEL_EXTRA_COLUMNS = {"annotator": "TEXT", "labeled_at": "REAL", "query_id": "TEXT", "replaced_at": "REAL"}
"""Nullable ``labels`` columns added after 0.1.0 (who gave a label, when, for which query of a
:class:`prefrl.label_queue.LabelQueue`, and when a person changed that answer: a replaced row is kept in the
file but never trained on or exported); opening an older store adds them (NULL in its old rows)."""

LIVE = "replaced_at IS NULL"
"""SQL condition of the labels that count (not replaced by a changed answer)."""

_VALID_MU = (0.0, 0.5, 1.0)


def labels_table_problem(db: sqlite3.Connection) -> str | None:
    """Why an open SQLite database is not a prefrl preference store, or None when it is one.

    Returns:
        ``"no 'labels' table; its tables: a, b"`` (or ``"...; it has no tables"``),
        ``"its 'labels' table lacks x, y"``, or None.
    """
    tables = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                    if r[0] != "sqlite_sequence")
    if "labels" not in tables:
        return "no 'labels' table; " + (f"its tables: {', '.join(tables)}" if tables else "it has no tables")
    missing = LABEL_COLUMNS - {r[1] for r in db.execute("PRAGMA table_info(labels)")}
    return f"its 'labels' table lacks {', '.join(sorted(missing))}" if missing else None

class PreferenceStore:
    """Labeled pairs (segment 1, segment 2, mu), persisted and bounded in memory.

    Each label is assigned to the validation split with probability
    ``val_fraction`` (default 1/e, as in the paper) when it arrives, so the
    split is stable across fits.

    Args:
        path: SQLite file to append to (created if missing; if it exists,
            its labels are loaded). ``None`` keeps labels in memory only.
        capacity: labels kept in memory for training, default 3000.
        val_fraction: probability that a new label goes to validation.
        seed: seeds the train/validation assignment.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        capacity: int = 3000,
        val_fraction: float = 1 / math.e,
        seed: int = 0,
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.capacity = capacity
        self.val_fraction = val_fraction
        self._rng = torch.Generator().manual_seed(derive_seed(seed, "store-split"))
        self._buf: dict[str, torch.Tensor] = {}
        self._next = 0  # ring position
        self._size = 0  # labels in memory
        self.total_added = 0  # labels ever stored (disk included)
        self.path = Path(path) if path is not None else None
        self._db: sqlite3.Connection | None = None
        self._file_lock: weakref.finalize | None = None  # flock held while the file is open: one process per store
        self._lock = threading.RLock()  # guards the connection, the buffer, the split RNG and the counters
        self._staged: list[tuple[torch.Tensor, ...]] = []  # stored labels not yet in the buffer (see tensors())
        self._reload = False  # a changed answer replaced stored labels: tensors() rebuilds the buffer from the file
        self.damaged_ids: list[int] = []
        self.meta: dict[str, str] = {}  # what the observations are, e.g. {"obs_format": TEXT_FORMAT}
        if self.path is not None:
            self._open_db()

    # -- disk ---------------------------------------------------------------
    def _open_db(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # one connection shared by the threads that use this store, serialised by self._lock
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self._refuse_foreign_db()
            key = _acquire(self.path)  # one process per store file; stores of this process share it
            # released by close(), or when the store is garbage-collected unclosed (never left held by a lost object)
            self._file_lock = weakref.finalize(self, _release, key) if key is not None else None
            self._db.execute(_SCHEMA)
            self._db.execute(_META_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(labels)")}
            for col, sql_type in LABEL_EXTRA_COLUMNS.items():  # an older store gains the new, nullable columns
                if col not in have:
                    self._db.execute(f"ALTER TABLE labels ADD COLUMN {col} {sql_type}")
            self._db.commit()
            self.meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            rows = self._recent_rows()
            self.total_added = self._db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        except sqlite3.DatabaseError as err:
            self.close()
            raise ValueError(
                f"{self.path} is not a prefrl preference store ({err}); pass another path, nothing was changed"
            ) from err
        except StoreInUse:
            self.close()
            raise
        torch.rand(self.total_added, generator=self._rng)  # resume the split stream where the file left it
        self._load(rows)

    def _recent_rows(self) -> list[tuple]:
        """The newest ``capacity`` labels that count (replaced answers left out), newest first."""
        return self._db.execute(
            f"SELECT id, mu, is_val, obs, act, true_reward FROM labels WHERE {LIVE} ORDER BY id DESC LIMIT ?",
            (self.capacity,)).fetchall()

    def _load(self, rows: list[tuple]) -> None:
        """Fills the (empty) buffer from ``rows`` of :meth:`_recent_rows`, leaving out damaged ones."""
        self.damaged_ids: list[int] = []  # rows that could not be read; kept on disk, left out of training
        for row_id, mu, is_val, obs, act, rew in reversed(rows):
            try:
                o, a, r = _from_blob(obs), _from_blob(act), _from_blob(rew)
                if float(mu) not in _VALID_MU:
                    raise ValueError(f"label mu={mu} is not 0, 0.5 or 1")
                self._append(o[None], a[None], r[None], torch.tensor([mu]), torch.tensor([bool(is_val)]))
            except (ValueError, TypeError) as err:
                if "per pair, the store holds" in str(err):
                    raise ValueError(f"{self.path}, label id {row_id}: {err}") from err
                self.damaged_ids.append(int(row_id))
        if self.damaged_ids:
            warnings.warn(f"{self.path}: {len(self.damaged_ids)} damaged label row(s) left out (ids "
                          f"{self.damaged_ids[:10]}{'...' if len(self.damaged_ids) > 10 else ''}); the other "
                          f"{len(rows) - len(self.damaged_ids)} were loaded and the file is unchanged", stacklevel=2)

    def _refuse_foreign_db(self) -> None:
        """Refuses, before writing anything, an SQLite file that holds tables but not prefrl's labels."""
        problem = labels_table_problem(self._db)
        if problem is not None and not problem.endswith("it has no tables"):
            self._db.close()
            self._db = None
            raise ValueError(f"{self.path} is an SQLite file of another program ({problem}), "
                             "not a prefrl preference store; pass another path, nothing was changed")

    def set_meta(self, key: str, value: str) -> None:
        """Records what the stored data is (kept in the file's ``meta`` table); refuses to change a recorded value.

        Raises:
            ValueError: ``key`` already holds another value (labels of two kinds in one store).
        """
        with self._lock:
            old = self.meta.get(key)
            if old is not None and old != value:
                raise ValueError(f"{self.path or 'this store'} holds {key}={old!r}, not {value!r}: use a separate store")
            self.meta[key] = value
            if self._db is not None and old is None:
                with self._db:
                    self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """Closes the SQLite file (labels already written stay there)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._file_lock is not None:
                self._file_lock()  # the last store of this process on the file releases its flock
                self._file_lock = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection | None]:
        """Holds the lock and one write transaction (``BEGIN IMMEDIATE``) on the file, if any.

        Commits when the block ends; on an exception rolls back and rewinds the
        split RNG, so a failed write leaves file, memory and split stream as they were.
        Labels written inside with :meth:`_write_rows` are staged by the caller
        (:meth:`_stage`) after the block, once they are committed.
        """
        with self._lock:
            rng_state = self._rng.get_state()
            db = self._db
            try:
                if db is not None:
                    db.execute("BEGIN IMMEDIATE")
                yield db
                if db is not None:
                    db.commit()
            except BaseException:
                if db is not None and db.in_transaction:
                    db.rollback()
                self._rng.set_state(rng_state)
                raise

    # -- memory -------------------------------------------------------------
    def _append(self, obs, act, rew, mu, is_val) -> None:
        """obs [n, 2, L, ...], act [n, 2, L, ...], rew [n, 2, L], mu [n], is_val [n]."""
        new = {"obs": obs, "act": act, "true_reward": rew, "mu": mu.float(), "is_val": is_val}
        if not self._buf:
            self._buf = {k: torch.empty(self.capacity, *v.shape[1:], dtype=v.dtype) for k, v in new.items()}
        self._check_shapes(new)
        n = len(mu)
        idx = (self._next + torch.arange(n)) % self.capacity
        if n > self.capacity:  # only the newest `capacity` survive
            idx, new = idx[-self.capacity :], {k: v[-self.capacity :] for k, v in new.items()}
        for k, v in new.items():
            self._buf[k][idx] = v.to(self._buf[k].dtype)
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self.capacity, self._size + n)

    def _check_shapes(self, new: dict[str, torch.Tensor]) -> None:
        first = dict(zip(("obs", "act", "true_reward"), self._staged[0])) if self._staged else {}
        for k, v in new.items():
            if self._buf:
                want = tuple(self._buf[k].shape[1:])
            elif k in first:
                want = tuple(first[k].shape[1:])
            else:
                want = tuple(v.shape[1:])
            if tuple(v.shape[1:]) != want:
                raise ValueError(
                    f"new labels have {k} of shape {tuple(v.shape[1:])} per pair, the store holds {want}; "
                    "use a separate store for segments of another length or environment"
                )

    def add(
        self,
        seg1: Segments,
        seg2: Segments,
        mu: torch.Tensor,
        annotator: str | None = None,
        query_id: str | None = None,
    ) -> None:
        """Stores N labeled pairs: on disk first (if a path is set), then in memory.

        Safe to call from any thread; the labels reach the buffer that
        :meth:`tensors` returns at its next call.

        Args:
            seg1: N segments.
            seg2: N segments paired with ``seg1``.
            mu: [N] labels in {0, 0.5, 1} (mass on segment 1).
            annotator: who gave the labels (a person's name, ``"oracle"``), kept
                in the ``annotator`` column; None when not known.
            query_id: the :class:`prefrl.label_queue.LabelQueue` query these
                labels answer (all C(K, 2) pairs of a ranking share it).

        Raises:
            ValueError: on mismatched batch sizes or shapes, labels outside
                {0, 0.5, 1}, or non-finite observations or actions.
        """
        with self._transaction() as db:
            staged = self._prepare(seg1, seg2, mu)
            if staged is not None and db is not None:
                self._write_rows(db, staged, annotator, query_id)
        if staged is not None:
            self._stage(staged)

    def _prepare(self, seg1: Segments, seg2: Segments, mu) -> tuple[torch.Tensor, ...] | None:
        """Checks N pairs and draws their split: (obs, act, rew, mu, is_val), or None for N = 0.

        Call inside :meth:`_transaction` (the split RNG is rewound if the write fails).
        """
        mu = torch.as_tensor(mu, dtype=torch.float32).reshape(-1)
        if not (len(seg1) == len(seg2) == len(mu)):
            raise ValueError(f"got {len(seg1)} and {len(seg2)} segments for {len(mu)} labels")
        if seg1.obs.shape != seg2.obs.shape or seg1.act.shape != seg2.act.shape:
            raise ValueError(f"paired segments differ in shape: {tuple(seg1.obs.shape)} vs {tuple(seg2.obs.shape)}")
        bad = ~(torch.isclose(mu[:, None], torch.tensor(_VALID_MU)).any(dim=1))
        if bad.any():
            raise ValueError(f"labels must be 0, 0.5 or 1 (mass on segment 1); got {mu[bad][:5].tolist()}")
        if len(mu) == 0:
            return None
        obs = torch.stack([seg1.obs, seg2.obs], dim=1).cpu()
        act = torch.stack([seg1.act, seg2.act], dim=1).cpu()
        rew = torch.stack([seg1.true_reward, seg2.true_reward], dim=1).cpu().float()
        self._check_shapes({"obs": obs, "act": act, "true_reward": rew})  # before anything reaches the disk
        # what the reward model reads must be finite: one NaN would make every fit NaN (the true reward is
        # never read by a fit: it is kept bit for bit, infinities included, for export and evaluation)
        for name, x in (("obs", obs), ("act", act)):
            if x.is_floating_point() and not torch.isfinite(x).all():
                rows = (~torch.isfinite(x.reshape(len(x), -1))).any(dim=1).nonzero().flatten()
                raise ValueError(f"non-finite {name} (NaN or inf) in pair(s) {rows[:5].tolist()} of this batch: "
                                 "nothing was stored; fix the environment's output before labeling its clips")
        is_val = torch.rand(len(mu), generator=self._rng) < self.val_fraction
        return obs, act, rew, mu, is_val

    @staticmethod
    def _write_rows(db: sqlite3.Connection, staged: tuple[torch.Tensor, ...], annotator: str | None,
                    query_id: str | None) -> None:
        """Inserts prepared labels inside the caller's transaction (no commit)."""
        obs, act, rew, mu, is_val = staged
        now = time.time()
        rows = [
            (now, float(mu[i]), int(is_val[i]), _to_blob(obs[i]), _to_blob(act[i]), _to_blob(rew[i]),
             annotator, now, query_id)
            for i in range(len(mu))
        ]
        db.executemany(
            "INSERT INTO labels (created, mu, is_val, obs, act, true_reward, annotator, labeled_at, query_id) "
            "VALUES (?,?,?,?,?,?,?,?,?)", rows
        )

    def _replace_rows(self, db: sqlite3.Connection, column: str, value: str, now: float) -> int:
        """Marks the labels that count whose ``column`` (``query_id`` or ``annotator``) is ``value`` replaced at
        ``now``, inside the caller's transaction; the buffer is rebuilt from the file at the next :meth:`tensors`
        call. Returns the rows marked."""
        if column not in ("query_id", "annotator"):
            raise ValueError(f"labels are replaced by query_id or annotator, not {column!r}")
        n = db.execute(f"UPDATE labels SET replaced_at = ? WHERE {column} = ? AND {LIVE}", (now, value)).rowcount
        self._reload = True
        return n

    def _stage(self, staged: tuple[torch.Tensor, ...]) -> None:
        """Queues committed labels for the buffer (applied by :meth:`tensors`)."""
        with self._lock:
            self._staged.append(staged)
            self.total_added += len(staged[3])

    def _apply_staged(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, []
            for obs, act, rew, mu, is_val in staged:
                self._append(obs, act, rew, mu, is_val)

    def __len__(self) -> int:
        """Labels held in memory (at most ``capacity``), counting those that :meth:`tensors` has yet to take in."""
        with self._lock:
            return min(self.capacity, self._size + sum(len(s[3]) for s in self._staged))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The labels in memory (views, no copy), in ring order.

        Labels added since the last call (from any thread) enter the buffer now,
        overwriting the oldest when it is full: call it from the thread that
        trains, and call it again to see new labels.

        Returns:
            dict with ``obs`` [M, 2, L, *obs_shape], ``act`` [M, 2, L, *act_shape],
            ``true_reward`` [M, 2, L], ``mu`` [M], ``is_val`` [M] bool.

        Raises:
            ValueError: if the store is empty.
        """
        with self._lock:
            if self._reload and self._db is not None:  # an answer was changed: the file holds the labels that count
                self._buf, self._next, self._size, self._staged = {}, 0, 0, []
                self._load(self._recent_rows())
                self._reload = False
            self._apply_staged()
            if self._size == 0:
                raise ValueError("the preference store is empty: add labels before fitting the reward model")
            return {k: v[: self._size] for k, v in self._buf.items()}
