"""The public training call ``prefrl.api.train``: the README's example runs as written, the API and the command
give the same run, and bad input is a ValueError before anything trains."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prefrl.api import TrainResult, family_of, train

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The fenced python block right after ``<!-- api-example -->`` in the README."""
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md has no ```python block after <!-- api-example -->"
    return match.group(1)


def test_readme_example_is_short_and_uses_the_public_api():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    assert "from prefrl.api import train" in code


@pytest.mark.slow
def test_readme_example_runs_and_matches_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUJOCO_GL", "egl")
    scope: dict = {}
    exec(compile(readme_example(), "README.md:api-example", "exec"), scope)  # noqa: S102 - the README's own code
    result = scope["result"]
    assert isinstance(result, TrainResult)
    assert result.out.is_dir() and result.reward_model(0).is_file() and result.agent("learned", 0).is_file()
    learned = [r["eval_mean"] for r in result.summary["per_seed"] if r["arm"] == "learned"]
    assert result.summary["true_return_learned"] == pytest.approx(sum(learned) / len(learned))
    runs = {row["run"] for row in result.curves}
    assert runs == {"learned", "true"}
    assert all(isinstance(row["env_step"], float) for row in result.curves)
    # the command with the same flags computes the same run: summary.json byte for byte
    from benchmarks import mujoco

    flags = json.loads((result.out / "run.json").read_text())["flags"]
    argv = ["--synthetic-oracle", "--env", flags["env"], "--quick", "--out", str(tmp_path / "cli")]
    if flags.get("steps") != mujoco.FAMILY.quick["steps"]:
        argv += ["--steps", str(flags["steps"])]
    if flags.get("labels") != mujoco.FAMILY.quick["labels"]:
        argv += ["--labels", str(flags["labels"])]
    mujoco.main(argv)
    assert (tmp_path / "cli" / "summary.json").read_bytes() == (result.out / "summary.json").read_bytes()


def _untimed(x):
    """A summary without its clock readings (seconds, tokens per second, speed ratios, memory), which differ run
    to run."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items()
                if not any(t in k for t in ("seconds", "per_second", "rss", "memory", "rollout_vs_generate"))}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


@pytest.mark.slow
def test_text_is_a_family_of_the_api(tmp_path, monkeypatch):
    """train("TextGen-v0") runs the text benchmark: the same run as its command, clock readings aside."""
    monkeypatch.chdir(tmp_path)
    result = train("TextGen-v0", model="tiny", quick=True, out=tmp_path / "api")
    assert {row["run"] for row in result.curves} == {"true", "learned"}
    assert all(isinstance(row["iteration"], float) for row in result.curves)
    from benchmarks import textgen

    textgen.main(["--synthetic-oracle", "--model", "tiny", "--quick", "--out", str(tmp_path / "cli")])
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert _untimed(cli) == _untimed(result.summary)


def test_family_of_known_envs():
    assert family_of("TextGen-v0") == "text"
    assert family_of("Hopper-v5") == "mujoco"
    assert family_of("Seaquest") == "atari"
    assert family_of("ALE/Pong-v5") == "atari"
    # every spelling the Atari command takes (envs.atari.atari_game_name), not a second rule
    assert family_of("PongNoFrameskip-v4") == family_of("space_invaders") == "atari"


@pytest.mark.parametrize("kwargs, message", [
    (dict(env="CartPole-v1"), "no family trains 'CartPole-v1'"),
    (dict(env="TextGen-v1"), "text: TextGen-v0"),
    (dict(env="TextGen-v0", steps=10), "counts PPO updates"),
    (dict(env="TextGen-v0", task="nope"), "unknown task 'nope'"),
    (dict(env="TextGen-v0", itertions=3), "unknown argument(s) itertions"),
    (dict(env="TextGen-v0", target_kl=0.0), "--target-kl must be > 0"),
    (dict(env="TextGen-v0", rank_k=3, batch_size=16), "--batch-size must be a multiple of --rank-k=3"),
    (dict(env="Hopper-v5", lables=10), "unknown argument(s) lables"),
    (dict(env="Hopper-v5", noise=1.5), "--noise must be a probability"),
    (dict(env="Hopper-v5", labels=0), "--labels must be >= 1"),
    (dict(env="Hopper-v5", labeler="me"), "labeler='me'"),
    (dict(env="Hopper-v5", agent="sac"), "invalid choice 'sac' for argument '--agent'"),
])
def test_bad_input_is_a_value_error_before_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as err:
        train(out=tmp_path / "run", **kwargs)
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_out_holding_another_run_is_refused_and_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"flags": {}}')
    with pytest.raises(ValueError, match="already holds another run"):
        train("Hopper-v5", quick=True, out=out)
    assert (out / "run.json").read_text() == '{"flags": {}}'
