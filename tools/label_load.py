"""``python -m tools.label_load``: many annotators over real HTTP; 0 labels lost, duplicated or misattributed.

Posts ``--queries`` pair queries with small GIF clips into a fresh preference store,
serves it with ``prefrl label`` (its own process, on loopback), and runs
``--annotators`` threads that each, until the queue is empty, ask for a query
(GET /api/next), fetch both clips (GET /api/media), and answer it (POST /api/answer).
With probability ``--abandon`` an annotator walks away from a query instead (and comes
back under a new name): the query must come back after the lease timeout and be
answered by someone else. Then it checks from the store's file that every query got
exactly one label, from the annotator who answered it, with the answer they gave,
and prints the latency of serving a query with its clips (p50 / p99).

Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ANSWERS = ("left", "right", "equal")
MU = {"left": 1.0, "right": 0.0, "equal": 0.5}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.label_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=500, help="pair queries posted (default 500)")
    p.add_argument("--annotators", type=int, default=20, help="concurrent annotator threads (default 20)")
    p.add_argument("--abandon", type=float, default=0.05,
                   help="probability that an annotator walks away from a query it was given (default 0.05)")
    p.add_argument("--timeout", type=float, default=3.0,
                   help="lease timeout of the server, s: an abandoned query comes back after it (default 3)")
    p.add_argument("--frames", type=int, default=8, help="frames per GIF clip (default 8)")
    p.add_argument("--size", type=int, default=64, help="clip width and height in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seeds clips, answers and abandons (default 0)")
    p.add_argument("--store", type=Path, default=None,
                   help="preference store to create (must not exist); default a temporary file, deleted after")
    return p


def _clip(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    clip = np.zeros((frames, size, size, 3), np.uint8)
    clip[...] = rng.integers(0, 256, 3, dtype=np.uint8)
    s = max(2, size // 8)
    for t in range(frames):
        x = (t * size // frames) % (size - s)
        clip[t, size // 2 - s // 2 : size // 2 + s // 2, x : x + s] = 255
    return clip


def post_queries(store_path: Path, n: int, frames: int, size: int, seed: int) -> list[str]:
    """Posts N pairs of 3-step segments (obs = query index) with GIF clips; returns their ids."""
    import torch

    from prefrl.label_queue import LabelQueue, gif_media
    from prefrl.segments import Segments
    from prefrl.store import PreferenceStore

    rng = np.random.default_rng(seed)
    store = PreferenceStore(store_path)
    try:
        obs = torch.arange(n).float()[:, None, None].repeat(1, 3, 2)
        left = Segments(obs, torch.zeros(n, 3, 1), torch.zeros(n, 3))
        right = Segments(obs + 0.5, left.act, left.true_reward)
        media = [[gif_media(_clip(rng, frames, size)), gif_media(_clip(rng, frames, size))] for _ in range(n)]
        return LabelQueue(store).post([left, right], media)
    finally:
        store.close()


def start_server(store_path: Path, timeout: float) -> tuple[subprocess.Popen, str, str]:
    """``prefrl label STORE`` in its own process; returns (process, base URL, token)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "prefrl", "label", str(store_path), "--timeout", str(timeout)],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    seen = []
    while True:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("prefrl label exited before serving:\n" + "".join(seen))
        seen.append(line)
        if " open http" in line:
            base, token = line.split(" open ", 1)[1].strip().split("/?token=")
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, base, token


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run_annotators(base: str, token: str, n_threads: int, abandon: float, seed: int, n_queries: int) -> dict:
    """Runs the annotator threads until every query is answered; returns what each did and the latencies."""
    import httpx

    answered: list[tuple[str, str, str]] = []  # (query id, annotator, answer) as the server accepted them
    abandoned: list[tuple[str, str]] = []  # (query id, annotator who walked away)
    serve_s: list[float] = []  # GET next + GET both clips
    answer_s: list[float] = []
    refused: list[tuple[int, str]] = []
    lock = threading.Lock()
    done = threading.Event()

    def annotator(t: int) -> None:
        rng = random.Random(seed * 1000 + t)
        name, renames = f"annotator-{t}", 0
        with httpx.Client(base_url=base, headers={"X-Prefrl-Token": token}, timeout=60) as http:
            while not done.is_set():
                t0 = time.perf_counter()
                r = http.get("/api/next", params={"annotator": name})
                r.raise_for_status()
                q = r.json()["query"]
                if q is None:
                    with lock:
                        if len(answered) >= n_queries:
                            done.set()
                    time.sleep(0.2)  # abandoned queries come back after the lease timeout
                    continue
                for m in q["media"]:
                    clip = http.get(m["url"])
                    clip.raise_for_status()
                    assert clip.content[:6] == b"GIF89a"
                t1 = time.perf_counter()
                if rng.random() < abandon:
                    with lock:
                        serve_s.append(t1 - t0)
                        abandoned.append((q["id"], name))
                    renames += 1
                    name = f"annotator-{t}-{renames}"  # a new session: the old name's lease is left to expire
                    continue
                ans = ANSWERS[int(q["id"], 16) % 3]
                r = http.post("/api/answer", json={"query_id": q["id"], "annotator": name, "answer": ans})
                t2 = time.perf_counter()
                with lock:
                    serve_s.append(t1 - t0)
                    answer_s.append(t2 - t1)
                    if r.status_code == 200:
                        answered.append((q["id"], name, ans))
                    else:
                        refused.append((r.status_code, r.json().get("error", "")))

    threads = [threading.Thread(target=annotator, args=(t,)) for t in range(n_threads)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"answered": answered, "abandoned": abandoned, "serve_s": serve_s, "answer_s": answer_s,
            "refused": refused, "wall_s": time.perf_counter() - start}


