"""`python -m benchmarks.sweep`: the statistics on known values, the grid from flags and files, a tiny Ray sweep."""

import csv
import json
import math

import numpy as np
import pytest

from benchmarks import stats, sweep

# -- statistics --------------------------------------------------------------------


def test_iqm_of_one_to_eight_is_the_mean_of_the_middle_four():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx((3 + 4 + 5 + 6) / 4)  # 4.5
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter


def test_iqm_is_rliables_trimmed_mean_on_known_values():
    assert stats.iqm([5.0]) == 5.0
    assert stats.iqm([1.0, 3.0]) == pytest.approx(2.0)
    # n < 4: floor(n / 4) = 0 values dropped, the plain mean
    assert stats.iqm([0.0, 0.0, 3.0]) == pytest.approx(1.0)
    # n = 5: one dropped at each end, so an outlier at either end has no weight
    assert stats.iqm([-1000.0, 2.0, 3.0, 4.0, 1000.0]) == pytest.approx(3.0)
    # n = 12: the plain mean of the middle half
    x = np.array([9.0, -2.0, 4.0, 7.0, 1.0, 0.5, 3.0, 12.0, 5.0, 6.0, -4.0, 2.0])
    assert stats.iqm(x) == pytest.approx(np.sort(x)[3:9].mean())
    # a score matrix [runs, tasks] pools its cells, as rliable's aggregate_iqm does
    assert stats.iqm(np.arange(1.0, 9.0).reshape(4, 2)) == pytest.approx(4.5)
    assert math.isnan(stats.iqm([]))


def test_bootstrap_ci_contains_the_mean_and_is_deterministic():
    x = np.array([3.1, -0.4, 2.2, 5.0, 1.7, 0.9, 4.4])
    lo, hi = stats.bootstrap_ci(x)
    assert lo < x.mean() < hi
    # the percentile bootstrap of the mean, drawn independently here with many more resamples
    means = x[np.random.default_rng(123).integers(0, x.size, size=(50_000, x.size))].mean(axis=1)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=0.15)
    assert x.min() <= lo and hi <= x.max()
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    assert stats.bootstrap_ci(x) == (lo, hi)  # same seed, same interval
    assert (np.random.get_state()[1] == before).all()  # numpy's global generator is left as it was
    assert stats.bootstrap_ci(x, seed=1) != (lo, hi)
    lo90, hi90 = stats.bootstrap_ci(x, confidence=0.9)
    assert lo <= lo90 and hi90 <= hi
    ilo, ihi = stats.bootstrap_ci(x, statistic=stats.iqm)
    assert ilo <= stats.iqm(x) <= ihi


def test_bootstrap_ci_edge_cases():
    assert stats.bootstrap_ci([2.5]) == (2.5, 2.5)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([]))
    with pytest.raises(ValueError):
        stats.bootstrap_ci([1.0, 2.0], confidence=1.0)
    d = stats.describe([1.0, None, float("nan"), 3.0])  # runs without a figure are left out of n
    assert d["n"] == 2 and d["mean"] == 2.0 and d["iqm"] == 2.0
    assert stats.describe([None])["n"] == 0


# -- the grid ----------------------------------------------------------------------

FLAGS = ["--family", "mujoco", "--envs", "Reacher-v5", "InvertedPendulum-v5", "--seeds", "0", "1", "2",
         "--labels", "50", "100", "--query", "disagreement", "random", "--steps", "2048",
         "--extra", "--n-envs 2 --eval-episodes 3"]


def _runs(blocks):
    return [r for b in blocks for r in b.runs()]


def test_grid_from_flags_equals_grid_from_file(tmp_path):
    blocks, _ = sweep.blocks_from_argv(FLAGS)
    runs = _runs(blocks)
    assert len(runs) == 2 * 3 * 2 * 2
    r = runs[0]
    assert r.rel_dir.as_posix() == "mujoco/Reacher-v5/labels50-disagreement/seed0"
    assert r.argv() == ["benchmarks.mujoco", "--synthetic-oracle", "--env", "Reacher-v5", "--seeds", "0", "--labels",
                        "50", "--query", "disagreement", "--steps", "2048", "--workers", "1", "--n-envs", "2",
                        "--eval-episodes", "3"]
    yaml_file = tmp_path / "grid.yaml"
    yaml_file.write_text("family: mujoco\nenvs: [Reacher-v5, InvertedPendulum-v5]\nseeds: [0, 1, 2]\n"
                         "labels: [50, 100]\nquery: [disagreement, random]\nsteps: 2048\n"
                         "extra: --n-envs 2 --eval-episodes 3\n")
    json_file = tmp_path / "grid.json"
    sweep.save_grid(json_file, blocks)  # what a sweep writes to sweep.json
    for f in (yaml_file, json_file):
        from_file, _ = sweep.blocks_from_argv(["--grid", str(f)])
        assert from_file == blocks
        assert _runs(from_file) == runs


