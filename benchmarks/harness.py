"""The benchmark harness, now :mod:`benchmarks.kit`; this module keeps the old import paths working.

New code imports from the kit's modules: flags and configs (``benchmarks.kit.flags``,
``benchmarks.kit.config``), one arm and the pool (``benchmarks.kit.arms``, ``benchmarks.kit.run``),
the report (``benchmarks.kit.report``) and the command line (``benchmarks.kit.cli``).
"""

from __future__ import annotations

from benchmarks.kit.arms import evaluate_final_policy, random_policy_return, run_arm, save_run
from benchmarks.kit.checkpoint import Checkpoint, EpisodeLog
from benchmarks.kit.cli import build_parser, main, parse_config
from benchmarks.kit.config import LABELERS, RUN_FILE, LabelerConfig, RunConfig, run_flags
from benchmarks.kit.family import Family
from benchmarks.kit.report import (ARMS, OUTPUTS, UPPER, curves_figure, json_safe, plot_curves, print_rows,
                                   print_table, summarize, write_outputs)
from benchmarks.kit.run import ArmError, run
from benchmarks.kit.validate import (budget_problem, cpu_budget, labeler_problem, resume_problem,
                                     segment_length_problem, steps_time_problem, validate)

_json_safe = json_safe

__all__ = ["ARMS", "ArmError", "Checkpoint", "EpisodeLog", "Family", "LABELERS", "LabelerConfig", "OUTPUTS",
           "RUN_FILE", "RunConfig", "UPPER", "budget_problem", "build_parser", "cpu_budget", "curves_figure",
           "evaluate_final_policy", "json_safe", "labeler_problem", "main", "parse_config", "plot_curves",
           "print_rows", "print_table", "random_policy_return", "resume_problem", "run", "run_arm", "run_flags",
           "save_run", "segment_length_problem", "steps_time_problem", "summarize", "validate", "write_outputs"]
