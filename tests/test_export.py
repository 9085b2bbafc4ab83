"""prefrl.export and `python -m prefrl export`: labels out of a store, exactly, without touching it."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from prefrl import export as ex
from prefrl import export_arrow, export_rows
from prefrl.export import export_store, iter_records
from prefrl.oracle import ranking_to_pairs
from prefrl.segments import Segments
from prefrl.store import PreferenceStore

REPO = Path(__file__).resolve().parents[1]
L = 4


def _segments(n, gen, obs_shape=(3,), obs_dtype=torch.float32):
    if obs_dtype == torch.uint8:
        obs = torch.randint(0, 256, (n, L, *obs_shape), generator=gen, dtype=torch.uint8)
    else:
        obs = torch.randn(n, L, *obs_shape, generator=gen).to(obs_dtype)
    act = torch.randint(0, 6, (n, L), generator=gen)  # discrete actions: act is [N, L], int64
    return Segments(obs, act, torch.randn(n, L, generator=gen))


def _build_store(path, obs_shape=(3,), obs_dtype=torch.float32):
    """A real store: 3 pairs (one tie), then a K=3 ranking with a tie (its 3 pairs), then 2 more pairs.

    Returns the expected rows: (mu, obs [2, L, ...], act [2, L], true_reward [2, L]) as numpy.
    """
    gen = torch.Generator().manual_seed(0)
    store = PreferenceStore(path, seed=0)
    expected = []

    def add(s1, s2, mu, query_id=None):
        s1.true_reward[0, 0] = -0.0  # exact means bit for bit: signed zero, infinity, float32 extremes
        s1.true_reward[0, 1] = float("inf")
        s2.true_reward[0, 0] = float(np.finfo(np.float32).tiny) / 2  # a subnormal
        if s1.obs.is_floating_point():
            s1.obs[0, 0, 0] = float(np.finfo(np.float32).max)
        store.add(s1, s2, mu, query_id=query_id)
        for i in range(len(mu)):
            expected.append((float(mu[i]), *(np.stack([getattr(s1, f)[i].numpy(), getattr(s2, f)[i].numpy()])
                                             for f in ("obs", "act", "true_reward"))))

    add(_segments(3, gen, obs_shape, obs_dtype), _segments(3, gen, obs_shape, obs_dtype), torch.tensor([1.0, 0.5, 0.0]))
    group = _segments(3, gen, obs_shape, obs_dtype)  # one prompt's K = 3 clips, ranked 0 = best; clips 1, 2 tie
    first, second, mu = ranking_to_pairs(torch.tensor([[0, 1, 1]]))
    add(group[first], group[second], mu, query_id="ranking-0")  # its pairs share a query id
    add(_segments(2, gen, obs_shape, obs_dtype), _segments(2, gen, obs_shape, obs_dtype), torch.tensor([0.0, 0.5]))
    store.close()
    return expected


def _fingerprint(path: Path):
    """File bytes, mtime, and its SQLite side files (no -journal, -wal or -shm left behind)."""
    st = path.stat()
    side = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, side


def _rebuild(rec, name):
    return np.asarray(rec[name], dtype=rec[f"{name}_dtype"]).reshape(rec[f"{name}_shape"])


def _check_rows(records, expected):
    assert len(records) == len(expected)
    assert [r["id"] for r in records] == list(range(1, len(expected) + 1))
    created = [r["created"] for r in records]
    assert created == sorted(created) and all(isinstance(c, float) for c in created)
    for rec, (mu, obs, act, rew) in zip(records, expected):
        assert rec["n_clips"] == 2 and rec["length"] == L
        assert rec["mu"] == mu and isinstance(rec["is_val"], bool)
        for name, want in (("obs", obs), ("act", act), ("true_reward", rew)):
            got = _rebuild(rec, name)
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert got.tobytes() == want.tobytes(), f"{name} of id {rec['id']} differs"
    assert [r["mu"] for r in records] == [1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.0, 0.5]  # ties and the ranking kept
    assert [r["kind"] for r in records] == ["pair"] * 3 + ["ranking"] * 3 + ["pair"] * 2


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "labels-seed0.sqlite"
    return path, _build_store(path)


def test_jsonl_round_trip_is_exact_and_the_store_is_untouched(store, tmp_path):
    path, expected = store
    before = _fingerprint(path)
    out = tmp_path / "out" / "labels.jsonl"  # the parent is created
    counts = export_store(path, out, "jsonl")
    assert counts == {"rows": 8, "pairs": 5, "rankings": 1, "format": "jsonl", "path": str(out)}
    lines = out.read_text().splitlines()
    _check_rows([json.loads(line) for line in lines], expected)
    assert _fingerprint(path) == before
    assert sorted(os.listdir(out.parent)) == ["labels.jsonl"], "no temporary file left behind"
    _check_rows(list(iter_records(path)), expected)
    # the store still opens and holds the same labels
    again = PreferenceStore(path)
    assert again.total_added == 8
    again.close()


def test_parquet_round_trip_is_exact(store, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    path, expected = store
    before = _fingerprint(path)
    monkeypatch.setattr(export_arrow, "_BATCH_VALUES", 100)  # several row groups (40 values a row): written in batches
    out = tmp_path / "labels.parquet"
    assert export_store(path, out, "parquet")["rows"] == 8
    assert pq.ParquetFile(out).metadata.num_row_groups > 1
    table = pq.read_table(out)
    assert str(table.schema.field("obs").type) == "list<element: list<element: list<element: float>>>"
    _check_rows(table.to_pylist(), expected)
    assert _fingerprint(path) == before


def test_parquet_keeps_uint8_frames(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "atari.sqlite"
    expected = _build_store(path, obs_shape=(2, 5, 5), obs_dtype=torch.uint8)
    out = tmp_path / "atari.parquet"
    export_store(path, out, "parquet")
    table = pq.read_table(out)
    assert "uint8" in str(table.schema.field("obs").type)
    _check_rows(table.to_pylist(), expected)
    export_store(path, tmp_path / "atari.jsonl")
    _check_rows([json.loads(x) for x in (tmp_path / "atari.jsonl").read_text().splitlines()], expected)


def test_hf_dataset_round_trip(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    path, expected = store
    before = _fingerprint(path)
    out = tmp_path / "labels-hf"
    assert export_store(path, out, "hf")["rows"] == 8
    ds = datasets.load_from_disk(str(out))
    _check_rows([ds[i] for i in range(len(ds))], expected)
    assert _fingerprint(path) == before
    assert sorted(os.listdir(tmp_path)) == ["labels-hf", "labels-seed0.sqlite"]


def test_rows_of_another_dtype_export_exactly(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "mixed.sqlite"
    gen = torch.Generator().manual_seed(1)
    store = PreferenceStore(path)
    a, b = _segments(2, gen), _segments(2, gen)
    store.add(a, b, torch.tensor([1.0, 0.0]))
    c, d = _segments(1, gen), _segments(1, gen)
    c.act, d.act = c.act.int(), d.act.int()  # int32 actions after int64 ones: the store keeps each as given
    store.add(c, d, torch.tensor([0.5]))
    store.close()
    out = tmp_path / "mixed.parquet"
    export_store(path, out, "parquet")
    rows = pq.read_table(out).to_pylist()
    assert [r["act_dtype"] for r in rows] == ["int64", "int64", "int32"]
    got = _rebuild(rows[2], "act")
    assert got.dtype == np.int32 and np.array_equal(got, np.stack([c.act[0].numpy(), d.act[0].numpy()]))


def test_reading_in_chunks_takes_a_snapshot_and_does_not_block_a_writer(store, monkeypatch):
    path, expected = store
    monkeypatch.setattr(export_rows, "_CHUNK_ROWS", 2)  # reads of 1 row, then 2 rows at a time
    it = iter_records(path)
    first = [next(it), next(it), next(it)]  # mid-way through the second chunk
    live = PreferenceStore(path)  # a run still adding labels is not held up by the export
    gen = torch.Generator().manual_seed(5)
    live.add(_segments(1, gen), _segments(1, gen), torch.tensor([1.0]))
    live.close()
    rest = list(it)
    _check_rows(first + rest, expected)  # the export holds the 8 rows stored when it started
    assert len(list(iter_records(path))) == 9


def test_empty_store_exports_zero_rows(tmp_path):
    path = tmp_path / "empty.sqlite"
    PreferenceStore(path).close()
    assert export_store(path, tmp_path / "e.jsonl")["rows"] == 0
    assert (tmp_path / "e.jsonl").read_text() == ""
    pq = pytest.importorskip("pyarrow.parquet")
    assert export_store(path, tmp_path / "e.parquet", "parquet")["rows"] == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_another_programs_database_is_refused_and_left_alone(tmp_path, foreign_sqlite):
    other = foreign_sqlite
    before = _fingerprint(other)
    for fmt in ("jsonl", "parquet"):
        with pytest.raises(ValueError, match=r"not a prefrl preference store \(no 'labels' table; its tables: users\)"):
            export_store(other, tmp_path / f"out.{fmt}", fmt)
    with pytest.raises(ValueError, match="not a prefrl preference store"):
        iter_records(other)  # checked when called, before the first row
    assert _fingerprint(other) == before, "exporting must never create a table in someone else's database"
    # a labels table of another shape is not a store either
    db = sqlite3.connect(tmp_path / "labels.db")
    db.execute("CREATE TABLE labels (id INTEGER, mu REAL)")
    db.close()
    with pytest.raises(ValueError, match="lacks act, created, is_val, obs, true_reward"):
        export_store(tmp_path / "labels.db", tmp_path / "out.jsonl")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(ValueError, match=r"not a prefrl preference store \(not an SQLite database\)"):
        export_store(junk, tmp_path / "out.jsonl")
    assert junk.read_bytes() == b"not sqlite at all " * 100
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(ValueError, match="no 'labels' table; it has no tables"):
        export_store(empty, tmp_path / "out.jsonl")
    assert empty.stat().st_size == 0
    with pytest.raises(ValueError, match="directory"):
        export_store(tmp_path, tmp_path / "out.jsonl")
    assert not list(tmp_path.glob("*out*")), "nothing is written for a refused store"


def test_missing_store_and_existing_output_are_refused(store, tmp_path):
    path, _ = store
    with pytest.raises(FileNotFoundError, match="no such preference store"):
        export_store(tmp_path / "missing.sqlite", tmp_path / "x.jsonl")
    with pytest.raises(FileNotFoundError, match="no such preference store"):
        iter_records(tmp_path / "missing.sqlite")
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "missing.sqlite").exists()
    out = tmp_path / "taken.jsonl"
    out.write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists; pass another output path or delete it"):
        export_store(path, out)
    assert out.read_text() == "keep me"
    (tmp_path / "taken-hf").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        export_store(path, tmp_path / "taken-hf", "hf")
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_store(path, tmp_path / "x.csv", "csv")


def test_missing_optional_package_is_named(store, tmp_path, monkeypatch, capsys):
    from prefrl.__main__ import main

    path, _ = store
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        export_store(path, tmp_path / "x.parquet", "parquet")
    with pytest.raises(ImportError, match="pip install datasets"):
        export_store(path, tmp_path / "x-hf", "hf")
    assert main(["export", str(path), "--format", "parquet", "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install pyarrow" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["labels-seed0.sqlite"]


def test_an_interrupted_export_leaves_nothing(store, tmp_path):
    path, _ = store

    def stop(n, total):
        if n == 3:
            raise KeyboardInterrupt

    for fmt, name in (("jsonl", "x.jsonl"), ("parquet", "x.parquet")):
        if fmt == "parquet":
            pytest.importorskip("pyarrow")
        with pytest.raises(KeyboardInterrupt):
            export_store(path, tmp_path / name, fmt, progress=stop)
        assert sorted(os.listdir(tmp_path)) == ["labels-seed0.sqlite"]


def test_cli_help(capsys):
    from prefrl.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["export", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert "--format {jsonl,parquet,hf}" in help_text and "np.asarray(row['obs']" in help_text


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "prefrl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_exit_codes(store, tmp_path):
    path, expected = store
    ok = _cli("export", path.name, "--format", "jsonl", "--out", "labels.jsonl", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "wrote 8 rows (5 pairs, 1 rankings as their 3 pair rows) to labels.jsonl" in ok.stdout
    _check_rows([json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()], expected)
    again = _cli("export", path.name, "--out", "labels.jsonl", cwd=tmp_path)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == "prefrl export: error: labels.jsonl already exists; pass another output path " \
                           "or delete it first (nothing was written)\n"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"x" * 50)
    bad = _cli("export", "junk.db", "--format", "parquet", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    assert "junk.db is not a prefrl preference store" in bad.stderr
    assert sorted(os.listdir(tmp_path)) == ["junk.db", "labels-seed0.sqlite", "labels.jsonl"]


@pytest.mark.parametrize("ranks", [[0, 1, 1], [2, 0, 1], [1, 1, 1], [3, 0, 2, 1]])
def test_rankings_are_rebuilt_exactly_from_their_pairs(tmp_path, ranks):
    gen = torch.Generator().manual_seed(1)
    store = PreferenceStore(tmp_path / "r.sqlite", seed=0)
    K = len(ranks)
    items = _segments(K, gen)
    first, second, mu = ranking_to_pairs(torch.tensor([ranks]))
    store.add(_segments(1, gen), _segments(1, gen), torch.tensor([1.0]), query_id="a-pair")  # a pair query: 1 row
    store.add(items[first], items[second], mu, query_id="r1")
    store.close()
    (rk,) = list(ex.iter_rankings(tmp_path / "r.sqlite"))
    competition = [sum(r < ranks[i] for r in ranks) for i in range(K)]  # 0 = best, tied items share a rank
    assert rk["query_id"] == "r1" and rk["k"] == K and rk["ranks"] == competition
    np.testing.assert_array_equal(rk["obs"], items.obs.numpy())  # the items, in the order they were ranked
    np.testing.assert_array_equal(rk["true_reward"], items.true_reward.numpy())
    kinds = [r["kind"] for r in iter_records(tmp_path / "r.sqlite")]
    assert kinds == ["pair"] + ["ranking"] * (K * (K - 1) // 2)
