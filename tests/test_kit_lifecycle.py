"""The kit's parts every family's run goes through: the arm checkpoint and the run's lifecycle."""

import json
import math
import os
import signal
import sqlite3

import pytest

from benchmarks.kit import lifecycle
from benchmarks.kit.checkpoint import Checkpoint, keep_labels_aside


def test_checkpoint_commit_swaps_in_a_complete_directory(tmp_path):
    ck = Checkpoint(tmp_path, "learned", 3)
    assert ck.latest() is None and ck.progress() is None
    ck.commit(lambda d: (d / "state.bin").write_bytes(b"one"), {"next": 1})
    assert ck.latest() == tmp_path / "checkpoints" / "learned-seed3"
    ck.commit(lambda d: (d / "state.bin").write_bytes(b"two"), {"next": 2})
    assert (ck.latest() / "state.bin").read_bytes() == b"two" and ck.progress() == {"next": 2}
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["learned-seed3"]  # no .old, no tmp left


def test_checkpoint_a_fill_that_fails_leaves_the_last_checkpoint(tmp_path):
    ck = Checkpoint(tmp_path, "true", 0)
    ck.commit(lambda d: (d / "a").write_text("kept"), {"next": 5})

    def broken(d):
        (d / "a").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ck.commit(broken, {"next": 6})
    assert ck.progress() == {"next": 5} and (ck.latest() / "a").read_text() == "kept"
    ck.commit(lambda d: (d / "a").write_text("next"), {"next": 6})  # the leftover temporary is replaced
    assert ck.progress() == {"next": 6}


def test_checkpoint_falls_back_to_the_old_directory_a_kill_left_mid_swap(tmp_path):
    ck = Checkpoint(tmp_path, "learned", 0)
    ck.commit(lambda d: None, {"next": 1})
    os.replace(ck.path, ck.path.with_name(ck.path.name + ".old"))  # killed between the two renames
    assert ck.latest().name == "learned-seed0.old" and ck.progress() == {"next": 1}


def test_checkpoint_reached_and_finish(tmp_path):
    ck = Checkpoint(tmp_path, "learned", 1)
    assert ck.reached(default=7) == 7 and ck.reached(unit="iteration") == 0
    ck.set_reached(12, unit="iteration")
    assert ck.reached(unit="iteration") == 12
    assert json.loads(ck.reached_path.read_text()) == {"iteration": 12}
    ck.commit(lambda d: None, {"next": 12})
    assert ck.finished() is None
    ck.finish({"score": float("nan"), "samples": [("p", "c", 0.5)]}, keep_nan=True)
    done = ck.finished()
    assert math.isnan(done["score"]) and done["samples"] == [["p", "c", 0.5]]  # tuples come back as lists
    assert ck.latest() is None  # a finished arm's checkpoint is dropped
    ck.finish({"score": float("nan")})  # strict JSON: NaN as null
    assert ck.finished() == {"score": None}


def _store(path, labels: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE labels (id INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO labels DEFAULT VALUES", [()] * labels)
    db.commit()
    db.close()


def test_keep_labels_aside(tmp_path):
    assert keep_labels_aside(tmp_path / "labels-seed0.sqlite") is None
    _store(tmp_path / "labels-seed0.sqlite", 3)
    aside = keep_labels_aside(tmp_path / "labels-seed0.sqlite")
    assert aside.name.startswith("labels-seed0.before-resume-") and aside.suffix == ".sqlite"
    assert not (tmp_path / "labels-seed0.sqlite").exists() and aside.exists()


def test_lifecycle_start_writes_the_run_file_once(tmp_path):
    out = tmp_path / "run"
    lifecycle.start(out, {"flags": {"labels": 5}}, resume=False)
    saved = json.loads((out / lifecycle.RUN_FILE).read_text())
    assert saved["flags"] == {"labels": 5} and saved["started"] > 0
    lifecycle.start(out, {"flags": {"labels": 6}}, resume=True)  # a resume keeps the run's own file
    assert json.loads((out / lifecycle.RUN_FILE).read_text()) == saved


def test_lifecycle_stopping_turns_sigterm_into_an_interrupt_and_removes_empty_stores(tmp_path, capsys):
    _store(tmp_path / "labels-seed0.sqlite", 0)
    _store(tmp_path / "labels-seed1.sqlite", 2)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.stopping(tmp_path, [0, 1]):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert not (tmp_path / "labels-seed0.sqlite").exists()  # empty: removed, so the --out can be used again
    assert (tmp_path / "labels-seed1.sqlite").exists()  # labels: never touched
    assert "removed the empty label store(s) labels-seed0.sqlite" in capsys.readouterr().err
    with lifecycle.stopping(tmp_path, [1]):
        pass
    assert (tmp_path / "labels-seed1.sqlite").exists()


def test_a_store_with_posted_queries_is_kept(tmp_path):
    """--labeler web: queries wait for people in the store's file; a resume serves them again, so it stays."""
    _store(tmp_path / "labels-seed0.sqlite", 0)
    db = sqlite3.connect(tmp_path / "labels-seed0.sqlite")
    db.execute("CREATE TABLE queries (id INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO queries DEFAULT VALUES")
    db.commit()
    db.close()
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.stopping(tmp_path, [0]):
            raise KeyboardInterrupt
    assert (tmp_path / "labels-seed0.sqlite").exists()


def test_lifecycle_finish_and_exit(tmp_path, capsys):
    Checkpoint(tmp_path, "learned", 0).commit(lambda d: None, {})
    lifecycle.finish(tmp_path)
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(SystemExit) as err:
        lifecycle.exit_with(130, lifecycle.interrupted(tmp_path))
    assert err.value.code == 130
    msg = capsys.readouterr().err
    assert f"kept in {tmp_path}/labels-seed*.sqlite" in msg and "add --resume" in msg
