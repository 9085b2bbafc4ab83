"""A parsed text run, carried out: every seed's arms, then the outputs and the table (:func:`run`).

The command (``python -m benchmarks.textgen``) and the Python API (``prefrl.api.run_text_config``, what
``prefrl.api.train("TextGen-v0", ...)`` calls) both run here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.kit import lifecycle
from benchmarks.textgen.arms import load_policy, run_seed
from benchmarks.textgen.config import OUTPUTS, RunOptions, TextBenchConfig, _run_config, prompt_token_problem
from benchmarks.textgen.report import print_table, summarize, write_outputs


class RunInputError(ValueError):
    """The model or the prompts cannot be used (found once the model is loaded): nothing has trained."""


def run(cfg: TextBenchConfig, out: Path, opts: RunOptions = RunOptions()) -> dict:
    """Runs a parsed, checked config (:func:`benchmarks.textgen.config.parse_config`): every seed's arms, then the
    outputs and the table.

    The command and :func:`prefrl.api.train` (``"TextGen-v0"``) call this, through ``prefrl.api.run_text_config``.

    Returns:
        The summary (as written to ``summary.json``).

    Raises:
        RunInputError: the model cannot be loaded, or a prompt of ``--prompt-file`` does not fit.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the labels and checkpoints gathered so far are kept.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm import tqdm

    try:
        base_model, tokenizer = load_policy(cfg.model)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise RunInputError(f"cannot load --model {cfg.model!r}: {err}") from None
    problem = None if cfg.prompt_file is None else prompt_token_problem(cfg, tokenizer)
    if problem:
        try:
            out.rmdir()  # only the empty directory the --out check made; a run's files stay
        except OSError:
            pass
        raise RunInputError(problem)
    lifecycle.start(out, {"config": _run_config(cfg)}, opts.resume)
    t0 = time.perf_counter()
    total = len(cfg.seeds) * (3 + 2 * cfg.iterations)
    results = []
    with lifecycle.stopping(out, cfg.seeds), tqdm(total=total, desc="textgen", unit="step", dynamic_ncols=True) as bar:
        for seed in cfg.seeds:
            results.append(run_seed(cfg, seed, out, base_model, tokenizer, bar, opts))
    summary = summarize(cfg, results, time.perf_counter() - t0)
    write_outputs(out, cfg, results, summary)
    lifecycle.finish(out)
    print_table(summary)
    print(f"\nwrote {', '.join(OUTPUTS)} to {out}")
    return summary

