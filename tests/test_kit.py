"""benchmarks.kit: flags generated from the config dataclasses parse back to the same frozen config."""

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks import atari, mujoco, textgen
from benchmarks.kit import cli
from benchmarks.kit.config import RUN_FILE, LabelerConfig, RunConfig, run_flags, with_unset
from benchmarks.kit.flags import command, field_docs, flat_fields, parse, replace_flat, to_argv
from benchmarks.kit.validate import resume_problem
from envs.atari_reward import RewardViewConfig

FAMILIES = [mujoco, atari]


def _family_parse(module, argv):
    return cli.parse_flags(module.FAMILY, argv)


def _round_trip(module, cfg):
    argv = to_argv(cfg, names={"env": module.FAMILY.env_flag})
    return _family_parse(module, argv)


@pytest.mark.parametrize("cls", [LabelerConfig, RewardViewConfig, atari.AtariOptions, mujoco.MujocoOptions,
                                 textgen.TextBenchConfig, textgen.TextCommand])
def test_defaults_round_trip(cls):
    cfg = cls()
    assert parse(cls, to_argv(cfg)) == cfg
    assert parse(cls, []) == cfg


@pytest.mark.parametrize("module", FAMILIES)
def test_run_config_defaults_round_trip(module):
    cfg = _family_parse(module, [])
    assert cfg.env == module.FAMILY.default_env and cfg.steps == module.DEFAULTS["steps"]
    assert isinstance(cfg.options, module.FAMILY.options) and cfg.labeling == LabelerConfig()
    assert _round_trip(module, cfg) == cfg


def test_non_default_configs_round_trip():
    """Every kind of field: str, int, float, bool, Literal, optional int/float/Path, tuples, nested configs."""
    lab = LabelerConfig(labeler="web", web_host="0.0.0.0", web_port=8123, label_timeout=12.5, on_timeout="drop",
                        min_answered_share=0.25, repeat_share=0.1)
    cfg = RunConfig(env="Breakout", steps=1234, labels=56, agent="a2c", n_envs=3, labeling=lab, noise=0.25,
                    query="random", seeds=(3, 1, 2), anchor_fraction=0.3, segment_length=17, reward_std=0.7,
                    device="cpu", workers=2, out=Path("/tmp/x y"), resume=True, checkpoint_minutes=0.5,
                    tensorboard=Path("tb"), eval_episodes=4, upper_bound=True, quick=True,
                    options=atari.AtariOptions(rm="paper84", show_score=True, episode_ends="continue"))
    assert _round_trip(atari, cfg) == cfg
    assert _round_trip(mujoco, dataclasses.replace(cfg, options=mujoco.MujocoOptions(standard_env=True))) \
        == dataclasses.replace(cfg, options=mujoco.MujocoOptions(standard_env=True))
    text = textgen.TextCommand(
        labeling=lab, out=Path("o"), quick=True, resume=True, tensorboard=Path("t"), checkpoint_minutes=2.0,
        bench=textgen.TextBenchConfig(task="t", model="tiny", iterations=3, batch_size=6, rank_k=3, max_new_tokens=9,
                                      prompt_tokens=(2, 5), prompt_file=Path("p.txt"), labels=7, reward_model="frozen", round_completions=5,
                                      initial_fit_steps=4, refit_steps=1, noise=0.0, query="entropy", pool_factor=3,
                                      pool_rollouts=2, eval_prompts=5, lr=3e-5, train_layers=0, init_kl_coef=0.2,
                                      target_kl=2.0, kl_control="adaptive", min_kl_coef=0.02, sft_steps=2, ptx_coef=0.1, reward_std=1.5, seeds=(4,),
                                      device="cpu"))
    assert parse(textgen.TextCommand, to_argv(text)) == text


