"""End to end through a real browser: a run whose every label is clicked in the web page.

``python -m tools.web_e2e [--family mujoco|atari|textgen]`` starts ``python -m benchmarks.<family>
--labeler web ...`` in its own process, reads the labeling URL it prints, opens it in headless Chromium (selenium, Debian's
``chromium`` + ``chromium-driver``) and plays a scripted annotator: for every query the page shows,
it looks up the true returns of the two clips in the run's store (out of band, as a test's own
oracle) and answers with a click or a key, like a person who always picks the clip that does
better. At the end it reports whether the learned-reward agent beat the random policy, and
checks that every label in the store came through the page (annotator name). ``--kill-after N`` kills
the run with SIGKILL once the page confirmed N answers, resumes it with ``--resume`` and goes on: the
report counts the confirmed answers missing from the store (``answers_lost``).

``--screenshots DIR`` also saves ``label-pair.png`` (the page with a real MuJoCo pair) and
``label-text.png`` (a K = 3 text ranking served from a scratch store).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ANNOTATOR = "e2e-annotator"
URL_RE = re.compile(r"label at (http://\S+)")


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) on PATH, or None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def make_browser(width: int = 1200, height: int = 900):
    """Headless Chromium under selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError("needs chromium and chromedriver on PATH: apt-get install -y chromium chromium-driver")
    opts = Options()
    opts.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(paths[1]), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def true_returns(store_path: Path, query_id: str) -> list[float]:
    """The true return of each side of a query, read from the run's store (read-only, out of band)."""
    from prefrl.store import _from_blob

    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT true_reward FROM queries WHERE id = ?", (query_id,)).fetchone()
    finally:
        db.close()
    if row is None:
        raise KeyError(f"query {query_id} is not in {store_path}")
    return _from_blob(row[0]).double().sum(dim=1).tolist()


SHOWN = ("return [0, 1].every(k => { const s = document.getElementById('side-' + k); if (!s) return false;"
         " const i = s.querySelector('img'), t = s.querySelector('pre');"
         " return (i !== null && i.complete && i.naturalWidth > 0) || t !== null; });")
"""True once both sides of the shown query are on screen (a clip loaded, or a text)."""
SAVED = "return JSON.parse(sessionStorage.getItem('prefrl-answered-' + arguments[0]) || '[]').includes(arguments[1]);"
"""True once the page saved this person's answer to the query (it keeps them for its undo)."""


def _start(cmd: list[str], lines: list[str]) -> tuple[subprocess.Popen, list[str], threading.Event, threading.Thread]:
    """Starts ``cmd``, collecting its console lines and the first labeling URL it prints."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            for part in line.rstrip("\n").split("\r"):
                lines.append(part)
                m = URL_RE.search(part)
                if m and not url:
                    url.append(m.group(1))
                    found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, url, found, reader


def _wait_free(store_path: Path, timeout_s: float = 60.0) -> float:
    """Seconds until no process holds the store any more (a killed run's workers exit with it)."""
    from prefrl.store import store_in_use

    t0 = time.monotonic()
    while store_path.exists() and store_in_use(store_path) is not None:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{store_path} is still held {timeout_s:.0f} s after the run was killed: "
                               f"{store_in_use(store_path)}")
        time.sleep(0.2)
    return time.monotonic() - t0


