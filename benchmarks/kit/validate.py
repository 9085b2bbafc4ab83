"""Checks of a benchmark's config before any arm starts; each problem is one clear line.

The checks return the problem as text (or None); :func:`validate` turns the first one into
``error`` (the parser's: exit 2, one line) and returns the config completed (canonical env id,
resolved device, default ``--out``), a new frozen config.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np

from benchmarks.checks import MAX_STEPS, flags_differ, out_problem, seeds_problem
from benchmarks.kit.config import RUN_FILE, LabelerConfig, RunConfig, run_flags
from benchmarks.kit.family import Family
from benchmarks.kit.report import OUTPUTS

YEAR_SECONDS = 365 * 24 * 3600


def labeler_problem(labeling: LabelerConfig, n_servers: int) -> str | None:
    """Why the labeler flags cannot work, or None (``n_servers``: learned arms that each serve a page)."""
    if labeling.labeler is None:
        return ("choose a labeler: --labeler synthetic-oracle (or --synthetic-oracle: labels by the true return, "
                "with --noise random answers) or --labeler web (you label in a local web page while the agent trains)")
    if labeling.labeler != "web":
        return None
    if not 0 <= labeling.web_port <= 65535:
        return f"--web-port must be a TCP port in 0..65535 (0 = any free one), got {labeling.web_port}"
    if labeling.web_port != 0 and n_servers > 1:
        return (f"--web-port {labeling.web_port} with {n_servers} learned runs (seeds): each serves its own page, "
                "so they cannot share one port; use --web-port 0 (any free port; every URL is printed)")
    if not 0 < labeling.label_timeout < 1e9:
        return f"--label-timeout must be a positive number of seconds, got {labeling.label_timeout}"
    if not 0 <= labeling.min_answered_share <= 1:
        return (f"--min-answered-share must be a share in [0, 1] (0 = never wait for labels), "
                f"got {labeling.min_answered_share}")
    if not 0 <= labeling.repeat_share < 1:
        return (f"--repeat-share must be a share in [0, 1) (0 = no repeated queries), got {labeling.repeat_share}")
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        return "--labeler web needs the web app's packages: pip install 'prefrl[web]' (fastapi, uvicorn)"
    return listen_problem(labeling.web_host, labeling.web_port)


def listen_problem(host: str, port: int) -> str | None:
    """Why the page cannot listen on ``host``:``port`` (binds a socket there and closes it), or None.

    Checked before any arm trains: a bad ``--web-host`` used to fail only when the learned arm
    started its server, after the true-reward arm had spent its budget.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        return (f"--web-host {host!r} is not an address or host name this machine can resolve ({err}); "
                "give an interface address such as 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            where = f"port {port}" if port else "any port"
            return (f"--web-host {host} --web-port {port}: cannot listen there ({err.strerror or err}, {where}); "
                    "give an address of this machine (127.0.0.1, 0.0.0.0) and a free port (0 = any free one)")
    return None


def unlabeled_problem(cfg: RunConfig, family: Family) -> str | None:
    """Why the flags of learning from unlabeled steps cannot work, or None."""
    import math

    if cfg.ssl_weight is not None and not (math.isfinite(cfg.ssl_weight) and cfg.ssl_weight >= 0):
        return f"--ssl-weight must be a finite weight >= 0 (0 = off), got {cfg.ssl_weight}"
    if cfg.ssl_pretrain_steps is not None and cfg.ssl_pretrain_steps < 1:
        return (f"--ssl-pretrain-steps must be >= 1 (the representation is trained before the reward reads it), "
                f"got {cfg.ssl_pretrain_steps}; --ssl-weight 0 turns the loss off")
    t = cfg.pseudo_threshold
    if t is not None and t != 0 and not 0.5 < t <= 1.0:
        return f"--pseudo-threshold must be in (0.5, 1] (or 0 = off), got {t}"
    L = cfg.segment_length or family.segment_length
    if cfg.crop is not None and not 0 <= cfg.crop <= L:
        return f"--crop must be between 0 (off) and the segment length {L}, got {cfg.crop}"
    if cfg.stop_tolerance is not None and not (math.isfinite(cfg.stop_tolerance) and 0 <= cfg.stop_tolerance < 1):
        return f"--stop-tolerance must be in [0, 1) (0 = off), got {cfg.stop_tolerance}"
    return None


def validate(cfg: RunConfig, family: Family, error: Callable[[str], NoReturn]) -> RunConfig:
    """Checks the flags; calls ``error`` on bad input; returns the completed config (a new one).

    ``--resume`` is checked later, by :func:`resume_problem`, on the config with the GPU defaults
    applied: the config the run would write.
    """
    problem = labeler_problem(cfg.labeling, len(cfg.seeds))
    if problem:
        error(problem)
    if cfg.labeler == "web" and family.make_render is None:
        error(f"--labeler web is not available for {family.name} yet; use --labeler synthetic-oracle")
    if cfg.labeler == "web" and family.keep_render_state and cfg.anchor_fraction:
        error("--anchor-fraction > 0 with --labeler web: clips labeled before are kept without the simulator "
              "states a person needs to see them; leave --anchor-fraction at 0")
    try:
        cfg = dataclasses.replace(cfg, env=family.check_env_id(cfg.env))
    except ValueError as err:
        error(str(err))
    for name in ("steps", "n_envs"):
        if getattr(cfg, name) < 1:
            error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.steps > MAX_STEPS:
        error(f"--steps {cfg.steps} is more than 2^53, beyond the exact integers of the float64 label "
              "schedule; lower --steps")
    if cfg.labels < 1:
        error(f"--labels must be >= 1, got {cfg.labels}")
    if cfg.labels > cfg.steps:
        error(f"--labels {cfg.labels} is more than --steps {cfg.steps}: ask for fewer labels than steps")
    if not 0.0 <= cfg.noise <= 1.0:
        error(f"--noise must be a probability in [0, 1], got {cfg.noise}")
    if cfg.anchor_fraction is not None and not 0.0 <= cfg.anchor_fraction <= 1.0:
        error(f"--anchor-fraction must be a share in [0, 1], got {cfg.anchor_fraction}")
    if cfg.reward_std is not None and not 0 < cfg.reward_std < 1e6:
        error(f"--reward-std must be a positive number, got {cfg.reward_std}")
    if cfg.segment_length is not None and cfg.segment_length < 1:
        error(f"--segment-length must be >= 1, got {cfg.segment_length}")
    problem = unlabeled_problem(cfg, family)
    if problem:
        error(problem)
    problem = seeds_problem(cfg.seeds)
    if problem:
        error(problem)
    if cfg.eval_episodes < 1:
        error(f"--eval-episodes must be >= 1, got {cfg.eval_episodes}")
    if cfg.workers is not None and cfg.workers < 1:
        error(f"--workers must be >= 1, got {cfg.workers}")
    import agents

    try:
        cfg = dataclasses.replace(cfg, device=agents.resolve_device(cfg.device))
    except ValueError as err:
        error(str(err))
    if not cfg.checkpoint_minutes >= 0:
        error(f"--checkpoint-minutes must be >= 0, got {cfg.checkpoint_minutes}")
    try:
        problem = budget_problem(cfg, family)
    except Exception as err:  # the estimate needs one env; the run itself reports what is wrong with it
        problem = None
        print(f"prefrl: could not check the budgets on one env ({type(err).__name__}: {err})", file=sys.stderr)
    if problem:
        error(problem)
    if cfg.resume:
        if cfg.out is None:
            error("--resume needs --out: the directory of the run to continue")
        from prefrl.store import store_in_use

        for seed in cfg.seeds:  # the interrupted run's processes may still be serving its store
            problem = store_in_use(cfg.out / f"labels-seed{seed}.sqlite")
            if problem:
                error(f"--resume: {problem}")
        return cfg
    if cfg.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = dataclasses.replace(cfg, out=Path("runs") / f"{family.name}-{cfg.env.replace('/', '_')}-{stamp}")
    out = cfg.out
    clash = [f for f in (*OUTPUTS, "labels-seed0.sqlite") if (out / f).exists()]
    clash += [p.name for pattern in ("labels-seed*.sqlite", "learned-agent-seed*.gif", "agent-*-seed*.zip",
                                     "reward-model-seed*.pt") for p in out.glob(pattern)] if out.exists() else []
    if (out / RUN_FILE).exists():
        clash.append(RUN_FILE)
    if clash:
        error(f"--out {out} already holds another run's files ({', '.join(sorted(set(clash)))}); "
              "choose a new directory (or add --resume to continue it), nothing was overwritten")
    problem = out_problem(out)
    if problem:
        error(problem)
    if cfg.tensorboard is not None:
        if importlib.util.find_spec("tensorboard") is None:
            error("--tensorboard needs the tensorboard package: pip install tensorboard "
                  "(or pip install 'prefrl[tensorboard]')")
        problem = out_problem(cfg.tensorboard)
        if problem:
            error(problem.replace("--out", "--tensorboard", 1))
    return cfg


def budget_problem(cfg: RunConfig, family: Family) -> str | None:
    """Why the budgets cannot work here, judged from one env of the task, or None.

    Checks, in order: ``--segment-length`` against the env's time limit and the steps kept
    (:func:`segment_length_problem`), ``--steps`` against a time estimate from the env's raw
    speed (:func:`steps_time_problem`), and the label budget's memory, below.

    The first query round samples ``candidate_factor`` candidate pairs for each of the initial
    labels (25% of the budget): 2 x n0 x factor clips of L steps, each step stored as the reward
    model sees it (after the family's ``obs_transform``), its action and its true reward.
    """
    from prefrl import LoopConfig

    n0 = max(round(0.25 * cfg.labels), 1)
    factor = family.loop_overrides.get("candidate_factor", LoopConfig.candidate_factor)
    L = cfg.segment_length or family.segment_length
    venv = family.make_venv(cfg, 1, 0, None)
    try:
        obs = np.asarray(venv.reset())
        if family.obs_transform is not None:
            obs = np.asarray(family.obs_transform(cfg)(obs))
        act = np.asarray([venv.action_space.sample()])
        limit = _time_limit(venv)
        raw_sps = _raw_steps_per_second(venv)
    finally:
        venv.close()
    problem = segment_length_problem(cfg, family, L, limit) or steps_time_problem(cfg, raw_sps)
    if problem:
        return problem
    step_bytes = obs[0].nbytes + act[0].nbytes + 4
    need = 2 * n0 * factor * L * step_bytes
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > avail // 2:
        return (f"--labels {cfg.labels} needs ~{need / 1e9:.1f} GB for its first query round ({n0} labels x {factor} "
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


def cpu_budget() -> int:
    """Cores this run may use: ``$PREFRL_CPUS`` when a scheduler gave it a share (``benchmarks.sweep`` on Ray
    sets it to the task's CPUs), else every core of the machine. Sizes ``--workers`` and threads per run."""
    try:
        share = int(os.environ.get("PREFRL_CPUS", "0"))
    except ValueError:
        share = 0
    return share if share > 0 else (os.cpu_count() or 1)


def steps_time_problem(cfg: RunConfig, raw_sps: float) -> str | None:
    """Why --steps cannot finish: more than a year even at the raw env speed measured here on every core, or None.

    A step budget takes no memory (curves keep 50 rows, the episode log its last 10 returns), so its
    bound is time: the agent, the reward model and the labels only make a run slower than the raw env.
    """
    cores = cpu_budget()
    runs = len(cfg.seeds) * (3 if cfg.upper_bound else 2)
    floor = cfg.steps * runs / (raw_sps * cores)
    if floor > YEAR_SECONDS:
        return (f"--steps {cfg.steps} would take more than {floor / YEAR_SECONDS:,.0f} years here: {runs} runs even at "
                f"the raw speed of {cfg.env} measured now ({raw_sps:,.0f} random steps/s on each of {cores} "
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


def segment_length_problem(cfg: RunConfig, family: Family, L: int, time_limit: int | None) -> str | None:
    """Why no clip of L steps can be cut from this run's rollouts, or None.

    A clip lies inside one episode of one env, within the steps the loop keeps per env
    (``buffer_steps``) and the steps each env takes in the whole run (--steps / --n-envs).
    """
    from prefrl import LoopConfig

    keep = family.loop_overrides.get("buffer_steps", LoopConfig.buffer_steps)
    per_env = cfg.steps // cfg.n_envs
    for bound, what in ((time_limit, f"the episodes of {cfg.env} (time limit {time_limit} steps)"),
                        (keep, f"the {keep} recent steps per env the loop keeps"),
                        (per_env, f"the {per_env} steps each of the {cfg.n_envs} envs takes (--steps / --n-envs)")):
        if bound is not None and L > bound:
            return f"--segment-length {L} is longer than {what}: no clip fits; give --segment-length <= {bound}"
    return None


def resume_problem(cfg: RunConfig) -> str | None:
    """Why ``--resume`` cannot continue ``cfg.out`` with these flags, or None."""
    path = cfg.out / RUN_FILE
    if not path.exists():
        return (f"--resume: {cfg.out} holds no run to continue ({RUN_FILE} is missing); "
                "start it without --resume")
    saved = dict(json.loads(path.read_text())["flags"])
    if "labeler" not in saved and saved.pop("synthetic_oracle", False):  # runs started before --labeler
        saved["labeler"] = "synthetic-oracle"
    saved.pop("threads", None)  # written by runs before the frozen config (never compared)
    differ = flags_differ(saved, run_flags(cfg))
    if differ:
        return f"--resume: the flags differ from the run in {cfg.out}: {'; '.join(differ)}; give the same flags"
    return None
