"""Runs one benchmark: the agent on the learned reward vs the same agent on the true reward.

A family module (``benchmarks.mujoco``, ``benchmarks.atari``) describes how to
build its environments and reward model in a ``Family``; this module parses
the common flags, runs the two arms (same seed, same step budget) for every
seed, and writes ``curves.csv``, ``curves.png`` and ``summary.json``. Each run
also saves its trained agent (``agent-{arm}-seed{k}.zip``, with
``vecnormalize-{arm}-seed{k}.pkl`` when the agent normalises observations) and
the learned arm its reward model (``reward-model-seed{k}.pt``, read back by
``prefrl.load_reward``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.checks import MAX_STEPS, flags_differ, out_problem, remove_empty_stores, seeds_problem

OUTPUTS = ("curves.csv", "curves.png", "summary.json", "timing.json")
ARMS = ("learned", "true")
UPPER = "upper"
"""The optional third arm (``--upper-bound``): the true reward through everything the learned arm gets."""
TIMING_KEYS = ("wall_seconds", "steps_per_second", "cpu_seconds", "steps_per_cpu_second", "fit_seconds",
               "pretrain_seconds", "eval_seconds")
"""Per-run figures that depend on the machine: they go to timing.json, so that summary.json of
the same command and seed is identical from run to run."""


@dataclass
class Family:
    """How a family of environments plugs into the benchmark.

    Attributes:
        name: "mujoco" or "atari" (also picks the agent defaults).
        check_env_id: raises ValueError for an id the family does not support;
            returns the canonical id.
        make_venv: (args, n_envs, seed) -> SB3 VecEnv for ``args.env`` whose
            envs are wrapped in SB3's Monitor (true episode returns in info).
        make_ensemble: (venv, args) -> RewardEnsemble for its observations.
        wrap_agent_env: (venv, arm, args) -> the VecEnv the agent trains on (e.g.
            observation normalisation); the same for both arms.
        obs_transform: args -> the loop's obs_transform (what the reward
            model sees), or ``None`` for the observation as it is.
        episode_end_key: info key marking the true episode end for segments.
        segment_length: default L.
        random_steps: steps per env of the initial random policy, whose
            segments make the first ~25% of the labels.
        trainer_overrides: TrainerConfig fields to change for this family.
        loop_overrides: LoopConfig fields to change for this family.
        gpu_defaults: flag values that replace the CPU defaults when the
            device resolves to CUDA and the user did not set the flag.
        record_agent: (agent, args, seed, path) -> None, writes a short clip
            of the trained learned-reward agent to ``path`` (a GIF), or None.
        make_eval_venv: (args, n_envs, seed) -> the VecEnv the final policy
            is evaluated on (e.g. with a cap on episode length); default
            ``make_venv``.
        make_render: args -> ``render(segments) -> list of media dicts``, what a
            person sees of the queried segments with ``--labeler web``.
        keep_render_state: the loop records ``info["sim_state"]`` for ``make_render``
            (MuJoCo) with ``--labeler web``.
        defer_rewards: the learned arm scores its steps once per rollout
            (``LearnedRewardVecEnv(defer_rewards=True)``), which needs every
            wrapper of ``wrap_agent_env`` to pass the reward through (Atari: yes;
            MuJoCo's ``VecNormalize`` normalises rewards: no).
    """

    name: str
    check_env_id: Callable[[str], str]
    make_venv: Callable
    make_ensemble: Callable
    wrap_agent_env: Callable = lambda venv, arm, args: venv
    obs_transform: Callable | None = None
    episode_end_key: str | None = None
    segment_length: int = 25
    random_steps: int = 1000
    trainer_overrides: dict = field(default_factory=dict)
    loop_overrides: dict = field(default_factory=dict)
    gpu_defaults: dict = field(default_factory=dict)
    record_agent: Callable | None = None
    make_eval_venv: Callable | None = None
    make_render: Callable | None = None
    keep_render_state: bool = False
    defer_rewards: bool = False


def build_parser(family: str, default_env: str, env_flag: str, defaults: dict) -> argparse.ArgumentParser:
    """The flags every benchmark shares; ``defaults`` gives the family's values."""
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{family}",
        description=(
            f"Train a {family} agent on a reward learned from preferences and, with the same seed and step "
            "budget, the same agent on the true reward; write curves.csv, curves.png and summary.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_labeler_flags(p)
    p.add_argument(env_flag, dest="env", default=default_env, help="environment to train on")
    p.add_argument("--steps", type=int, default=defaults["steps"], help="environment steps per run")
    p.add_argument("--labels", type=int, default=defaults["labels"], help="total label budget")
    p.add_argument("--noise", type=float, default=0.1, help="probability that the oracle answers at random")
    p.add_argument("--query", choices=("disagreement", "entropy", "random"), default="disagreement",
                   help="how queries are picked from the candidate pool")
    p.add_argument("--agent", choices=("ppo", "a2c"), default=defaults["agent"], help="RL algorithm")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; each runs both arms")
    p.add_argument("--n-envs", type=int, default=defaults["n_envs"], help="parallel environments per run")
    p.add_argument("--anchor-fraction", type=float, default=None,
                   help="share of query candidates paired with a clip labeled before instead of a recent one "
                        "(family default if unset; 0 = the paper)")
    p.add_argument("--segment-length", type=int, default=None, help="steps per segment (family default if unset)")
    p.add_argument("--reward-std", type=float, default=None,
                   help="std of the normalised learned reward the agent gets (family default if unset)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--workers", type=int, default=None,
                   help="runs in parallel processes (default: one per CPU core, at most one per run)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default runs/<family>-<env>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (same flags): finished arms are kept, the others "
                        "restart from their last checkpoint with the labels already in their store")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="an arm saves a checkpoint after each reward-model fit and at least this often (default 10)")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="also log each run to TensorBoard under DIR/<arm>-seed<k>_1 (SB3's train/ and rollout/ "
                        "metrics, true_return, and the pref/ metrics of the learned arm); needs `pip install tensorboard`")
    p.add_argument("--eval-episodes", type=int, default=30,
                   help="fresh episodes on which each final policy (and the random policy) is evaluated")
    p.add_argument("--upper-bound", action="store_true",
                   help="add a third arm: the true reward through everything the learned arm gets (normalised per "
                        "step, episode ends as time-outs): what a perfect reward model would give")
    p.add_argument("--quick", action="store_true", help="a ~1-minute smoke run: tiny budget, few labels")
    return p


