"""Reading a store for export: its live labels as rows (:func:`iter_records`) and rankings (:func:`iter_rankings`).

The schema of a row is in :mod:`prefrl.export`, which writes them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from prefrl.store import LIVE, TEXT_FORMAT, blob_to_array, labels_table_problem

__all__ = ["FORMATS", "iter_records", "iter_rankings", "default_out"]

FORMATS = ("jsonl", "parquet", "hf")
_ARRAYS = ("obs", "act", "true_reward")
_SCALARS = ("id", "created", "kind", "mu", "is_val", "n_clips", "length")
_OPTIONAL = {"annotator": "string", "labeled_at": "float64", "query_id": "string"}  # NULL in older stores
_TEXT_FIELDS = ("prompt", "completion_0", "completion_1", "chosen", "rejected")  # text stores only
_CHUNK_ROWS = 64  # most rows per SQLite read: one short read each, the lock is free in between
_CHUNK_BYTES = 16 << 20  # ... and about this many bytes of arrays (fewer rows when clips are large)
_SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": "-hf"}


def default_out(store_path: str | Path, fmt: str) -> Path:
    """``labels-seed0.sqlite`` -> ``labels-seed0.jsonl`` / ``.parquet`` / ``labels-seed0-hf``."""
    _check_format(fmt)
    p = Path(store_path)
    return p.with_name(p.stem + _SUFFIX[fmt])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


# -- reading the store --------------------------------------------------------
def _open_ro(store_path: str | Path) -> sqlite3.Connection:
    """Opens ``store_path`` read-only and checks it holds prefrl's ``labels`` table."""
    path = Path(store_path)
    if not path.exists():
        raise FileNotFoundError(f"no such preference store: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a prefrl preference store (it is a directory, not an SQLite file)")
    with open(path, "rb") as f:
        head = f.read(16)
    if head and head != b"SQLite format 3\x00":
        raise ValueError(f"{path} is not a prefrl preference store (not an SQLite database); nothing was changed")
    db = None
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        problem = labels_table_problem(db)
        if problem is not None:
            raise ValueError(f"{path} is not a prefrl preference store ({problem}); nothing was changed")
    except BaseException as err:
        if db is not None:
            db.close()
        if isinstance(err, sqlite3.Error):
            raise ValueError(f"cannot read the preference store {path} ({err}); nothing was changed") from err
        raise
    return db


def _from_blob(blob: bytes, what: str, row_id: int) -> np.ndarray:
    try:
        return blob_to_array(blob)
    except ValueError as err:
        raise ValueError(f"label id {row_id}: its {what} is {err}; the store is damaged") from err


