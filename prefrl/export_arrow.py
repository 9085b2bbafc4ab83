"""Writing export rows as Arrow: Parquet (``pyarrow``) and a Hugging Face dataset (``datasets``).

Batches of about ``_BATCH_VALUES`` array elements, so memory stays bounded on large stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from prefrl.export_rows import _ARRAYS, _OPTIONAL, _SCALARS, _TEXT_FIELDS, _iter_rows

_BATCH_VALUES = 1 << 22  # array elements per Parquet row group / Arrow batch (writing costs ~100 B each)


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
