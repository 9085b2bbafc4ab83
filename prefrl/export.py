"""Export a preference store's labels to JSONL, Parquet or a Hugging Face dataset.

``prefrl export STORE --format jsonl|parquet|hf --out OUT`` (or ``python -m
prefrl export ...``) and :func:`export_store` write one row per stored
comparison; :func:`iter_records` yields the same rows as dicts.

The store is opened read-only (SQLite ``mode=ro``): exporting never changes
it, never creates a table in it, and reads it in short chunks, so a run that
is still adding labels to it is not held up. The rows exported are the ones
stored when the export started.

Schema, one row per comparison (``N`` clips of ``L`` steps each):

=====================  =====================================================
``id``                 int, the label's id in the store; ids grow in the
                       order labels were stored (rows come out in that order)
``created``            float, Unix time (s) at which the label's batch was stored
``kind``               ``"pair"``, or ``"ranking"`` for one of the C(K, 2)
                       pairs a K-wise ranking implies
                       (``prefrl.ranking_to_pairs``): the store keeps a ranking
                       as its pairs, which share a ``query_id``, so every row
                       is a pair (what reward trainers read) and
                       :func:`iter_rankings` rebuilds the rankings exactly
``mu``                 float in {0, 0.5, 1}: the preference mass on clip 0
                       (1 = clip 0 preferred, 0 = clip 1, 0.5 = equally good)
``is_val``             bool, the label is in the store's validation split
``annotator``          str or None: who gave the label (the name a person
                       typed in ``prefrl label``'s web page); None for labels
                       of the synthetic oracle and of stores before 0.1.1
``labeled_at``         float or None, Unix time (s) at which it was given
``query_id``           str or None, the web labeling query it answers; the
                       C(K, 2) rows of one K-wise ranking share it
                       (labels a person replaced by changing the answer stay
                       in the file but are not exported: only those that count)
``n_clips``            int, N (2 for a pair)
``length``             int, L, steps per clip
``obs``                nested lists, shape ``[N, L, *obs_shape]``: clip k is ``obs[k]``
``act``                nested lists, shape ``[N, L, *act_shape]``
``true_reward``        nested lists, shape ``[N, L]``: the environment's reward
                       of each step (what the synthetic oracle judged by)
``<a>_dtype``          str, numpy dtype name of array ``<a>`` as stored
                       (``"float32"``, ``"uint8"``, ``"int64"``, ...)
``<a>_shape``          list of int, the full shape of array ``<a>``
=====================  =====================================================

A text store (``meta['obs_format'] == prefrl.store.TEXT_FORMAT``, written by
:class:`prefrl.TextPreferenceLoop`) adds, decoded from ``obs``:

=====================  =====================================================
``prompt``             str, the prompt both completions continue
``completion_0/1``     str, the two completions (clip 0 and clip 1)
``chosen``             str, the preferred completion; None for a tie (mu 0.5)
``rejected``           str, the other one; None for a tie
=====================  =====================================================

Rebuild an array exactly
(same values, dtype and shape as when it was added to the store)::

    obs = np.asarray(rec["obs"], dtype=rec["obs_dtype"]).reshape(rec["obs_shape"])
    clip0, clip1 = obs            # [L, *obs_shape] each

The same line works on a row of each format: ``json.loads(line)`` for JSONL,
``pyarrow.parquet.read_table(OUT).to_pylist()`` (or ``pandas.read_parquet``) for
Parquet, ``datasets.load_from_disk(OUT)[i]`` for ``hf``. JSONL writes floats
with Python's ``repr`` (exact round trip); a NaN or infinity is written as
``NaN`` / ``Infinity``, which Python's ``json`` reads back but strict JSON
parsers do not. Parquet and ``hf`` store the arrays as nested lists of the
stored dtype (``list<list<...<float>>>`` for float32 observations).

``parquet`` needs ``pyarrow`` and ``hf`` needs ``datasets`` (``pip install
'prefrl[export]'``). The output must not exist yet; it is written under a
temporary name next to it and renamed when complete, so an interrupted export
leaves no partial file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from prefrl.store import LIVE, TEXT_FORMAT, blob_to_array, labels_table_problem

__all__ = ["FORMATS", "export_store", "iter_records", "iter_rankings", "default_out"]

FORMATS = ("jsonl", "parquet", "hf")
_ARRAYS = ("obs", "act", "true_reward")
_SCALARS = ("id", "created", "kind", "mu", "is_val", "n_clips", "length")
_OPTIONAL = {"annotator": "string", "labeled_at": "float64", "query_id": "string"}  # NULL in older stores
_TEXT_FIELDS = ("prompt", "completion_0", "completion_1", "chosen", "rejected")  # text stores only
_CHUNK_ROWS = 64  # most rows per SQLite read: one short read each, the lock is free in between
_CHUNK_BYTES = 16 << 20  # ... and about this many bytes of arrays (fewer rows when clips are large)
_BATCH_VALUES = 1 << 22  # array elements per Parquet row group / Arrow batch (writing costs ~100 B each)
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
def _write_jsonl(store_path, tmp: Path, progress) -> int:
    n = 0
    with open(tmp, "x", encoding="utf-8") as f:
        for rec in iter_records(store_path):
            f.write(json.dumps(rec, separators=(",", ":")))
            f.write("\n")
            n += 1
            if progress is not None:
                progress(n)
    return n


def _require(module: str, fmt: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        pip = "pyarrow" if module.startswith("pyarrow") else module
        raise ImportError(
            f"--format {fmt} needs the '{pip}' package, which is not installed ({err}); "
            f"pip install {pip}  (or pip install 'prefrl[export]')"
        ) from err


def _nested(pa, a: np.ndarray):
    """[B, d1, ..., dn] numpy -> Arrow array of B nested lists (list<...list<dtype>>)."""
    arr = pa.array(np.ascontiguousarray(a).reshape(-1))
    for i in range(a.ndim - 1, 0, -1):  # innermost dimension first
        n_lists = int(np.prod(a.shape[:i]))
        offsets = np.arange(n_lists + 1, dtype=np.int32) * a.shape[i]
        arr = pa.ListArray.from_arrays(pa.array(offsets), arr)
    return arr


def _arrow_batches(pa, store_path, progress) -> Iterator:
    """Record batches of about ``_BATCH_VALUES`` array elements; the first row fixes each array's dtype."""
    want: dict[str, np.dtype] = {}
    pending: list[tuple[dict, dict[str, np.ndarray]]] = []
    size = n = 0

    def flush():
        data = {k: pa.array([f[k] for f, _ in pending]) for k in _SCALARS}
        for k, typ in _OPTIONAL.items():  # typed: a column of only NULLs must not become Arrow's null type
            data[k] = pa.array([f[k] for f, _ in pending], type=getattr(pa, typ)())
        for k in _TEXT_FIELDS if "prompt" in pending[0][0] else ():
            data[k] = pa.array([f[k] for f, _ in pending], type=pa.string())
        for k in _ARRAYS:
            data[k] = _nested(pa, np.stack([a[k] for _, a in pending]))
            data[f"{k}_dtype"] = pa.array([f[f"{k}_dtype"] for f, _ in pending])
            data[f"{k}_shape"] = pa.array([list(a[k].shape) for _, a in pending], type=pa.list_(pa.int64()))
        return pa.RecordBatch.from_pydict(data)

    for fields, arrays in _iter_rows(store_path):
        if not want:
            want = {k: a.dtype for k, a in arrays.items()}
        elif pending and any(a.shape != pending[0][1][k].shape for k, a in arrays.items()):
            yield flush()  # a batch stacks rows of one shape
            pending, size = [], 0
        fields = {**fields, **{f"{k}_dtype": a.dtype.name for k, a in arrays.items()}}  # as stored
        for k, a in arrays.items():
            if a.dtype != want[k]:
                if not np.can_cast(a.dtype, want[k], "safe"):
                    raise ValueError(
                        f"label id {fields['id']} has {k} of dtype {a.dtype.name}, earlier labels "
                        f"{want[k].name}; a {k} column holds one dtype: export this store with --format jsonl"
                    )
                arrays[k] = a.astype(want[k])  # exact; the row's <k>_dtype keeps the stored dtype
        pending.append((fields, arrays))
        size += sum(a.size for a in arrays.values())
        n += 1
        if progress is not None:
            progress(n)
        if size >= _BATCH_VALUES:
            yield flush()
            pending, size = [], 0
    if pending:
        yield flush()


