import sqlite3

import pytest
import torch

from prefrl.segments import Segments
from prefrl.store import PreferenceStore, StoreInUse, store_in_use


def segs(n, L=3, start=0):
    obs = torch.arange(start, start + n).float()[:, None, None].repeat(1, L, 2)
    return Segments(obs, torch.zeros(n, L, 1), torch.ones(n, L))


def test_labels_persist_and_reload(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path, capacity=10)
    store.add(segs(4), segs(4, start=100), torch.tensor([1.0, 0.0, 0.5, 1.0]))
    store.add(segs(2, start=4), segs(2, start=104), torch.tensor([0.0, 0.0]))
    split = store.tensors()["is_val"].clone()
    store.close()
    again = PreferenceStore(path, capacity=10)
    assert len(again) == 6 and again.total_added == 6
    data = again.tensors()
    assert data["mu"].tolist() == [1.0, 0.0, 0.5, 1.0, 0.0, 0.0]
    assert data["obs"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert data["obs"][:, 1, 0, 0].tolist() == [100, 101, 102, 103, 104, 105]
    assert torch.equal(data["is_val"], split), "the validation split must survive a reload"
    # reopening appends, never truncates
    again.add(segs(1, start=6), segs(1), torch.tensor([1.0]))
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 7


@pytest.mark.slow
def test_one_process_per_store_file_and_the_lock_goes_with_it(tmp_path):
    import gc
    import subprocess
    import sys

    path = tmp_path / "labels.sqlite"
    code = ("import sys; from prefrl.store import PreferenceStore, StoreInUse\n"
            "try:\n    PreferenceStore(sys.argv[1]).close()\nexcept StoreInUse as err:\n"
            "    print(err); sys.exit(3)")

    def other_process():
        return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)

    assert store_in_use(path) is None  # no file yet
    store = PreferenceStore(path)
    store.add(segs(2), segs(2, start=100), torch.tensor([1.0, 0.0]))
    r = other_process()
    assert r.returncode == 3 and "is open in another process" in r.stdout, r
    # this process may open it again (a notebook rerunning an interrupted run): the stores share the lock
    second = PreferenceStore(path)
    assert second.total_added == 2
    store.close()
    assert other_process().returncode == 3, "the second store still holds the file"
    second.close()
    assert other_process().returncode == 0
    again = PreferenceStore(path)
    assert again.total_added == 2 and other_process().returncode == 3
    del again  # a store dropped without close() lets go of the file when collected
    gc.collect()
    assert other_process().returncode == 0
    with pytest.raises(StoreInUse):  # what the other process gets, by the same check a --resume makes
        from prefrl.store import _lock_file

        holder = PreferenceStore(path)
        try:
            _lock_file(path)  # a second open file description: what another process would hold
        finally:
            holder.close()


def test_memory_is_bounded_to_the_newest_labels(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path, capacity=5)
    for i in range(4):
        store.add(segs(3, start=3 * i), segs(3), torch.ones(3))
    assert len(store) == 5 and store.total_added == 12
    assert sorted(store.tensors()["obs"][:, 0, 0, 0].tolist()) == [7, 8, 9, 10, 11]
    store.close()
    reloaded = PreferenceStore(path, capacity=5)
    assert sorted(reloaded.tensors()["obs"][:, 0, 0, 0].tolist()) == [7, 8, 9, 10, 11]


def test_validation_fraction_is_about_one_over_e():
    store = PreferenceStore(capacity=5000)
    store.add(segs(3000), segs(3000), torch.ones(3000))
    assert store.tensors()["is_val"].float().mean().item() == pytest.approx(0.368, abs=0.03)


def test_bad_input_is_rejected_and_nothing_is_lost(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    store.add(segs(2), segs(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="0, 0.5 or 1"):
        store.add(segs(2), segs(2), torch.tensor([0.3, 1.0]))
    with pytest.raises(ValueError, match="segments for"):
        store.add(segs(2), segs(3), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="separate store"):
        store.add(segs(1, L=5), segs(1, L=5), torch.tensor([1.0]))
    assert len(store) == 2 and store.total_added == 2
    store.close()
    reopened = PreferenceStore(path)  # the rejected batch never reached the disk
    assert len(reopened) == 2 and reopened.total_added == 2
    with pytest.raises(ValueError, match="empty"):
        PreferenceStore().tensors()
    junk = tmp_path / "not_a_store.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a prefrl preference store"):
        PreferenceStore(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100


def test_split_is_independent_of_an_oracle_with_the_same_seed():
    from prefrl.oracle import SyntheticOracle

    n = 2000
    r = torch.randn(n, 3)
    s1 = Segments(torch.zeros(n, 3, 1), torch.zeros(n, 3, 1), r)
    s2 = Segments(torch.zeros(n, 3, 1), torch.zeros(n, 3, 1), torch.zeros(n, 3))
    mu, _ = SyntheticOracle(noise=0.0, mistake=0.3, seed=0).label(s1, s2)
    flipped = mu != (s1.true_return > 0).float()
    store = PreferenceStore(capacity=n, seed=0)
    store.add(s1, s2, mu)
    is_val = store.tensors()["is_val"]
    # the mistaken labels are split like the others (~1/e each), not all sent to validation
    assert abs(is_val[flipped].float().mean().item() - is_val[~flipped].float().mean().item()) < 0.08


def test_another_programs_sqlite_file_is_refused_and_left_unchanged(foreign_sqlite):
    import hashlib
    import sqlite3

    path = foreign_sqlite
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="another program .*users.*nothing was changed"):
        PreferenceStore(capacity=8, path=path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    db = sqlite3.connect(path)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {"users"}
    db.close()


def test_blobs_are_compressed_and_old_plain_npy_rows_still_load(tmp_path):
    import io

    import numpy as np

    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    frames = torch.zeros(4, 2, 50, 84, 84, dtype=torch.uint8)  # mostly-blank Atari-like clips
    frames[..., 40:44, 40:44] = 200
    s = Segments(frames[:, 0], torch.zeros(4, 50, dtype=torch.long), torch.zeros(4, 50))
    store.add(s, Segments(frames[:, 1], s.act, s.true_reward), torch.tensor([1.0, 0.0, 0.5, 1.0]))
    store.close()
    raw = 4 * 2 * 50 * 84 * 84
    assert path.stat().st_size < raw / 20  # lossless zlib, far below the raw bytes
    db = sqlite3.connect(path)  # a row written by an older prefrl: plain .npy blobs
    buf = io.BytesIO()
    np.save(buf, frames[0].numpy())
    plain = buf.getvalue()
    db.execute("UPDATE labels SET obs = ? WHERE id = 1", (plain,))
    db.commit()
    db.close()
    again = PreferenceStore(path).tensors()
    assert torch.equal(again["obs"], frames) and again["mu"].tolist() == [1.0, 0.0, 0.5, 1.0]


def test_a_damaged_row_is_left_out_with_a_warning_and_the_rest_load(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    store.add(segs(3), segs(3, start=10), torch.tensor([1.0, 0.0, 1.0]))
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE labels SET obs = ? WHERE id = 2", (b"garbage",))
    db.commit()
    db.close()
    size = path.stat().st_size
    with pytest.warns(UserWarning, match=r"1 damaged label row\(s\) left out \(ids \[2\]\)"):
        again = PreferenceStore(path)
    assert again.damaged_ids == [2] and len(again) == 2 and again.tensors()["mu"].tolist() == [1.0, 1.0]
    again.close()
    assert path.stat().st_size == size
