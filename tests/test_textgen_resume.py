"""benchmarks.textgen --resume: an interrupted text run continues from its checkpoints.

Tiny policy (random 2-layer LM), --quick budget: the same code paths as a full run.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from benchmarks import textgen

FLAGS = ["--synthetic-oracle", "--quick", "--model", "tiny", "--iterations", "4", "--labels", "8",
         "--checkpoint-minutes", "0.0001"]


def _labels(path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT mu, obs FROM labels ORDER BY id").fetchall()
    finally:
        db.close()


def _fresh_run(out, hash_seed: str) -> tuple[list[tuple], dict]:
    """FLAGS run to completion in a new process; returns its labels and summary."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": hash_seed}
    r = subprocess.run([sys.executable, "-m", "benchmarks.textgen", *FLAGS, "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return _labels(out / "labels-seed0.sqlite"), json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every other run here is compared with."""
    return _fresh_run(tmp_path_factory.mktemp("reference") / "run", "1")


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, capsys, reference):
    straight_labels, straight = reference

    # The same run, interrupted (the Ctrl-C / SIGTERM path) as the learned arm starts its third iteration.
    from agents.lm_ppo import LMPPO

    real_rollout, third = LMPPO.rollout, textgen.train_seeds(0, 2, 4, 2)
    seen = {"n": 0}

    def rollout(self, envs, seeds, temperature=None):
        if list(seeds) == third:
            seen["n"] += 1
            if seen["n"] == 2:  # the true arm's third iteration, then the learned arm's
                raise KeyboardInterrupt
        return real_rollout(self, envs, seeds, temperature)

    monkeypatch.setattr(LMPPO, "rollout", rollout)
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as err:
        textgen.main([*FLAGS, "--out", str(out)])
    assert err.value.code == 130
    assert "--resume" in capsys.readouterr().err
    # the kit's per-arm checkpoints: the finished true arm's result, the learned arm's latest checkpoint
    assert (out / "checkpoints" / "true-seed0.result.json").exists()
    assert not (out / "checkpoints" / "true-seed0").exists()  # a finished arm's checkpoint is dropped
    assert (out / "checkpoints" / "learned-seed0" / "state.pt").exists()
    assert (out / "checkpoints" / "pre-seed0" / "progress.json").exists()
    assert not (out / "summary.json").exists()
    before = _labels(out / "labels-seed0.sqlite")
    monkeypatch.setattr(LMPPO, "rollout", real_rollout)

    resumed = textgen.main([*FLAGS, "--out", str(out), "--resume"])
    after = _labels(out / "labels-seed0.sqlite")
    assert after[: len(before)] == before  # nothing lost
    assert after == straight_labels  # and the same labels as the uninterrupted run
    for key in ("score_zero_shot", "score_true", "score_learned", "kl_true", "kl_learned", "labels_used",
                "pairs_labeled", "rm_accuracy"):
        want, got = (float("nan") if x[key] is None else x[key] for x in (straight, resumed))  # NaN is written as null
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6, nan_ok=True), key
    assert resumed["resumed"] == [{"seed": 0, "arm": "learned", "from_iteration": 2, "iterations_redone": 0}]
    assert straight["resumed"] == []
    assert "resumed (seed 0)" in capsys.readouterr().out
    assert not (out / "checkpoints").exists()  # complete outputs: nothing left to resume
    rows = (out / "curves.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 4


def test_resume_refuses_other_flags_and_a_directory_without_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        textgen.main([*FLAGS, "--out", str(out), "--resume"])
    assert err.value.code == 2 and "holds no run to continue" in capsys.readouterr().err
    out.mkdir(exist_ok=True)
    (out / textgen.RUN_FILE).write_text(json.dumps({"config": textgen._run_config(textgen.TextBenchConfig())}))
    with pytest.raises(SystemExit) as err:
        textgen.main([*FLAGS, "--out", str(out), "--resume"])
    msg = capsys.readouterr().err
    assert err.value.code == 2 and "the flags differ" in msg and "--iterations 80 -> 4" in msg
    (out / "checkpoints" / "seed0").mkdir(parents=True)  # an earlier prefrl's layout: refused, named
    with pytest.raises(SystemExit) as err:
        textgen.main([*FLAGS, "--out", str(out), "--resume"])
    msg = capsys.readouterr().err
    assert err.value.code == 2 and "written by an earlier prefrl" in msg and "(seed0)" in msg
    with pytest.raises(SystemExit) as err:  # a new run into it is refused too, and says how to continue
        textgen.main([*FLAGS, "--out", str(out)])
    assert err.value.code == 2 and "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        textgen.main([*FLAGS[:-2], "--checkpoint-minutes", "0", "--out", str(tmp_path / "x")])
    assert err.value.code == 2 and "--checkpoint-minutes must be a positive number" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_during_the_learned_arm_then_resume(tmp_path):
    """A real SIGKILL at a random moment after the learned arm's first checkpoint; --resume finishes the run."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    flags = [*FLAGS[:-6], "--iterations", "12", "--labels", "12", "--eval-prompts", "8", "--checkpoint-minutes", "0.0001"]
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.textgen", *flags, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    ckpt = out / "checkpoints" / "learned-seed0" / "progress.json"
    deadline = time.time() + 300
    try:
        while not ckpt.exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoint of the learned arm within 300 s"
            time.sleep(0.05)
        time.sleep(float(int.from_bytes(os.urandom(1), "little")) / 255 * 1.5)  # somewhere in the arm
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if (out / "summary.json").exists():
        pytest.skip("the run finished before the kill landed")
    before = _labels(out / "labels-seed0.sqlite")
    r = subprocess.run([sys.executable, "-m", "benchmarks.textgen", *flags, "--out", str(out), "--resume"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    after = _labels(out / "labels-seed0.sqlite")
    assert after[: len(before)] == before and len(after) >= len(before)
    assert summary["labels_used"] == 12  # the budget, never more: no query asked twice
    assert len({obs for _, obs in after}) == len(after)  # no pair stored twice
    assert [x["arm"] for x in summary["resumed"]] == ["learned"]


@pytest.mark.slow
def test_same_seed_same_command_same_labels_and_summary_in_fresh_processes(tmp_path, reference):
    """Two runs of one command, in separate processes with different hash seeds: identical labels and figures.

    textgen runs its seeds one after another in one process (it has no --workers), so this is the text
    side of "same seed, same command: identical labels and summary".
    """
    (labels_a, sum_a), (labels_b, sum_b) = reference, _fresh_run(tmp_path / "run", "2")
    assert labels_a == labels_b and len(labels_a) > 0
    timing = ("seconds", "per_second", "peak_", "wall", "rollout_vs_generate")
    figures = [k for k, v in sum_a.items() if isinstance(v, (float, type(None))) and not any(t in k for t in timing)]
    assert {"score_learned", "kl_learned", "rm_accuracy", "reward_correlation"} <= set(figures)
    for k in figures:
        assert sum_a[k] == sum_b[k], k  # NaN is written as null