def _empty_schema(pa):
    """The columns of an export of an empty store (array dtypes unknown: lists of null)."""
    fields = [("id", pa.int64()), ("created", pa.float64()), ("kind", pa.string()), ("mu", pa.float64()),
              ("is_val", pa.bool_()), ("n_clips", pa.int64()), ("length", pa.int64())]
    fields += [(k, getattr(pa, typ)()) for k, typ in _OPTIONAL.items()]
    for k in _ARRAYS:
        fields += [(k, pa.list_(pa.null())), (f"{k}_dtype", pa.string()), (f"{k}_shape", pa.list_(pa.int64()))]
    return pa.schema(fields)


def _write_arrow(pa, store_path, progress, open_writer) -> int:
    """Streams record batches into ``open_writer(schema)``; returns the rows written."""
    n, writer, schema = 0, None, None
    try:
        for batch in _arrow_batches(pa, store_path, progress):
            if writer is None:
                schema = batch.schema
                writer = open_writer(schema)
            writer.write_batch(batch if batch.schema.equals(schema) else batch.cast(schema))
            n += batch.num_rows
        if writer is None:
            writer = open_writer(_empty_schema(pa))
    finally:
        if writer is not None:
            writer.close()
    return n


def _write_parquet(store_path, tmp: Path, progress) -> int:
    pa = _require("pyarrow", "parquet")
    pq = _require("pyarrow.parquet", "parquet")
    return _write_arrow(pa, store_path, progress, lambda schema: pq.ParquetWriter(tmp, schema))


