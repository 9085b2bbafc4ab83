"""A whole benchmark: every (seed, arm) in a process pool, then the report.

Each arm runs :func:`benchmarks.kit.arms.run_arm` in its own (spawned) process with the frozen
config; one progress bar follows them all; a failed arm is reported as soon as it fails.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.managers import SyncManager

from benchmarks.kit import lifecycle
from benchmarks.kit.arms import run_arm
from benchmarks.kit.evaluate import random_policy_return
from benchmarks.kit.config import RunConfig, run_flags
from benchmarks.kit.family import Family
from benchmarks.kit.report import ARMS, UPPER, print_table, summarize, write_outputs
from benchmarks.kit.validate import cpu_budget


def run(family_module: str, family: Family, cfg: RunConfig) -> dict:
    """Runs every (seed, arm), writes the outputs, prints a summary table; returns the summary."""
    lifecycle.start(cfg.out, {"flags": run_flags(cfg)}, cfg.resume)
    jobs = [(seed, arm) for seed in cfg.seeds for arm in (*ARMS, *((UPPER,) if cfg.upper_bound else ()))]
    cores = cpu_budget()
    workers = cfg.workers or max(1, min(len(jobs), cores))
    threads = max(1, cores // workers)  # per run: the env's own threads where it has any (and torch's on a GPU)
    print(f"prefrl {family.name}: {cfg.env}, {cfg.agent}, {cfg.steps} steps x {len(jobs)} runs, "
          f"{cfg.labels} labels, noise {cfg.noise}, query {cfg.query}, device {cfg.device}, "
          f"{workers} worker(s) x {threads} thread(s) -> {cfg.out}", flush=True)
    t_start = time.perf_counter()
    results = []
    ctx = mp.get_context("spawn")
    with lifecycle.stopping(cfg.out, cfg.seeds):  # `kill` ends the workers too
        parent = (os.getpid(),)
        manager = SyncManager(ctx=ctx)
        manager.start(exit_with_parent, parent)  # the manager's process, as the workers, ends with this one
        with manager, ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=exit_with_parent,
                                          initargs=parent) as pool:
            queue = manager.Queue()
            try:
                futures = [pool.submit(run_arm, family_module, cfg, seed, arm, threads, queue) for seed, arm in jobs]
                _follow(futures, queue, cfg.steps * len(jobs))
                results = [f.result() for f in futures]  # re-raises a worker's error
            except BaseException:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    random = random_policy_return(family, cfg, cfg.seeds[0], threads)
    summary, timing = summarize(cfg, results, random, time.perf_counter() - t_start)
    write_outputs(cfg.out, results, summary, timing)
    lifecycle.finish(cfg.out)
    print_table(summary, timing)
    return summary


def exit_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """Ends this worker process as soon as ``parent_pid`` is no longer its parent (the run was killed).

    A pool's workers outlive a parent killed with SIGKILL: they would go on training and serving the
    labeling page on the run's store, and a ``--resume`` would put a second server on it. Started in each
    worker (the pool's initializer): a daemon thread checks the parent every ``every_s`` seconds. Labels
    are committed one transaction at a time, so ending at any moment loses none.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ArmError(RuntimeError):
    """A run (arm) stopped on a problem with its settings or data (a ``ValueError`` inside it)."""


def _follow(futures, queue, total: int) -> None:
    """Shows one progress bar (with ETA) over all runs until they finish."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True, file=sys.stdout, desc="training")
    try:
        while not all(f.done() for f in futures):
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:  # report a failed run now, not after the others spent their budgets
                err = failed.exception()
                if isinstance(err, ValueError):  # a problem with the run's settings or data: one line says it
                    raise ArmError(f"a run stopped: {err}") from err
                raise err
            while not queue.empty():
                arm, seed, n, event = queue.get()
                bar.update(n)
                if event:
                    bar.write(f"  seed {seed} {arm}: {event}")
                    sys.stdout.flush()  # a URL to open must reach a piped console now
            time.sleep(0.2)
        while not queue.empty():
            bar.update(queue.get()[2])
    finally:
        bar.close()
