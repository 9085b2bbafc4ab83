"""prefrl.web: the labeling app's JSON API refuses bad requests without changing the store, and records good answers."""

import io
import sqlite3
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the web app needs fastapi: pip install 'prefrl[web]'")
from fastapi.testclient import TestClient  # noqa: E402

from prefrl.label_queue import LabelQueue, frames_to_gif, gif_media, text_media  # noqa: E402
from prefrl.segments import Segments  # noqa: E402
from prefrl.store import PreferenceStore  # noqa: E402
from prefrl.web import create_app, serve  # noqa: E402
from queue_helpers import Clock, snapshot  # noqa: E402

TOKEN = "test-token-123456"


def segs(n, L=3, start=0):
    obs = torch.arange(start, start + n).float()[:, None, None].repeat(1, L, 2)
    return Segments(obs, torch.zeros(n, L, 1), torch.ones(n, L))


def clip(value):
    return torch.full((4, 6, 8, 3), value, dtype=torch.uint8)


@pytest.fixture
def setup(tmp_path):
    store = PreferenceStore(tmp_path / "labels.sqlite")
    clock = Clock()
    queue = LabelQueue(store, timeout_s=60, clock=clock)
    pair_ids = queue.post([segs(3), segs(3, start=100)], [[gif_media(clip(10 * i)), gif_media(clip(200))] for i in range(3)])
    k3 = queue.post([segs(1, start=7), segs(1, start=8), segs(1, start=9)],
                    [[text_media("good"), text_media("bad"), text_media("ok")]], prompts=["Continue: the film"])[0]
    progress = {"labels_due": 42, "curves": {"true return": [(0, 1.0), (10, float("nan")), (20, 3.5)]}}
    client = TestClient(create_app(queue, TOKEN, progress=lambda: progress))
    client.headers["X-Prefrl-Token"] = TOKEN
    yield client, queue, pair_ids, k3, clock
    store.close()


def test_every_request_needs_the_token(setup):
    client, queue, pair_ids, _, _ = setup
    before = snapshot(queue.store.path)
    bare = TestClient(client.app)
    for method, url in [("get", "/"), ("get", "/review"), ("get", "/api/next?annotator=ada"),
                        ("get", f"/api/media/{pair_ids[0]}/0"), ("get", "/api/progress"), ("get", "/api/answered"),
                        ("get", "/nowhere")]:
        r = getattr(bare, method)(url)
        assert r.status_code == 401 and "token" in r.json()["error"], url
        r = getattr(bare, method)(url + ("&" if "?" in url else "?") + "token=wrong-token")
        assert r.status_code == 403 and "wrong token" in r.json()["error"], url
    r = bare.post("/api/answer", json={"query_id": pair_ids[0], "annotator": "ada", "answer": "left"},
                  headers={"X-Prefrl-Token": "nope"})
    assert r.status_code == 403
    assert snapshot(queue.store.path) == before, "no lease, no label"
    assert bare.get("/?token=" + TOKEN).status_code == 200
    assert "which is better" in bare.get("/?token=" + TOKEN).text