def _write_hf(store_path, tmp: Path, progress) -> int:
    datasets = _require("datasets", "hf")
    pa = _require("pyarrow", "hf")
    tmp.mkdir()
    stream = tmp / "rows.arrow"  # Arrow stream file, memory-mapped by datasets (no copy in its cache)
    n = _write_arrow(pa, store_path, progress, lambda schema: pa.ipc.new_stream(str(stream), schema))
    ds = datasets.Dataset.from_file(str(stream))
    ds.save_to_disk(str(tmp / "dataset"))
    del ds
    return n


_WRITERS = {"jsonl": _write_jsonl, "parquet": _write_parquet, "hf": _write_hf}


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def export_store(
    store_path: str | Path,
    out_path: str | Path,
    fmt: str = "jsonl",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Writes every label of a preference store to ``out_path`` (schema in the module docstring).

    Args:
        store_path: a ``PreferenceStore`` SQLite file; opened read-only, never changed.
        out_path: file (``jsonl``, ``parquet``) or directory (``hf``, as
            ``datasets.Dataset.save_to_disk`` writes it) to create; must not exist.
        fmt: ``"jsonl"``, ``"parquet"`` or ``"hf"``.
        progress: optional ``progress(rows_done, rows_total)``, called after each row.

    Returns:
        ``{"rows", "pairs", "rankings", "format", "path"}``: rows written; the
        pair queries among them; the K-wise rankings whose C(K, 2) pair rows
        make the rest (``kind == "ranking"``); the format and the output path.

    Raises:
        FileNotFoundError: no store at ``store_path``.
        FileExistsError: ``out_path`` exists.
        ValueError: not a prefrl store, or an unknown format.
        ImportError: ``pyarrow`` (parquet) or ``datasets`` (hf) is missing.
    """
    _check_format(fmt)
    out = Path(out_path)
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{out} already exists; pass another output path or delete it first (nothing was written)")
    total = _count(store_path)  # also checks the store before anything is created
    if fmt != "jsonl":  # fail before writing anything when the optional package is missing
        _require("pyarrow" if fmt == "parquet" else "datasets", fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    _remove(tmp)
    tick = None if progress is None else (lambda n: progress(n, max(total, n)))
    try:
        n = _WRITERS[fmt](store_path, tmp, tick)
        if out.exists() or out.is_symlink():
            raise FileExistsError(f"{out} appeared while exporting; the export was not written, delete it and rerun")
        (tmp / "dataset" if fmt == "hf" else tmp).rename(out)
    finally:
        _remove(tmp)
    rankings, ranking_rows = _ranking_counts(store_path)
    return {"rows": n, "pairs": n - ranking_rows, "rankings": rankings, "format": fmt, "path": str(out)}