def _iter_rows(store_path: str | Path) -> Iterator[tuple[dict, dict[str, np.ndarray]]]:
    """Yields (scalar fields, {obs, act, true_reward} arrays) per stored label, in id order."""
    db = _open_ro(store_path)
    try:
        has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
        is_text = meta.get("obs_format") == TEXT_FORMAT
        have = {r[1] for r in db.execute("PRAGMA table_info(labels)")}
        optional = ", ".join(c if c in have else f"NULL AS {c}" for c in _OPTIONAL)  # read-only: never added here
        ranked = _ranking_ids(db, have)
        live = _live(have)
        last = db.execute("SELECT MAX(id) FROM labels").fetchone()[0]
        after, chunk = -1, 1  # the first read takes one row, to learn its size
        while last is not None and after < last:
            rows = db.execute(  # fetchall: the read lock is released before anything is yielded
                f"SELECT id, created, mu, is_val, {optional}, obs, act, true_reward FROM labels "
                f"WHERE id > ? AND id <= ?{live} ORDER BY id LIMIT ?",
                (after, last, chunk),
            ).fetchall()
            if not rows:
                break
            row_bytes = max(1, sum(len(b) for b in rows[0][4 + len(_OPTIONAL):]))
            chunk = max(1, min(_CHUNK_ROWS, _CHUNK_BYTES // row_bytes))
            for row_id, created, mu, is_val, annotator, labeled_at, query_id, *blobs in rows:
                arrays = {k: _from_blob(b, k, row_id) for k, b in zip(_ARRAYS, blobs)}
                n, length = arrays["true_reward"].shape[:2]
                fields = {
                    "id": int(row_id), "created": float(created),
                    "kind": "ranking" if query_id in ranked else "pair", "mu": float(mu),
                    "is_val": bool(is_val), "n_clips": int(n), "length": int(length),
                    "annotator": annotator, "labeled_at": None if labeled_at is None else float(labeled_at),
                    "query_id": query_id,
                }
                if is_text:
                    fields.update(_text_fields(arrays["obs"], float(mu), int(row_id)))
                yield fields, arrays
            after = rows[-1][0]
    except sqlite3.Error as err:
        raise ValueError(f"cannot read the preference store {store_path} ({err})") from err
    finally:
        db.close()


def _live(have: set[str]) -> str:
    """`` AND <labels that count>`` for a store whose answers can be changed, else nothing (older stores)."""
    return f" AND {LIVE}" if "replaced_at" in have else ""


def _ranking_ids(db: sqlite3.Connection, have: set[str]) -> set[str]:
    """Query ids shared by more than one row: the K-wise rankings (a pair query gives one row)."""
    if "query_id" not in have:
        return set()
    return {q for (q,) in db.execute(
        f"SELECT query_id FROM labels WHERE query_id IS NOT NULL{_live(have)} GROUP BY query_id HAVING COUNT(*) > 1")}


def iter_rankings(store_path: str | Path) -> Iterator[dict]:
    """The K-wise rankings of a store, rebuilt from their pairs, in the order they were stored.

    Each ranking's C(K, 2) pair rows share a ``query_id``. Its items are the distinct
    clips of those rows (in order of first appearance, which is the order they were
    ranked in when the pairs came from :func:`prefrl.ranking_to_pairs`); an item's rank
    is the number of items preferred to it (0 = best; tied items share a rank), which
    gives back the ranking exactly, ties included.

    Yields:
        dicts with ``query_id``, ``k``, ``ranks`` (list of K ints), ``ids`` (the pair rows),
        and ``obs`` / ``act`` / ``true_reward`` arrays ``[K, L, ...]``; for a text store
        also ``prompt`` and ``completions`` (K strings).
    """
    rows: dict[str, list[tuple[dict, dict]]] = {}
    for fields, arrays in _iter_rows(store_path):
        if fields["kind"] == "ranking":
            rows.setdefault(fields["query_id"], []).append((fields, arrays))
    for qid, group in rows.items():
        keys: list[bytes] = []
        items: list[dict[str, np.ndarray]] = []
        wins: list[float] = []

        def item(arrays: dict, side: int) -> int:
            key = arrays["obs"][side].tobytes() + arrays["act"][side].tobytes()
            if key not in keys:
                keys.append(key)
                items.append({k: arrays[k][side] for k in _ARRAYS})
                wins.append(0.0)
            return keys.index(key)

        beats: dict[tuple[int, int], float] = {}
        for fields, arrays in group:
            a, b = item(arrays, 0), item(arrays, 1)
            beats[(a, b)], beats[(b, a)] = fields["mu"], 1.0 - fields["mu"]
        K = len(items)
        ranks = [sum(1 for j in range(K) if j != i and beats.get((j, i), 0.5) == 1.0) for i in range(K)]
        out = {"query_id": qid, "k": K, "ranks": ranks, "ids": [f["id"] for f, _ in group],
               **{k: np.stack([it[k] for it in items]) for k in _ARRAYS}}
        if "prompt" in group[0][0]:
            from prefrl.text_reward import decode_texts

            prompts, completions = decode_texts(torch.from_numpy(out["obs"].reshape(K, 2, -1)))
            out.update(prompt=prompts[0], completions=completions)
        yield out


def _text_fields(obs: np.ndarray, mu: float, row_id: int) -> dict:
    """prompt, completion_0/1, chosen/rejected (None for a tie) of a text store's row (obs [2, 1, 2, W])."""
    from prefrl.text_reward import decode_texts

    try:
        prompts, completions = decode_texts(torch.from_numpy(obs.reshape(2, 2, obs.shape[-1])))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"label id {row_id}: its texts cannot be decoded ({err}); the store is damaged") from err
    pick = {1.0: (0, 1), 0.0: (1, 0)}.get(mu)
    return {"prompt": prompts[0], "completion_0": completions[0], "completion_1": completions[1],
            "chosen": completions[pick[0]] if pick else None, "rejected": completions[pick[1]] if pick else None}


def _count(store_path: str | Path) -> int:
    db = _open_ro(store_path)
    try:
        have = {r[1] for r in db.execute("PRAGMA table_info(labels)")}
        return db.execute(f"SELECT COUNT(*) FROM labels WHERE 1{_live(have)}").fetchone()[0]
    finally:
        db.close()


def _ranking_counts(store_path: str | Path) -> tuple[int, int]:
    """(rankings, pair rows that belong to them) in a store."""
    db = _open_ro(store_path)
    try:
        have = {r[1] for r in db.execute("PRAGMA table_info(labels)")}
        if "query_id" not in have:
            return 0, 0
        row = db.execute("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM labels "
                         f"WHERE query_id IS NOT NULL{_live(have)} GROUP BY query_id HAVING COUNT(*) > 1)").fetchone()
        return int(row[0]), int(row[1])
    finally:
        db.close()


def _record(fields: dict, arrays: dict[str, np.ndarray]) -> dict:
    rec = dict(fields)
    for k, a in arrays.items():
        rec[k] = a.tolist()
        rec[f"{k}_dtype"] = a.dtype.name
        rec[f"{k}_shape"] = list(a.shape)
    return rec


def iter_records(store_path: str | Path) -> Iterator[dict]:
    """One dict per stored comparison, oldest first (schema in the module docstring).

    Streams: at most a chunk of rows is held in memory at a time. The store is
    opened read-only and left unchanged.

    Raises:
        FileNotFoundError: no file at ``store_path``.
        ValueError: the file is not a prefrl preference store.
    """
    _count(store_path)  # checks the store now, not at the first row
    return (_record(fields, arrays) for fields, arrays in _iter_rows(store_path))


# -- writers ------------------------------------------------------------------