def test_quick_and_gpu_defaults_give_a_new_frozen_config():
    cfg = _family_parse(atari, ["--labels", "900"])
    defaults = flat_fields(cli.family_defaults(atari.FAMILY))
    assert defaults["steps"] == atari.DEFAULTS["steps"] and defaults["rm"] == atari.DEFAULT_RM
    quick, applied = with_unset(cfg, atari.QUICK, defaults)
    assert quick is not cfg and cfg.steps == atari.DEFAULTS["steps"]  # the original is untouched
    assert quick.steps == atari.QUICK["steps"] and quick.labels == 900  # explicit flags win
    assert applied == {"steps": atari.QUICK["steps"], "eval_episodes": atari.QUICK["eval_episodes"]}
    gpu, grown = with_unset(cfg, atari.GPU_DEFAULTS, defaults)
    assert gpu.options.rm == "paper84" and cfg.options.rm == atari.DEFAULT_RM and "labels" not in grown
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.steps = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.options.rm = "cnn42"
    assert replace_flat(cfg, show_score=True, web_port=9).options.show_score and cfg.options.show_score is False


def test_parse_config_applies_quick_without_mutating(tmp_path):
    cfg = cli.parse_config(mujoco.FAMILY, ["--synthetic-oracle", "--env", "Reacher-v5", "--quick", "--device", "cpu",
                                           "--out", str(tmp_path / "run")])
    assert cfg.steps == mujoco.QUICK["steps"] and cfg.labels == mujoco.QUICK["labels"] and cfg.device == "cpu"
    assert cfg.labeler == "synthetic-oracle" and cfg.out == tmp_path / "run"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.out = None


def test_text_quick_gives_a_new_config(tmp_path):
    cfg, out, opts = textgen.parse_config(["--synthetic-oracle", "--quick", "--model", "tiny", "--iterations", "5",
                                           "--device", "cpu", "--out", str(tmp_path / "run")])
    assert cfg.iterations == 5 and cfg.batch_size == textgen.QUICK["batch_size"] and cfg.device == "cpu"
    assert out == tmp_path / "run" and opts.labeler == "synthetic-oracle" and textgen.TextBenchConfig().iterations == 80


def _help(main) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    return stop


@pytest.mark.parametrize("module", [mujoco, atari, textgen], ids=["mujoco", "atari", "textgen"])
def test_help_lists_every_flag_with_its_default(module, capsys, monkeypatch):
    """tyro prints the help: every field's flag (the family's name for env), its docstring and its default."""
    monkeypatch.setenv("COLUMNS", "400")  # no word broken by the wrap, whatever the terminal
    _help(module.main)
    text = " ".join(capsys.readouterr().out.split())  # one line: the help wraps
    if module is textgen:
        cfg = textgen.TextCommand()
        names = {}
    else:
        cfg = cli.family_defaults(module.FAMILY)
        names = {"env": module.FAMILY.env_flag}
    for name, value in flat_fields(cfg).items():
        flag = names.get(name, "--" + name.replace("_", "-"))
        assert f"{flag} " in text, flag
    assert "--synthetic-oracle is short for --labeler synthetic-oracle" in text
    assert f"(default: {cfg.steps if module is not textgen else cfg.bench.iterations})" in text
    if module is atari:
        assert "--game " in text and "--env " not in text and "(default: Seaquest)" in text
        assert "cnn42:" in text  # a choice's own line of help
        assert "GPU" in text  # the description names the larger GPU defaults


def test_command_refuses_a_field_without_help_or_a_true_switch():
    @dataclasses.dataclass(frozen=True)
    class NoHelp:
        steps: int = 1

    with pytest.raises(ValueError, match="NoHelp.steps has no docstring"):
        command(NoHelp)

    @dataclasses.dataclass(frozen=True)
    class OnSwitch:
        fast: bool = True
        """go fast"""

    with pytest.raises(ValueError, match="a switch must default to False"):
        command(OnSwitch)