def test_bad_answers_get_the_right_4xx_and_change_nothing(setup):
    client, queue, pair_ids, k3, clock = setup
    q = client.get("/api/next", params={"annotator": "ada"}).json()["query"]
    assert q["id"] == pair_ids[0] and q["kind"] == "pair" and q["k"] == 2
    client.post("/api/answer", json={"query_id": q["id"], "annotator": "ada", "answer": "left"}).raise_for_status()
    q2 = client.get("/api/next", params={"annotator": "ada"}).json()["query"]
    assert client.get("/api/next", params={"annotator": "bob"}).json()["query"]["id"] == pair_ids[2]
    before = snapshot(queue.store.path)
    n_labels = queue.store.total_added

    def post(body, **kw):
        return client.post("/api/answer", json=body, **kw) if not isinstance(body, (bytes, str)) else \
            client.post("/api/answer", content=body, headers={"Content-Type": "application/json"})

    cases = [
        (400, b"{not json"),
        (400, "\xff\xfe"),
        (422, [1, 2]),
        (422, {"query_id": q2["id"], "annotator": "ada"}),
        (422, {"query_id": 7, "annotator": "ada", "answer": "left"}),
        (422, {"query_id": q2["id"], "annotator": "ada", "answer": "sideways"}),
        (422, {"query_id": q2["id"], "annotator": "ada", "answer": [0]}),
        (422, {"query_id": q2["id"], "annotator": "", "answer": "left"}),
        (404, {"query_id": "0" * 32, "annotator": "ada", "answer": "left"}),
        (409, {"query_id": pair_ids[0], "annotator": "ada", "answer": "right"}),  # already answered
        (409, {"query_id": q2["id"], "annotator": "bob", "answer": "left"}),  # leased to ada
        (409, {"query_id": k3, "annotator": "ada", "answer": [0, 1, 2]}),  # leased to nobody
    ]
    for status, body in cases:
        r = post(body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert client.get("/api/next").status_code == 422  # no annotator
    assert client.get(f"/api/media/{'0' * 32}/0").status_code == 404
    assert client.get(f"/api/media/{pair_ids[0]}/2").status_code == 404
    assert client.get(f"/api/media/{pair_ids[0]}/x").status_code == 404
    clock.t += 61
    r = post({"query_id": q2["id"], "annotator": "ada", "answer": "left"})
    assert r.status_code == 410 and "ran out" in r.json()["error"]
    assert snapshot(queue.store.path) == before and queue.store.total_added == n_labels


def test_out_of_range_numbers_and_huge_bodies_get_4xx_not_500(setup):
    client, queue, pair_ids, _, _ = setup
    before = snapshot(queue.store.path)
    for side in ("99999999999999999999", "2147483648", "12345"):
        r = client.get(f"/api/media/{pair_ids[0]}/{side}")
        assert r.status_code == 404 and "side" in r.json()["error"], (side, r.status_code, r.text)
    for offset in ("99999999999999999999", str(2**63), "-5"):
        r = client.get("/api/answered", params={"offset": offset, "limit": "99999999999999999999"})
        assert r.status_code == 200 and isinstance(r.json()["queries"], list), (offset, r.status_code, r.text)
    assert client.get("/api/answered", params={"offset": "x"}).status_code == 422
    # a body over the limit is refused from its declared length, and from its size when none is declared
    r = client.post("/api/answer", content=b"x" * 70_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks():  # chunked transfer: no Content-Length to read the size from
        for _ in range(1000):
            yield b"x" * 1024

    r = client.post("/api/answer", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/answer", content=b"{}", headers={"Content-Type": "application/json",
                                                            "Content-Length": "99999999999999999999"})
    assert r.status_code == 413
    assert snapshot(queue.store.path) == before


def test_every_response_carries_the_security_headers(setup):
    client, _, pair_ids, _, _ = setup
    bare = TestClient(client.app)
    for r in (client.get("/"), client.get("/review"), client.get(f"/api/media/{pair_ids[0]}/0"),
              client.get("/api/progress"), bare.get("/"), client.get("/nowhere")):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["referrer-policy"] == "no-referrer"  # the token is in the page's URL
        assert r.headers["x-frame-options"] == "DENY"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    # the policy names each page's inline script by its hash: an injected script runs nowhere
    import base64, hashlib, re

    page = client.get("/").text
    script = re.search(r"<script>(.*?)</script>", page, flags=re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in client.get("/").headers["content-security-policy"]


def test_a_good_answer_lands_with_annotator_and_time(setup):
    client, queue, pair_ids, k3, _ = setup
    t0 = time.time()
    for ans in ("right", "equal", "skip"):
        q = client.get("/api/next", params={"annotator": "ada"}).json()["query"]
        gif = client.get(q["media"][0]["url"])
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif" and gif.content[:6] == b"GIF89a"
        assert client.post("/api/answer", json={"query_id": q["id"], "annotator": "ada", "answer": ans}).json() == \
            {"ok": True, "labels": 0 if ans == "skip" else 1}
    q = client.get("/api/next", params={"annotator": "bob"}).json()["query"]
    assert (q["id"], q["kind"], q["k"], q["prompt"]) == (k3, "ranking", 3, "Continue: the film")
    assert client.get(q["media"][1]["url"]).text == "bad"
    assert client.post("/api/answer", json={"query_id": k3, "annotator": "bob", "answer": [0, 2, 1]}).json()["labels"] == 3
    rows = sqlite3.connect(queue.store.path).execute("SELECT mu, annotator, labeled_at, query_id FROM labels ORDER BY id").fetchall()
    assert [r[:2] for r in rows] == [(0.0, "ada"), (0.5, "ada"), (1.0, "bob"), (1.0, "bob"), (0.0, "bob")]
    assert [r[3] for r in rows] == [pair_ids[0], pair_ids[1]] + [k3] * 3
    assert all(t0 - 1 <= r[2] <= time.time() + 1 for r in rows)
    assert client.get("/api/next", params={"annotator": "ada"}).json() == {"query": None}
    p = client.get("/api/progress").json()
    assert (p["labels_given"], p["queue_length"], p["answered"], p["skipped"], p["labels_due"]) == (5, 0, 3, 1, 42)
    assert p["curves"]["true return"] == [[0, 1.0], [10, None], [20, 3.5]]
    assert p["annotators"] == {"ada": 3, "bob": 1}
    review = client.get("/api/answered").json()["queries"]
    assert [r["answer"] for r in review] == [[0, 2, 1], "skip", "equal", "right"]


def test_an_annotator_changes_their_own_answer_and_nobody_elses(setup):
    client, queue, pair_ids, k3, _ = setup
    q = client.get("/api/next", params={"annotator": "ada"}).json()["query"]
    client.post("/api/answer", json={"query_id": q["id"], "annotator": "ada", "answer": "left"}).raise_for_status()
    shown = client.get(f"/api/query/{q['id']}").json()["query"]
    assert (shown["id"], shown["status"], shown["answer"], shown["annotator"]) == (q["id"], "answered", "left", "ada")
    before = snapshot(queue.store.path)
    r = client.post("/api/change", json={"query_id": q["id"], "annotator": "bob", "answer": "right"})
    assert r.status_code == 409 and "only they can change" in r.json()["error"]
    r = client.post("/api/change", json={"query_id": pair_ids[1], "annotator": "ada", "answer": "right"})
    assert r.status_code == 409 and "not answered" in r.json()["error"]
    assert client.get("/api/query/nope").status_code == 404
    assert client.post("/api/change", content=b"{").status_code == 400
    assert snapshot(queue.store.path) == before
    assert client.post("/api/change", json={"query_id": q["id"], "annotator": "ada", "answer": "right"}).json() == \
        {"ok": True, "labels": 1}
    assert queue.store.tensors()["mu"].tolist() == [0.0]
    assert client.get("/api/answered").json()["queries"][0]["answer"] == "right"


def test_a_clip_comes_as_a_strip_of_its_frames_for_the_player(setup):
    client, queue, pair_ids, k3, _ = setup
    r = client.get(f"/api/frames/{pair_ids[0]}/0")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    n, delay = int(r.headers["x-frame-count"]), int(r.headers["x-frame-delay-ms"])
    from PIL import Image

    strip = np.asarray(Image.open(io.BytesIO(r.content)))
    assert strip.shape == (6, 8 * n, 3) and (strip == 0).all() and delay >= 20  # clip(0): a still black 8x6 clip
    assert client.get(f"/api/frames/{k3}/0").status_code == 404, "a text side has no frames"
    assert client.get(f"/api/frames/{pair_ids[0]}/7").status_code == 404
    assert client.get(f"/api/frames/{pair_ids[0]}/x").status_code == 404


def test_serve_runs_on_a_free_loopback_port_and_stops(tmp_path):
    store = PreferenceStore(tmp_path / "labels.sqlite")
    queue = LabelQueue(store)
    queue.post([segs(1), segs(1, start=5)], [[gif_media(clip(0)), {"kind": "gif", "data": frames_to_gif(clip(9))}]])
    server = serve(queue, progress=lambda: {"labels_due": 3}, print_url=False)
    try:
        assert server.url.startswith("http://127.0.0.1:") and "?token=" in server.url and len(server.token) >= 24
        with urllib.request.urlopen(server.url, timeout=10) as r:
            assert r.status == 200 and b"which is better" in r.read()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.base_url + "/api/progress", timeout=10)
        assert err.value.code == 401
    finally:
        server.stop()
    assert not server.running
    store.close()


def test_prefrl_label_refuses_a_missing_or_foreign_file_in_one_line(tmp_path, foreign_sqlite, capsys):
    from prefrl.__main__ import main

    text = tmp_path / "notes.sqlite"
    text.write_text("not a database")
    for path, why in [(tmp_path / "missing.sqlite", "no such preference store"),
                      (text, "not a prefrl preference store"), (foreign_sqlite, "not a prefrl preference store")]:
        before = path.read_bytes() if path.exists() else None
        assert main(["label", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("prefrl label: error:") and why in err and "\n" not in err
        assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.slow
def test_prefrl_label_serves_a_stores_pending_queries_without_a_run(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "labels.sqlite"
    store = PreferenceStore(path)
    qid = LabelQueue(store).post([segs(1), segs(1, start=3)], [[gif_media(clip(0)), gif_media(clip(90))]])[0]
    store.close()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    def as_from_a_terminal() -> None:  # Ctrl-C reaches it as it would from a shell, whatever this process ignores
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "prefrl", "label", str(path), "--timeout", "60"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=root, preexec_fn=as_from_a_terminal)
    try:
        lines = []
        while not any("open http" in ln for ln in lines):
            line = proc.stderr.readline()
            assert line, f"prefrl label exited: {''.join(lines)}"
            lines.append(line)
        assert "1 queries waiting" in lines[0]
        url = next(ln for ln in lines if "open http" in ln).split("open ", 1)[1].strip()
        base, token = url.split("/?token=")
        hdr = {"X-Prefrl-Token": token, "Content-Type": "application/json"}
        with urllib.request.urlopen(urllib.request.Request(base + "/api/next?annotator=ada", headers=hdr)) as r:
            assert json.load(r)["query"]["id"] == qid
        body = json.dumps({"query_id": qid, "annotator": "ada", "answer": "right"}).encode()
        with urllib.request.urlopen(urllib.request.Request(base + "/api/answer", body, hdr)) as r:
            assert json.load(r) == {"ok": True, "labels": 1}
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "1 labels given" in rest
    finally:
        proc.kill()
    rows = sqlite3.connect(path).execute("SELECT mu, annotator, query_id FROM labels").fetchall()
    assert rows == [(0.0, "ada", qid)]
