"""Asynchronous labels in the core loop: a QueueLabeler posts queries, answers arrive later.

Steps are fed to the loop directly (random observations, true reward = obs[0]), so these
tests need no environment and run in seconds.
"""

import math
import threading
import time

import numpy as np
import pytest
import torch

from prefrl import LoopConfig, MLPEnsemble, PreferenceLoop, PreferenceStore, QueueLabeler, SyntheticOracle
from prefrl.label_queue import LabelQueue, text_media
from prefrl.queue_labeler import ORACLE_ANNOTATOR, mu_to_answer

N_ENVS, OBS, ACT, L = 2, 3, 1, 5


def render(segs):
    return [text_media(f"return {float(r):.3f}") for r in segs.true_return]


def make_loop(labeler_kind: str, seed: int = 0, store=None, queue_kwargs=None, total_labels=24, **loop_kwargs):
    torch.manual_seed(seed)
    ens = MLPEnsemble((OBS,), (ACT,), n_members=2, hidden=(16,))
    cfg = LoopConfig(total_labels=total_labels, total_steps=2000, segment_length=L, pretrain_epochs=3, fit_epochs=1,
                     fit_min_steps=4, query_rounds=4, calibration_samples=64, correlation_segments=16, seed=seed,
                     **loop_kwargs)
    store = store if store is not None else PreferenceStore(seed=seed)
    oracle = SyntheticOracle(noise=0.2, seed=seed)
    if labeler_kind == "sync":
        labeler = oracle
    else:
        queue = LabelQueue(store, **(queue_kwargs or {}))
        labeler = QueueLabeler(queue, render, answer_with=oracle if labeler_kind == "oracle" else None)
    return PreferenceLoop(ens, labeler, N_ENVS, cfg, store=store)


def feed(loop, steps: int, rng: np.random.Generator) -> None:
    for t in range(steps):
        obs = rng.normal(size=(N_ENVS, OBS)).astype(np.float32)
        act = rng.normal(size=(N_ENVS, ACT)).astype(np.float32)
        loop.record(obs, act, obs[:, 0], np.full(N_ENVS, (loop.recorder.total + 1) % 40 == 0))


def run(labeler_kind: str, seed: int = 0):
    loop = make_loop(labeler_kind, seed)
    rng = np.random.default_rng(seed)
    feed(loop, 100, rng)
    history = [loop.pretrain()]
    for step in range(200, 2001, 200):
        feed(loop, 100, rng)
        history.append(loop.update(step))
    return loop, history


def test_the_oracle_through_the_queue_is_deterministic_and_equals_the_synchronous_oracle():
    a, ha = run("oracle")
    b, hb = run("oracle")
    sync, hs = run("sync")
    ta, tb, ts = a.store.tensors(), b.store.tensors(), sync.store.tensors()
    assert len(ta["mu"]) > 6
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"two runs with the same seed differ in {k}"
        assert torch.equal(ta[k], ts[k]), f"the queue path and the synchronous oracle differ in {k}"
    assert a.labels_used == sync.labels_used == 24
    assert [h is None for h in ha] == [h is None for h in hs]
    assert ha[-1]["rm/val_loss"] == hs[-1]["rm/val_loss"]  # same labels, same fits
    stats = a.labeler.queue.stats()
    assert stats["answered"] + stats["skipped"] == 24 and stats["pending"] == stats["leased"] == 0
    assert stats["annotators"] == {ORACLE_ANNOTATOR: 24}
    assert stats["labels_given"] == len(ta["mu"])


def test_collect_counts_answers_once_and_mu_maps_to_the_pages_answers():
    store = PreferenceStore()
    lab = QueueLabeler(LabelQueue(store), render, answer_with=SyntheticOracle(noise=0.0))
    seg = lambda r: __import__("prefrl").Segments(torch.zeros(3, 2, OBS), torch.zeros(3, 2, ACT), r)  # noqa: E731
    ids = lab.post(seg(torch.tensor([[1.0, 1], [0, 0], [2, 0]])), seg(torch.tensor([[0.0, 0], [1, 0], [1, 1]])))
    new = lab.collect()
    assert new["ids"] == ids and new["queries"] == 3 and new["labels"] == 3
    assert lab.collect()["queries"] == 0, "an answer is collected once"
    assert [lab.queue.get(i).answer for i in ids] == ["left", "right", "equal"]
    assert store.tensors()["mu"].tolist() == [1.0, 0.0, 0.5]
    assert mu_to_answer(0.0, answered=False) == "skip"