def test_bad_flags_give_one_line_through_error_or_exit_2(capsys):
    def raise_(msg):
        raise ValueError(msg)

    with pytest.raises(ValueError, match="--iterations"):
        parse(textgen.TextCommand, ["--iterations", "many"], error=raise_)
    with pytest.raises(ValueError, match="Unrecognized options: --iterashuns"):
        parse(textgen.TextCommand, ["--iterashuns", "3"], error=raise_)
    with pytest.raises(ValueError, match="argument --seeds: expected at least one value"):
        parse(textgen.TextCommand, ["--seeds"], error=raise_)
    with pytest.raises(ValueError, match="argument --seeds: expected at least one value"):
        cli.parse_flags(mujoco.FAMILY, ["--seeds"], error=raise_)
    with pytest.raises(ValueError, match="argument --out: an empty path"):
        parse(textgen.TextCommand, ["--out", ""], error=raise_)
    with pytest.raises(SystemExit) as stop:
        parse(textgen.TextCommand, ["--kl-control", "sometimes"])
    assert stop.value.code == 2 and "--kl-control" in capsys.readouterr().err
    # the whole message, whatever the terminal's width (the API's ValueError is one line)
    with pytest.raises(ValueError) as err:
        cli.parse_flags(atari.FAMILY, ["--rm", "foo"], error=raise_)
    assert "'--rm'" in str(err.value) and "'cnn42-sum-shift')" in str(err.value) and "\n" not in str(err.value)
    # a unique prefix of a flag is that flag, as argparse allowed; an ambiguous one is refused
    cfg = cli.parse_flags(atari.FAMILY, ["--seed", "1", "2", "--synth", "--label-t", "9"])
    assert cfg.seeds == (1, 2) and cfg.labeler == "synthetic-oracle" and cfg.labeling.label_timeout == 9.0
    with pytest.raises(ValueError, match="ambiguous option: --lab could match --label-timeout, --labeler, --labels"):
        cli.parse_flags(atari.FAMILY, ["--lab", "5"], error=raise_)
    # aliases stand for their flag and value
    assert parse(textgen.TextCommand, ["--fixed-kl"]).bench.kl_control == "fixed"
    assert parse(textgen.TextCommand, ["--adaptive-kl", "--synthetic-oracle"]).labeling.labeler == "synthetic-oracle"


def test_every_config_field_has_a_docstring():
    for cls in (LabelerConfig, RunConfig, RewardViewConfig, atari.AtariOptions, mujoco.MujocoOptions,
                textgen.TextBenchConfig, textgen.TextCommand):
        docs = field_docs(cls)
        assert all(docs.get(f.name) for f in dataclasses.fields(cls)), cls


def test_run_file_of_the_old_harness_still_resumes(tmp_path):
    """run.json keeps the flat flag names of the argparse harness, so a run it started can be resumed."""
    cfg = replace_flat(_family_parse(mujoco, ["--synthetic-oracle", "--env", "Reacher-v5", "--out", str(tmp_path)]),
                       labels=30)
    old = {"agent": "ppo", "anchor_fraction": None, "env": "Reacher-v5", "eval_episodes": 30, "labels": 30,
           "n_envs": 4, "noise": 0.1, "query": "disagreement", "quick": False, "reward_std": None, "seeds": [0],
           "segment_length": None, "standard_env": False, "steps": 300000, "upper_bound": False,
           "synthetic_oracle": True}  # before --labeler
    (tmp_path / RUN_FILE).write_text(json.dumps({"flags": old, "started": 0}))
    assert resume_problem(cfg) is None
    new_flags = {"ssl_weight": None, "ssl_objective": None, "ssl_pretrain_steps": None, "pseudo_threshold": None, "crop": None,
                 "stop_tolerance": None}  # added later
    assert run_flags(cfg) == {**{k: v for k, v in old.items() if k != "synthetic_oracle"}, "labeler": "synthetic-oracle",
                              **new_flags}
    assert "--labels 30 -> 31" in resume_problem(replace_flat(cfg, labels=31))


def test_a_learned_arm_short_of_its_labels_is_named_in_the_warnings():
    from benchmarks.kit.report import label_shortfall

    full = {"seed": 0, "labels_used": 30, "labels_asked": 30, "labels_stored": 28}  # 2 "can't tell": still full
    short = {"seed": 1, "labels_used": 29, "labels_asked": 30, "labels_stored": 27}
    none = {"seed": 2, "labels_used": 0, "labels_asked": 30, "labels_stored": 0}
    out = label_shortfall([full, short, none])
    assert len(out) == 2
    assert out[0].startswith("seed 1: the learned arm counted 29 of the 30 labels asked before it ended (27 stored by the end)")
    assert out[1].startswith("seed 2:") and "never fit" in out[1]
    assert label_shortfall([{"seed": 0, "labels_used": 5}]) == [], "results written before the field: no warning"


def test_the_commands_offer_the_query_methods_the_library_has():
    import typing

    from benchmarks.kit.config import QueryMethod
    from benchmarks.sweep.grid import QUERIES
    from prefrl import QUERY_METHODS

    assert typing.get_args(QueryMethod) == QUERY_METHODS == QUERIES
