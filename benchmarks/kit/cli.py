"""The command line of the Atari and MuJoCo benchmarks: flags in, :func:`prefrl.api.run_config` runs them.

``python -m benchmarks.<family>`` calls :func:`main` with the family module's name; the flags and
their checks are in :mod:`benchmarks.kit.parse` (also used by :func:`prefrl.api.train`).
"""

from __future__ import annotations

import importlib

from benchmarks.kit.family import Family
from benchmarks.kit.lifecycle import exit_with, interrupted
from benchmarks.kit.parse import family_defaults, parse_config, parse_flags
from benchmarks.kit.run import ArmError
from prefrl.api import run_config

__all__ = ["family_defaults", "main", "parse_config", "parse_flags"]


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
        return run_config(family_module, cfg).summary
    except ArmError as err:
        exit_with(1, f"prefrl: error: {err}")
    except KeyboardInterrupt:
        exit_with(130, interrupted(cfg.out))
