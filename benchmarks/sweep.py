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
import csv
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.checks import out_problem, seeds_problem

QUERIES = ("disagreement", "entropy", "random")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "PREFRL_CPUS")
"""Environment variables a task sets to its CPU share (``PREFRL_CPUS`` is the harness's core count)."""
TASK_FILE = "sweep-task.json"
"""Written in each run directory: the command of the run (without --out/--resume), checked on rerun."""
GRID_FILE = "sweep.json"
"""Written in --out: the grid of the last sweep there, in the --grid file format."""


@dataclass(frozen=True)
class FamilySpec:
    """How the sweep drives one benchmark CLI and which summary.json figures it reports."""

    module: str
    env_flag: str
    has_steps: bool
    has_workers: bool
    figures: tuple[tuple[str, str], ...]
    """(summary.json key, label in the report), in report order."""


_RL_FIGURES = (("true_return_learned", "true return, learned-reward agent"),
               ("true_return_true", "true return, true-reward agent"),
               ("normalized_ratio", "ratio above random (learned / true)"),
               ("ratio", "ratio learned / true"))
FAMILIES = {
    "mujoco": FamilySpec("benchmarks.mujoco", "--env", True, True, _RL_FIGURES),
    "atari": FamilySpec("benchmarks.atari", "--game", True, True, _RL_FIGURES),
    "textgen": FamilySpec("benchmarks.textgen", "--task", False, False,
                          (("score_learned", "score, learned-reward policy"),
                           ("score_true", "score, true-reward policy"),
                           ("gain_ratio", "gain ratio (learned / true, over zero-shot)"))),
}
MANAGED = ("--seeds", "--out", "--resume", "--workers", "--labels", "--query", "--steps", "--quick",
           "--synthetic-oracle", "--env", "--game", "--task")
"""Flags the sweep sets itself; ``extra`` may not hold them."""


# -- the grid ----------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """One family's part of a grid: every env x label budget x query x seed is a run."""

    family: str
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    labels: tuple[int, ...]
    queries: tuple[str, ...] = ("disagreement",)
    steps: int | None = None
    quick: bool = False
    extra: tuple[str, ...] = ()

    def runs(self) -> list["Run"]:
        return [Run(self.family, env, labels, query, seed, self.steps, self.quick, self.extra)
                for env in self.envs for labels in self.labels for query in self.queries for seed in self.seeds]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["envs"], d["seeds"], d["labels"], d["query"] = list(self.envs), list(self.seeds), list(self.labels), \
            list(d.pop("queries"))
        d["extra"] = shlex.join(self.extra)
        return d


@dataclass(frozen=True)
class Run:
    """One benchmark run: one grid point, one seed, one directory."""

    family: str
    env: str
    labels: int
    query: str
    seed: int
    steps: int | None = None
    quick: bool = False
    extra: tuple[str, ...] = field(default=())

    @property
    def rel_dir(self) -> Path:
        return Path(self.family) / self.env.replace("/", "_") / f"labels{self.labels}-{self.query}" / f"seed{self.seed}"

    def argv(self) -> list[str]:
        """The CLI arguments of this run, after ``python -m``, without ``--out`` and ``--resume``."""
        spec = FAMILIES[self.family]
        argv = [spec.module, "--synthetic-oracle", spec.env_flag, self.env, "--seeds", str(self.seed),
                "--labels", str(self.labels), "--query", self.query]
        if self.steps is not None:
            argv += ["--steps", str(self.steps)]
        if self.quick:
            argv.append("--quick")
        if spec.has_workers:
            argv += ["--workers", "1"]
        return argv + list(self.extra)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _extra(x) -> tuple[str, ...]:
    if x is None:
        return ()
    return tuple(shlex.split(x)) if isinstance(x, str) else tuple(str(a) for a in x)


BLOCK_KEYS = {"family", "envs", "env", "seeds", "labels", "query", "queries", "steps", "quick", "extra"}


