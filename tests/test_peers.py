"""benchmarks.peers: the peer comparison's CLI checks its flags before building anything.

The comparison itself builds a second virtualenv with imitation's pins and trains two agents for minutes;
it is a benchmark (docs/peers.md), not a test.
"""

import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flags, message", [(["--steps", "0"], "must be >= 1"),
                                            (["--comparisons", "-5"], "must be >= 1")])
def test_bad_flags_fail_before_any_virtualenv_is_built(tmp_path, flags, message):
    r = subprocess.run([sys.executable, "-m", "benchmarks.peers.run", *flags, "--venv", str(tmp_path / "venv"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "out").exists()


def test_the_peer_script_compiles_and_imports_no_prefrl():
    src = REPO / "benchmarks" / "peers" / "imitation_pc.py"
    py_compile.compile(str(src), doraise=True)
    text = src.read_text()
    assert "import prefrl" not in text and "from prefrl" not in text  # it runs in imitation's own virtualenv


# ---------------------------------------------------------------- TRL (text)

@pytest.mark.parametrize("flags, message", [
    (["--task", "nope"], "--task 'nope' does not exist"),
    (["--kl-coef", "0"], "--kl-coef must be > 0"),
    (["--iterations", "0"], "must be >= 1"),
    pytest.param(["--device", "cuda"], "no CUDA GPU", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="a GPU is present: --device cuda is valid")),
])
def test_trl_peer_refuses_bad_flags_before_any_model_loads(tmp_path, flags, message, capsys):
    from benchmarks.peers import trl_text

    with pytest.raises(SystemExit) as err:
        trl_text.main([*flags, "--tiny", "--out", str(tmp_path / "out")])
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_trl_peer_refuses_an_out_holding_a_comparison(tmp_path, capsys):
    from benchmarks.peers import trl_text

    (tmp_path / "trl.json").write_text("{}")
    with pytest.raises(SystemExit):
        trl_text.main(["--tiny", "--out", str(tmp_path)])
    assert "already holds a comparison" in capsys.readouterr().err
    assert (tmp_path / "trl.json").read_text() == "{}"


def test_trl_peer_trains_on_the_prompts_of_our_rollouts_in_their_order():
    """TRL's dataset holds, update by update, the prompts prefrl's PPO samples (one per pair of completions)."""
    import argparse

    from benchmarks.peers import trl_text
    from benchmarks.textgen.arms import load_policy, make_envs, make_ppo, train_seeds

    args = argparse.Namespace(task="imdb-positive", iterations=2, eval_prompts=4, kl_coef=0.05, seed=3, tiny=True,
                              device="cpu")
    cfg = trl_text._bench_config(args)
    base, tok = load_policy(cfg.model)
    envs = make_envs(cfg, tok, cfg.batch_size)
    ppo = make_ppo(cfg, base, tok, 3)
    ours = [p for it in range(2) for p in ppo.rollout(envs, train_seeds(3, it, cfg.batch_size, 2)).prompts[::2]]
    assert trl_text.train_prompts(cfg, envs, 3) == ours
    assert len(ours) == 2 * cfg.batch_size // 2


@pytest.mark.slow
def test_trl_peer_runs_ours_and_trl_grpo_end_to_end(tmp_path):
    pytest.importorskip("trl")
    import json

    r = subprocess.run([sys.executable, "-m", "benchmarks.peers.trl_text", "--tiny", "--iterations", "1",
                        "--eval-prompts", "4", "--trainers", "ours", "grpo", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    result = json.loads((tmp_path / "trl.json").read_text())["results"]
    for kind in ("ours", "grpo"):
        assert result[kind]["completions"] == 16 and result[kind]["completion_tokens"] > 0
        assert result[kind]["tokens_per_second"] > 0 and result[kind]["peak_rss_mb"] > 0
    assert "throughput" in (tmp_path / "trl.md").read_text()