LABELERS = ("synthetic-oracle", "web")


def add_labeler_flags(p: argparse.ArgumentParser) -> None:
    """``--labeler {synthetic-oracle,web}`` (``--synthetic-oracle`` for short) and the web app's flags."""
    p.add_argument("--labeler", choices=LABELERS, default=None,
                   help="who labels: synthetic-oracle (prefers the larger true return, with --noise random answers) "
                        "or web (you, in a local web page whose URL is printed when the run starts; training goes "
                        "on while you label)")
    p.add_argument("--synthetic-oracle", dest="labeler", action="store_const", const="synthetic-oracle",
                   help="short for --labeler synthetic-oracle")
    p.add_argument("--web-host", default="127.0.0.1",
                   help="--labeler web: interface the page listens on (0.0.0.0: colleagues on a trusted network)")
    p.add_argument("--web-port", type=int, default=0, help="--labeler web: TCP port (0 = any free port)")
    p.add_argument("--label-timeout", type=float, default=300.0,
                   help="--labeler web: seconds a shown query waits for its answer before it goes back to the queue "
                        "(or is dropped, see --on-timeout)")
    p.add_argument("--on-timeout", choices=("requeue", "drop"), default="requeue",
                   help="--labeler web: what happens to a query nobody answered in --label-timeout seconds")


def labeler_problem(args: argparse.Namespace, n_servers: int) -> str | None:
    """Why the labeler flags cannot work, or None (``n_servers``: learned arms that each serve a page)."""
    if args.labeler is None:
        return ("choose a labeler: --labeler synthetic-oracle (or --synthetic-oracle: labels by the true return, "
                "with --noise random answers) or --labeler web (you label in a local web page while the agent trains)")
    if args.labeler != "web":
        return None
    if not 0 <= args.web_port <= 65535:
        return f"--web-port must be a TCP port in 0..65535 (0 = any free one), got {args.web_port}"
    if args.web_port != 0 and n_servers > 1:
        return (f"--web-port {args.web_port} with {n_servers} learned runs (seeds): each serves its own page, "
                "so they cannot share one port; use --web-port 0 (any free port; every URL is printed)")
    if not 0 < args.label_timeout < 1e9:
        return f"--label-timeout must be a positive number of seconds, got {args.label_timeout}"
    import importlib.util

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        return "--labeler web needs the web app's packages: pip install 'prefrl[web]' (fastapi, uvicorn)"
    return None