def block_from_dict(d: dict) -> Block:
    """A grid block from a mapping with the flags' names (``envs``/``env``, ``query``/``queries`` as list or one)."""
    if not isinstance(d, dict):
        raise ValueError(f"a grid block must be a mapping, got {type(d).__name__}")
    unknown = set(d) - BLOCK_KEYS
    if unknown:
        raise ValueError(f"unknown grid key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(BLOCK_KEYS))}")
    for key in ("family", "labels"):
        if key not in d:
            raise ValueError(f"a grid block needs {key!r}")
    envs = d.get("envs", d.get("env"))
    if envs is None:
        raise ValueError("a grid block needs 'envs'")
    return Block(family=str(d["family"]), envs=tuple(str(e) for e in _as_list(envs)),
                 seeds=tuple(int(s) for s in _as_list(d.get("seeds", [0]))),
                 labels=tuple(int(n) for n in _as_list(d["labels"])),
                 queries=tuple(str(q) for q in _as_list(d.get("query", d.get("queries", "disagreement")))),
                 steps=None if d.get("steps") is None else int(d["steps"]), quick=bool(d.get("quick", False)),
                 extra=_extra(d.get("extra")))


def load_grid(path: Path) -> list[Block]:
    """The blocks of a grid file: JSON, or YAML (``.yaml``/``.yml``, needs PyYAML); one block or ``grid: [...]``."""
    text = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    blocks = data["grid"] if isinstance(data, dict) and "grid" in data else data
    return [block_from_dict(b) for b in _as_list(blocks)]


def save_grid(path: Path, blocks: list[Block]) -> None:
    path.write_text(json.dumps({"grid": [b.to_dict() for b in blocks]}, indent=2) + "\n")


def block_from_args(args: argparse.Namespace) -> Block:
    return Block(family=args.family, envs=tuple(args.envs), seeds=tuple(args.seeds), labels=tuple(args.labels),
                 queries=tuple(args.query), steps=args.steps, quick=args.quick, extra=_extra(args.extra))


def grid_problem(blocks: list[Block]) -> str | None:
    """Why the grid cannot run (unknown family or query, bad numbers, a managed flag in extra, a shared directory)."""
    seen: dict[Path, Run] = {}
    for b in blocks:
        if b.family not in FAMILIES:
            return f"unknown family {b.family!r}; choose one of {', '.join(FAMILIES)}"
        if not b.envs or not b.seeds or not b.labels or not b.queries:
            return f"{b.family}: envs, seeds, labels and query each need at least one value"
        bad = [q for q in b.queries if q not in QUERIES]
        if bad:
            return f"unknown query method {bad[0]!r}; choose from {', '.join(QUERIES)}"
        problem = seeds_problem(list(b.seeds))
        if problem:
            return problem
        if any(n < 1 for n in b.labels):
            return f"--labels must be >= 1, got {min(b.labels)}"
        if b.steps is not None and not FAMILIES[b.family].has_steps:
            return f"{b.family} has no --steps (give its own budget flags in --extra, e.g. --iterations)"
        if b.steps is not None and b.steps < 1:
            return f"--steps must be >= 1, got {b.steps}"
        managed = [a for a in b.extra if a.split("=")[0] in MANAGED]
        if managed:
            return f"--extra may not set {managed[0]}: the sweep sets it per run"
        for r in b.runs():
            other = seen.setdefault(r.rel_dir, r)
            if other != r:
                return (f"two grid points write to {r.rel_dir} with different settings ({other.argv()} vs {r.argv()}); "
                        "put them in different --out directories")
    return None


# -- running -----------------------------------------------------------------------

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
    return str(Path(__file__).resolve().parent.parent)


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

CSV_COLUMNS = ("family", "env", "labels", "query", "figure", "n", "mean", "ci_low", "ci_high", "iqm", "values")


def collect(root: Path) -> dict[tuple, dict[str, list[float | None]]]:
    """Finished runs under ``root``: {(family, env, labels, query): {figure key: [value per seed]}}, seeds in order."""
    import re

    found: dict[tuple, dict[int, dict]] = {}
    for summary in sorted(Path(root).glob("*/*/labels*-*/seed*/summary.json")):
        seed_dir, cfg_dir = summary.parent, summary.parent.parent
        family, env = cfg_dir.parent.parent.name, cfg_dir.parent.name
        m = re.fullmatch(r"labels(\d+)-(\w+)", cfg_dir.name)
        s = re.fullmatch(r"seed(\d+)", seed_dir.name)
        if family not in FAMILIES or not m or not s:
            continue
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        found.setdefault((family, env, int(m.group(1)), m.group(2)), {})[int(s.group(1))] = data
    out = {}
    for key, by_seed in found.items():
        figures = FAMILIES[key[0]].figures
        out[key] = {k: [by_seed[seed].get(k) for seed in sorted(by_seed)] for k, _ in figures}
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])))


