"""`python -m benchmarks.mujoco`: a tiny real run writes sane outputs; bad input fails cleanly."""

import csv
import json
import math
import subprocess
import sys

import pytest

from benchmarks import mujoco as bench

TINY = ["--synthetic-oracle", "--env", "Reacher-v5", "--steps", "1024", "--labels", "12", "--n-envs", "2", "--workers", "1",
        "--eval-episodes", "3"]


def _run(argv):
    return bench.main(argv)


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "a2c"])
def test_smoke_run_writes_all_outputs(tmp_path, agent):
    out = tmp_path / "run"
    summary = _run([*TINY, "--agent", agent, "--out", str(out)])
    for name in ("curves.csv", "curves.png", "summary.json", "labels-seed0.sqlite"):
        assert (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    from benchmarks.kit.report import json_safe

    assert s == json_safe(summary)  # strict JSON: NaN is written as null
    for key in ("true_return_learned", "true_return_true", "ratio", "labels_used", "rm_accuracy",
                "reward_correlation", "true_return_learned_ci95", "true_return_learned_last10"):
        assert key in s, key
    assert s["labels_used"] == 12 and s["agent"] == agent
    timing = json.loads((out / "timing.json").read_text())
    assert timing["steps_per_second_learned"] > 0 and timing["steps_per_second_true"] > 0
    assert not any("seconds" in k for k in s), "machine-dependent figures belong in timing.json"
    assert math.isfinite(s["true_return_learned"]) and math.isfinite(s["true_return_true"])
    for run in s["per_seed"]:  # the final policy on --eval-episodes fresh episodes
        assert len(run["eval_returns"]) == 3 and run["eval_ci95"][0] <= run["eval_mean"] <= run["eval_ci95"][1]
    assert s["reward_correlation"] is None or -1 <= s["reward_correlation"] <= 1
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {r["run"] for r in rows} == {"learned", "true"}
    steps = [int(r["env_step"]) for r in rows if r["run"] == "learned"]
    assert steps == sorted(steps) and steps[-1] <= 1024
    assert all(r["labels"] not in ("", "nan") for r in rows if r["run"] == "learned")
    assert open(out / "curves.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    _saved_run_loads(out, agent)


def _saved_run_loads(out, agent):
    """Both agents, their VecNormalize statistics and the reward model are saved and load back."""
    import numpy as np
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from envs.mujoco import make_mujoco_vec_env
    from prefrl import load_reward

    venv = make_mujoco_vec_env("Reacher-v5", 2, 99, paper_variant=True)
    for arm in ("learned", "true"):
        env = VecNormalize.load(str(out / f"vecnormalize-{arm}-seed0.pkl"), venv)
        env.training, env.norm_reward = False, False
        model = {"ppo": PPO, "a2c": A2C}[agent].load(out / f"agent-{arm}-seed0.zip", device="cpu")
        obs = env.reset()
        action, _ = model.predict(obs, deterministic=True)
        assert action.shape == (2, *venv.action_space.shape)
    reward = load_reward(out)  # one seed: no seed= needed
    assert reward.seed == 0 and reward.info["labels_used"] == 12
    raw_obs = venv.reset()
    r = reward(raw_obs, np.zeros((2, *venv.action_space.shape), np.float32))
    assert r.shape == (2,) and r.dtype == np.float32 and np.isfinite(r).all()
    venv.close()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "benchmarks.mujoco", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Pong"], "unknown MuJoCo task 'Pong'"),
        (["--env", "ALE/Breakout-v5"], "unknown MuJoCo task"),
        (["--labels", "5000", "--steps", "1000"], "more than --steps"),
        (["--labels", "-3"], "--labels must be >= 1"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--noise", "1.5"], "--noise must be a probability"),
        (["--anchor-fraction", "2"], "--anchor-fraction must be a share in [0, 1]"),
        (["--seeds", "0", "0"], "repeats a seed"),
        (["--seeds", "-1"], "a seed must be in 0..2147483647"),
        (["--seeds", "1180591620717411303424"], "a seed must be in 0.."),
        (["--steps", "1000000000000000"], "years here"),
        (["--steps", "100000000000000000"], "more than 2^53"),
        (["--env", "Reacher-v5", "--standard-env", "--segment-length", "60"],
         "longer than the episodes of Reacher-v5 (time limit 50 steps)"),
        (["--env", "HalfCheetah-v5", "--steps", "2000", "--labels", "10", "--segment-length", "600"],
         "longer than the 500 steps each of the 4 envs takes"),
        (["--steps", "100000000", "--labels", "10000000"], "GB for its first query round"),
        (["--out", "/proc/prefrl-out"], "cannot be written"),
        (["--out", "pyproject.toml"], "is a file; give a directory"),
        (["--out", "pyproject.toml/sub"], "which is a file; give a directory"),
        (["--pseudo-threshold", "0.5"], "--pseudo-threshold must be in (0.5, 1]"),
        (["--pseudo-threshold", "1.2"], "--pseudo-threshold must be in (0.5, 1]"),
        (["--crop", "26"], "--crop must be between 0 (off) and the segment length 25"),
        (["--ssl-pretrain-steps", "0"], "--ssl-pretrain-steps must be >= 1"),
        (["--ssl-weight", "nan"], "--ssl-weight must be a finite weight"),
        (["--out", ""], "argument --out: an empty path"),
        (["--labeler", "web", "--web-host", "999.1.1.1"], "--web-host '999.1.1.1' is not an address"),
        (["--stop-tolerance", "1"], "--stop-tolerance must be in [0, 1)"),
        (["--labeler", "web", "--min-answered-share", "1.5"], "--min-answered-share must be a share in [0, 1]"),
        (["--labeler", "web", "--repeat-share", "1"], "--repeat-share must be a share in [0, 1)"),
        (["--stop-tolerance", "-0.1"], "--stop-tolerance must be in [0, 1)"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    r = _cli("--synthetic-oracle", *args)
    assert r.returncode == 2
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_web_port_in_use_is_refused_before_any_training():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = _cli("--labeler", "web", "--web-port", str(port))
    assert r.returncode == 2 and f"--web-port {port}: cannot listen there" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_no_labeler_says_which_exist():
    r = _cli()
    assert r.returncode == 2 and "--synthetic-oracle" in r.stderr


@pytest.mark.slow
def test_existing_run_is_never_overwritten(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "summary.json").write_text('{"from": "another run"}')
    r = _cli("--synthetic-oracle", "--out", str(out))
    assert r.returncode == 2 and "already holds another run" in r.stderr
    assert (out / "summary.json").read_text() == '{"from": "another run"}'
    saved = tmp_path / "saved"  # a directory with only a saved agent or reward model is another run's too
    saved.mkdir()
    (saved / "reward-model-seed3.pt").write_bytes(b"x")
    r = _cli("--synthetic-oracle", "--out", str(saved))
    assert r.returncode == 2 and "reward-model-seed3.pt" in r.stderr


@pytest.mark.slow
def test_help_lists_the_flags():
    r = _cli("--help")
    assert r.returncode == 0
    for flag in ("--env", "--steps", "--labels", "--noise", "--query", "--agent", "--seeds", "--device", "--out"):
        assert flag in r.stdout


@pytest.mark.slow
def test_tensorboard_logs_both_arms_with_the_preference_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _run([*TINY, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    runs = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert runs == ["learned-seed0_1", "true-seed0_1"]
    tags = {}
    for name in runs:
        acc = EventAccumulator(str(tmp_path / "tb" / name))
        acc.Reload()
        tags[name] = set(acc.Tags()["scalars"])
    assert "rollout/true_return" in tags["true-seed0_1"] and "rollout/true_return" in tags["learned-seed0_1"]
    assert {"pref/rm/val_accuracy", "pref/labels"} <= tags["learned-seed0_1"]
    assert not any(t.startswith("pref/") for t in tags["true-seed0_1"])


@pytest.mark.slow
def test_a_run_that_stops_on_its_data_is_one_clear_line(tmp_path):
    # InvertedPendulum episodes end after a few steps of a random policy: no 900-step clip exists, which only
    # the run itself can find out (the 1000-step time limit allows it); it ends with one line, not a traceback.
    r = _cli("--synthetic-oracle", "--env", "InvertedPendulum-v5", "--standard-env", "--segment-length", "900",
             "--steps", "8192", "--labels", "10", "--workers", "1", "--out", str(tmp_path / "run"))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "prefrl: error: a run stopped: no window of 900 steps inside one episode" in r.stderr
    assert "use shorter segments" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "labels-seed0.sqlite").exists()  # empty store removed: the --out works again
