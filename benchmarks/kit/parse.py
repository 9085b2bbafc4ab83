"""From flags to a run's frozen config: the Atari and MuJoCo benchmarks' flags and the checks after them.

The flags are those of :class:`~benchmarks.kit.config.RunConfig` (with the family's defaults), its nested
:class:`~benchmarks.kit.config.LabelerConfig` and the family's ``options`` dataclass, parsed by tyro
(:func:`benchmarks.kit.flags.parse`). The command line (``benchmarks.kit.cli``) and the Python API
(``prefrl.api.train``) both build their config here.
"""

from __future__ import annotations

from typing import Callable, NoReturn

from benchmarks.kit.config import RunConfig, with_unset
from benchmarks.kit.family import Family
from benchmarks.kit.flags import default_config, failure, flat_fields, parse
from benchmarks.kit.validate import resume_problem, validate


def _flag_options(family: Family) -> dict:
    """How the family's flags are made: its defaults, its ``options`` class, its env flag's name."""
    return dict(defaults={"env": family.default_env, **family.defaults},
                nested={"options": family.options} if family.options else {}, names={"env": family.env_flag})


def description(family: Family) -> str:
    """What ``--help`` says the command does (and the GPU defaults, when the family has any)."""
    text = (f"Train a {family.name} agent on a reward learned from preferences and, with the same seed and step "
            "budget, the same agent on the true reward; write curves.csv, curves.png and summary.json.")
    if family.gpu_defaults:
        text += " With a CUDA device (and no --quick) unset flags take larger defaults: " + ", ".join(
            f"{k}={v}" for k, v in family.gpu_defaults.items()) + "."
    return text


def family_defaults(family: Family) -> RunConfig:
    """The config of a command given no flags: the family's defaults in place."""
    opts = _flag_options(family)
    return default_config(RunConfig, defaults=opts["defaults"], nested=opts["nested"])


def parse_flags(family: Family, argv: list[str] | None = None,
                error: Callable[[str], NoReturn] | None = None) -> RunConfig:
    """The flags as a config, before ``--quick``, the checks and the GPU defaults (:func:`parse_config` does those)."""
    return parse(RunConfig, argv, **_flag_options(family), prog=f"python -m benchmarks.{family.name}",
                 description=description(family), error=error)


def parse_config(family: Family, argv: list[str] | None = None,
                 error: Callable[[str], NoReturn] | None = None) -> RunConfig:
    """The run's frozen config from the command line: parsed, ``--quick`` applied, checked, GPU defaults applied.

    Each step gives a new config; flags the user set (a value other than the default) win over ``--quick``
    and the GPU defaults.

    Args:
        family: the environment family.
        argv: the flags (default: ``sys.argv[1:]``).
        error: called with a one-line message on bad input; default: the message is printed (tyro's, for a flag
            it cannot read; ``prog: error: ...`` for a value the checks refuse) and the command exits with
            status 2. The Python API passes one that raises ``ValueError``.
    """
    fail = failure(f"python -m benchmarks.{family.name}", error)
    cfg = parse_flags(family, argv, error)
    defaults = flat_fields(family_defaults(family))
    if cfg.quick:
        cfg, _ = with_unset(cfg, family.quick, defaults)
    cfg = validate(cfg, family, fail)
    if cfg.device.startswith("cuda") and not cfg.quick:
        cfg, grown = with_unset(cfg, family.gpu_defaults, defaults)
        if grown:
            print("prefrl: GPU found, larger defaults: " + ", ".join(f"{k}={v}" for k, v in grown.items()), flush=True)
    if cfg.resume:
        problem = resume_problem(cfg)
        if problem:
            fail(problem)
    return cfg