def answer_all(queue: LabelQueue, who: str = "alice") -> int:
    """Answers every pending query by the larger true return (what the web page's person does)."""
    n = 0
    while (q := queue.lease(who)) is not None:
        r = queue.segments(q.id).true_return
        queue.answer(q.id, who, "left" if r[0] > r[1] else "right" if r[0] < r[1] else "equal")
        n += 1
    return n


def test_training_goes_on_while_labels_are_pending_and_the_loop_fits_when_they_arrive():
    loop = make_loop("person")
    queue = loop.labeler.queue
    rng = np.random.default_rng(0)
    feed(loop, 100, rng)
    assert loop.pretrain() == {}, "nothing answered yet: no fit"
    n0 = loop.schedule.initial_labels
    assert queue.stats()["pending"] == n0 and loop.labels_used == 0
    before = [p.detach().clone() for p in loop.ensemble.parameters()]
    go, done = threading.Event(), threading.Event()
    answered = []

    def person():  # answers once told to, after a delay, from its own thread (as the web server does)
        go.wait(10)
        threading.Event().wait(0.2)
        answered.append(answer_all(queue))
        done.set()

    threading.Thread(target=person, daemon=True).start()
    for step in (100, 200, 300):  # training goes on: steps are recorded, rounds return at once
        feed(loop, 50, rng)
        assert loop.update(step) is None
        assert loop.labels_used == 0
    posted = queue.stats()["queries"]
    assert loop.update(300) is None and queue.stats()["queries"] == posted, "waiting queries are not posted again"
    assert loop.recorder.total == 250
    go.set()
    assert done.wait(10)
    metrics = loop.update(300)
    assert metrics is not None and metrics["labels"] == answered[0] == posted
    assert loop.labels_used == posted and len(loop.store) == posted
    assert any(not torch.equal(b, p) for b, p in zip(before, loop.ensemble.parameters())), "the model was fit"
    assert loop.label_status(300)["waiting"] == 0
    # the schedule counts answered labels only: later rounds post what is due beyond them
    feed(loop, 50, rng)
    loop.update(2000)
    assert queue.stats()["pending"] == loop.config.total_labels - posted


def test_an_expired_query_is_requeued_or_dropped_and_dropped_ones_are_asked_again():
    now = [1000.0]
    for mode in ("requeue", "drop"):
        loop = make_loop("person", queue_kwargs=dict(timeout_s=10, on_timeout=mode, clock=lambda: now[0]))
        queue = loop.labeler.queue
        rng = np.random.default_rng(1)
        feed(loop, 100, rng)
        loop.pretrain()
        n0 = loop.schedule.initial_labels
        q = queue.lease("bob")  # bob opens the page and walks away
        now[0] += 11
        assert loop.update(0) is None
        if mode == "requeue":
            assert queue.stats()["queries"] == n0, "a requeued query waits again: nothing new is posted"
            assert queue.lease("carol").id == q.id, "the abandoned query comes back first"
            assert answer_all(queue, "carol") == n0  # the one she holds first, then the rest
        else:
            assert queue.stats()["dropped"] == 1
            assert queue.stats()["queries"] == n0 + 1, "the schedule asks again for the dropped query"
            assert answer_all(queue, "carol") == n0
        assert loop.update(0)["labels"] == n0
        assert loop.labels_used == n0


