"""``python -m benchmarks.textgen --synthetic-oracle``

RLHF on ``TextGen-v0``, InstructGPT style, in three arms with the same seed,
prompts and PPO budget:

* **zero-shot**: the pretrained LM (default SmolLM2-135M-Instruct) as is;
* **true**: token-level PPO on the task's true score (VADER sentiment of
  the continuation of a real IMDB review, for the default task);
* **learned**: the same PPO on a reward model (all-MiniLM-L6-v2, its top
  blocks fine-tuned, 3 heads; ``--reward-model frozen``: MLP heads on frozen
  embeddings) fit to synthetic preferences between two completions of the
  same prompt (10% random answers), queried by ensemble disagreement: 25% of the labels from the zero-shot model before training,
  the rest on the T0/(T+T0) schedule over the run's episodes.

Both PPO arms keep a per-token KL penalty to the frozen zero-shot model with
an adaptive coefficient. Every arm is evaluated on the same evaluation prompts
(mean true score, KL to the reference). Writes ``curves.csv``,
``curves.png``, ``summary.json``, ``samples.md`` and the labels
(``labels-seed*.sqlite``) to ``--out``. :func:`run` runs a parsed config; the
Python API reaches it as ``prefrl.api.train("TextGen-v0", ...)``.
"""

from __future__ import annotations

import sys

from benchmarks.kit import lifecycle
from benchmarks.textgen.arms import load_policy, make_envs, make_loop, make_ppo, run_seed, train_seeds
from benchmarks.textgen.config import (
    MAX_PROMPT_CHARS, OUTPUTS, QUICK, RUN_FILE, RunOptions, TextBenchConfig, TextCommand,
    parse_config, prompt_file_problem, prompt_token_problem, read_prompt_file, resume_problem,
)
from benchmarks.textgen.report import print_table, summarize, write_outputs
from benchmarks.textgen.config import _run_config  # noqa: F401 -- the run.json flags, read by tests from here
from benchmarks.textgen.runner import RunInputError, run

__all__ = [
    "MAX_PROMPT_CHARS", "OUTPUTS", "QUICK", "RUN_FILE", "RunInputError", "RunOptions", "TextBenchConfig", "TextCommand",
    "load_policy", "main", "make_envs", "make_loop", "make_ppo", "parse_config", "print_table",
    "prompt_file_problem", "prompt_token_problem", "read_prompt_file", "resume_problem", "run", "run_seed", "summarize",
    "train_seeds", "write_outputs",
]


def main(argv: list[str] | None = None) -> dict:
    """Entry point of ``python -m benchmarks.textgen``: parses, runs every seed, reports; returns the summary."""
    from prefrl.api import run_text_config

    cfg, out, opts = parse_config(argv)
    try:
        return run_text_config(cfg, out, opts).summary
    except RunInputError as err:
        lifecycle.exit_with(2, f"prefrl: error: {err}")
    except KeyboardInterrupt:
        lifecycle.exit_with(130, lifecycle.interrupted(out))


if __name__ == "__main__":
    main(sys.argv[1:])
