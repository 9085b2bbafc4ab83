"""One benchmark kit for every ``benchmarks.<family>`` CLI, by job.

* :mod:`~benchmarks.kit.flags`: argparse flags generated from config dataclasses (and back).
* :mod:`~benchmarks.kit.config`: the frozen run configs (``RunConfig``, ``LabelerConfig``).
* :mod:`~benchmarks.kit.family`: ``Family``, how an env family plugs in.
* :mod:`~benchmarks.kit.validate`: the checks before any arm starts.
* :mod:`~benchmarks.kit.arms`, :mod:`~benchmarks.kit.checkpoint`: one arm, and its checkpoint.
* :mod:`~benchmarks.kit.run`: every (seed, arm) in a process pool.
* :mod:`~benchmarks.kit.report`: summary, CSV/JSON, plot, table.
* :mod:`~benchmarks.kit.cli`: the Atari/MuJoCo command line.

The modules import torch, SB3 and the env families only inside the functions that need them.
"""
