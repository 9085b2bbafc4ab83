"""benchmarks.textgen: smoke run with the tiny model, and its errors on bad input."""

import csv
import dataclasses
import json

import pytest

from benchmarks import textgen


@pytest.mark.slow
def test_quick_run_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    summary = textgen.main(["--synthetic-oracle", "--quick", "--model", "tiny", "--out", str(out)])
    for name in textgen.OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    # the labels are stored as text: the export gives prompt / chosen / rejected
    from prefrl import iter_records

    recs = list(iter_records(out / "labels-seed0.sqlite"))
    assert len(recs) == summary["pairs_labeled"] > 0
    assert all(isinstance(r["prompt"], str) and r["prompt"] and isinstance(r["completion_0"], str) for r in recs)
    decided = [r for r in recs if r["mu"] != 0.5]
    assert all(r["chosen"] == (r["completion_0"] if r["mu"] == 1.0 else r["completion_1"]) for r in decided)
    saved = json.loads((out / "summary.json").read_text())
    for key in ("score_zero_shot", "score_true", "score_learned", "kl_true", "kl_learned", "labels_used",
                "rm_accuracy", "reward_correlation", "rollout_tokens_per_second", "generate_tokens_per_second",
                "train_tokens_per_second", "peak_rss_mb"):
        assert key in saved, key
    assert saved["labels_used"] == summary["labels_used"] == 6  # the whole budget, never more
    assert saved["rollout_tokens_per_second"] > 0 and saved["train_tokens_per_second"] > 0
    rows = (out / "curves.csv").read_text().strip().splitlines()
    assert rows[0].startswith("iteration,episodes,run")
    assert len(rows) == 1 + 2 * 3  # 3 PPO updates per arm
    samples = (out / "samples.md").read_text()
    assert "**zero-shot**" in samples and "**true**" in samples and "**learned**" in samples
    assert "gain learned / gain true" in capsys.readouterr().out
    # a second run into the same directory is refused and leaves the files alone
    before = (out / "summary.json").read_text()
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--quick", "--model", "tiny", "--out", str(out)])
    assert err.value.code == 2
    assert "already holds" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before


@pytest.mark.slow
def test_kwise_rankings_store_all_their_pairs_and_sft_is_an_arm(tmp_path):
    out = tmp_path / "k3"
    summary = textgen.main(["--synthetic-oracle", "--quick", "--model", "tiny", "--rank-k", "3",
                            "--batch-size", "6", "--sft-steps", "3", "--reward-model", "frozen", "--out", str(out)])
    assert summary["sft_eval_loss_after"] < summary["sft_eval_loss_before"]
    assert "score_sft" in summary and "**sft**" in (out / "samples.md").read_text()
    assert summary["labels_used"] == 6  # rankings of 3 completions of one prompt
    assert summary["pairs_labeled"] == 6 * 3  # each gives C(3, 2) = 3 pairwise labels
    from prefrl import PreferenceStore

    store = PreferenceStore(out / "labels-seed0.sqlite")
    assert len(store) == 18
    store.close()
    from prefrl import iter_rankings

    rankings = list(iter_rankings(out / "labels-seed0.sqlite"))  # kept as rankings: rebuilt from their pairs
    assert len(rankings) == 6 and all(r["k"] == 3 and len(r["completions"]) == 3 for r in rankings)
    assert all(sorted(r["ranks"])[0] == 0 for r in rankings)


def test_group_size_makes_every_pair_of_a_prompt_a_candidate(tmp_path):
    """--group-size 4 with pairs: rollouts of 4 completions per prompt, pairs asked within a prompt (the zero-shot
    candidates sampled at two temperatures in turn); RUNE's bonus is logged per learned-arm update."""
    flags = ["--synthetic-oracle", "--quick", "--model", "tiny", "--group-size", "4", "--pool-temperatures", "0.5", "2"]
    cfg, _, _ = textgen.parse_config(flags)
    assert (cfg.group_size, cfg.rank_k, cfg.batch_size, cfg.pool_temperatures) == (4, 2, 8, (0.5, 2.0))
    assert textgen.parse_config(flags[:6])[0].pool_temperatures == (1.0,)
    out = tmp_path / "g4"
    summary = textgen.main([*flags, "--reward-model", "frozen", "--explore-bonus", "1", "--out", str(out)])
    assert summary["labels_used"] == summary["pairs_labeled"] == 6
    rows = list(csv.DictReader(open(out / "curves.csv")))
    bonus = {arm: [r["explore_bonus"] for r in rows if r["run"] == arm] for arm in ("true", "learned")}
    assert set(bonus["true"]) == {""} and all(float(b) > 0 for b in bonus["learned"])  # a spread, times beta_t > 0
    from prefrl import iter_records

    recs = list(iter_records(out / "labels-seed0.sqlite"))
    assert len(recs) == 6 and all(r["prompt"] for r in recs)


