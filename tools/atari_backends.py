"""Time the Atari vector-env backends: ``python -m tools.atari_backends [--game G] [--n-envs N] [--steps S]``.

Prints agent steps per second (and emulator frames per second) of each backend of
:func:`envs.atari.make_atari_vec_env` under uniform random actions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from envs.atari import ATARI_BACKENDS, make_atari_vec_env


def measure_atari_throughput(
    game: str = "Breakout",
    n_envs: int = 8,
    n_steps: int = 250,
    backend: str = "native",
    seed: int = 0,
) -> float:
    """Measures vectorized agent steps per second with uniform random actions.

    Args:
        game: Game name.
        n_envs: Number of parallel games.
        n_steps: Timed vector steps (after 20 warm-up steps).
        backend: One of :data:`ATARI_BACKENDS`.
        seed: Seed.

    Returns:
        Agent steps per second summed over sub-envs (x4 for emulator frames).
    """
    venv = make_atari_vec_env(game, n_envs, seed, backend=backend)
    try:
        rng = np.random.default_rng(seed)
        n_actions = int(venv.action_space.n)
        venv.reset()
        for _ in range(20):
            venv.step(rng.integers(0, n_actions, n_envs))
        start = time.perf_counter()
        for _ in range(n_steps):
            venv.step(rng.integers(0, n_actions, n_envs))
        return n_steps * n_envs / (time.perf_counter() - start)
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> None:
    """Times every backend and prints one line each."""
    parser = argparse.ArgumentParser(description="Time the Atari vector-env backends (agent steps/s under random actions)")
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=250)
    args = parser.parse_args(argv)
    for name in ATARI_BACKENDS:
        sps = measure_atari_throughput(args.game, args.n_envs, args.steps, name)
        print(f"{name:12s} {sps:8.0f} agent steps/s ({4 * sps:8.0f} frames/s)")


if __name__ == "__main__":
    main()
