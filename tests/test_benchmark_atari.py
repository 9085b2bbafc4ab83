"""`python -m benchmarks.atari`: a tiny real run on ALE writes sane outputs; bad input fails cleanly."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import atari as bench


def test_reward_model_view_pools_and_masks_the_score():
    from envs.atari import score_mask

    obs = np.full((2, 84, 84, 4), 200, np.uint8)
    from envs.atari_reward import reward_model_view

    view = reward_model_view("Breakout", mask_score=True, size=42)(obs)
    assert view.shape == (2, 42, 42, 4) and view.dtype == np.uint8
    rows = np.nonzero(score_mask("Breakout").any(axis=1))[0]
    assert (view[:, : rows.max() // 2] == 0).all(), "score rows must be black"
    assert (view[:, rows.max() // 2 + 1 :] == 200).all(), "the rest of the frame is untouched"
    full = reward_model_view("Breakout", mask_score=False, size=84)(obs)
    assert full.shape == (2, 84, 84, 4) and (full == 200).all()


@pytest.mark.slow
@pytest.mark.parametrize("flags, env_id, agent", [
    (["--upper-bound"], "ALE/Seaquest-v5", "ppo"),  # the defaults of the main job, with the upper-bound arm
    (["--game", "Breakout", "--agent", "a2c"], "ALE/Breakout-v5", "a2c"),
])
def test_quick_sized_run_writes_all_outputs(tmp_path, flags, env_id, agent):
    out = tmp_path / "run"
    summary = bench.main(["--synthetic-oracle", *flags, "--steps", "800", "--labels", "6", "--n-envs", "4",
                          "--workers", "1", "--eval-episodes", "2", "--out", str(out)])
    for name in ("curves.csv", "curves.png", "summary.json", "labels-seed0.sqlite"):
        assert (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    assert s["env"] == env_id and s["agent"] == agent and s["labels_used"] == 6
    timing = json.loads((out / "timing.json").read_text())
    assert timing["steps_per_second_learned"] > 0 and timing["steps_per_second_true"] > 0
    from benchmarks.kit.validate import cpu_budget

    learned = next(r for r in timing["per_seed"] if r["arm"] == "learned")  # --workers 1: each run has every core
    assert learned["fit_overlapped"] == (cpu_budget() >= 2)  # rewards deferred + a spare core: fits in the background
    assert (learned["fit_overlap_cpu_seconds"] > 0) == learned["fit_overlapped"]
    assert math.isfinite(s["true_return_random"]) and s["true_return_random"] >= 0
    assert all(len(r["eval_returns"]) == 2 for r in s["per_seed"])
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {r["run"] for r in rows} == ({"learned", "true", "upper"} if "--upper-bound" in flags else {"learned", "true"})
    assert ("true_return_upper" in s) == ("--upper-bound" in flags)
    assert summary["labels_used"] == 6
    from PIL import Image

    gif = Image.open(out / "learned-agent-seed0.gif")
    assert gif.size == (252, 252) and 1 <= gif.n_frames <= bench.CLIP_STEPS // 2
    arms = ("learned", "true", "upper") if "--upper-bound" in flags else ("learned", "true")
    assert all((out / f"agent-{arm}-seed0.zip").stat().st_size > 0 for arm in arms)
    assert not list(out.glob("vecnormalize-*"))  # the Atari agents do not normalise observations
    from prefrl import load_reward

    reward = load_reward(out)  # the masked, pooled view comes back with the CNN
    assert reward.info["obs_transform"]["kwargs"] == {"game": env_id, "mask_score": True, "size": 42}
    r = reward(np.zeros((3, 84, 84, 4), np.uint8), np.zeros(3, np.int64))
    assert r.shape == (3,) and np.isfinite(r).all()


def test_gpu_defaults_apply_only_to_unset_flags(tmp_path, monkeypatch):
    """With CUDA the unset budget flags grow; explicit flags and --quick are kept (no run: validation only)."""
    from types import SimpleNamespace

    from benchmarks.kit import cli

    seen = {}
    monkeypatch.setattr(cli, "run_config", lambda module, cfg: SimpleNamespace(summary=seen.setdefault("cfg", cfg)))
    monkeypatch.setattr("agents.resolve_device", lambda device: "cuda")
    bench.main(["--synthetic-oracle", "--game", "Breakout", "--labels", "900", "--out", str(tmp_path / "a")])
    a = seen.pop("cfg")
    assert a.steps == bench.GPU_DEFAULTS["steps"] and a.options.rm == "paper84" and a.labels == 900
    bench.main(["--synthetic-oracle", "--game", "Breakout", "--quick", "--out", str(tmp_path / "b")])
    assert seen["cfg"].steps == bench.QUICK["steps"] and seen["cfg"].options.rm == bench.DEFAULT_RM


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "benchmarks.atari", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--game", "Zork"], "Zork"),
        (["--game", "HalfCheetah-v5"], "HalfCheetah-v5"),
        (["--labels", "0"], "--labels must be >= 1"),
        (["--steps", "-10"], "--steps must be >= 1"),
        (["--labels", "900", "--steps", "100"], "more than --steps"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_clear_line(args, message):
    r = _cli("--synthetic-oracle", *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_help_and_no_labeler():
    r = _cli("--help")
    assert r.returncode == 0 and "--game" in r.stdout and "--quick" in r.stdout
    r = _cli()
    assert r.returncode == 2 and "--synthetic-oracle" in r.stderr


@pytest.mark.slow
def test_throughput_microbenchmark_reports_every_piece(tmp_path, capsys):
    from tools import atari_throughput

    r = atari_throughput.main(["--repeat", "1", "--n-envs", "2", "--steps", "20000", "--labels", "40",
                               "--device", "cpu", "--json", str(tmp_path / "t.json")])
    pieces = {"env", "policy", "view", "rm_per_step", "rm_deferred", "ppo_update", "fit", "queries_and_metrics"}
    assert set(r["per_vector_step_ms"]) == pieces and all(v > 0 for v in r["per_vector_step_ms"].values())
    assert json.loads((tmp_path / "t.json").read_text())["per_vector_step_ms"] == r["per_vector_step_ms"]
    assert set(r["overhead_ratio"]) == {"learned, scored per step", "learned, deferred scoring",
                                        "learned, deferred + overlapped fit"}
    assert "ratio" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        atari_throughput.main(["--repeat", "0"])
