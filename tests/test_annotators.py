"""A labeling team: repeated queries, agreement per annotator and overall, speed, dropping an annotator."""

import pytest
import torch

from prefrl.annotators import answer_ranks, pair_orders
from prefrl.export import iter_records
from prefrl.label_queue import LabelQueue, NotAnswered, text_media
from prefrl.segments import Segments
from prefrl.store import PreferenceStore
from queue_helpers import Clock


def post(queue, n):
    """N pairs whose left clip has the higher true return when i is even (equal returns when i % 3 == 0)."""
    L = 2
    left_r = torch.tensor([2.0 if i % 2 == 0 else 0.0 for i in range(n)])
    right_r = torch.where(torch.arange(n) % 3 == 0, left_r, 1.0)
    left = Segments(torch.arange(n).float()[:, None, None].repeat(1, L, 2), torch.zeros(n, L, 1),
                    left_r[:, None].repeat(1, L) / L)
    right = Segments(left.obs + 100, left.act, right_r[:, None].repeat(1, L) / L)
    return queue.post([left, right], [[text_media(f"l{i}"), text_media(f"r{i}")] for i in range(n)])


def truth(queue, qid):
    r = queue.segments(qid).true_return
    return "left" if r[0] > r[1] else "right" if r[0] < r[1] else "equal"


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(tmp_path / "labels.sqlite")
    yield s
    s.close()


def test_pair_orders_and_answer_ranks_on_known_values():
    assert answer_ranks("left") == (0, 1) and answer_ranks("equal") == (0, 0) and answer_ranks("skip") is None
    assert answer_ranks([2, 0, 1]) == (2, 0, 1)
    assert pair_orders([2, 0, 1], higher_is_better=False) == [-1, -1, 1]  # side 0 is worst
    assert pair_orders([1.0, 3.0, 1.0], higher_is_better=True) == [-1, 0, 1]


def test_repeats_are_asked_again_write_no_label_and_are_not_the_loops(store):
    queue = LabelQueue(store, repeat_share=0.5)
    ids = post(queue, 40)
    expected = {i for i in ids if int(i[:8], 16) / 2**32 < 0.5}
    for qid in ids:
        assert queue.lease("ada").id == qid
        queue.answer(qid, "ada", truth(queue, qid))
    s = queue.stats()
    assert s["repeats"] == len(expected) == s["pending"] and s["outstanding"] == 0
    new = queue.answered_since(0)
    assert new["queries"] == 40 and set(new["ids"]) == set(ids)
    while (q := queue.lease("bob")) is not None:  # bob gets the repeats
        queue.answer(q.id, "bob", truth(queue, q.id))
    again = queue.answered_since(new["cursor"])
    assert again["queries"] == 0 and again["cursor"] > new["cursor"], "repeats move the cursor, count nothing"
    assert len(store) == 40 and queue.stats()["labels_given"] == 40, "the first answer is the one trained on"
    with pytest.raises(ValueError, match="repeat_share"):
        LabelQueue(store, repeat_share=1.0)


def test_agreement_between_people_with_oneself_and_with_the_true_return(store):
    clock = Clock()
    queue = LabelQueue(store, repeat_share=0.9999, clock=clock)  # every answered query is asked again
    ids = post(queue, 6)
    for qid in ids:  # ada: right every time, 2 s per answer
        queue.lease("ada")
        clock.t += 2
        queue.answer(qid, "ada", truth(queue, qid))
    wrong = {"left": "right", "right": "left", "equal": "left"}
    for n in range(6):  # the repeats: bob the first four (two of them wrong), ada herself the last two
        who = "bob" if n < 4 else "ada"
        q = queue.lease(who)
        clock.t += 5
        queue.answer(q.id, who, wrong[truth(queue, q.id)] if n in (1, 3) else truth(queue, q.id))
    r = queue.team()
    ada, bob = r["annotators"]["ada"], r["annotators"]["bob"]
    assert (ada["answers"], ada["labels"], ada["seconds_per_answer"]) == (8, 6, 2.0)
    assert (bob["answers"], bob["labels"], bob["seconds_per_answer"]) == (4, 0, 5.0)
    assert r["repeat_agreement"]["between_people"] == {"share": 0.5, "n": 4}
    assert r["repeat_agreement"]["same_person"] == {"share": 1.0, "n": 2}
    assert bob["repeat_agreement"] == {"share": 0.5, "n": 4} and ada["repeat_agreement"] == {"share": 4 / 6, "n": 6}
    # queries 0 and 3 have clips of equal true return: they say nothing about an annotator and are left out
    assert ada["true_agreement"] == {"share": 1.0, "n": 6}  # her 4 + her 2 repeats of queries 4 and 5
    assert bob["true_agreement"] == {"share": 0.5, "n": 2}  # queries 1 (wrong) and 2; 0 and 3 left out
    assert r["true_agreement"] == {"share": 7 / 8, "n": 8}