def validate(args: argparse.Namespace, family: Family, parser: argparse.ArgumentParser) -> None:
    """Checks the flags; calls ``parser.error`` (exit 2, one line) on bad input."""
    problem = labeler_problem(args, len(args.seeds))
    if problem:
        parser.error(problem)
    if args.labeler == "web" and family.make_render is None:
        parser.error(f"--labeler web is not available for {family.name} yet; use --labeler synthetic-oracle")
    if args.labeler == "web" and family.keep_render_state and args.anchor_fraction:
        parser.error("--anchor-fraction > 0 with --labeler web: clips labeled before are kept without the simulator "
                     "states a person needs to see them; leave --anchor-fraction at 0")
    try:
        args.env = family.check_env_id(args.env)
    except ValueError as err:
        parser.error(str(err))
    for name in ("steps", "n_envs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps > MAX_STEPS:
        parser.error(f"--steps {args.steps} is more than 2^53, beyond the exact integers of the float64 label "
                     "schedule; lower --steps")
    if args.labels < 1:
        parser.error(f"--labels must be >= 1, got {args.labels}")
    if args.labels > args.steps:
        parser.error(f"--labels {args.labels} is more than --steps {args.steps}: ask for fewer labels than steps")
    if not 0.0 <= args.noise <= 1.0:
        parser.error(f"--noise must be a probability in [0, 1], got {args.noise}")
    if args.anchor_fraction is not None and not 0.0 <= args.anchor_fraction <= 1.0:
        parser.error(f"--anchor-fraction must be a share in [0, 1], got {args.anchor_fraction}")
    if args.reward_std is not None and not 0 < args.reward_std < 1e6:
        parser.error(f"--reward-std must be a positive number, got {args.reward_std}")
    if args.segment_length is not None and args.segment_length < 1:
        parser.error(f"--segment-length must be >= 1, got {args.segment_length}")
    problem = seeds_problem(args.seeds)
    if problem:
        parser.error(problem)
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    from agents import resolve_device

    try:
        args.device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if not args.checkpoint_minutes >= 0:
        parser.error(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    try:
        problem = budget_problem(args, family)
    except Exception as err:  # the estimate needs one env; the run itself reports what is wrong with it
        problem = None
        print(f"prefrl: could not check the budgets on one env ({type(err).__name__}: {err})", file=sys.stderr)
    if problem:
        parser.error(problem)
    if args.resume:
        if args.out is None:
            parser.error("--resume needs --out: the directory of the run to continue")
        problem = resume_problem(args)
        if problem:
            parser.error(problem)
        return
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = Path("runs") / f"{family.name}-{args.env.replace('/', '_')}-{stamp}"
    clash = [f for f in (*OUTPUTS, "labels-seed0.sqlite") if (args.out / f).exists()]
    clash += [p.name for pattern in ("labels-seed*.sqlite", "learned-agent-seed*.gif", "agent-*-seed*.zip",
                                     "reward-model-seed*.pt") for p in args.out.glob(pattern)] \
        if args.out.exists() else []
    if (args.out / RUN_FILE).exists():
        clash.append(RUN_FILE)
    if clash:
        parser.error(f"--out {args.out} already holds another run's files ({', '.join(sorted(set(clash)))}); "
                     "choose a new directory (or add --resume to continue it), nothing was overwritten")
    problem = out_problem(args.out)
    if problem:
        parser.error(problem)
    if args.tensorboard is not None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            parser.error("--tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or pip install 'prefrl[tensorboard]')")
        problem = out_problem(args.tensorboard)
        if problem:
            parser.error(problem.replace("--out", "--tensorboard", 1))


# -- resume ----------------------------------------------------------------------

RUN_FILE = "run.json"
"""The flags of a run, written when it starts; ``--resume`` refuses flags that differ from them."""
_NOT_COMPARED = {"out", "resume", "checkpoint_minutes", "workers", "tensorboard", "device", "threads", "web_host",
                 "web_port", "label_timeout", "on_timeout"}


def budget_problem(args: argparse.Namespace, family: "Family") -> str | None:
    """Why the budgets cannot work here, judged from one env of the task, or None.

    Checks, in order: ``--segment-length`` against the env's time limit and the steps kept
    (:func:`segment_length_problem`), ``--steps`` against a time estimate from the env's raw
    speed (:func:`steps_time_problem`), and the label budget's memory, below.

    The first query round samples ``candidate_factor`` candidate pairs for each of the initial
    labels (25% of the budget): 2 x n0 x factor clips of L steps, each step stored as the reward
    model sees it (after the family's ``obs_transform``), its action and its true reward.
    """
    from prefrl import LoopConfig

    n0 = max(round(0.25 * args.labels), 1)
    factor = family.loop_overrides.get("candidate_factor", LoopConfig.candidate_factor)
    L = args.segment_length or family.segment_length
    venv = family.make_venv(args, 1, 0)
    try:
        obs = np.asarray(venv.reset())
        if family.obs_transform is not None:
            obs = np.asarray(family.obs_transform(args)(obs))
        act = np.asarray([venv.action_space.sample()])
        limit = _time_limit(venv)
        raw_sps = _raw_steps_per_second(venv)
    finally:
        venv.close()
    problem = segment_length_problem(args, family, L, limit) or steps_time_problem(args, raw_sps)
    if problem:
        return problem
    step_bytes = obs[0].nbytes + act[0].nbytes + 4
    need = 2 * n0 * factor * L * step_bytes
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > avail // 2:
        return (f"--labels {args.labels} needs ~{need / 1e9:.1f} GB for its first query round ({n0} labels x {factor} "
                f"candidate pairs x 2 clips x {L} steps x {step_bytes} bytes), more than half the {avail / 1e9:.1f} GB "
                f"of memory available here: lower --labels")
    return None


def _raw_steps_per_second(venv, seconds: float = 0.05) -> float:
    """Steps per second of random actions in one env of ``venv`` here: an upper bound on any agent's speed."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 8:
        venv.step(np.asarray([venv.action_space.sample()]))
        n += 1
    return n / (time.perf_counter() - t0)


YEAR_SECONDS = 365 * 24 * 3600


def cpu_budget() -> int:
    """Cores this run may use: ``$PREFRL_CPUS`` when a scheduler gave it a share (``benchmarks.sweep`` on Ray
    sets it to the task's CPUs), else every core of the machine. Sizes ``--workers`` and threads per run."""
    try:
        share = int(os.environ.get("PREFRL_CPUS", "0"))
    except ValueError:
        share = 0
    return share if share > 0 else (os.cpu_count() or 1)


def steps_time_problem(args: argparse.Namespace, raw_sps: float) -> str | None:
    """Why --steps cannot finish: more than a year even at the raw env speed measured here on every core, or None.

    A step budget takes no memory (curves keep 50 rows, the episode log its last 10 returns), so its
    bound is time: the agent, the reward model and the labels only make a run slower than the raw env.
    """
    cores = cpu_budget()
    runs = len(args.seeds) * (3 if args.upper_bound else 2)
    floor = args.steps * runs / (raw_sps * cores)
    if floor > YEAR_SECONDS:
        return (f"--steps {args.steps} would take more than {floor / YEAR_SECONDS:,.0f} years here: {runs} runs even at "
                f"the raw speed of {args.env} measured now ({raw_sps:,.0f} random steps/s on each of {cores} "
                f"cores); lower --steps")
    return None


def _time_limit(venv) -> int | None:
    """The episode time limit of a vector env's first env (gymnasium's ``max_episode_steps``), or None."""
    try:
        spec = venv.get_attr("spec", [0])[0]
    except Exception:  # noqa: BLE001 -- a vector env without get_attr: no limit known
        return None
    limit = getattr(spec, "max_episode_steps", None)
    return int(limit) if limit is not None and limit > 0 else None


def segment_length_problem(args: argparse.Namespace, family: "Family", L: int, time_limit: int | None) -> str | None:
    """Why no clip of L steps can be cut from this run's rollouts, or None.

    A clip lies inside one episode of one env, within the steps the loop keeps per env
    (``buffer_steps``) and the steps each env takes in the whole run (--steps / --n-envs).
    """
    from prefrl import LoopConfig

    keep = family.loop_overrides.get("buffer_steps", LoopConfig.buffer_steps)
    per_env = args.steps // args.n_envs
    for bound, what in ((time_limit, f"the episodes of {args.env} (time limit {time_limit} steps)"),
                        (keep, f"the {keep} recent steps per env the loop keeps"),
                        (per_env, f"the {per_env} steps each of the {args.n_envs} envs takes (--steps / --n-envs)")):
        if bound is not None and L > bound:
            return f"--segment-length {L} is longer than {what}: no clip fits; give --segment-length <= {bound}"
    return None


def _run_flags(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k not in _NOT_COMPARED}


def resume_problem(args: argparse.Namespace) -> str | None:
    """Why ``--resume`` cannot continue ``args.out`` with these flags, or None."""
    path = args.out / RUN_FILE
    if not path.exists():
        return (f"--resume: {args.out} holds no run to continue ({RUN_FILE} is missing); "
                "start it without --resume")
    saved = dict(json.loads(path.read_text())["flags"])
    if "labeler" not in saved and saved.pop("synthetic_oracle", False):  # runs started before --labeler
        saved["labeler"] = "synthetic-oracle"
    differ = flags_differ(saved, _run_flags(args))
    if differ:
        return f"--resume: the flags differ from the run in {args.out}: {'; '.join(differ)}; give the same flags"
    return None


def _atomic_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_json_safe(data)) + "\n")
    os.replace(tmp, path)


class EpisodeLog:
    """Finished training episodes: how many, and the true returns of the last ``keep`` (constant memory)."""

    def __init__(self, count: int = 0, recent: list[float] | None = None, keep: int = 10):
        self.count = count
        self.recent: deque[float] = deque(recent or [], maxlen=keep)

    def add(self, ret: float) -> None:
        self.count += 1
        self.recent.append(ret)

    def state(self) -> dict:
        return {"count": self.count, "recent": list(self.recent)}

    @classmethod
    def from_state(cls, state) -> "EpisodeLog":
        if isinstance(state, list):  # checkpoints before the log was bounded: [(step, return), ...]
            return cls(len(state), [r for _, r in state])
        return cls(state["count"], state["recent"])


class Checkpoint:
    """One arm's checkpoint directory ``<out>/checkpoints/<arm>-seed<k>``, replaced atomically.

    Files: ``agent.zip`` (SB3, with its optimizer and step count), ``vecnormalize.pkl``
    when the agent normalises observations, ``loop.pt`` (``PreferenceLoop.state_dict``)
    and ``progress.json`` (curve rows, episode returns, time spent). A new checkpoint is
    written next to the old one and swapped in by renames, so a kill at any moment leaves
    one complete checkpoint. ``result.json`` marks a finished arm.
    """

    def __init__(self, out: Path, arm: str, seed: int):
        self.root = out / "checkpoints"
        self.path = self.root / f"{arm}-seed{seed}"
        self.result_path = self.root / f"{arm}-seed{seed}.result.json"
        self.reached_path = self.root / f"{arm}-seed{seed}.reached.json"

    def latest(self) -> Path | None:
        for p in (self.path, self.path.with_name(self.path.name + ".old")):
            if (p / "progress.json").exists():
                return p
        return None

    def write(self, agent, loop, progress: dict) -> None:
        import torch
        from stable_baselines3.common.vec_env import VecNormalize

        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        agent.save(tmp / "agent.zip")
        env = agent.get_env()
        if isinstance(env, VecNormalize):
            env.save(str(tmp / "vecnormalize.pkl"))
        if loop is not None:
            torch.save(loop.state_dict(), tmp / "loop.pt")
        (tmp / "progress.json").write_text(json.dumps(_json_safe(progress)))  # last: marks it complete
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        if old.exists():
            shutil.rmtree(old)

    def restore(self, agent_cls, env, loop, device: str):
        """Loads the latest checkpoint: returns (agent, progress)."""
        import torch
        from stable_baselines3.common.vec_env import VecNormalize

        path = self.latest()
        if isinstance(env, VecNormalize) and (path / "vecnormalize.pkl").exists():
            saved = VecNormalize.load(str(path / "vecnormalize.pkl"), env.venv)
            env.obs_rms, env.ret_rms = saved.obs_rms, saved.ret_rms
        agent = agent_cls.load(path / "agent.zip", env=env, device=device)
        if loop is not None:
            loop.load_state_dict(torch.load(path / "loop.pt", weights_only=False))
        return agent, json.loads((path / "progress.json").read_text())


# -- one arm -------------------------------------------------------------------


def _run_arm(family_module: str, args: argparse.Namespace, seed: int, arm: str, threads: int, queue) -> dict:
    """Trains one agent (learned or true reward) and returns its curve and figures."""
    import importlib

    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from agents import make_agent
    from prefrl import LearnedRewardVecEnv, LoopConfig, PreferenceLoop, PreferenceStore, SyntheticOracle
    from prefrl import TrainerConfig

    # One torch thread per run on the CPU, whatever --workers says: some torch kernels round differently
    # with more threads (LAPACK's QR behind SB3's orthogonal init, the gradient-norm reduction of its
    # clipping), so the same seed would give another agent, other labels and other figures with
    # --workers 1 (2 threads per run here) than with --workers 2. The envs may still use `threads`.
    torch.set_num_threads(1 if args.device == "cpu" else threads)
    ckpt = Checkpoint(args.out, arm, seed)
    if args.resume and ckpt.result_path.exists():  # finished before the interruption
        queue.put((arm, seed, args.steps, "finished before the interruption; kept"))
        return json.loads(ckpt.result_path.read_text())
    resume_from = ckpt.latest() if args.resume else None
    store_path = args.out / f"labels-seed{seed}.sqlite"
    if args.resume and resume_from is None and arm == "learned" and store_path.exists():
        # killed before its first checkpoint: start the arm again, keeping its early labels beside it
        store_path.rename(store_path.with_name(f"labels-seed{seed}.before-resume-{int(time.time())}.sqlite"))
    family: Family = importlib.import_module(family_module).FAMILY
    venv = family.make_venv(args, args.n_envs, seed)
    loop, pre, learned_env = None, {}, None
    if arm == "learned":
        torch.manual_seed(seed)
        L = args.segment_length or family.segment_length
        overrides = dict(family.loop_overrides)
        if args.anchor_fraction is not None:
            overrides["anchor_fraction"] = args.anchor_fraction
        if args.reward_std is not None:
            overrides["target_std"] = args.reward_std
        web = getattr(args, "labeler", "synthetic-oracle") == "web"
        if web:
            overrides["keep_render_state"] = family.keep_render_state
        cfg = LoopConfig(total_labels=args.labels, total_steps=args.steps, segment_length=L, query=args.query,
                         seed=seed, **overrides)
        tcfg = TrainerConfig(device=args.device, seed=seed, label_noise=args.noise if args.noise < 1 else 0.99,
                             **family.trainer_overrides)
        store = PreferenceStore(store_path, seed=seed)
        labeler = SyntheticOracle(noise=args.noise, seed=seed)
        if web:  # queries wait in the store's own file; a person answers them in the page served below
            from prefrl import LabelQueue, QueueLabeler

            labeler = QueueLabeler(LabelQueue(store, timeout_s=args.label_timeout, on_timeout=args.on_timeout),
                                   family.make_render(args))
        loop = PreferenceLoop(family.make_ensemble(venv, args), labeler,
                              args.n_envs, cfg, tcfg, store,
                              family.obs_transform(args) if family.obs_transform else None)
        venv = learned_env = LearnedRewardVecEnv(venv, loop, family.episode_end_key,
                                                 defer_rewards=family.defer_rewards)
        if resume_from is None:
            t = time.perf_counter()
            venv.collect_random(min(family.random_steps, max(2 * L, args.steps // args.n_envs)), seed=seed)
            pre = loop.pretrain()
            pre["seconds"] = time.perf_counter() - t
            queue.put((arm, seed, 0, "pretrained" if pre.get("labels") else
                       f"posted the {loop.schedule.initial_labels} initial queries; the agent trains on the "
                       "untrained reward model until their answers arrive"))
    if arm == UPPER:
        from agents.wrappers import NormalisedTrueReward

        std = args.reward_std if args.reward_std is not None else family.loop_overrides.get("target_std", 1.0)
        venv = NormalisedTrueReward(venv, target_std=std)
    env = family.wrap_agent_env(venv, "learned" if arm == UPPER else arm, args)
    tb = dict(tensorboard_log=str(args.tensorboard)) if args.tensorboard is not None else {}
    agent = make_agent(args.agent, env, family.name, seed=seed, device=args.device, **tb)
    rows: list[dict] = []
    episodes = EpisodeLog()
    before = {"wall": 0.0, "cpu": 0.0}  # time spent before a resume
    resumed_from = None
    if resume_from is not None:
        agent, progress = ckpt.restore(type(agent), env, loop, args.device)
        if args.tensorboard is not None:
            agent.tensorboard_log = str(args.tensorboard)
        rows, episodes = progress["rows"], EpisodeLog.from_state(progress["episodes"])
        pre, before = progress["pre"], {"wall": progress["wall"], "cpu": progress["cpu"]}
        resumed_from = agent.num_timesteps
        reached = json.loads(ckpt.reached_path.read_text())["env_step"] if ckpt.reached_path.exists() else resumed_from
        redone = max(0, reached - resumed_from)
        queue.put((arm, seed, resumed_from, f"resumed from its checkpoint at step {resumed_from} "
                                            f"({redone} steps done before the crash are redone)"))
    log_every = max(args.steps // 50, 1)
    last_ckpt = [time.monotonic()]
    at_step = [agent.num_timesteps]
    server = start_label_server(args, loop, seed, rows, at_step, queue) if loop is not None and loop.is_async else None

    def checkpoint(model) -> None:
        ckpt.write(model, loop, {"rows": rows, "episodes": episodes.state(), "pre": pre,
                                 "wall": before["wall"] + time.perf_counter() - t0,
                                 "cpu": before["cpu"] + time.process_time() - c0})
        last_ckpt[0] = time.monotonic()

    class Curve(BaseCallback):
        last_log = 0
        last_sent = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.add(float(info["episode"]["r"]))
            return True

        def _on_rollout_end(self) -> None:
            at_step[0] = self.num_timesteps
            fitted = False
            if learned_env is not None and learned_env.defer_rewards:  # the rollout's rewards, before any refit
                learned_env.pay_rollout(self.model.rollout_buffer, self.locals["values"], self.locals["dones"])
            if loop is not None:
                for k, v in (loop.update(self.num_timesteps) or {}).items():
                    self.logger.record(f"pref/{k}", v)  # reaches TensorBoard with --tensorboard
                    fitted = True
            recent = episodes.recent
            if recent:
                self.logger.record("rollout/true_return", float(np.mean(recent)))  # the env's reward, both arms
            if self.num_timesteps - self.last_log >= log_every:
                self.last_log = self.num_timesteps
                recent = episodes.recent
                m = loop.metrics if loop is not None else {}
                rows.append({
                    "env_step": self.num_timesteps, "run": arm, "seed": seed,
                    "true_return": float(np.mean(recent)) if recent else float("nan"),
                    "episodes": episodes.count,
                    "labels": m.get("labels", float("nan")),
                    "rm_accuracy": m.get("rm/val_accuracy", float("nan")),
                    "reward_correlation": m.get("corr/pearson", float("nan")),
                    "wall_seconds": time.perf_counter() - t0,
                })
            queue.put((arm, seed, self.num_timesteps - self.last_sent, None))
            self.last_sent = self.num_timesteps
            if fitted or time.monotonic() - last_ckpt[0] >= 60 * args.checkpoint_minutes:
                checkpoint(self.model)
            else:  # how far the arm got: after a crash, the steps past the checkpoint are redone
                _atomic_json(ckpt.reached_path, {"env_step": self.num_timesteps})

    t0, c0 = time.perf_counter(), time.process_time()
    curve = Curve()
    curve.last_sent = curve.last_log = agent.num_timesteps
    if resumed_from is None and loop is not None:
        checkpoint(agent)  # the labels of the initial policy and the fit on them are not asked for twice
    try:
        agent.learn(max(args.steps - agent.num_timesteps, 1), callback=curve, tb_log_name=f"{arm}-seed{seed}",
                    reset_num_timesteps=resumed_from is None)
    finally:
        if server is not None:
            server.stop()
            stats = loop.labeler.queue.stats()
            queue.put((arm, seed, 0, f"labeling page closed: {stats['labels_given']} labels given, "
                                     f"{stats['pending']} queries left unanswered in the store"))
    wall, cpu = before["wall"] + time.perf_counter() - t0, before["cpu"] + time.process_time() - c0
    steps = agent.num_timesteps  # SB3 finishes its last rollout, so this can exceed args.steps
    final = episodes.recent
    queue.put((arm, seed, 0, f"trained; evaluating on {args.eval_episodes} fresh episodes"))
    t = time.perf_counter()
    evaluation = evaluate_final_policy(family, args, seed, agent)
    result = {
        "arm": arm, "seed": seed, "rows": rows, "wall_seconds": wall,
        "env_steps": steps,
        "steps_per_second": steps / wall,
        "cpu_seconds": cpu,
        "steps_per_cpu_second": steps / cpu,
        "final_true_return_last10": float(np.mean(final)) if final else float("nan"),
        "episodes": episodes.count,
        **evaluation,
        "eval_seconds": time.perf_counter() - t,
    }
    failed = save_run(args.out, arm, seed, agent, loop)
    if failed:
        result["save_failures"] = failed
    if loop is not None and family.record_agent is not None:
        family.record_agent(agent, args, seed, args.out / f"learned-agent-seed{seed}.gif")
    if loop is not None:
        # The final model on the steps since its last fit (never query candidates). When the
        # last fit came at the very end there are none: report the last round's measurement,
        # taken the same way just before that fit.
        corr = loop.fresh_correlation() or {k: v for k, v in loop.metrics.items() if k.startswith("corr/")}
        result.update({
            "labels_used": loop.labels_used,
            "label_tie_share": float((loop.store.tensors()["mu"] == 0.5).float().mean()) if len(loop.store) else float("nan"),
            "rm_accuracy": loop.metrics.get("rm/val_accuracy", float("nan")),
            "reward_correlation": corr.get("corr/pearson", float("nan")),
            "reward_correlation_spearman": corr.get("corr/spearman", float("nan")),
            **{k.replace("corr/", "reward_correlation_"): v for k, v in loop.step_diagnostics().items()},
            "fit_seconds": loop.fit_seconds,
            "pretrain_seconds": pre.get("seconds", 0.0),
            "pretrain_accuracy": pre.get("rm/val_accuracy", float("nan")),
        })
        loop.store.close()
    if resumed_from is not None:
        result["resumed_from_step"], result["steps_redone"] = resumed_from, redone
    venv.close()
    _atomic_json(ckpt.result_path, result)
    return result


def start_label_server(args: argparse.Namespace, loop, seed: int, rows: list[dict], at_step: list[int], queue):
    """Serves the learned arm's label queue (``--labeler web``) and sends its URL to the console at once.

    The page's progress shows the labels given, the labels the schedule wants by now and not answered
    (``labels_due``), the queue's length and the learned-reward agent's true return so far.
    """
    from prefrl.web import serve

    def progress() -> dict:
        status = loop.label_status(at_step[0])
        curve = [[r["env_step"], r["true_return"]] for r in list(rows)
                 if r["run"] == "learned" and math.isfinite(r["true_return"])]
        return {"labels_due": status["labels_due"], "labels_budget": status["labels_total"],
                "labels_counted": status["labels_used"], "env_step": at_step[0], "steps": args.steps,
                "curves": {f"true return of the agent (seed {seed})": curve}}

    server = serve(loop.labeler.queue, host=args.web_host, port=args.web_port, progress=progress, print_url=False)
    queue.put(("learned", seed, 0, f"label at {server.url}\n"
                                   "    open it in a browser, type your name, then pick the clip in which the agent "
                                   "does better at the task (keys 1/2, = equal, space can't tell); the agent trains "
                                   f"meanwhile; {loop.label_status(at_step[0])['waiting']} queries are waiting"))
    return server


def save_run(out: Path, arm: str, seed: int, agent, loop=None) -> list[str]:
    """Saves what an arm trained: for the learned arm the reward model ``reward-model-seed{seed}.pt``
    (``prefrl.save_reward``), ``agent-{arm}-seed{seed}.zip`` (SB3's ``save``) and the agent's
    observation normalisation ``vecnormalize-{arm}-seed{seed}.pkl`` when it has one.

    A file that cannot be written does not cost the run: each save is tried on its own, and what
    failed is printed and returned (``["agent-learned-seed0.zip: TypeError: ..."]``), so the
    evaluation, the figures and the other files still come out.
    """
    from prefrl import save_reward

    saves = []
    if loop is not None:
        saves.append((f"reward-model-seed{seed}.pt", lambda: save_reward(loop, out, seed=seed)))
    saves.append((f"agent-{arm}-seed{seed}.zip", lambda: agent.save(out / f"agent-{arm}-seed{seed}.zip")))
    vecnorm = agent.get_vec_normalize_env()
    if vecnorm is not None:
        name = f"vecnormalize-{arm}-seed{seed}.pkl"
        saves.append((name, lambda: vecnorm.save(out / name)))
    failed = []
    for name, save in saves:
        try:
            save()
        except Exception as err:  # noqa: BLE001 -- any failure to write one file must not lose the run
            failed.append(f"{name}: {type(err).__name__}: {err}")
            print(f"prefrl: could not save {failed[-1]} (the run goes on)", file=sys.stderr, flush=True)
    return failed


EVAL_SEED_OFFSET = 30_000
"""Evaluation envs are seeded with seed + this (training uses seed, the random baseline seed + 10_000)."""


def _eval_venv(family: Family, args, seed: int, agent=None):
    """Fresh envs for evaluation; observation normalisation (VecNormalize) copied from the agent's, frozen."""
    from stable_baselines3.common.vec_env import VecNormalize

    make = family.make_eval_venv or family.make_venv
    venv = make(args, min(args.n_envs, args.eval_episodes), seed)
    train_env = agent.get_env() if agent is not None else None
    if isinstance(train_env, VecNormalize):
        venv = VecNormalize(venv, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        venv.obs_rms = train_env.obs_rms
    return venv


def evaluate_final_policy(family: Family, args, seed: int, agent) -> dict:
    """The final policy (sampling its actions, as in training) on ``args.eval_episodes`` fresh episodes.

    Returns:
        ``eval_returns`` (true return of each episode), ``eval_mean``, ``eval_ci95`` [low, high].
    """
    from benchmarks.evaluation import mean_ci, run_episodes

    venv = _eval_venv(family, args, seed + EVAL_SEED_OFFSET, agent)
    try:
        returns, _ = run_episodes(lambda obs: agent.predict(obs, deterministic=False)[0], venv, args.eval_episodes)
    finally:
        venv.close()
    mean, lo, hi = mean_ci(returns, seed=seed)
    return {"eval_returns": returns, "eval_mean": mean, "eval_ci95": [lo, hi]}


def random_policy_return(family: Family, args, seed: int) -> dict:
    """The uniformly random policy on ``args.eval_episodes`` episodes (seeded actions and envs), as above."""
    from benchmarks.evaluation import mean_ci, run_episodes

    venv = _eval_venv(family, args, seed + 10_000)
    space, n = venv.action_space, venv.num_envs
    space.seed(seed + 10_000)
    try:
        returns, _ = run_episodes(lambda obs: np.stack([space.sample() for _ in range(n)]), venv, args.eval_episodes)
    finally:
        venv.close()
    mean, lo, hi = mean_ci(returns, seed=seed)
    return {"eval_returns": returns, "eval_mean": mean, "eval_ci95": [lo, hi]}


# -- the whole benchmark ----------------------------------------------------------


def run(family_module: str, family: Family, args: argparse.Namespace) -> dict:
    """Runs every (seed, arm), writes the outputs, prints a summary table; returns the summary."""
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        _atomic_json(args.out / RUN_FILE, {"flags": _run_flags(args), "started": time.time()})
    jobs = [(seed, arm) for seed in args.seeds for arm in (*ARMS, *((UPPER,) if args.upper_bound else ()))]
    cores = cpu_budget()
    workers = args.workers or max(1, min(len(jobs), cores))
    threads = max(1, cores // workers)
    args.threads = threads  # per run: the env's own threads where it has any (and torch's on a GPU machine)
    print(f"prefrl {family.name}: {args.env}, {args.agent}, {args.steps} steps x {len(jobs)} runs, "
          f"{args.labels} labels, noise {args.noise}, query {args.query}, device {args.device}, "
          f"{workers} worker(s) x {threads} thread(s) -> {args.out}", flush=True)
    t_start = time.perf_counter()
    results = []
    ctx = mp.get_context("spawn")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` ends the workers too
    try:
        with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            queue = manager.Queue()
            try:
                futures = [pool.submit(_run_arm, family_module, args, seed, arm, threads, queue) for seed, arm in jobs]
                _follow(futures, queue, args.steps * len(jobs))
                results = [f.result() for f in futures]  # re-raises a worker's error
            except BaseException:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                removed = remove_empty_stores(args.out, [f"labels-seed{s}.sqlite" for s in args.seeds])
                if removed:  # so that the same --out can be used again
                    print(f"prefrl: removed the empty label store(s) {', '.join(removed)} of this failed run",
                          file=sys.stderr)
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    random = random_policy_return(family, args, args.seeds[0])
    summary, timing = summarize(args, results, random, time.perf_counter() - t_start)
    write_outputs(args.out, results, summary, timing)
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # the run is complete; its outputs are written
    print_table(summary, timing)
    return summary


class ArmError(RuntimeError):
    """A run (arm) stopped on a problem with its settings or data (a ``ValueError`` inside it)."""


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


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


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else float("nan")


def summarize(args, results: list[dict], random: dict, wall: float) -> tuple[dict, dict]:
    """(summary, timing): the run's figures, and the machine-dependent ones (wall/CPU time, steps/s).

    Returns are the evaluation means of the final policies (``--eval-episodes`` fresh episodes per
    seed); the mean of the last 10 training episodes is kept as ``*_last10``.
    """
    from benchmarks.evaluation import mean_ci

    arms = [a for a in (*ARMS, UPPER) if any(r["arm"] == a for r in results)]
    by_arm = {a: [r for r in results if r["arm"] == a] for a in arms}
    rnd = random["eval_mean"]

    def above_random(x: float, ref: float) -> float:
        return (x - rnd) / (ref - rnd) if ref - rnd > 0 else float("nan")

    summary = {
        "env": args.env, "agent": args.agent, "steps": args.steps, "seeds": args.seeds, "noise": args.noise,
        "query": args.query, "device": args.device, "n_envs": args.n_envs, "eval_episodes": args.eval_episodes,
        "final_return_is": f"mean true return of {args.eval_episodes} fresh evaluation episodes of the final policy "
                           "per seed (actions sampled), averaged over seeds; ci95: bootstrap over the pooled episodes",
        "true_return_random": rnd,
        "true_return_random_ci95": random["eval_ci95"],
    }
    for a in arms:
        pooled = [x for r in by_arm[a] for x in r["eval_returns"]]
        summary[f"true_return_{a}"] = _mean(r["eval_mean"] for r in by_arm[a])
        summary[f"true_return_{a}_ci95"] = list(mean_ci(pooled, seed=0)[1:])
        summary[f"true_return_{a}_last10"] = _mean(r["final_true_return_last10"] for r in by_arm[a])
    tl, tt = summary["true_return_learned"], summary["true_return_true"]
    true_by_seed = {r["seed"]: r["eval_mean"] for r in by_arm["true"]}
    summary["ratio"] = tl / tt if tt > 0 else float("nan")  # a ratio of negative returns means nothing
    summary["normalized_ratio"] = above_random(tl, tt)
    summary["normalized_ratio_per_seed"] = [above_random(r["eval_mean"], true_by_seed[r["seed"]])
                                            for r in by_arm["learned"]]
    if UPPER in by_arm:
        summary["normalized_ratio_upper"] = above_random(summary["true_return_upper"], tt)
    learned = by_arm["learned"]
    summary.update({
        "labels_used": _mean(r["labels_used"] for r in learned),
        "label_tie_share": _mean(r["label_tie_share"] for r in learned),
        "rm_accuracy": _mean(r["rm_accuracy"] for r in learned),
        "reward_correlation": _mean(r["reward_correlation"] for r in learned),
        "reward_correlation_step": _mean(r["reward_correlation_step"] for r in learned),
        "pretrain_accuracy": _mean(r["pretrain_accuracy"] for r in learned),
    })
    summary["resumed"] = [{"arm": r["arm"], "seed": r["seed"], "from_step": r["resumed_from_step"],
                           "steps_redone": r["steps_redone"]}
                          for r in results if "resumed_from_step" in r]  # empty for a run never interrupted
    summary["warnings"] = _warnings(summary, random)
    summary["per_seed"] = [{k: v for k, v in r.items() if k != "rows" and k not in TIMING_KEYS} for r in results]

    sps = {a: _mean(r["steps_per_second"] for r in by_arm[a]) for a in arms}
    timing = {
        "wall_seconds": wall,
        **{f"steps_per_second_{a}": sps[a] for a in arms},
        "overhead_ratio": sps["learned"] / sps["true"] if sps["true"] else float("nan"),
        # CPU time is not skewed when the arms share the cores for part of the run
        "overhead_ratio_cpu": _mean(r["steps_per_cpu_second"] for r in learned)
        / _mean(r["steps_per_cpu_second"] for r in by_arm["true"]),
        "pretrain_seconds": _mean(r["pretrain_seconds"] for r in learned),
        "fit_seconds": _mean(r["fit_seconds"] for r in learned),
        "per_seed": [{"arm": r["arm"], "seed": r["seed"], **{k: r[k] for k in TIMING_KEYS if k in r}}
                     for r in results],
    }
    return summary, timing


def _warnings(s: dict, random: dict) -> list[str]:
    """Reasons why a run says little about preference learning (printed and kept in summary.json)."""
    out = []
    if not s["true_return_true_ci95"][0] > random["eval_ci95"][1]:
        out.append("the true-reward agent is not clearly above the random policy (95% intervals overlap): "
                   "the budget is too small for this task, so the learned arm cannot be judged")
    if s["label_tie_share"] > 0.5:
        out.append(f"{s['label_tie_share']:.0%} of the labels are ties (equal true returns): the behaviour "
                   "compared rarely differs in score, so the reward model gets little to learn from")
    return out


def write_outputs(out: Path, results: list[dict], summary: dict, timing: dict) -> None:
    rows = [row for r in results for row in r["rows"]]
    cols = ["env_step", "run", "seed", "true_return", "episodes", "labels", "rm_accuracy", "reward_correlation",
            "wall_seconds"]
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    (out / "timing.json").write_text(json.dumps(_json_safe(timing), indent=2) + "\n")
    plot_curves(out / "curves.png", rows, summary)


def _json_safe(x):
    """NaN/inf -> None (strict JSON has no NaN); numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def plot_curves(path: Path, rows: list[dict], summary: dict) -> None:
    """Writes ``curves.png``: true return per arm and seed, and the reward model's figures."""
    import matplotlib.pyplot as plt

    fig = curves_figure(rows, summary)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves_figure(rows: list[dict], summary: dict):
    """The figure behind ``curves.png``: one line per (arm, seed), never one line across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm, color in (("learned", "tab:blue"), ("true", "tab:orange"), ("upper", "tab:green")):
        for seed in sorted({r["seed"] for r in rows}):
            pts = [(r["env_step"], r["true_return"]) for r in rows if r["run"] == arm and r["seed"] == seed]
            if pts:
                x, y = zip(*pts)
                label = f"{arm} reward" + (f" (seed {seed})" if len(summary["seeds"]) > 1 else "")
                ax1.plot(x, y, color=color, label=label, alpha=0.9)
    if not math.isnan(summary["true_return_random"]):
        ax1.axhline(summary["true_return_random"], color="gray", ls="--", label="random policy")
    ax1.set_xlabel("environment steps")
    ax1.set_ylabel("true episode return (last 10)")
    ax1.set_title(f"{summary['env']}: {summary['agent']}, {summary['labels_used']:.0f} labels")
    ax1.legend()
    learned = [r for r in rows if r["run"] == "learned"]
    if learned:
        x = [r["env_step"] for r in learned]
        ax2.plot(x, [r["rm_accuracy"] for r in learned], ".", label="RM held-out accuracy")
        ax2.plot(x, [r["reward_correlation"] for r in learned], ".", label="learned/true return correlation")
        ax2b = ax2.twinx()
        for seed in sorted({r["seed"] for r in learned}):  # one line per seed: joined, they draw a diagonal
            pts = [(r["env_step"], r["labels"]) for r in learned if r["seed"] == seed]
            ax2b.plot(*zip(*pts), color="gray", alpha=0.5)
        ax2b.set_ylabel("labels used (gray)")
    ax2.set_ylim(-0.1, 1.05)
    ax2.set_xlabel("environment steps")
    ax2.set_title("reward model")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    return fig


def print_table(s: dict, t: dict) -> None:
    def ret(arm: str) -> str:
        lo, hi = s[f"true_return_{arm}_ci95"]
        return f"{s[f'true_return_{arm}']:.1f}  (95% CI {lo:.1f}..{hi:.1f})"

    lines = [("true return, learned-reward agent", ret("learned")),
             ("true return, true-reward agent", ret("true"))]
    if "true_return_upper" in s:
        lines.append(("true return, upper bound (true reward, learned pipeline)", ret("upper")))
    lines += [
        ("true return, random policy", ret("random")),
        ("ratio above random (learned)", f"{s['normalized_ratio']:.2f}  per seed "
         + " ".join(f"{x:.2f}" for x in s["normalized_ratio_per_seed"])),
    ]
    if "normalized_ratio_upper" in s:
        lines.append(("ratio above random (upper bound)", f"{s['normalized_ratio_upper']:.2f}"))
    lines += [
        ("last 10 training games: learned | true", f"{s['true_return_learned_last10']:.1f} | "
                                                   f"{s['true_return_true_last10']:.1f}"),
        ("labels used (ties)", f"{s['labels_used']:.0f} ({s['label_tie_share']:.0%})"),
        ("RM held-out accuracy", f"{s['rm_accuracy']:.3f}"),
        ("learned/true reward correlation: segments | steps", f"{s['reward_correlation']:.3f} | "
                                                             f"{s['reward_correlation_step']:.3f}"),
        ("steps/s learned | true", f"{t['steps_per_second_learned']:.0f} | {t['steps_per_second_true']:.0f}"),
        ("loop overhead (learned / true steps/s)", f"{t['overhead_ratio']:.2f} wall, {t['overhead_ratio_cpu']:.2f} CPU time"),
        ("wall time", f"{t['wall_seconds'] / 60:.1f} min"),
    ]
    print_rows(f"{s['env']} ({s['agent']}, {s['steps']} steps, seeds {s['seeds']})", lines)
    for r in s["resumed"]:
        print(f"resumed: the {r['arm']} arm of seed {r['seed']} continued from its checkpoint at step {r['from_step']} "
              f"({r['steps_redone']} steps redone)")
    for w in s["warnings"]:
        print(f"WARNING: {w}")


def print_rows(title: str, lines: list[tuple[str, str]]) -> None:
    """Prints a titled two-column table (the summary every benchmark ends with)."""
    width = max(len(k) for k, _ in lines)
    print(f"\n{title}")
    for k, v in lines:
        print(f"  {k:<{width}}  {v}")


def main(family_module: str, family: Family, default_env: str, env_flag: str, defaults: dict,
         quick: dict, argv: list[str] | None = None, extra_flags: Callable | None = None) -> dict:
    """Entry point shared by the benchmark modules.

    Args:
        family_module: importable name of the module defining ``FAMILY``
            (worker processes re-import it).
        family: that module's ``Family``.
        default_env: default for the env flag.
        env_flag: "--env" or "--game".
        defaults: family defaults for steps, labels, agent, n_envs.
        quick: flag values that ``--quick`` sets.
        argv: arguments (default: sys.argv).
        extra_flags: adds family-specific flags to the parser.
    """
    parser = build_parser(family.name, default_env, env_flag, defaults)
    if extra_flags is not None:
        extra_flags(parser)
    if family.gpu_defaults:
        parser.epilog = "With a CUDA device (and no --quick) unset flags take larger defaults: " + ", ".join(
            f"{k}={v}" for k, v in family.gpu_defaults.items())
    args = parser.parse_args(argv)
    if args.quick:
        for k, v in quick.items():
            if parser.get_default(k) == getattr(args, k):  # explicit flags win over --quick
                setattr(args, k, v)
    validate(args, family, parser)
    if args.device.startswith("cuda") and not args.quick:
        grown = {k: v for k, v in family.gpu_defaults.items() if parser.get_default(k) == getattr(args, k)}
        for k, v in grown.items():
            setattr(args, k, v)
        if grown:
            print("prefrl: GPU found, larger defaults: " + ", ".join(f"{k}={v}" for k, v in grown.items()), flush=True)
    try:
        return run(family_module, family, args)
    except ArmError as err:
        print(f"prefrl: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"\nprefrl: interrupted; the labels gathered so far are kept in {args.out}/labels-seed*.sqlite",
              file=sys.stderr)
        raise SystemExit(130) from None