@pytest.mark.parametrize("argv, message", [
    ([*FLAGS, "--extra", "--seeds 4"], "--extra may not set --seeds"),
    (["--family", "mujoco", "--envs", "Reacher-v5"], "give --labels"),
    (["--family", "textgen", "--envs", "x", "--labels", "4", "--steps", "10"], "textgen has no --steps"),
    (["--family", "mujoco", "--envs", "Reacher-v5", "--labels", "4", "--seeds", "1", "1"], "repeats a seed"),
])
def test_bad_grid_is_one_clear_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        sweep.blocks_from_argv(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_run_state_picks_skip_resume_or_start(tmp_path):
    assert sweep.run_state(tmp_path) == "new"
    (tmp_path / "stderr.log").write_text("a failed start\n")
    assert sweep.run_state(tmp_path) == "new"
    (tmp_path / "run.json").write_text("{}")
    assert sweep.run_state(tmp_path) == "interrupted"  # launched again with --resume
    (tmp_path / "summary.json").write_text("{}")
    assert sweep.run_state(tmp_path) == "finished"  # skipped


def test_dry_run_resumes_an_interrupted_run(tmp_path, capsys):
    argv = ["--family", "mujoco", "--envs", "Reacher-v5", "--seeds", "0", "1", "--labels", "12", "--out", str(tmp_path)]
    (tmp_path / "mujoco" / "Reacher-v5" / "labels12-disagreement" / "seed1").mkdir(parents=True)
    (tmp_path / "mujoco" / "Reacher-v5" / "labels12-disagreement" / "seed1" / "run.json").write_text("{}")
    sweep.main([*argv, "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("new ") and not lines[0].endswith("--resume")
    assert lines[1].startswith("interrupted ") and lines[1].endswith("seed1 --resume")


def test_a_runs_cpu_share_sizes_the_harness(monkeypatch):
    import os

    from benchmarks.kit.validate import cpu_budget

    monkeypatch.setenv("PREFRL_CPUS", "3")  # what a sweep task with --cpus-per-run 3 sets
    assert cpu_budget() == 3
    for unset in ("", "0", "x"):
        monkeypatch.setenv("PREFRL_CPUS", unset)
        assert cpu_budget() == os.cpu_count()


# -- a tiny sweep on Ray -------------------------------------------------------------

TINY = ["--family", "mujoco", "--envs", "Reacher-v5", "--seeds", "0", "1", "--labels", "12", "--steps", "1024",
        "--extra", "--n-envs 2 --eval-episodes 3", "--num-cpus", "2"]


@pytest.mark.slow
def test_two_task_ray_sweep_writes_the_aggregate_and_a_rerun_skips_it(tmp_path, capsys):
    pytest.importorskip("ray", reason="the sweep runs on Ray: pip install 'prefrl[sweep]'")
    out = tmp_path / "sweep"
    grid = tmp_path / "grid.json"  # the two tiny runs of TINY, and a third that fails at once
    grid.write_text(json.dumps({"grid": [
        {"family": "mujoco", "envs": ["Reacher-v5"], "seeds": [0, 1], "labels": [12], "steps": 1024,
         "extra": "--n-envs 2 --eval-episodes 3"},
        {"family": "mujoco", "envs": ["NoSuchTask-v5"], "seeds": [0], "labels": [12], "steps": 1024}]}))
    with pytest.raises(SystemExit) as e:
        sweep.main(["--grid", str(grid), "--num-cpus", "2", "--out", str(out)])
    assert e.value.code == 1  # not all runs finished
    printed = capsys.readouterr().out
    bad = out / "mujoco" / "NoSuchTask-v5" / "labels12-disagreement" / "seed0"
    assert f"FAILED  {bad.relative_to(out)} (exit 2" in printed and str(bad / "stderr.log") in printed
    assert "unknown MuJoCo task" in (bad / "stderr.log").read_text()  # its stderr is kept
    assert "[3/3]" in printed and "2/3 runs finished (3 launched, 1 failed)" in printed
    for k in (0, 1):
        d = out / "mujoco" / "Reacher-v5" / "labels12-disagreement" / f"seed{k}"
        assert json.loads((d / "summary.json").read_text())["seeds"] == [k]
        assert (d / "stderr.log").is_file() and (d / "sweep-task.json").is_file()
    for name in ("aggregate.md", "aggregate.csv", "aggregate.png", "sweep.json"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "aggregate.csv") as f:
        rows = {r["figure"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"true_return_learned", "true_return_true", "normalized_ratio", "ratio"}
    learned = rows["true_return_learned"]
    assert learned["env"] == "Reacher-v5" and learned["labels"] == "12" and learned["n"] == "2"
    assert float(learned["ci_low"]) <= float(learned["mean"]) <= float(learned["ci_high"])
    md = (out / "aggregate.md").read_text()
    assert "| mujoco | Reacher-v5 | 12 | disagreement | true return, learned-reward agent | 2 |" in md

    again = sweep.main([*TINY, "--out", str(out)])  # rerun of the finished runs: nothing launched, no Ray
    assert again["launched"] == 0 and again["skipped"] == 2 and again["finished"] == 2
    assert "2 finished before (skipped), 0 to start, 0 to resume" in capsys.readouterr().out

    (out / "aggregate.md").unlink()
    sweep.main(["--aggregate-only", str(out)])
    assert (out / "aggregate.md").read_text() == md
