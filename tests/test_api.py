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


def test_family_of_known_envs():
    assert family_of("Hopper-v5") == "mujoco"
    assert family_of("Seaquest") == "atari"
    assert family_of("ALE/Pong-v5") == "atari"
    # every spelling the Atari command takes (envs.atari.atari_game_name), not a second rule
    assert family_of("PongNoFrameskip-v4") == family_of("space_invaders") == "atari"


@pytest.mark.parametrize("kwargs, message", [
    (dict(env="CartPole-v1"), "no family trains 'CartPole-v1'"),
    (dict(env="TextGen-v0"), "python -m benchmarks.textgen"),
    (dict(env="Hopper-v5", lables=10), "unknown argument(s) lables"),
    (dict(env="Hopper-v5", noise=1.5), "--noise must be a probability"),
    (dict(env="Hopper-v5", labels=0), "--labels must be >= 1"),
    (dict(env="Hopper-v5", labeler="me"), "labeler='me'"),
    (dict(env="Hopper-v5", agent="sac"), "invalid choice: 'sac'"),
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
