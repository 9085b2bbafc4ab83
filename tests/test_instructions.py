"""What a labeler is told: per-task instructions on the page, never the true score."""

import pytest

from benchmarks import atari, mujoco
from benchmarks.kit import cli
from benchmarks.kit.arms import label_progress
from envs.instructions import GENERIC, labeling_instructions
from envs.text_tasks import make_text_task


@pytest.mark.parametrize("env_id, words", [
    ("HalfCheetah-v5", "run forward"), ("Hopper-v5", "without falling"), ("ALE/Seaquest-v5", "divers"),
    ("SeaquestNoFrameskip-v4", "divers"), ("Seaquest", "divers"), ("Pong", "paddle on the right"),
    ("Reacher-v5", "target"),
])
def test_known_tasks_say_what_better_means(env_id, words):
    assert words in labeling_instructions(env_id)


def test_an_unknown_env_gets_the_generic_instruction():
    assert labeling_instructions("MyEnv-v0") == GENERIC


def test_text_tasks_name_their_own_goal():
    assert "12 words" in make_text_task("length", target_words=12).instructions
    assert '"superb"' in make_text_task("keyword", keyword="superb").instructions
    assert "positive" in make_text_task("imdb-positive").instructions


@pytest.mark.parametrize("module, env, words", [(mujoco, "Hopper-v5", "hop forward"), (atari, "Seaquest", "divers")])
def test_the_runs_page_shows_the_task_and_never_the_true_return(module, env, words):
    fam = module.FAMILY
    cfg = cli.parse_flags(fam, ["--labeler", "web", fam.env_flag, env])
    p = label_progress(cfg, {"labels_due": 3, "labels_total": 700, "labels_used": 12}, 2048, 5)
    assert p["task"] == env and words in p["instructions"]
    assert (p["labels_due"], p["labels_budget"], p["labels_counted"], p["env_step"], p["waiting_for_labels"]) == \
        (3, 700, 12, 2048, 5)
    assert not any("true" in str(k).lower() or "true" in str(v).lower() for k, v in p.items() if k != "instructions")
    assert "curves" not in p