@pytest.mark.slow
def test_the_text_loop_through_the_queue_gives_the_synchronous_labels_and_shows_prompt_and_k_completions():
    from envs.text_tasks import imdb_reviews, vader_compound
    from prefrl import TextLoopConfig, TextPreferenceLoop
    from prefrl.text_reward import FrozenTextEnsemble, SentenceEncoder, completion_media

    enc, W, reviews = SentenceEncoder(), 2 + 4 * 200, imdb_reviews()

    def run_text(kind: str, k: int):
        cfg = TextLoopConfig(labels=8, total_completions=4 * 12, rank_k=k, round_completions=12, initial_steps=5,
                             refit_steps=2)
        store, oracle = PreferenceStore(seed=0), SyntheticOracle(noise=0.0, seed=1)
        labeler = oracle if kind == "sync" else QueueLabeler(LabelQueue(store), completion_media, answer_with=oracle)
        torch.manual_seed(0)
        loop = TextPreferenceLoop(FrozenTextEnsemble(enc, W), labeler, cfg, store=store)
        i = 0
        for it in range(5):
            prompts, completions = [], []
            for _ in range(12 // k):
                prompt = " ".join(reviews[i].split()[:6])
                completions += [" ".join(reviews[i + 1 + j].split()[6:20]) for j in range(k)]
                prompts += [prompt] * k
                i += k + 1
            loop.add_rollout(prompts, completions, [vader_compound(c) for c in completions])
            if it >= 1:
                loop.label_due((it - 1) * 12)
        return loop

    for k in (2, 3):
        sync, queued = run_text("sync", k), run_text("queue", k)
        ts, tq = sync.store.tensors(), queued.store.tensors()
        assert all(torch.equal(ts[key], tq[key]) for key in ts), f"K={k}: the queue path changed the labels"
        assert queued.labels_used == sync.labels_used >= 6 and queued.pairs_labeled == sync.pairs_labeled
        assert sync.metrics["rm/train_loss"] == queued.metrics["rm/train_loss"]
        queue = queued.labeler.queue
        q = queue.answered(limit=1)[0]
        assert q.k == k and q.prompt and all(queue.media(q.id, j)["kind"] == "text" for j in range(k))


def test_the_agent_waits_for_the_answered_share_it_asks_and_fits_on_them():
    loop = make_loop("person", min_answered_share=0.5)
    queue = loop.labeler.queue
    rng = np.random.default_rng(0)
    feed(loop, 100, rng)
    assert loop.labels_short(100) == 0, "nothing posted yet: nothing to wait for"
    loop.pretrain()
    n0 = loop.schedule.initial_labels
    due = loop.schedule.due(100)
    assert loop.labels_short(100) == min(math.ceil(0.5 * due), n0) > 0
    reports, answered = [], []

    def person():  # answers after the loop started waiting
        threading.Event().wait(0.3)
        answered.append(answer_all(queue))

    threading.Thread(target=person, daemon=True).start()
    t = time.monotonic()
    metrics = loop.wait_for_labels(100, poll_seconds=0.05, report_seconds=10.0, on_wait=reports.append)
    assert time.monotonic() - t >= 0.25, "it returned before the answers came"
    assert loop.labels_short(100) == 0 and loop.labels_used >= math.ceil(0.5 * due)
    assert metrics is not None and metrics["labels"] >= math.ceil(0.5 * due), "the labels it waited for were fit"
    assert answered[0] == n0 and loop.labels_used == n0  # the rest are collected by the next look
    assert len(reports) == 1 and reports[0]["short"] > 0 and reports[0]["waited_seconds"] < 0.25


def test_without_a_share_or_with_a_synchronous_labeler_nothing_waits():
    loop = make_loop("person")  # min_answered_share 0: the default never waits
    feed(loop, 100, np.random.default_rng(0))
    loop.pretrain()
    assert loop.labels_short(100) == 0 and loop.wait_for_labels(100) is None
    sync = make_loop("sync", min_answered_share=1.0)
    feed(sync, 100, np.random.default_rng(0))
    sync.pretrain()
    assert sync.labels_short(100) == 0
    with pytest.raises(ValueError, match="min_answered_share must be in"):
        make_loop("person", min_answered_share=1.5)


def test_the_text_loop_waits_for_its_share_of_rankings_then_refits():
    from envs.text_tasks import imdb_reviews, vader_compound
    from prefrl import TextLoopConfig, TextPreferenceLoop
    from prefrl.text_reward import FrozenTextEnsemble, SentenceEncoder, completion_media

    reviews = imdb_reviews()
    cfg = TextLoopConfig(labels=4, total_completions=24, rank_k=2, round_completions=8, initial_steps=3,
                         refit_steps=2, min_answered_share=1.0)
    store = PreferenceStore(seed=0)
    queue = LabelQueue(store)
    torch.manual_seed(0)
    loop = TextPreferenceLoop(FrozenTextEnsemble(SentenceEncoder(), 2 + 4 * 200), QueueLabeler(queue, completion_media),
                              cfg, store=store)
    completions = [" ".join(r.split()[6:18]) for r in reviews[:8]]
    loop.add_rollout([" ".join(reviews[i // 2].split()[:6]) for i in range(8)], completions,
                     [vader_compound(c) for c in completions])
    assert loop.label_due(0) == 0 and queue.stats()["pending"] >= 1, "posted; nobody answered yet"
    short = loop.labels_short(0)
    assert short == queue.stats()["pending"]
    threading.Timer(0.3, lambda: answer_all(queue)).start()
    reports = []
    got = loop.wait_for_labels(0, poll_seconds=0.05, on_wait=reports.append)
    assert got == short and loop.labels_short(0) == 0 and reports[0]["short"] == short
    assert "rm/val_accuracy" in loop.metrics, "refit on the answers it waited for"
