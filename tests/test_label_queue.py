"""prefrl.label_queue: queries for people, leased one at a time, answered into the store in one transaction."""

import sqlite3
import threading
import time

import pytest
import torch

from prefrl.export import iter_records
from prefrl.label_queue import (AlreadyAnswered, LabelQueue, LeaseExpired, MalformedAnswer, NotAnswered, NotLeased,
                                UnknownQuery, text_media)
from prefrl.segments import Segments
from prefrl.store import PreferenceStore, _to_blob
from queue_helpers import Clock, snapshot


def segs(n, L=3, start=0):
    """N segments whose obs are all equal to their index + start (so a stored label shows which clip it holds)."""
    obs = torch.arange(start, start + n).float()[:, None, None].repeat(1, L, 2)
    return Segments(obs, torch.zeros(n, L, 1), torch.ones(n, L))


def post_pairs(queue, n, start=0):
    """N pairs: left clip obs = start + i, right clip obs = 1000 + start + i."""
    media = [[text_media(f"left {start + i}"), text_media(f"right {start + i}")] for i in range(n)]
    return queue.post([segs(n, start=start), segs(n, start=1000 + start)], media)


def label_rows(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT mu, annotator, labeled_at, query_id, obs FROM labels ORDER BY id").fetchall()
    finally:
        db.close()


def first_obs(blob):
    from prefrl.store import blob_to_array
    return blob_to_array(blob)[:, 0, 0].tolist()  # [2]: the identity of clip 0 and clip 1


@pytest.fixture
def queue(tmp_path):
    store = PreferenceStore(tmp_path / "labels.sqlite")
    q = LabelQueue(store, timeout_s=60, clock=Clock())
    yield q
    store.close()


def test_round_trip_writes_the_labels_with_annotator_and_time(queue):
    path = queue.store.path
    ids = post_pairs(queue, 4)
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    t0 = time.time()
    got = []
    for answer in ("left", "right", "equal", "skip"):
        q = queue.lease("ada")
        assert q.kind == "pair" and q.k == 2 and q.media_kinds == ("text", "text") and q.annotator == "ada"
        got.append(q.id)
        assert queue.answer(q.id, "ada", answer) == (0 if answer == "skip" else 1)
    assert got == ids, "queries are served oldest first"
    assert queue.lease("ada") is None
    rows = label_rows(path)
    assert [r[0] for r in rows] == [1.0, 0.0, 0.5]  # mass on the left clip; the skip wrote no label
    assert {r[1] for r in rows} == {"ada"}
    assert all(t0 - 1 <= r[2] <= time.time() + 1 for r in rows)
    assert [r[3] for r in rows] == ids[:3]
    assert [first_obs(r[4]) for r in rows] == [[0, 1000], [1, 1001], [2, 1002]]
    t = queue.store.tensors()  # the in-memory buffer got them too
    assert t["mu"].tolist() == [1.0, 0.0, 0.5] and t["obs"][:, 0, 0, 0].tolist() == [0, 1, 2]
    s = queue.stats()
    assert (s["labels_given"], s["answered"], s["skipped"], s["pending"], s["leased"]) == (3, 3, 1, 0, 0)
    assert s["annotators"] == {"ada": 4}
    assert queue.get(ids[3]).status == "skipped" and queue.get(ids[0]).answer == "left"
    assert queue.media(ids[1], 1) == {"kind": "text", "data": "right 1"}


def test_a_query_goes_to_one_annotator_at_a_time(queue):
    a, b = post_pairs(queue, 2)
    assert queue.lease("ada").id == a
    assert queue.lease("bob").id == b
    assert queue.lease("cy") is None
    assert queue.lease("ada").id == a, "asking again (a reloaded page) gives back the same query"
    with pytest.raises(NotLeased):
        queue.answer(a, "bob", "left")
    queue.answer(a, "ada", "left")
    assert queue.lease("ada") is None and queue.stats()["leased"] == 1


@pytest.mark.parametrize("on_timeout", ["requeue", "drop"])
def test_an_expired_lease_is_requeued_or_dropped(tmp_path, on_timeout):
    clock = Clock()
    store = PreferenceStore(tmp_path / "labels.sqlite")
    queue = LabelQueue(store, timeout_s=30, on_timeout=on_timeout, clock=clock)
    first, second = post_pairs(queue, 2)
    assert queue.lease("ada").id == first
    clock.t += 29
    assert queue.stats()["leased"] == 1
    clock.t += 2
    with pytest.raises(LeaseExpired):
        queue.answer(first, "ada", "left")
    if on_timeout == "requeue":
        assert queue.stats()["pending"] == 2
        assert queue.lease("bob").id == first, "a requeued query goes back to the front"
        queue.answer(first, "bob", "right")
        assert queue.stats()["requeued"] == 1
    else:
        assert queue.stats()["dropped"] == 1
        assert queue.lease("bob").id == second
        with pytest.raises(LeaseExpired, match="dropped"):
            queue.answer(first, "ada", "left")
    assert len(store) == (1 if on_timeout == "requeue" else 0)
    store.close()


def test_every_bad_answer_raises_and_changes_nothing(queue):
    path, clock = queue.store.path, queue._clock
    pair = post_pairs(queue, 2)
    k3 = queue.post([segs(1, start=10), segs(1, start=20), segs(1, start=30)],
                    [[text_media("a"), text_media("b"), text_media("c")]], prompts=["pick"])[0]
    assert queue.lease("ada").id == pair[0]
    queue.answer(pair[0], "ada", "left")
    assert queue.lease("ada").id == pair[1]
    assert queue.lease("bob").id == k3
    before, n_mem, total = snapshot(path), len(queue.store), queue.store.total_added

    bad = [
        (UnknownQuery, ("f" * 32, "ada", "left")),
        (UnknownQuery, ("'; DROP TABLE labels; --", "ada", "left")),
        (AlreadyAnswered, (pair[0], "ada", "right")),
        (NotLeased, (pair[1], "bob", "left")),  # leased to ada
        (MalformedAnswer, (pair[1], "ada", "up")),
        (MalformedAnswer, (pair[1], "ada", "")),
        (MalformedAnswer, (pair[1], "ada", [0])),
        (MalformedAnswer, (pair[1], "ada", None)),
        (MalformedAnswer, (pair[1], "ada", {"answer": "left"})),
        (MalformedAnswer, (pair[1], "", "left")),
        (MalformedAnswer, (pair[1], "x" * 65, "left")),
        (MalformedAnswer, (k3, "bob", "left")),  # a ranking takes ranks
        (MalformedAnswer, (k3, "bob", [0, 1])),
        (MalformedAnswer, (k3, "bob", [0, 1, 3])),
        (MalformedAnswer, (k3, "bob", [0, -1, 1])),
        (MalformedAnswer, (k3, "bob", [0, 1.0, 2])),
        (MalformedAnswer, (k3, "bob", [True, False, 0])),
    ]
    for exc, args in bad:
        with pytest.raises(exc):
            queue.answer(*args)
    clock.t += 61  # both leases run out
    with pytest.raises(LeaseExpired):
        queue.answer(pair[1], "ada", "left")
    with pytest.raises(LeaseExpired):
        queue.answer(k3, "bob", [0, 1, 2])
    assert snapshot(path) == before
    assert (len(queue.store), queue.store.total_added) == (n_mem, total)


def test_a_ranking_gives_all_its_pairs_with_the_query_id(queue):
    path = queue.store.path
    sides = [segs(1, start=10 * k) for k in range(4)]  # side k has obs 10k
    qid = queue.post(sides, [[text_media(f"completion {k}") for k in range(4)]], prompts=["Write a review"])[0]
    q = queue.lease("ada")
    assert (q.kind, q.k, q.prompt) == ("ranking", 4, "Write a review")
    assert queue.answer(qid, "ada", [2, 0, 1, 0]) == 6  # C(4, 2); sides 1 and 3 tie for best
    rows = label_rows(path)
    got = {tuple(first_obs(r[4])): r[0] for r in rows}
    assert got == {(0, 10): 0.0, (0, 20): 0.0, (0, 30): 0.0, (10, 20): 1.0, (10, 30): 0.5, (20, 30): 0.0}
    assert {r[3] for r in rows} == {qid} and {r[1] for r in rows} == {"ada"}
    assert queue.get(qid).answer == [2, 0, 1, 0], "the ranking can be rebuilt from the query"


def test_pending_queries_survive_a_crash_like_reopen(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    queue = LabelQueue(store, timeout_s=600)
    ids = post_pairs(queue, 5)
    queue.answer(queue.lease("ada").id, "ada", "left")
    assert queue.lease("bob").id == ids[1]
    del queue, store  # no close(): every write was committed as it happened
    store = PreferenceStore(path)
    queue = LabelQueue(store, timeout_s=600)
    s = queue.stats()
    assert (s["pending"], s["leased"], s["answered"], s["labels_in_store"]) == (3, 1, 1, 1)
    assert len(store) == 1
    assert queue.lease("cy").id == ids[2]
    assert queue.lease("bob").id == ids[1], "bob's lease survived too"
    assert torch.equal(queue.segments(ids[4]).obs[:, 0, 0], torch.tensor([4.0, 1004.0]))
    assert queue.media(ids[4], 0)["data"] == "left 4"
    store.close()


def test_eight_threads_on_200_queries_lose_duplicate_and_misattribute_nothing(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    queue = LabelQueue(store, timeout_s=600)
    ids = post_pairs(queue, 200)
    answers = ("left", "right", "equal")
    done: dict[str, list[str]] = {}
    errors = []

    def annotate(name):
        mine = done.setdefault(name, [])
        try:
            while (q := queue.lease(name)) is not None:
                i = int(queue.media(q.id, 0)["data"].split()[1])
                queue.answer(q.id, name, answers[i % 3])
                mine.append(q.id)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=annotate, args=(f"annotator-{t}",)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    by_query = {qid: name for name, qids in done.items() for qid in qids}
    assert sum(map(len, done.values())) == 200 and set(by_query) == set(ids)
    rows = label_rows(path)
    assert len(rows) == 200 and len({r[3] for r in rows}) == 200, "0 lost, 0 duplicated"
    assert all(r[1] == by_query[r[3]] for r in rows), "0 misattributed"
    index = {qid: i for i, qid in enumerate(ids)}
    assert all(r[0] == {0: 1.0, 1: 0.0, 2: 0.5}[index[r[3]] % 3] for r in rows)
    assert all(first_obs(r[4]) == [index[r[3]], 1000 + index[r[3]]] for r in rows)
    t = store.tensors()
    assert len(t["mu"]) == 200 and sorted(t["obs"][:, 0, 0, 0].tolist()) == list(range(200))
    assert queue.answered_since(0)["labels"] == 200
    store.close()


def test_an_old_store_opens_and_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)  # the labels table as prefrl 0.1.0 wrote it
    db.execute("CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, mu REAL NOT NULL, "
               "is_val INTEGER NOT NULL, obs BLOB NOT NULL, act BLOB NOT NULL, true_reward BLOB NOT NULL)")
    s = segs(2)
    db.execute("INSERT INTO labels (created, mu, is_val, obs, act, true_reward) VALUES (?,?,?,?,?,?)",
               (1.0, 1.0, 0, _to_blob(s.obs), _to_blob(s.act), _to_blob(s.true_reward)))
    db.commit()
    db.close()
    assert [r["annotator"] for r in iter_records(path)] == [None], "export reads an old store as it is"
    store = PreferenceStore(path)
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(labels)")}
    assert {"annotator", "labeled_at", "query_id"} <= cols
    assert len(store) == 1
    queue = LabelQueue(store)
    qid = post_pairs(queue, 1)[0]
    queue.answer(queue.lease("ada").id, "ada", "right")
    store.close()
    recs = list(iter_records(path))
    assert [(r["annotator"], r["query_id"], r["mu"]) for r in recs] == [(None, None, 1.0), ("ada", qid, 0.0)]
    assert recs[0]["labeled_at"] is None and recs[1]["labeled_at"] > 0
    assert len(PreferenceStore(path)) == 2


def test_post_refuses_what_it_cannot_serve_and_posts_nothing(queue):
    path = queue.store.path
    two = [[text_media("a"), text_media("b")]]
    with pytest.raises(ValueError, match="K >= 2"):
        queue.post([segs(1)], [[text_media("a")]])
    with pytest.raises(ValueError, match="one shape"):
        queue.post([segs(1), segs(1, L=4)], two)
    with pytest.raises(ValueError, match=r"media\[n\]\[k\]"):
        queue.post([segs(1), segs(1)], [[text_media("a")]])
    with pytest.raises(ValueError, match="GIF bytes"):
        queue.post([segs(1), segs(1)], [[{"kind": "gif", "data": b"PNG..."}, text_media("b")]])
    with pytest.raises(ValueError, match="media kind"):
        queue.post([segs(1), segs(1)], [[{"kind": "video", "data": b""}, text_media("b")]])
    with pytest.raises(ValueError, match="prompts"):
        queue.post([segs(1), segs(1)], two, prompts=["a", "b"])
    post_pairs(queue, 1)
    before = snapshot(path)
    with pytest.raises(ValueError, match="separate store"):  # the queue holds L=3 clips
        queue.post([segs(1, L=5), segs(1, L=5)], two)
    queue.answer(queue.lease("ada").id, "ada", "left")
    before = snapshot(path)
    with pytest.raises(ValueError, match="separate store"):  # and now the store too
        queue.post([segs(1, L=5), segs(1, L=5)], two)
    assert snapshot(path) == before
    assert queue.post([segs(0), segs(0)], []) == []


def test_answered_since_counts_only_new_answers(queue):
    post_pairs(queue, 3)
    queue.post([segs(1), segs(1), segs(1)], [[text_media("x")] * 3])
    got = queue.answered_since(0)
    assert (got["cursor"], got["queries"], got["labels"]) == (0, 0, 0)
    for ans in ("left", "skip"):
        queue.answer(queue.lease("ada").id, "ada", ans)
    first = queue.answered_since(0)
    assert (first["queries"], first["labels"], first["skipped"]) == (2, 1, 1)
    queue.answer(queue.lease("ada").id, "ada", "equal")
    queue.answer(queue.lease("ada").id, "ada", [0, 1, 1])
    later = queue.answered_since(first["cursor"])
    assert (later["queries"], later["labels"], later["skipped"]) == (2, 4, 0) and len(later["ids"]) == 2
    assert queue.answered_since(later["cursor"])["queries"] == 0
    assert [q.answer for q in queue.answered(limit=2)] == [[0, 1, 1], "equal"]


def test_a_store_without_a_file_keeps_its_queue_in_memory():
    store = PreferenceStore()
    queue = LabelQueue(store)
    post_pairs(queue, 2)
    queue.answer(queue.lease("ada").id, "ada", "right")
    assert store.tensors()["mu"].tolist() == [0.0]
    assert queue.stats()["pending"] == 1


def test_a_changed_answer_replaces_its_labels_for_training_and_export(queue):
    path, store = queue.store.path, queue.store
    ids = post_pairs(queue, 3)
    for answer in ("left", "skip", "right"):
        queue.answer(queue.lease("ada").id, "ada", answer)
    assert store.tensors()["mu"].tolist() == [1.0, 0.0]
    view = store.tensors()["mu"]
    assert queue.change(ids[0], "ada", "right") == 1      # undo of a pair: left -> right
    assert queue.change(ids[1], "ada", "equal") == 1      # can't tell -> equally good: a new label
    assert queue.change(ids[2], "ada", "skip") == 0       # right -> can't tell: its label no longer counts
    assert view.tolist() == [1.0, 0.0], "a view the trainer holds does not change under it"
    t = store.tensors()
    assert sorted(t["mu"].tolist()) == [0.0, 0.5] and len(store) == 2
    recs = list(iter_records(path))
    assert [(r["query_id"], r["mu"]) for r in recs] == [(ids[0], 0.0), (ids[1], 0.5)]
    assert [q.answer for q in (queue.get(i) for i in ids)] == ["right", "equal", "skip"]
    assert [q.status for q in (queue.get(i) for i in ids)] == ["answered", "answered", "skipped"]
    assert queue.stats()["labels_given"] == 2
    rows = sqlite3.connect(path).execute("SELECT query_id, mu, replaced_at IS NOT NULL FROM labels ORDER BY id").fetchall()
    assert rows == [(ids[0], 1.0, 1), (ids[2], 0.0, 1), (ids[0], 0.0, 0), (ids[1], 0.5, 0)], \
        "the old answers stay in the file, marked replaced"
    store.close()
    again = PreferenceStore(path)  # a resumed run trains on the answers that count
    assert sorted(again.tensors()["mu"].tolist()) == [0.0, 0.5]
    again.close()


def test_a_ranking_can_be_changed_and_keeps_its_pairs_together(queue):
    k = 3
    qid = queue.post([segs(1, start=10 * j) for j in range(k)], [[text_media(str(j)) for j in range(k)]])[0]
    queue.answer(queue.lease("ada").id, "ada", [0, 1, 2])
    assert queue.change(qid, "ada", [2, 1, 0]) == 3
    rows = [r for r in iter_records(queue.store.path)]
    assert len(rows) == 3 and {r["kind"] for r in rows} == {"ranking"}
    assert sorted(r["mu"] for r in rows) == [0.0, 0.0, 0.0]  # every first clip is now the worse one


def test_only_the_annotator_changes_an_answered_query_and_a_refusal_changes_nothing(queue):
    ids = post_pairs(queue, 2)
    queue.answer(queue.lease("ada").id, "ada", "left")
    queue.lease("bob")  # ids[1] is leased to bob, not answered
    before = snapshot(queue.store.path)
    for qid, who, answer, err, message in [
        (ids[0], "bob", "right", NotAnswered, "answered by 'ada'"),
        (ids[1], "bob", "right", NotAnswered, "is leased, not answered"),
        ("nope", "ada", "right", UnknownQuery, "no query"),
        (ids[0], "ada", "sideways", MalformedAnswer, "is not one of"),
        (ids[0], "", "right", MalformedAnswer, "annotator"),
    ]:
        with pytest.raises(err, match=message):
            queue.change(qid, who, answer)
    assert snapshot(queue.store.path) == before
    store = PreferenceStore()
    mem = LabelQueue(store)
    post_pairs(mem, 1)
    q = mem.lease("ada")
    mem.answer(q.id, "ada", "left")
    with pytest.raises(NotAnswered, match="memory only"):
        mem.change(q.id, "ada", "right")


def test_answers_from_another_thread_never_change_the_trainers_views_under_it(tmp_path):
    store = PreferenceStore(tmp_path / "labels.sqlite", capacity=2)
    queue = LabelQueue(store)
    store.add(segs(2), segs(2, start=100), torch.tensor([1.0, 0.0]))
    view = store.tensors()  # the training thread fits from these views
    held = {k: v.clone() for k, v in view.items()}
    post_pairs(queue, 2, start=50)
    web = threading.Thread(target=lambda: [queue.answer(queue.lease("ada").id, "ada", "right") for _ in range(2)])
    web.start()
    web.join()
    assert all(torch.equal(view[k], held[k]) for k in held), "the ring buffer is full: an in-place write would show"
    assert len(store) == 2 and store.total_added == 4
    assert store.tensors()["obs"][:, 0, 0, 0].tolist() == [50, 51], "the next call takes the new labels in"
    store.close()
