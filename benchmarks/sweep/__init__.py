"""``python -m benchmarks.sweep``: a grid of benchmark runs on Ray, and one aggregate report over seeds.

A grid is families x envs (games, text tasks) x label budgets x query methods x seeds, given
as flags::

    python -m benchmarks.sweep --family mujoco --envs Reacher-v5 InvertedPendulum-v5 \\
        --seeds 0 1 2 --labels 50 100 --query disagreement random --steps 20000 --out runs/sweep

or as a YAML/JSON file (``--grid FILE``) holding one such block or a list of blocks under
``grid:`` (one per family). Every grid point x seed is one Ray task; the task runs the
benchmark CLI (``python -m benchmarks.<family> --synthetic-oracle ... --seeds k``) for that one
seed as a subprocess, into its own directory ``<out>/<family>/<env>/labels<L>-<query>/seed<k>``
(stdout.log and stderr.log kept there).

- Ray is the engine: ``ray.init()`` starts a local instance (CPUs from the machine, or
  ``--num-cpus``) unless ``--address`` names an existing cluster. Each task asks Ray for
  ``--cpus-per-run`` CPUs (and ``--gpus-per-run`` GPUs) and its run uses that many threads:
  ``OMP_NUM_THREADS`` and friends, ``PREFRL_CPUS`` (the harness's core count) and ``--workers 1``.
  A task without a GPU share sees no GPU (``CUDA_VISIBLE_DEVICES=""``).
- Rerun the same command to continue a sweep: a run whose ``summary.json`` exists is skipped;
  one that started (``run.json``) but did not finish is continued with ``--resume``.
- The report: ``aggregate.md``, ``aggregate.csv`` and ``aggregate.png`` in ``--out``, over every
  finished run below it: per configuration and figure, n seeds, mean, 95% percentile-bootstrap
  CI of the mean (2000 resamples, seed 0) and IQM (rliable, through ``benchmarks.stats``).
  ``--aggregate-only DIR`` rebuilds it from the runs in DIR without running anything.

On a cluster (``--address``) ``--out`` must be a directory every node sees at the same path and
prefrl must be importable on every node.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from benchmarks.checks import out_problem
from benchmarks.sweep.grid import (
    FAMILIES, QUERIES, Block, Run, block_from_args, grid_problem, load_grid, save_grid,
)
from benchmarks.sweep.report import aggregate
from benchmarks.sweep.runner import run_state, run_sweep

__all__ = ["FAMILIES", "Block", "Run", "aggregate", "blocks_from_argv", "build_parser", "load_grid", "main",
           "run_state", "run_sweep", "save_grid"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep",
        description="Run a grid of benchmark runs (family x envs x label budgets x query methods x seeds) as Ray "
                    "tasks, one run per seed in <out>/<family>/<env>/labels<L>-<query>/seed<k>, and write one "
                    "aggregate report over seeds (aggregate.md, aggregate.csv, aggregate.png). Rerunning the same "
                    "command skips finished runs and resumes interrupted ones.",
    )
    g = p.add_argument_group("the grid (flags, or --grid FILE)")
    g.add_argument("--grid", type=Path, default=None, metavar="FILE",
                   help="YAML or JSON grid: one block {family, envs, seeds, labels, query, steps, quick, extra} "
                        "or {grid: [block, ...]}; replaces the grid flags")
    g.add_argument("--family", choices=tuple(FAMILIES), default=None, help="benchmark family")
    g.add_argument("--envs", nargs="+", default=None, help="MuJoCo tasks, Atari games or text tasks")
    g.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; each is its own run (default 0)")
    g.add_argument("--labels", type=int, nargs="+", default=None, help="label budgets")
    g.add_argument("--query", nargs="+", choices=QUERIES, default=["disagreement"], help="query methods (default disagreement)")
    g.add_argument("--steps", type=int, default=None, help="--steps of every run (family default if unset)")
    g.add_argument("--quick", action="store_true", help="pass --quick to every run (explicit flags still win)")
    g.add_argument("--extra", default="", help='more flags passed to every run, e.g. "--n-envs 2 --eval-episodes 3" (one flag alone: --extra=--standard-env)')
    r = p.add_argument_group("where and how")
    r.add_argument("--out", type=Path, default=None, help="sweep directory (default runs/sweep-<time>)")
    r.add_argument("--address", default=None,
                   help="address of an existing Ray cluster (e.g. auto or ray://host:10001); default: start Ray here")
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all cores)")
    r.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs Ray reserves for each run, and its thread count (default 1)")
    r.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs (may be fractional) Ray reserves for each run (default 0: the runs see no GPU)")
    r.add_argument("--aggregate-only", type=Path, default=None, metavar="DIR",
                   help="only rebuild the report of the sweep in DIR from its finished runs")
    r.add_argument("--dry-run", action="store_true", help="print each run's state and command; run nothing")
    return p


def blocks_from_argv(argv: list[str] | None, parser: argparse.ArgumentParser | None = None
                     ) -> tuple[list[Block], argparse.Namespace]:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.aggregate_only is not None:
        return [], args
    if args.grid is not None:
        given = [f for f in ("family", "envs", "labels") if getattr(args, f) is not None]
        if given:
            parser.error(f"--grid replaces the grid flags; drop --{given[0]}")
        try:
            blocks = load_grid(args.grid)
        except FileNotFoundError:
            parser.error(f"--grid {args.grid}: no such file")
        except (ValueError, TypeError, KeyError) as err:
            parser.error(f"--grid {args.grid}: {err}")
        except Exception as err:  # YAML syntax errors and the like
            parser.error(f"--grid {args.grid}: {type(err).__name__}: {err}")
    else:
        missing = [f for f in ("family", "envs", "labels") if getattr(args, f) is None]
        if missing:
            parser.error(f"give --{missing[0]} (or a --grid file)")
        try:
            blocks = [block_from_args(args)]
        except ValueError as err:
            parser.error(str(err))
    problem = grid_problem(blocks)
    if problem:
        parser.error(problem)
    if args.cpus_per_run <= 0 or args.gpus_per_run < 0:
        parser.error("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    return blocks, args


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    blocks, args = blocks_from_argv(argv, parser)
    if args.aggregate_only is not None:
        if not args.aggregate_only.is_dir():
            parser.error(f"--aggregate-only {args.aggregate_only}: no such directory")
        report = aggregate(args.aggregate_only)
        n = len({(r["family"], r["env"], r["labels"], r["query"]) for r in report["rows"]})
        print(f"prefrl sweep: {n} configuration(s) -> {report['md']}, {report['csv']}, {report['png']}")
        print(Path(report["md"]).read_text())
        return report
    out = args.out or Path("runs") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.dry_run:
        for b in blocks:
            for r in b.runs():
                d = out / r.rel_dir
                state = run_state(d)
                resume = ["--resume"] if state == "interrupted" else []
                print(f"{state:<11} {shlex.join(['python', '-m', *r.argv(), '--out', str(d), *resume])}")
        return {"runs": [r for b in blocks for r in b.runs()]}
    problem = out_problem(out)
    if problem:
        parser.error(problem)
    try:
        import ray  # noqa: F401
    except ImportError:
        parser.error("the sweep runs on Ray: pip install 'ray>=2.9' (or pip install 'prefrl[sweep]')")
    try:
        result = run_sweep(blocks, out, address=args.address, num_cpus=args.num_cpus,
                           cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(Path(result["md"]).read_text())
    if result["failed"] or result["finished"] < result["total"]:
        raise SystemExit(1)
    return result