@pytest.mark.parametrize("k, batch", [(2, 4), (3, 6), (5, 10)])
def test_quick_rounds_its_batch_up_to_whole_rankings(k, batch):
    cfg, _, _ = textgen.parse_config(["--synthetic-oracle", "--quick", "--model", "tiny", "--rank-k", str(k)])
    assert (cfg.rank_k, cfg.batch_size) == (k, batch)
    cfg, _, _ = textgen.parse_config(["--synthetic-oracle", "--quick", "--model", "tiny", "--rank-k", "3",
                                      "--batch-size", "9"])
    assert cfg.batch_size == 9  # an explicit batch wins over --quick's


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task", "poetry"], "unknown task"),
        (["--batch-size", "5"], "multiple of --rank-k"),
        (["--rank-k", "1"], "--rank-k must be >= 2"),
        (["--rank-k", "3", "--batch-size", "16"], "multiple of --rank-k=3"),
        (["--group-size", "3", "--batch-size", "16"], "multiple of --group-size=3"),
        (["--group-size", "6", "--rank-k", "3"], "with --rank-k 3 the group is the ranked query"),
        (["--group-size", "2", "--rank-k", "3"], "give 0 (= --rank-k)"),
        (["--labels", "1000", "--iterations", "2"], "exceed"),
        (["--labels", "0"], "--labels must be >= 1"),
        (["--noise", "1.5"], "--noise"),
        (["--sft-steps", "-1"], "--sft-steps must be >= 0"),
        (["--pool-temperatures", "1", "0"], "--pool-temperatures must be one or more numbers > 0, got 1.0 0.0"),
        (["--initial-share", "0"], "--initial-share must be in (0, 1]"),
        (["--initial-share", "1.5"], "--initial-share must be in (0, 1]"),
        (["--explore-bonus", "-1"], "--explore-bonus must be >= 0"),
        (["--explore-decay", "1"], "--explore-decay in [0, 1)"),
        (["--seeds", "0", "0"], "repeats a seed"),
        (["--seeds", "-1"], "a seed must be in 0.."),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--target-kl", "nan"], "--target-kl must be a finite number"),
        (["--target-kl", "0"], "--target-kl must be > 0"),
        (["--target-kl", "-1"], "--target-kl must be > 0"),
        (["--min-kl-coef", "-0.1"], "--min-kl-coef must be a finite number >= 0"),
        (["--prompt-file", "/nonexistent/prompts.txt"], "does not exist"),
        (["--out", "/proc/prefrl-out"], "cannot be written"),
        (["--round-completions", "0"], "--round-completions must be >= 1"),
        (["--iterations", "0"], "--iterations must be >= 1"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--model", "tiny", "--out", str(tmp_path / "x"), *flags])
    assert err.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("A good film.\n\nA bad film.\n", "line 2 is empty"),
        ("   \n", "line 1 is empty"),
        ("", "is empty; give one prompt per line"),
        ("ok\n" + "x" * (textgen.MAX_PROMPT_CHARS + 1) + "\n", "line 2 has 4,001 characters"),
        (b"caf\xe9\n", "is not UTF-8"),
    ],
)
def test_a_bad_prompt_file_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch, text, message):
    path = tmp_path / "prompts.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(textgen, "load_policy", lambda name: pytest.fail("the model loaded"))
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--model", "tiny", "--out", str(tmp_path / "x"), "--prompt-file", str(path)])
    assert err.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_prompt_longer_than_prompt_tokens_is_named_by_its_line(tmp_path, capsys):
    path = tmp_path / "prompts.txt"
    path.write_text("Short one.\n" + "a very long prompt " * 20 + "\n")
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--model", "tiny", "--out", str(tmp_path / "x"), "--prompt-file", str(path),
                      "--prompt-tokens", "4", "8"])
    assert err.value.code == 2
    assert "line 2 is" in (msg := capsys.readouterr().err) and "over --prompt-tokens MAX=8" in msg
    assert not (tmp_path / "x").exists()


def test_prompts_from_a_file_are_used_whole_and_still_scored_by_the_task(tmp_path):
    from envs.tiny_lm import tiny_causal_lm

    path = tmp_path / "prompts.txt"
    lines = ["Write about rain.", "The best film I saw", "Tell me a story"]
    path.write_text("\n".join(lines) + "\n")
    cfg, _, _ = textgen.parse_config(["--synthetic-oracle", "--model", "tiny", "--prompt-file", str(path),
                                      "--task", "length", "--prompt-tokens", "2", "24"])
    tokenizer = tiny_causal_lm()[1]
    assert textgen.prompt_token_problem(cfg, tokenizer) is None
    env = textgen.make_envs(cfg, tokenizer, 1)[0]
    seen = {env.reset(seed=s)[1]["prompt"] for s in range(30)}
    assert seen == set(lines)  # whole lines, never cut to a random prefix
    assert env.task.name == "length"