def annotate_run(cmd: list[str], store_path: Path, timeout_s: float = 600.0, screenshot: Path | None = None,
                 annotator: str = ANNOTATOR, kill_after: int | None = None) -> dict:
    """Runs ``cmd`` (a benchmark with ``--labeler web``) and answers every query its page shows until it exits.

    With ``kill_after=N`` the run is killed with SIGKILL (its main process, as ``kill -9 PID`` does) once N
    answers were confirmed by the page ("Saved."), and started again with ``--resume``; the browser opens the
    new URL and goes on answering.

    Returns:
        dict with ``rc``, ``url``, ``answers`` ({query id: "left"/"right"/"equal"}, the answers the page confirmed),
        ``log`` (console lines), ``seconds``, ``killed_at_answers`` and ``store_free_seconds`` (how long the killed
        run's processes held the store) when it was killed.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    t0 = time.monotonic()
    lines: list[str] = []
    answers: dict[str, str] = {}
    out: dict = {"answers": answers, "log": lines}
    browser = None
    phases = [cmd] if kill_after is None else [cmd, [*cmd, "--resume"]]
    try:
        for phase, argv in enumerate(phases):
            proc, url, found, reader = _start(argv, lines)
            try:
                while not found.wait(0.5):
                    if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                        raise RuntimeError("the run printed no labeling URL:\n" + "\n".join(lines[-30:]))
                out.setdefault("url", url[0])
                if browser is None:
                    browser = make_browser(1200, 1250 if screenshot is not None else 900)
                browser.get(url[0])
                name = browser.find_element(By.ID, "annotator")
                if name.get_attribute("value") != annotator:
                    name.send_keys(annotator, Keys.TAB)
                main = browser.find_element(By.ID, "main")
                last = None
                while proc.poll() is None:
                    if time.monotonic() - t0 > timeout_s:
                        raise TimeoutError(f"the run did not finish in {timeout_s:.0f} s")
                    if phase == 0 and kill_after is not None and len(answers) >= kill_after:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(30)
                        out["killed_at_answers"] = len(answers)
                        out["store_free_seconds"] = _wait_free(store_path)
                        break
                    try:
                        state, qid = main.get_attribute("data-state"), main.get_attribute("data-query-id")
                        if state != "query" or not qid or qid == last or not browser.execute_script(SHOWN):
                            time.sleep(0.1)
                            continue
                    except Exception:  # noqa: BLE001 -- the page is re-rendering; look again
                        time.sleep(0.1)
                        continue
                    if screenshot is not None and not answers:
                        time.sleep(0.5)  # a few frames into the clips
                        browser.save_screenshot(str(screenshot))
                    r = true_returns(store_path, qid)
                    answer = "left" if r[0] > r[1] else "right" if r[0] < r[1] else "equal"
                    if len(answers) % 2:  # every other query by key, the others by click
                        ActionChains(browser).send_keys({"left": "1", "right": "2", "equal": "="}[answer]).perform()
                    else:
                        browser.find_element(By.ID, f"btn-{answer}").click()
                    last = qid
                    t_sent = time.monotonic()
                    while time.monotonic() - t_sent < 15:  # the page confirms (it lists the answers it saved)
                        if browser.execute_script(SAVED, annotator, qid):
                            answers[qid] = answer
                            break
                        if "error" in (browser.find_element(By.ID, "status").get_attribute("class") or ""):
                            break  # refused or not saved: not an answer the person was told is kept
                        time.sleep(0.05)
                if proc.poll() is not None or phase == len(phases) - 1:
                    proc.wait(timeout=60)
            finally:
                if proc.poll() is None and not (phase == 0 and kill_after is not None):
                    proc.terminate()
                    proc.wait(30)
                reader.join(5)
            out["rc"] = proc.returncode
    finally:
        if browser is not None:
            browser.quit()
    out["seconds"] = time.monotonic() - t0
    out.setdefault("url", None)
    return out


def store_labels(store_path: Path) -> list[tuple[str, str, float]]:
    """(query id, annotator, mu) of every label in a store."""
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT query_id, annotator, mu FROM labels ORDER BY id").fetchall()
    finally:
        db.close()


def text_screenshot(path: Path) -> None:
    """The ranking page with a prompt and K = 3 completions (a scratch store), saved as a PNG."""
    import torch

    from prefrl import PreferenceStore, Segments
    from prefrl.label_queue import LabelQueue, text_media
    from prefrl.web import serve

    prompt = ("Review: I went in expecting another forgettable sequel, and for the first half hour that is exactly "
              "what I got. Then")
    completions = [
        " the second act surprised me: the two leads finally have room to breathe, and the quiet scenes between "
        "them are the best thing in the film.",
        " it got worse. The plot goes nowhere and the jokes land with a thud.",
        " the movie turned into something else entirely, funny and warm, and I left the theater smiling.",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = PreferenceStore(Path(tmp) / "text.sqlite")
        queue = LabelQueue(store)
        sides = [Segments(torch.full((1, 1, 4), float(k)), torch.zeros(1, 1, 1), torch.zeros(1, 1)) for k in range(3)]
        queue.post(sides, [[text_media(c) for c in completions]], prompts=[prompt])
        server = serve(queue, progress=lambda: {"labels_due": 1}, print_url=False)
        browser = make_browser(1200, 800)
        try:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.common.keys import Keys
            from selenium.webdriver.support.ui import WebDriverWait

            browser.get(server.url)
            browser.find_element(By.ID, "annotator").send_keys("alice", Keys.TAB)
            WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "main").get_attribute("data-state")
                                             == "query")
            time.sleep(0.5)
            browser.save_screenshot(str(path))
        finally:
            browser.quit()
            server.stop()
            store.close()


def family_command(args, out: Path) -> list[str]:
    """The benchmark command a --family runs, every label through the page."""
    common = ["--labeler", "web", "--labels", str(args.labels), "--seeds", str(args.seed), "--out", str(out),
              "--label-timeout", "120"]
    if args.family == "textgen":  # --quick's budget (3 PPO updates of 4 completions) with the real SmolLM2
        return [sys.executable, "-m", "benchmarks.textgen", "--quick", *common, *args.extra]
    env_flag = "--game" if args.family == "atari" else "--env"
    env = args.env or ("Seaquest" if args.family == "atari" else "InvertedPendulum-v5")
    n_envs = [] if args.n_envs is None else ["--n-envs", str(args.n_envs)]
    return [sys.executable, "-m", f"benchmarks.{args.family}", env_flag, env, "--steps", str(args.steps), *n_envs,
            "--eval-episodes", str(args.eval_episodes), *common, *args.extra]


def lost_answers(store_path: Path, answers: dict[str, str], annotator: str = ANNOTATOR) -> list[str]:
    """The confirmed answers (query id -> pair answer) whose label is not in the store as given (a repeated
    query's answer writes no label: it is checked in the queue instead)."""
    expected = {"left": 1.0, "right": 0.0, "equal": 0.5}
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        have = {(q, a, mu) for q, a, mu in db.execute("SELECT query_id, annotator, mu FROM labels WHERE replaced_at IS NULL")}
        repeats = dict(db.execute("SELECT id, answer FROM queries WHERE repeat_of IS NOT NULL").fetchall())
    finally:
        db.close()
    return [q for q, a in answers.items()
            if (repeats.get(q) != json.dumps(a) if q in repeats else (q, annotator, expected[a]) not in have)]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.web_e2e", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--family", choices=("mujoco", "atari", "textgen"), default="mujoco",
                   help="which benchmark to label: MuJoCo clips, Atari clips, or text pairs (SmolLM2, --quick)")
    p.add_argument("--env", default=None, help="MuJoCo task or Atari game (default InvertedPendulum-v5 / Seaquest)")
    p.add_argument("--steps", type=int, default=30_000, help="environment steps of each arm (MuJoCo, Atari)")
    p.add_argument("--labels", type=int, default=60, help="label budget (every label is clicked in the page)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel environments per arm (default: the family's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--kill-after", type=int, default=None, metavar="N",
                   help="kill -9 the run once the page confirmed N answers, then --resume it and go on answering")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: a new one under runs/)")
    p.add_argument("--screenshots", type=Path, default=None, metavar="DIR",
                   help="also save label-pair.png and label-text.png there")
    p.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for the benchmark")
    args = p.parse_args(argv)
    if browser_paths() is None:
        p.error("needs chromium and chromedriver on PATH: apt-get install -y chromium chromium-driver")
    if args.kill_after is not None and args.kill_after < 1:
        p.error(f"--kill-after must be >= 1 (answers before the kill), got {args.kill_after}")
    name = args.env or args.family
    out = args.out or Path("runs") / f"web-e2e-{name.replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = family_command(args, out)
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    print("prefrl web e2e: " + " ".join(cmd[1:]), flush=True)
    store = out / f"labels-seed{args.seed}.sqlite"
    res = annotate_run(cmd, store, args.timeout, args.screenshots / "label-pair.png" if args.screenshots else None,
                       kill_after=args.kill_after)
    if res["rc"] != 0:
        print("\n".join(res["log"][-40:]), file=sys.stderr)
        raise SystemExit(f"the run failed (exit {res['rc']})")
    if args.screenshots is not None:
        text_screenshot(args.screenshots / "label-text.png")
    summary = json.loads((out / "summary.json").read_text())
    labels = store_labels(store)
    report = {
        "family": args.family, "env": args.env, "label_budget": args.labels,
        "labels_in_store": len(labels), "labels_via_page": sum(a == ANNOTATOR for _, a, _ in labels),
        "answers_confirmed_in_page": len(res["answers"]), "answers_lost": len(lost_answers(store, res["answers"])),
        "killed_at_answers": res.get("killed_at_answers"), "store_free_seconds_after_kill": res.get("store_free_seconds"),
        "labels_used": summary["labels_used"], "resumed": summary.get("resumed", []),
        "team": next((r.get("team") for r in summary.get("per_seed", []) if r.get("team")), None)
        or next((r["learned"].get("team") for r in summary.get("per_seed", []) if "learned" in r), None),
        "warnings": summary.get("warnings", []),
    }
    if args.family == "textgen":
        report.update({k: summary[k] for k in ("score_zero_shot", "score_true", "score_learned", "gain_ratio")})
    else:
        rnd_hi = summary["true_return_random_ci95"][1]
        learned_lo = summary["true_return_learned_ci95"][0]
        report.update({"steps": args.steps, **{k: summary[k] for k in (
            "true_return_learned", "true_return_learned_ci95", "true_return_true", "true_return_random",
            "true_return_random_ci95")}, "learned_beats_random": bool(learned_lo > rnd_hi)})
    report.update(wall_seconds=res["seconds"], out=str(out))
    (out / "web_e2e.json").write_text(json.dumps(report, indent=2) + "\n")
    width = max(map(len, report))
    print()
    for k, v in report.items():
        print(f"  {k:<{width}}  {v}")
    return report


if __name__ == "__main__":
    main()
