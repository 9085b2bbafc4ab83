"""A short MuJoCo run whose labels are all given in the web page, by a scripted annotator in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver``; skipped, with the reason, only when they are absent.
The annotator decides out of band, from the true returns of the query's clips in the run's store.
"""

import json
import sys

import pytest

from tools.web_e2e import ANNOTATOR, annotate_run, browser_paths, store_labels

pytestmark = pytest.mark.skipif(browser_paths() is None,
                                reason="needs chromium and chromedriver on PATH: apt-get install -y chromium chromium-driver")


@pytest.mark.slow
def test_a_mujoco_run_labeled_in_the_browser_finishes_with_every_label_from_the_page(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "benchmarks.mujoco", "--labeler", "web", "--env", "InvertedPendulum-v5",
           "--steps", "3000", "--labels", "8", "--n-envs", "1", "--eval-episodes", "2", "--workers", "2",
           "--label-timeout", "60", "--min-answered-share", "1", "--out", str(out)]
    store = out / "labels-seed0.sqlite"  # share 1: the agent waits for every answer due, so the loop counts all
    res = annotate_run(cmd, store, timeout_s=240, screenshot=tmp_path / "pair.png")
    log = "\n".join(res["log"])
    assert res["rc"] == 0, log[-3000:]
    assert res["url"].startswith("http://127.0.0.1:") and "?token=" in res["url"]
    summary = json.loads((out / "summary.json").read_text())
    labels = store_labels(store)
    assert len(res["answers"]) >= 2, f"the initial queries were answered in the page: {log[-2000:]}"
    assert labels and {a for _, a, _ in labels} == {ANNOTATOR}, "every label came through the page"
    expected = {"left": 1.0, "right": 0.0, "equal": 0.5}
    assert {q: mu for q, _, mu in labels} == {q: expected[a] for q, a in res["answers"].items() if q in
                                             {q for q, _, _ in labels}}
    assert len(labels) >= len(res["answers"]) - 1  # the last click may land after the run stopped serving
    # the loop counted what it trained on; an answer after its last round is stored, not counted (and said)
    assert summary["labels_used"] <= len(labels) and summary["labels_used"] >= 2
    assert summary["labels_asked"] == 8 and summary["labels_stored"] == len(labels)
    if summary["labels_used"] < 8:  # fewer counted than asked: said in the warnings, not hidden
        assert any("of the 8 labels asked before it ended" in w for w in summary["warnings"]), summary["warnings"]
    assert (tmp_path / "pair.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_text_run_labeled_in_the_browser_is_killed_resumed_and_loses_no_answer(tmp_path):
    """kill -9 after two confirmed answers, --resume, go on answering: every answer the page confirmed is stored."""
    from tools.web_e2e import lost_answers

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "benchmarks.textgen", "--labeler", "web", "--quick", "--model", "tiny",
           "--labels", "8", "--label-timeout", "60", "--min-answered-share", "1", "--out", str(out)]
    store = out / "labels-seed0.sqlite"  # share 1: the policy waits for every answer due, so all 8 count
    res = annotate_run(cmd, store, timeout_s=240, kill_after=2)
    log = "\n".join(res["log"])
    assert res["rc"] == 0, log[-3000:]
    assert res["killed_at_answers"] == 2 and res["store_free_seconds"] < 30, "the killed run let go of its store"
    assert len(res["answers"]) == 8, log[-2000:]
    assert lost_answers(store, res["answers"]) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels_used"] == 8 and summary["resumed"] and summary["warnings"] == []
    assert {a for _, a, _ in store_labels(store)} == {ANNOTATOR}
