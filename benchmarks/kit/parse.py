"""From flags to a run's frozen config: the Atari and MuJoCo benchmarks' parser and the checks after it.

The flags are those of :class:`~benchmarks.kit.config.RunConfig` (with the family's defaults), its nested
:class:`~benchmarks.kit.config.LabelerConfig` and the family's ``options`` dataclass. The command line
(``benchmarks.kit.cli``) and the Python API (``prefrl.api.train``) both build their config here.
"""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn

from benchmarks.kit.config import RunConfig, defaults_of, with_unset
from benchmarks.kit.family import Family
from benchmarks.kit.flags import add_flags, from_namespace
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


def parse_config(family: Family, argv: list[str] | None = None,
                 error: Callable[[str], NoReturn] | None = None) -> RunConfig:
    """The run's frozen config from the command line: parsed, ``--quick`` applied, checked, GPU defaults applied.

    Each step gives a new config; explicit flags win over ``--quick`` and the GPU defaults.

    Args:
        family: the environment family.
        argv: the flags (default: ``sys.argv[1:]``).
        error: called with a one-line message on bad input; default: the parser's error (prints usage
            and the message, exit status 2). The Python API passes one that raises ``ValueError``.
    """
    parser = build_parser(family)
    if error is not None:
        parser.error = error  # type: ignore[method-assign]  # argparse calls it for every bad flag
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
