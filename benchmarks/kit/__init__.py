"""One benchmark kit for every ``benchmarks.<family>`` CLI, by job.

* :mod:`~benchmarks.kit.flags`: the flags of config dataclasses, parsed by tyro (and back: ``to_argv``).
* :mod:`~benchmarks.kit.config`: the frozen run configs (``RunConfig``, ``LabelerConfig``).
* :mod:`~benchmarks.kit.family`: ``Family``, how an env family plugs in.
* :mod:`~benchmarks.kit.validate`: the checks before any arm starts.
* :mod:`~benchmarks.kit.arms`, :mod:`~benchmarks.kit.checkpoint`: one (SB3) arm, and the checkpoint of every
  family's arms (text's included).
* :mod:`~benchmarks.kit.lifecycle`: what every run does around its arms (``run.json``, SIGTERM, cleanup, exit).
* :mod:`~benchmarks.kit.run`: every (seed, arm) in a process pool.
* :mod:`~benchmarks.kit.report`: summary, CSV/JSON, plot, table.
* :mod:`~benchmarks.kit.cli`: the Atari/MuJoCo command line.

``benchmarks.textgen`` is a family of the kit too: its flags, labeler config, checks, lifecycle, checkpoints and
report helpers are these; its arm loop (token-level PPO) is its own (docs/architecture.md).

The modules import torch, SB3 and the env families only inside the functions that need them.
"""