def check(store_path: Path, ids: list[str], run: dict) -> dict:
    """Counts lost, duplicated and misattributed labels from the store's file."""
    db = sqlite3.connect(store_path)
    try:
        labels = db.execute("SELECT query_id, annotator, mu FROM labels").fetchall()
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM queries GROUP BY status").fetchall())
        requeued = db.execute("SELECT COALESCE(SUM(requeues), 0) FROM queries").fetchone()[0]
    finally:
        db.close()
    by_query: dict[str, list[tuple[str, float]]] = {}
    for qid, who, mu in labels:
        by_query.setdefault(qid, []).append((who, mu))
    accepted = {qid: (who, ans) for qid, who, ans in run["answered"]}
    lost = sum(1 for qid in ids if qid not in by_query)
    duplicated = sum(len(v) - 1 for v in by_query.values()) + sum(1 for qid in by_query if qid not in set(ids))
    misattributed = sum(1 for qid, rows in by_query.items()
                        if qid not in accepted or rows[0] != (accepted[qid][0], MU[accepted[qid][1]]))
    abandoned_then_answered_by_another = sum(
        1 for qid, who in run["abandoned"] if qid in by_query and by_query[qid][0][0] != who)
    return {"labels": len(labels), "lost": lost, "duplicated": duplicated, "misattributed": misattributed,
            "statuses": statuses, "requeued": int(requeued), "abandoned": len(run["abandoned"]),
            "abandoned_answered_by_another": abandoned_then_answered_by_another,
            "accepted_answers": len(run["answered"]), "refused_answers": len(run["refused"])}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.queries < 1 or args.annotators < 1 or not 0 <= args.abandon < 1 or args.timeout <= 0:
        raise SystemExit("label_load: --queries and --annotators must be >= 1, --abandon in [0, 1), --timeout > 0")
    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="label-load-")
        store_path = Path(tmp.name) / "labels.sqlite"
    else:
        store_path = args.store
        if store_path.exists():
            raise SystemExit(f"label_load: {store_path} exists; pass a new --store path")
    try:
        t0 = time.perf_counter()
        ids = post_queries(store_path, args.queries, args.frames, args.size, args.seed)
        post_s = time.perf_counter() - t0
        proc, base, token = start_server(store_path, args.timeout)
        try:
            run = run_annotators(base, token, args.annotators, args.abandon, args.seed, args.queries)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        res = check(store_path, ids, run)
    finally:
        if tmp is not None:
            tmp.cleanup()
    ok = (res["lost"] == 0 and res["duplicated"] == 0 and res["misattributed"] == 0
          and res["abandoned_answered_by_another"] == res["abandoned"])
    ms = lambda xs, q: 1000 * percentile(xs, q)  # noqa: E731
    print(f"label_load: {args.queries} pair queries ({args.frames}-frame {args.size}x{args.size} GIF clips, "
          f"posted in {post_s:.1f} s), {args.annotators} annotator threads over HTTP, lease timeout {args.timeout:g} s")
    print(f"  answered {res['accepted_answers']} in {run['wall_s']:.1f} s "
          f"({res['accepted_answers'] / run['wall_s']:.1f} answers/s); answers refused: {res['refused_answers']} "
          f"{sorted({c for c, _ in run['refused']})}")
    print(f"  abandoned {res['abandoned']}, requeued after the timeout {res['requeued']}, "
          f"then answered by another annotator {res['abandoned_answered_by_another']}")
    print(f"  serve a query with its 2 clips (GET next + 2 GET media): p50 {ms(run['serve_s'], 50):.1f} ms, "
          f"p99 {ms(run['serve_s'], 99):.1f} ms, max {1000 * max(run['serve_s']):.1f} ms (n={len(run['serve_s'])})")
    print(f"  POST answer: p50 {ms(run['answer_s'], 50):.1f} ms, p99 {ms(run['answer_s'], 99):.1f} ms")
    print(f"  store: {res['labels']} labels; lost {res['lost']}, duplicated {res['duplicated']}, "
          f"misattributed {res['misattributed']}; queries by status {json.dumps(res['statuses'])}")
    print("label_load: OK" if ok else "label_load: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
