"""``python -m tools.kill_resume``: kill a benchmark with SIGKILL at random points, resume it each time.

Starts ``python -m benchmarks.mujoco --synthetic-oracle ...`` in its own process
group, kills the whole group with SIGKILL after a random delay, checks what
survived (labels on disk, the last checkpoint's step), continues it with
``--resume``, and repeats ``--kills`` times before letting it finish. At the
end it checks the run: complete outputs, the label budget used exactly (no
label lost or asked twice), and the summary's record of the resumes.

Writes ``kill_resume.json`` (one row per kill) to ``--out`` and prints a table.
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
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.kill_resume", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs before the run may finish (default 20)")
    p.add_argument("--env", default="Reacher-v5", help="MuJoCo task of the killed run (default Reacher-v5)")
    p.add_argument("--steps", type=int, default=60000, help="its --steps (default 60000)")
    p.add_argument("--labels", type=int, default=100, help="its --labels (default 100)")
    p.add_argument("--max-delay", type=float, default=20.0,
                   help="each kill comes after a uniform random 1..N seconds of running (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill times (default 0)")
    p.add_argument("--out", type=Path, default=Path("runs/kill-resume"), help="output directory (must be new)")
    return p


def _labels(run: Path) -> int:
    """Labels on disk for seed 0: the run's store plus any store set aside by a resume (an arm killed before
    its first checkpoint starts again and keeps its early labels in ``labels-seed0.before-resume-*.sqlite``)."""
    n = 0
    for path in run.glob("labels-seed0*.sqlite"):
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            n += db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        except sqlite3.Error:
            pass  # created but no table yet
        finally:
            db.close()
    return n


def _checkpoint_step(out: Path) -> int | None:
    p = out / "checkpoints" / "learned-seed0" / "progress.json"
    try:
        rows = json.loads(p.read_text())["rows"]
    except (OSError, json.JSONDecodeError, KeyError):
        return None
    return rows[-1]["env_step"] if rows else 0


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.kills < 0 or args.max_delay < 1:
        raise SystemExit("prefrl: error: --kills must be >= 0 and --max-delay >= 1")
    if args.out.exists():
        raise SystemExit(f"prefrl: error: --out {args.out} exists; give a new directory")
    args.out.mkdir(parents=True)
    run = args.out / "run"
    cmd = [sys.executable, "-m", "benchmarks.mujoco", "--synthetic-oracle", "--env", args.env, "--steps",
           str(args.steps), "--labels", str(args.labels), "--workers", "1", "--eval-episodes", "5",
           "--checkpoint-minutes", "0", "--out", str(run)]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    rng = random.Random(args.seed)
    rows, before, t0 = [], 0, time.time()
    for k in range(args.kills + 1):
        started = (run / "run.json").exists()  # a kill during start-up may come before the run began
        proc = subprocess.Popen(cmd + (["--resume"] if started else []), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
        if k == args.kills:  # the last start runs to the end
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"prefrl: the final resume failed (exit {proc.returncode}):\n{err[-3000:]}")
            break
        delay = rng.uniform(1.0, args.max_delay)
        try:
            proc.wait(timeout=delay)
            raise SystemExit(f"prefrl: the run finished after kill {k}; raise --steps or lower --max-delay")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        n = _labels(run)
        rows.append({"kill": k + 1, "after_seconds": round(delay, 1), "labels_on_disk": n,
                     "labels_lost": max(0, before - n), "checkpoint_step": _checkpoint_step(run)})
        before = max(before, n)
        print(f"kill {k + 1:2d} after {delay:4.1f} s: {n} labels on disk, checkpoint at step "
              f"{rows[-1]['checkpoint_step']}", flush=True)
    summary = json.loads((run / "summary.json").read_text())
    final_labels = _labels(run)
    result = {
        "command": " ".join(cmd[1:]), "kills": rows, "wall_seconds": time.time() - t0,
        "labels_lost_total": sum(r["labels_lost"] for r in rows),
        "final_labels_on_disk": final_labels, "labels_used": summary["labels_used"], "label_budget": args.labels,
        "resumed": summary["resumed"], "outputs_complete": all((run / f).exists() for f in
                                                               ("summary.json", "curves.csv", "curves.png")),
    }
    (args.out / "kill_resume.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{len(rows)} kills: {result['labels_lost_total']} labels lost, {final_labels} labels on disk at the "
          f"end for a budget of {args.labels} (labels_used {summary['labels_used']:.0f}), outputs complete: "
          f"{result['outputs_complete']}, resumed arms: {summary['resumed']}, "
          f"{result['wall_seconds'] / 60:.1f} min")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
