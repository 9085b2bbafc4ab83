"""The public training call: an agent trained on a reward learned from preferences, beside a true-reward twin.

::

    from prefrl.api import train

    result = train("HalfCheetah-v5", steps=20_000, labels=100, out="runs/mine")
    result.summary["true_return_learned"]      # the learned-reward agent's true return (fresh episodes)
    result.summary["normalized_ratio"]         # the share of the random -> true-reward gap it closed
    result.curves[-1]                          # the last curve row: env_step, run, true_return, ...

:func:`train` runs what ``python -m benchmarks.mujoco`` / ``python -m benchmarks.atari`` run (they call
:func:`run_config`), with the same defaults, checks, checkpoints and ``resume``; its keyword arguments
are the commands' flags by their field names (``noise=0.2``, ``agent="a2c"``, ``rm="paper84"``, ...).
Bad input raises ``ValueError`` with the command's one-line message, before anything trains.

Text is a family too: ``train("TextGen-v0", model="tiny", quick=True)`` runs what ``python -m
benchmarks.textgen`` runs (its flags by field name: ``task``, ``iterations``, ``rank_k``, ``sft_steps``,
...; a text run counts PPO updates, ``iterations``, not env ``steps``).

Not imported by ``import prefrl`` (it pulls in the benchmark kit, the envs and the agents): import
``prefrl.api``.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from envs.atari_spec import ATARI_GAMES
from envs.mujoco_tasks import MUJOCO_TASKS

__all__ = ["FAMILY_MODULES", "TrainResult", "family_of", "run_config", "run_text_config", "train"]

FAMILY_MODULES: dict[str, str] = {"mujoco": "benchmarks.mujoco", "atari": "benchmarks.atari"}
"""Family name -> the module that defines its ``FAMILY`` (how its envs, reward model and agent are built)."""
TEXT_ENV = "TextGen-v0"
"""The text family's env (its command: ``python -m benchmarks.textgen``)."""


@dataclass(frozen=True)
class TrainResult:
    """What a run leaves behind, read back from its output directory.

    Attributes:
        out: the output directory (curves.csv, curves.png, summary.json, timing.json, the agents
            ``agent-<arm>-seed<k>.zip``, the reward models ``reward-model-seed<k>.pt``, the label stores
            ``labels-seed<k>.sqlite``).
        summary: ``summary.json`` as read back: the final policies' true returns (``true_return_learned``,
            ``true_return_true``, ``true_return_random``, with ``_ci95``), the share of the gap closed
            (``normalized_ratio``), labels, reward-model accuracy and correlation, ``per_seed``.
        curves: the rows of ``curves.csv`` (``env_step``, ``run``, ``seed``, ``true_return``, ``labels``,
            ``rm_accuracy``, ``reward_correlation``, ...), numbers as floats, empty cells as None.

    A text run (``TextGen-v0``) writes the text benchmark's outputs instead: ``summary.json`` with each arm's
    evaluated true score and KL (``per_seed``, ``gain_ratio``, ...), curves by PPO ``iteration``
    (``true_score``, ``kl``, ``beta``, ...), ``samples.md`` and the label stores; it saves no agent or
    reward-model file.
    """

    out: Path
    summary: dict
    curves: list[dict]

    def reward_model(self, seed: int = 0) -> Path:
        """Path of the learned arm's reward model of ``seed`` (load it with :func:`prefrl.load_reward`)."""
        return self.out / f"reward-model-seed{seed}.pt"

    def agent(self, arm: str = "learned", seed: int = 0) -> Path:
        """Path of the saved SB3 agent of ``arm`` ("learned", "true" or "upper") and ``seed``."""
        return self.out / f"agent-{arm}-seed{seed}.zip"


def family_of(env: str) -> str:
    """The family ("mujoco", "atari" or "text") that trains ``env``.

    Each family's own check decides (the one its command applies to ``--env`` / ``--game``), so every
    spelling a command accepts is accepted here.

    Args:
        env: a MuJoCo task id (``"Hopper-v5"``), an Atari game (``"Seaquest"``, ``"ALE/Seaquest-v5"``,
            ``"SeaquestNoFrameskip-v4"``) or ``"TextGen-v0"``.

    Raises:
        ValueError: for an env no family trains, naming the supported ones.
    """
    for name, module in FAMILY_MODULES.items():
        try:
            importlib.import_module(module).FAMILY.check_env_id(env)
        except ValueError:
            continue
        return name
    if env == TEXT_ENV:
        return "text"
    raise ValueError(f"no family trains {env!r}; MuJoCo tasks: {', '.join(MUJOCO_TASKS)}; Atari games: "
                     f"{', '.join(ATARI_GAMES)}; text: {TEXT_ENV}")


