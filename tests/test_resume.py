"""A benchmark killed with SIGKILL continues with --resume: labels kept, the arm goes on from its checkpoint."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

FLAGS = ["--synthetic-oracle", "--env", "Reacher-v5", "--steps", "12000", "--labels", "30", "--n-envs", "2",
         "--workers", "1", "--eval-episodes", "3", "--checkpoint-minutes", "0"]


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run([sys.executable, "-m", "benchmarks.mujoco", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def _labels(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_then_resume_continues_the_learned_arm(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.mujoco", *FLAGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    progress = out / "checkpoints" / "learned-seed0" / "progress.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # wait for a checkpoint taken after some training
            try:
                if progress.exists() and json.loads(progress.read_text())["rows"]:
                    break
            except (json.JSONDecodeError, OSError):
                pass  # being swapped in right now
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 300 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "summary.json").exists()
    kept = _labels(out / "labels-seed0.sqlite")
    assert kept > 0

    # the same command again is refused and says how to continue
    r = _cli(*FLAGS, "--out", str(out))
    assert r.returncode == 2 and "--resume" in r.stderr
    # --resume with other flags is refused, nothing changes
    r = _cli(*[f if f != "30" else "31" for f in FLAGS], "--out", str(out), "--resume")
    assert r.returncode == 2 and "--labels 30 -> 31" in r.stderr
    assert _labels(out / "labels-seed0.sqlite") == kept

    r = _cli(*FLAGS, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    (resumed,) = summary["resumed"]
    assert resumed["arm"] == "learned" and resumed["from_step"] > 0 and resumed["steps_redone"] >= 0
    assert "continued from its checkpoint" in r.stdout
    assert summary["labels_used"] == 30 and _labels(out / "labels-seed0.sqlite") == 30  # none asked twice
    learned = next(p for p in summary["per_seed"] if p["arm"] == "learned")
    assert learned["env_steps"] >= 12000
    assert not (out / "checkpoints").exists()  # removed once the run is complete


@pytest.mark.slow
def test_resume_needs_a_run_to_continue(tmp_path):
    r = _cli(*FLAGS, "--out", str(tmp_path / "nothing"), "--resume")
    assert r.returncode == 2 and "holds no run to continue" in r.stderr


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the run and everything it started), from /proc."""
    pids = []
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            text = open(f"/proc/{stat}/stat").read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to find the run's processes")
def test_kill_9_of_the_parent_alone_ends_its_workers_and_a_live_store_refuses_resume(tmp_path):
    from prefrl.store import PreferenceStore

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.mujoco", *FLAGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    store = out / "labels-seed0.sqlite"
    try:
        deadline = time.time() + 300
        while not (store.exists() and _labels(store) > 0):  # the learned arm's worker holds its store
            assert proc.poll() is None and time.time() < deadline, "the run ended (or took too long) before its labels"
            time.sleep(0.2)
        assert len(_session_members(proc.pid)) >= 3  # the run, the pool's manager and a worker
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as an OOM killer would: not its process group
        proc.wait()
        deadline = time.time() + 20
        while _session_members(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert _session_members(proc.pid) == [], "workers outlived the killed run"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    kept = _labels(store)
    assert kept > 0
    # while another process (here: this one) has the store open, --resume is refused before anything starts
    holder = PreferenceStore(store)
    try:
        r = _cli(*FLAGS, "--out", str(out), "--resume")
        assert r.returncode == 2 and "is open in another process" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    finally:
        holder.close()
    assert _labels(store) == kept
