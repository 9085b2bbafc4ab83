"""Runs a grid on Ray: one task per run, each the benchmark's command in a subprocess, resumable."""


import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.sweep.report import aggregate
from benchmarks.sweep.grid import GRID_FILE, TASK_FILE, THREAD_VARS, Block, save_grid


def run_state(run_dir: Path) -> str:
    """"finished" (summary.json), "interrupted" (run.json, no summary.json) or "new"."""
    if (run_dir / "summary.json").is_file():
        return "finished"
    if (run_dir / "run.json").is_file():
        return "interrupted"
    return "new"


def _recorded_argv(run_dir: Path) -> list[str] | None:
    try:
        return json.loads((run_dir / TASK_FILE).read_text())["argv"]
    except (OSError, ValueError, KeyError):
        return None


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the Ray worker that started it dies (Linux), so no run outlives its task."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_task(argv: list[str], run_dir: str, resume: bool, cpus: float, gpus: float, cwd: str | None) -> dict:
    """The body of one Ray task: runs ``python -m <argv> --out run_dir [--resume]`` with its CPU/GPU share.

    stdout and stderr go to ``stdout.log``/``stderr.log`` in ``run_dir`` (appended, so a failed try's
    log stays). Returns rc, seconds and the host it ran on.
    """
    import socket

    run_dir_p = Path(run_dir)
    run_dir_p.mkdir(parents=True, exist_ok=True)
    threads = str(max(1, int(cpus)))
    env = dict(os.environ, **{k: threads for k in THREAD_VARS})
    if gpus > 0:
        import ray

        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ray.get_gpu_ids())
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU share: the run must not take one
    cmd = [sys.executable, "-m", *argv, "--out", run_dir, *(["--resume"] if resume else [])]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.perf_counter()
    with open(run_dir_p / "stdout.log", "a") as out, open(run_dir_p / "stderr.log", "a") as err:
        for f in (out, err):
            f.write(f"# {stamp} {socket.gethostname()}: {shlex.join(cmd)}\n")
            f.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=err, env=env, cwd=cwd if cwd and Path(cwd).is_dir() else None,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None).returncode
    return {"rc": rc, "seconds": time.perf_counter() - t0, "host": socket.gethostname()}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _repo_root() -> str:
    """The repository root (where `python -m benchmarks.<family>` runs): benchmarks/sweep/runner.py -> ../../."""
    return str(Path(__file__).resolve().parents[2])


def _init_ray(address: str | None, num_cpus: int | None):
    import ray

    if address is None:
        root = _repo_root()  # local workers inherit the environment: let them import this checkout
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *[p for p in paths if p]])
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return ray


def run_sweep(blocks: list[Block], out: Path, address: str | None = None, num_cpus: int | None = None,
              cpus_per_run: float = 1.0, gpus_per_run: float = 0.0) -> dict:
    """Runs the grid's unfinished runs as Ray tasks, prints progress, writes the aggregate report.

    Returns counts: total, skipped (finished before), launched, resumed, finished, failed (with
    their run dirs), and the report's paths.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    save_grid(out / GRID_FILE, blocks)
    runs = [r for b in blocks for r in b.runs()]
    todo, skipped, conflicts = [], 0, []
    for r in runs:
        d = out / r.rel_dir
        recorded = _recorded_argv(d)
        if recorded is not None and recorded != r.argv():
            conflicts.append(f"{d} holds a run of `{shlex.join(recorded)}`, not `{shlex.join(r.argv())}`")
            continue
        state = run_state(d)
        if state == "finished":
            skipped += 1
        else:
            todo.append((r, state == "interrupted"))
    if conflicts:
        raise SystemExit("prefrl sweep: error: " + "; ".join(conflicts) + "; use another --out")
    n_resume = sum(resume for _, resume in todo)
    print(f"prefrl sweep: {len(runs)} runs in {out}: {skipped} finished before (skipped), {len(todo) - n_resume} to "
          f"start, {n_resume} to resume; {cpus_per_run:g} CPU(s)"
          + (f" + {gpus_per_run:g} GPU(s)" if gpus_per_run else "") + " per run", flush=True)
    failed: list[str] = []
    t0 = time.perf_counter()
    if todo:
        ray = _init_ray(address, num_cpus)
        # after ray.init, which installs its own handler: `kill` stops the sweep as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            have = ray.cluster_resources()
            if cpus_per_run > have.get("CPU", 0) or gpus_per_run > have.get("GPU", 0):
                raise SystemExit(f"prefrl sweep: error: a run asks for {cpus_per_run:g} CPU(s) and {gpus_per_run:g} "
                                 f"GPU(s) but the Ray cluster has {have.get('CPU', 0):g} and {have.get('GPU', 0):g}")
            print(f"prefrl sweep: Ray with {have.get('CPU', 0):g} CPU(s), {have.get('GPU', 0):g} GPU(s): up to "
                  f"{int(have.get('CPU', 0) // cpus_per_run)} runs at a time", flush=True)
            task = ray.remote(run_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
            pending = {}
            for r, resume in todo:
                d = out / r.rel_dir
                d.mkdir(parents=True, exist_ok=True)
                (d / TASK_FILE).write_text(json.dumps({"argv": r.argv()}, indent=2) + "\n")
                pending[task.remote(r.argv(), str(d), resume, cpus_per_run, gpus_per_run, _repo_root())] = (r, resume)
            done = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                r, resume = pending.pop(ready[0])
                d = out / r.rel_dir
                done += 1
                try:
                    res = ray.get(ready[0])
                    ok = res["rc"] == 0 and run_state(d) == "finished"
                    how = f"{res['seconds']:.0f} s" + (", resumed" if resume else "")
                except Exception as err:  # the task itself died (worker lost, node down)
                    ok, how, res = False, f"Ray task failed: {type(err).__name__}: {err}", {"rc": None}
                if ok:
                    print(f"[{done}/{len(todo)}] done    {r.rel_dir} ({how})", flush=True)
                else:
                    failed.append(str(d))
                    print(f"[{done}/{len(todo)}] FAILED  {r.rel_dir} (exit {res['rc']}, {how}); "
                          f"log: {d / 'stderr.log'}", flush=True)
        except KeyboardInterrupt:
            print(f"\nprefrl sweep: interrupted; {len(pending)} run(s) stopped. Run the same command again: finished "
                  "runs are skipped, the stopped ones continue from their checkpoints (--resume)", file=sys.stderr,
                  flush=True)
            raise
        finally:
            ray.shutdown()  # ends the tasks; each run gets SIGTERM (_die_with_parent) and keeps its checkpoints
            signal.signal(signal.SIGTERM, previous)
    wall = time.perf_counter() - t0
    report = aggregate(out)
    finished = sum(run_state(out / r.rel_dir) == "finished" for r in runs)
    print(f"prefrl sweep: {finished}/{len(runs)} runs finished ({len(todo)} launched, {len(failed)} failed) in "
          f"{wall / 60:.1f} min; report: {report['md']}", flush=True)
    for d in failed:
        print(f"  failed: {d} (see {Path(d) / 'stderr.log'})")
    return {"total": len(runs), "skipped": skipped, "launched": len(todo), "resumed": n_resume,
            "finished": finished, "failed": failed, "wall_seconds": wall, **report}


# -- the report --------------------------------------------------------------------
