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
from pathlib import Path
from typing import Callable


from prefrl.export_arrow import _require, _write_hf, _write_parquet
from prefrl.export_rows import (  # noqa: F401  (importable from prefrl.export as before)
    _SUFFIX, FORMATS, _check_format, _count, _iter_rows, _ranking_counts, _record, default_out, iter_rankings, iter_records,
)

__all__ = ["FORMATS", "export_store", "iter_records", "iter_rankings", "default_out"]


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
