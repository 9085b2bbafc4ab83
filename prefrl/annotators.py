"""How a labeling team is doing: per-annotator counts, speed and agreement, from a store's queue.

Agreement is measured two ways, both over the pairs a query's answer orders (one for a pair, C(K, 2) for a
K-wise ranking; "can't tell" answers are left out):

* **repeats**: with ``LabelQueue(repeat_share=...)`` a share of answered queries is asked once more;
  the two answers agree on a pair when they order it the same way (better, worse or equal). Reported
  between different people and for one person with themselves, as InstructGPT reports inter-labeler
  agreement (their 72.6 +- 1.5% between training labelers).
* **gold queries**: queries posted with a known answer (``LabelQueue.post(..., gold=...)``); the share of
  pairs an annotator orders as the gold answer does.
* **the true return**: where the clips' true returns differ (a benchmark's environment reward, kept with
  every query), the share of pairs an annotator orders as the true returns do: what the synthetic oracle
  would answer without noise (0.9 + 0.1 / 2 = 0.95 at the paper's 10% noise).

Everything here reads; :meth:`prefrl.label_queue.LabelQueue.drop_annotator` is the one action.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from itertools import combinations

import numpy as np

from prefrl.store import LIVE, blob_to_array

__all__ = ["answer_ranks", "pair_orders", "team_report"]

_PAIR = {"left": (0, 1), "right": (1, 0), "equal": (0, 0)}


def answer_ranks(answer) -> tuple[int, ...] | None:
    """A stored answer as ranks (0 = best, ties equal), or None for "can't tell"."""
    if isinstance(answer, str):
        return _PAIR.get(answer)
    return tuple(int(r) for r in answer)


def pair_orders(values, higher_is_better: bool) -> list[int]:
    """For every pair (i < j) of sides: +1 when side i is better, -1 when j is, 0 when equal.

    Args:
        values: K ranks (``higher_is_better=False``, 0 = best) or K returns (``True``).
        higher_is_better: how to read ``values``.
    """
    v = np.asarray(values, dtype=float)
    sign = np.sign if higher_is_better else (lambda x: -np.sign(x))
    return [int(sign(v[i] - v[j])) for i, j in combinations(range(len(v)), 2)]


def _share(agree: int, n: int) -> dict:
    return {"share": agree / n if n else None, "n": n}


def team_report(db: sqlite3.Connection) -> dict:
    """Counts, speed and agreement of every annotator of a store's queue.

    Args:
        db: an open connection to a preference store that has a ``queries`` table.

    Returns:
        ``{"annotators": {name: {...}}, "repeat_agreement": {"between_people": {share, n}, "same_person":
        {share, n}}, "true_agreement": {share, n}}``; per annotator ``answers`` (queries answered, repeats
        included), ``skipped`` ("can't tell"), ``labels`` (their labels that count: changed or dropped ones
        do not), ``seconds_per_answer`` (median from the lease to the answer), ``repeat_agreement`` and
        ``gold_agreement`` (on gold queries) and ``true_agreement`` ({share, n}: n pairs compared; share None
        when n = 0); ``gold_agreement`` and ``true_agreement`` overall too.
    """
    have = {r[1] for r in db.execute("PRAGMA table_info(queries)")}
    if not have:
        return {"annotators": {}, "repeat_agreement": {"between_people": _share(0, 0), "same_person": _share(0, 0)},
                "gold_agreement": _share(0, 0), "true_agreement": _share(0, 0)}
    leased = "leased_at" if "leased_at" in have else "NULL"
    repeat = "repeat_of" if "repeat_of" in have else "NULL"
    gold_col = "gold" if "gold" in have else "NULL"
    rows = db.execute(f"SELECT id, annotator, answer, status, {leased}, answered_at, {repeat}, true_reward, "
                      f"{gold_col} FROM queries WHERE answer_seq IS NOT NULL ORDER BY answer_seq").fetchall()
    label_cols = {r[1] for r in db.execute("PRAGMA table_info(labels)")}
    live = f"WHERE {LIVE}" if "replaced_at" in label_cols else ""
    labels = dict(db.execute(f"SELECT annotator, COUNT(*) FROM labels {live} GROUP BY annotator").fetchall()) \
        if "annotator" in label_cols else {}
    people: dict[str, dict] = {}
    answers: dict[str, tuple[str, tuple[int, ...] | None]] = {}
    true_agree = true_n = gold_agree = gold_n = 0
    for qid, who, answer, status, leased_at, answered_at, repeat_of, true_reward, gold in rows:
        p = people.setdefault(who, {"answers": 0, "skipped": 0, "times": [], "rep": [0, 0], "true": [0, 0],
                                    "gold": [0, 0]})
        ranks = answer_ranks(json.loads(answer)) if answer is not None else None
        p["answers"] += 1
        p["skipped"] += ranks is None
        if leased_at is not None and answered_at is not None and answered_at >= leased_at:
            p["times"].append(answered_at - leased_at)
        answers[qid] = (who, ranks)
        if ranks is None:
            continue
        mine = pair_orders(ranks, higher_is_better=False)
        if gold is not None:
            known = pair_orders(answer_ranks(json.loads(gold)), higher_is_better=False)
            agree = sum(a == b for a, b in zip(known, mine))
            p["gold"][0] += agree
            p["gold"][1] += len(known)
            gold_agree, gold_n = gold_agree + agree, gold_n + len(known)
        returns = blob_to_array(true_reward).astype(float).sum(axis=-1)  # [K]
        if not np.all(returns == returns[0]):  # the true return says something about this query
            truth = pair_orders(returns, higher_is_better=True)
            agree = sum(a == b for a, b in zip(truth, mine))
            p["true"][0] += agree
            p["true"][1] += len(truth)
            true_agree, true_n = true_agree + agree, true_n + len(truth)
    pairs = {"between_people": [0, 0], "same_person": [0, 0]}
    for qid, who, _, _, _, _, repeat_of, _, _ in rows:
        if repeat_of is None or repeat_of not in answers:
            continue
        first_who, first = answers[repeat_of]
        second = answers[qid][1]
        if first is None or second is None:
            continue
        a, b = pair_orders(first, False), pair_orders(second, False)
        agree = sum(x == y for x, y in zip(a, b))
        kind = pairs["same_person" if first_who == who else "between_people"]
        kind[0] += agree
        kind[1] += len(a)
        for name in {first_who, who}:
            people[name]["rep"][0] += agree
            people[name]["rep"][1] += len(a)
    return {
        "annotators": {name: {"answers": p["answers"], "skipped": p["skipped"], "labels": int(labels.get(name, 0)),
                              "seconds_per_answer": statistics.median(p["times"]) if p["times"] else None,
                              "repeat_agreement": _share(*p["rep"]), "gold_agreement": _share(*p["gold"]),
                              "true_agreement": _share(*p["true"])}
                       for name, p in sorted(people.items(), key=lambda kv: -kv[1]["answers"])},
        "repeat_agreement": {k: _share(*v) for k, v in pairs.items()},
        "gold_agreement": _share(gold_agree, gold_n),
        "true_agreement": _share(true_agree, true_n),
    }