def aggregate(root: Path) -> dict:
    """Writes aggregate.csv, aggregate.md and aggregate.png in ``root`` from its finished runs; returns their paths."""
    from benchmarks.stats import describe

    root = Path(root)
    rows = []
    for (family, env, labels, query), figures in collect(root).items():
        for key, values in figures.items():
            rows.append({"family": family, "env": env, "labels": labels, "query": query, "figure": key,
                         **describe(values), "values": " ".join("nan" if v is None else f"{v:.6g}" for v in values)})
    with open(root / "aggregate.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (root / "aggregate.md").write_text(markdown_table(rows))
    plot_aggregate(root / "aggregate.png", rows)
    return {"rows": rows, "csv": str(root / "aggregate.csv"), "md": str(root / "aggregate.md"),
            "png": str(root / "aggregate.png")}


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def markdown_table(rows: list[dict]) -> str:
    """One markdown table: a row per configuration and figure."""
    labels = {k: v for spec in FAMILIES.values() for k, v in spec.figures}
    lines = ["| family | env | labels | query | figure | n | mean | 95% CI of the mean | IQM |",
             "|---|---|---:|---|---|---:|---:|---|---:|"]
    for r in rows:
        ci = "–" if r["n"] == 0 else f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        lines.append(f"| {r['family']} | {r['env']} | {r['labels']} | {r['query']} | {labels.get(r['figure'], r['figure'])} "
                     f"| {r['n']} | {_fmt(r['mean'])} | {ci} | {_fmt(r['iqm'])} |")
    note = ("\nn: seeds with a finite value (a ratio is undefined when its reference, the true return or gain, is <= 0). "
            "CI: 95% percentile bootstrap of the mean over seeds (2000 resamples, seed 0). "
            "IQM: rliable's interquartile mean (25% trimmed mean: floor(n/4) seeds dropped at each end, "
            "so with fewer than 4 seeds the plain mean; benchmarks/stats.py).\n")
    return "\n".join(lines) + "\n" + note


def plot_aggregate(path: Path, rows: list[dict]) -> None:
    """rliable-style interval plot: a panel per figure, a row per configuration; bar = 95% CI, | = mean, ◆ = IQM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {k: v for spec in FAMILIES.values() for k, v in spec.figures}
    figures = [f for f in dict.fromkeys(r["figure"] for r in rows) if any(x["figure"] == f and x["n"] for x in rows)]
    configs = list(dict.fromkeys((r["family"], r["env"], r["labels"], r["query"]) for r in rows))
    if not figures:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    cmap = plt.get_cmap("tab10")
    envs = list(dict.fromkeys(c[1] for c in configs))
    fig, axes = plt.subplots(1, len(figures), figsize=(3.6 * len(figures) + 2.2, 0.42 * len(configs) + 1.4),
                             sharey=True, squeeze=False)
    for ax, fig_key in zip(axes[0], figures):
        for i, cfg in enumerate(configs):
            r = next((x for x in rows if (x["family"], x["env"], x["labels"], x["query"]) == cfg
                      and x["figure"] == fig_key), None)
            if r is None or not r["n"]:
                continue
            color = cmap(envs.index(cfg[1]) % 10)
            y = len(configs) - 1 - i
            ax.barh(y, r["ci_high"] - r["ci_low"], left=r["ci_low"], height=0.6, color=color, alpha=0.55)
            ax.vlines(r["mean"], y - 0.3, y + 0.3, color="black", lw=2)
            ax.plot(r["iqm"], y, marker="D", ms=4, color="white", mec="black", ls="none")
        if fig_key in ("normalized_ratio", "ratio", "gain_ratio"):
            ax.axvline(1.0, color="gray", ls="--", lw=1)
        ax.margins(x=0.12)
        ax.set_title(labels.get(fig_key, fig_key), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[0][0].set_yticks(range(len(configs)))
    axes[0][0].set_yticklabels([f"{env} · {lab} labels · {q}" for _, env, lab, q in reversed(configs)], fontsize=9)
    fig.suptitle("bar: 95% bootstrap CI of the mean over seeds   |: mean   ◆: IQM", fontsize=9, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- CLI ---------------------------------------------------------------------------

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


if __name__ == "__main__":
    from benchmarks.sweep import main as _main  # so that Ray ships run_task by reference, not as __main__'s copy

    _main(sys.argv[1:])