def test_kl_control_fixed_by_default_and_an_old_run_resumes_with_its_controller(tmp_path):
    cfg, _, _ = textgen.parse_config(["--synthetic-oracle", "--model", "tiny"])
    assert cfg.kl_control == "fixed" and textgen.make_ppo(cfg, *_tiny(), seed=0).kl_ctl.target is None
    assert textgen.parse_config(["--synthetic-oracle", "--model", "tiny", "--fixed-kl"])[0] == cfg  # the old flag
    adaptive, _, _ = textgen.parse_config(["--synthetic-oracle", "--model", "tiny", "--adaptive-kl"])
    assert adaptive == textgen.parse_config(["--synthetic-oracle", "--model", "tiny", "--kl-control", "adaptive"])[0]
    assert textgen.make_ppo(adaptive, *_tiny(), seed=0).kl_ctl.target == 4.0
    floored, _, _ = textgen.parse_config(["--synthetic-oracle", "--model", "tiny", "--adaptive-kl",
                                          "--min-kl-coef", "0.05"])
    assert textgen.make_ppo(floored, *_tiny(), seed=0).kl_ctl.floor == 0.05
    assert cfg.reward_norm == "initial"
    older = {k: v for k, v in textgen._run_config(adaptive).items()
             if k not in ("kl_control", "min_kl_coef", "reward_norm", "initial_share", "explore_bonus",
                          "explore_decay")}
    (tmp_path / textgen.RUN_FILE).write_text(json.dumps({"config": older}))  # a run.json before these flags
    assert "--reward-norm 'recent' -> 'initial'" in textgen.resume_problem(tmp_path, adaptive)  # it ran 'recent'
    adaptive, cfg = (dataclasses.replace(c, reward_norm="recent") for c in (adaptive, cfg))
    assert textgen.resume_problem(tmp_path, adaptive) is None  # it ran the adaptive controller
    assert "--kl-control 'adaptive' -> 'fixed'" in textgen.resume_problem(tmp_path, cfg)
    (tmp_path / textgen.RUN_FILE).write_text(json.dumps({"config": {**older, "fixed_kl": True}}))  # --fixed-kl era
    assert textgen.resume_problem(tmp_path, cfg) is None
    assert "--kl-control 'fixed' -> 'adaptive'" in textgen.resume_problem(tmp_path, adaptive)

def _tiny():
    from envs.tiny_lm import tiny_causal_lm

    return tiny_causal_lm()


def test_a_model_directory_without_a_tokenizer_is_refused_before_loading(tmp_path, capsys):
    from envs.tiny_lm import tiny_causal_lm

    model, tokenizer = tiny_causal_lm()
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x")])
    assert err.value.code == 2
    assert "has no tokenizer" in (msg := capsys.readouterr().err) and "tokenizer.save_pretrained" in msg
    tokenizer.save_pretrained(tmp_path / "m")
    cfg, _, _ = textgen.parse_config(["--synthetic-oracle", "--model", str(tmp_path / "m")])
    assert cfg.model == str(tmp_path / "m")  # the complete directory passes
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(SystemExit):
        textgen.parse_config(["--synthetic-oracle", "--model", str(tmp_path / "m")])
    assert "has no config.json" in capsys.readouterr().err


def test_without_a_labeler_it_lists_the_labelers(capsys):
    with pytest.raises(SystemExit) as err:
        textgen.main([])
    assert err.value.code == 2
    assert "synthetic-oracle" in capsys.readouterr().err


def test_unknown_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        textgen.main(["--synthetic-oracle", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert err.value.code == 2
    assert "cannot load --model" in capsys.readouterr().err


@pytest.mark.slow
def test_tensorboard_logs_both_arms(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    textgen.main(["--synthetic-oracle", "--quick", "--model", "tiny", "--out", str(tmp_path / "run"),
                  "--tensorboard", str(tmp_path / "tb")])
    tags = {}
    for arm in ("true", "learned"):
        acc = EventAccumulator(str(tmp_path / "tb" / f"{arm}-seed0"))
        acc.Reload()
        tags[arm] = set(acc.Tags()["scalars"])
        assert [e.step for e in acc.Scalars("rollout/true_score")] == [1, 2, 3]  # one point per PPO update
    assert {"rollout/true_score", "ppo/kl", "ppo/beta"} <= tags["true"]
    assert {"pref/labels", "pref/rm_accuracy", "pref/reward_correlation", "pref/fit_seconds"} <= tags["learned"]
    assert not any(t.startswith("pref/") for t in tags["true"])


@pytest.mark.slow
def test_a_web_labeled_run_nobody_answers_finishes_and_says_so(tmp_path, capsys):
    pytest.importorskip("fastapi")
    s = textgen.main(["--labeler", "web", "--quick", "--model", "tiny", "--min-answered-share", "0",
                      "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "label at http://127.0.0.1:" in out and "?token=" in out
    assert s["labels_used"] == 0 and s["labels_asked"] == 6
    assert len(s["warnings"]) == 1 and "counted 0 of the 6 labels asked before it ended" in s["warnings"][0]
    assert "warning: seed 0: the learned arm counted 0 of the 6" in out
