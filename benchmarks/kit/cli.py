"""The command line of the Atari and MuJoCo benchmarks: flags generated from the configs, a frozen config out.

``python -m benchmarks.<family>`` calls :func:`main` with the family module's name; the flags are
those of :class:`~benchmarks.kit.config.RunConfig` (with the family's defaults), its nested
:class:`~benchmarks.kit.config.LabelerConfig` and the family's ``options`` dataclass.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from benchmarks.kit.config import RunConfig, defaults_of, with_unset
from benchmarks.kit.family import Family
from benchmarks.kit.flags import add_flags, from_namespace
from benchmarks.kit.run import ArmError, run
from benchmarks.kit.validate import resume_problem, validate


def build_parser(family: Family) -> argparse.ArgumentParser:
    """The benchmark's parser: the shared flags with the family's defaults, then the family's own flags."""
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{family.name}",
        description=(
            f"Train a {family.name} agent on a reward learned from preferences and, with the same seed and step "
            "budget, the same agent on the true reward; write curves.csv, curves.png and summary.json."
        ),
    )
    add_flags(p, RunConfig, defaults={"env": family.default_env, **family.defaults},
              nested={"options": family.options} if family.options else {}, names={"env": family.env_flag})
    if family.gpu_defaults:
        p.epilog = "With a CUDA device (and no --quick) unset flags take larger defaults: " + ", ".join(
            f"{k}={v}" for k, v in family.gpu_defaults.items())
    return p


def parse_config(family: Family, argv: list[str] | None = None) -> RunConfig:
    """The run's frozen config from the command line: parsed, ``--quick`` applied, checked, GPU defaults applied.

    Each step gives a new config; explicit flags win over ``--quick`` and the GPU defaults. Bad
    input exits with the parser's one-line error (exit status 2).
    """
    parser = build_parser(family)
    cfg = from_namespace(RunConfig, parser.parse_args(argv), nested={"options": family.options})
    defaults = defaults_of(parser.get_default, cfg)
    if cfg.quick:
        cfg, _ = with_unset(cfg, family.quick, defaults)
    cfg = validate(cfg, family, parser.error)
    if cfg.device.startswith("cuda") and not cfg.quick:
        cfg, grown = with_unset(cfg, family.gpu_defaults, defaults)
        if grown:
            print("prefrl: GPU found, larger defaults: " + ", ".join(f"{k}={v}" for k, v in grown.items()), flush=True)
    if cfg.resume:
        problem = resume_problem(cfg)
        if problem:
            parser.error(problem)
    return cfg


def main(family_module: str, argv: list[str] | None = None) -> dict:
    """Entry point of ``python -m benchmarks.<family>``: parses, runs every (seed, arm), reports.

    Args:
        family_module: importable name of the module defining ``FAMILY`` (worker processes
            import it too).
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The summary (as written to ``summary.json``).
    """
    family: Family = importlib.import_module(family_module).FAMILY
    cfg = parse_config(family, argv)
    try:
        return run(family_module, family, cfg)
    except ArmError as err:
        _exit(1, f"prefrl: error: {err}")
    except KeyboardInterrupt:
        _exit(130, f"\nprefrl: interrupted; the labels gathered so far are kept in {cfg.out}/labels-seed*.sqlite")


def _exit(code: int, message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(code) from None
