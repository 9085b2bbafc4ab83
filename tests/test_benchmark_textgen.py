"""benchmarks.textgen: smoke run with the tiny model, and its errors on bad input."""

import json

import pytest

from benchmarks import textgen


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
        (["--labels", "1000", "--iterations", "2"], "exceed"),
        (["--labels", "0"], "--labels must be >= 1"),
        (["--noise", "1.5"], "--noise"),
        (["--sft-steps", "-1"], "--sft-steps must be >= 0"),
        (["--seeds", "0", "0"], "repeats a seed"),
        (["--seeds", "-1"], "a seed must be in 0.."),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--target-kl", "nan"], "--target-kl must be a finite number"),
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