def train(env: str, *, labeler: str = "synthetic-oracle", steps: int | None = None, labels: int | None = None,
          seeds: Sequence[int] = (0,), out: str | Path | None = None, resume: bool = False, quick: bool = False,
          **flags: Any) -> TrainResult:
    """Trains an agent on a reward learned from preferences and, as the yardstick, one on the true reward.

    Each seed runs two arms (three with ``upper_bound=True``) in worker processes: the learned arm asks
    ``labeler`` about pairs of clips of its own rollouts, fits the Bradley-Terry reward ensemble and trains
    its agent on the learned reward; the true arm trains the same agent on the env's reward. The final
    policies are evaluated on fresh episodes of the true reward.

    Args:
        env: a MuJoCo task id or an Atari game (see :func:`family_of`).
        labeler: "synthetic-oracle" (prefers the larger true return; ``noise`` of the answers are random)
            or "web" (people label in a local page whose address is printed).
        steps: environment steps per arm (default: the family's, 1M MuJoCo / 300k Atari on CPU).
        labels: the label budget per learned arm (default: the family's).
        seeds: one run of every arm per seed.
        out: output directory (default: ``runs/<family>-<env>-<time>``); must be new unless ``resume``.
        resume: continue an interrupted run in ``out`` with the same arguments, from its checkpoints and
            with the labels already stored.
        quick: a ~1-minute smoke run (tiny budget); explicit ``steps`` / ``labels`` still win.
        **flags: any other flag of the command by its field name: ``noise``, ``agent``, ``query``,
            ``n_envs``, ``device``, ``upper_bound``, ``eval_episodes``, ``workers``, ``segment_length``, ...
            and the family's own (``standard_env``; ``rm``, ``episode_ends``, ...). ``True`` turns a switch on.

    Returns:
        The run's :class:`TrainResult`.

    Raises:
        ValueError: bad input (an unknown env or flag, a value out of range, an ``out`` that holds another
            run), with the command's message; nothing has trained.
        benchmarks.kit.run.ArmError: an arm failed while training (the labels gathered are kept).
    """
    from benchmarks.kit.config import LABELERS

    if labeler not in LABELERS:
        raise ValueError(f"labeler={labeler!r}: choose one of {', '.join(LABELERS)}")
    named = dict(flags, env=env, labeler=labeler, steps=steps, labels=labels, seeds=tuple(seeds),
                 out=None if out is None else Path(out), resume=resume, quick=quick)
    if family_of(env) == "text":
        return _train_text(named)
    family_module = FAMILY_MODULES[family_of(env)]
    family = importlib.import_module(family_module).FAMILY
    from benchmarks.kit.parse import parse_config

    cfg = parse_config(family, _argv(family, named), error=_raise)
    return run_config(family_module, cfg)


def run_config(family_module: str, cfg: Any) -> TrainResult:
    """Runs a parsed, checked config (``benchmarks.kit.parse.parse_config``): every (seed, arm), then the report.

    The benchmark commands call this; :func:`train` is the keyword-argument front of it.
    """
    from benchmarks.kit.run import run

    family = importlib.import_module(family_module).FAMILY
    run(family_module, family, cfg)
    out = Path(cfg.out)
    return TrainResult(out=out, summary=json.loads((out / "summary.json").read_text()),
                       curves=read_curves(out / "curves.csv"))


def _train_text(named: dict[str, Any]) -> TrainResult:
    """``train("TextGen-v0", ...)``: the text benchmark's flags by field name, parsed and run as the command does."""
    from benchmarks.kit.flags import flat_fields, value_argv
    from benchmarks.textgen.config import TextCommand, parse_config

    if named.pop("steps") is not None:
        raise ValueError("a text run counts PPO updates, not env steps: give iterations=N (each of batch_size "
                         "completions) instead of steps")
    named.pop("env")
    known = set(flat_fields(TextCommand())) - {"labeling", "bench"}
    unknown = sorted(set(named) - known)
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for text; known: {', '.join(sorted(known))}")
    argv = [arg for name, value in named.items() if value is not None
            for arg in value_argv("--" + name.replace("_", "-"), value)]
    return run_text_config(*parse_config(argv, error=_raise))


def run_text_config(cfg: Any, out: Path, opts: Any = None) -> TrainResult:
    """Runs a parsed, checked text config (``benchmarks.textgen.parse_config``): every seed's arms, then the report.

    ``python -m benchmarks.textgen`` calls this, as the MuJoCo and Atari commands call :func:`run_config`.
    """
    from benchmarks.textgen.config import RunOptions
    from benchmarks.textgen.runner import run

    run(cfg, out, opts if opts is not None else RunOptions())
    return TrainResult(out=out, summary=json.loads((out / "summary.json").read_text()),
                       curves=read_curves(out / "curves.csv"))


def read_curves(path: Path) -> list[dict]:
    """The rows of a run's ``curves.csv``: numbers as floats, ``run`` as text, empty cells as None."""
    with open(path, newline="") as f:
        return [{k: (v if k == "run" else (float(v) if v != "" else None)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _argv(family: Any, named: dict[str, Any]) -> list[str]:
    """The command-line flags of keyword arguments, so that the API and the command parse alike."""
    from benchmarks.kit.config import RunConfig
    from benchmarks.kit.flags import flat_fields, value_argv

    known = set(flat_fields(RunConfig(env="", steps=1, labels=1, agent="ppo", n_envs=1)))
    if family.options is not None:
        known |= set(flat_fields(family.options()))
    known -= {"options", "labeling"}
    unknown = sorted(set(named) - known)
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for {family.name}; known: {', '.join(sorted(known))}")
    return [arg for name, value in named.items()
            for arg in value_argv(family.env_flag if name == "env" else "--" + name.replace("_", "-"), value)]


def _raise(message: str) -> NoReturn:
    raise ValueError(message)