def test_dropping_an_annotator_stops_training_on_their_labels(store):
    queue = LabelQueue(store)
    ids = post(queue, 4)
    for n, qid in enumerate(ids):
        who = "ada" if n < 2 else "eve"
        queue.lease(who)
        queue.answer(qid, who, "left")
    assert len(store.tensors()["mu"]) == 4
    assert queue.drop_annotator("eve") == 2
    assert store.tensors()["mu"].tolist() == [1.0, 1.0]
    assert [r["annotator"] for r in iter_records(store.path)] == ["ada", "ada"]
    assert queue.team()["annotators"]["eve"]["labels"] == 0
    assert queue.drop_annotator("nobody") == 0
    mem = LabelQueue(PreferenceStore())
    with pytest.raises(NotAnswered, match="memory only"):
        mem.drop_annotator("eve")


def test_the_team_api_shows_agreement_but_never_the_true_return(store):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from prefrl.web import create_app

    queue = LabelQueue(store, repeat_share=0.9999)
    for qid in post(queue, 2):
        queue.lease("ada")
        queue.answer(qid, "ada", "left")
    client = TestClient(create_app(queue, "team-token-123"))
    client.headers["X-Prefrl-Token"] = "team-token-123"
    r = client.get("/api/team").json()
    assert r["annotators"]["ada"]["answers"] == 2 and "true_agreement" not in r["annotators"]["ada"]
    assert "true_agreement" not in r and r["repeat_agreement"]["between_people"] == {"share": None, "n": 0}


def test_prefrl_annotators_prints_the_team_and_drops_one(tmp_path, capsys):
    from prefrl.__main__ import main

    path = tmp_path / "labels.sqlite"
    s = PreferenceStore(path)
    queue = LabelQueue(s)
    for n, qid in enumerate(post(queue, 4)):
        who = "ada" if n < 3 else "eve"
        queue.lease(who)
        queue.answer(qid, who, truth(queue, qid) if who == "ada" else "skip")
    s.close()
    assert main(["annotators", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["annotator", "answers"]
    assert out[1].split()[:4] == ["ada", "3", "0", "3"] and out[2].split()[:4] == ["eve", "1", "1", "0"]
    assert "with the true return 1.00 (2)" in out[-1]  # queries 1 and 2 (0 has clips of equal return)
    assert main(["annotators", str(path), "--drop", "ada", "--json"]) == 0
    captured = capsys.readouterr()
    assert "dropped 3 labels of 'ada'" in captured.err
    import json

    assert json.loads(captured.out)["annotators"]["ada"]["labels"] == 0
    assert len(PreferenceStore(path)) == 0
    assert main(["annotators", str(tmp_path / "nope.sqlite")]) == 2
    assert "error" in capsys.readouterr().err


def test_gold_queries_measure_agreement_with_a_known_answer_and_bad_gold_is_refused(store):
    queue = LabelQueue(store)
    media = [[text_media("a"), text_media("b")]] * 3
    segs = [Segments(torch.zeros(3, 2, 2) + k, torch.zeros(3, 2, 1), torch.zeros(3, 2)) for k in range(2)]
    ids = queue.post(segs, media, gold=["left", "right", None])
    for qid in ids:
        queue.lease("ada")
        queue.answer(qid, "ada", "left")
    r = queue.team()
    assert r["annotators"]["ada"]["gold_agreement"] == {"share": 0.5, "n": 2} == r["gold_agreement"]
    assert r["true_agreement"] == {"share": None, "n": 0}, "equal true returns say nothing"
    for gold, message in [(["skip", None, None], "'skip'"), (["left"], "N=3"), (["sideways", None, None], "gold")]:
        with pytest.raises(ValueError, match=message):
            queue.post(segs, media, gold=gold)
    assert queue.stats()["queries"] == 3, "nothing was posted"
