"""A sweep's grid: families, blocks of env x labels x query x seeds, the runs they make, the grid file."""


import argparse
import json
import shlex
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.checks import seeds_problem
from benchmarks.kit.config import QueryMethod


QUERIES = typing.get_args(QueryMethod)
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
