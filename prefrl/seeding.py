"""Independent random streams from one user seed.

Every component that draws random numbers (oracle, store split, trainer,
segment sampling) gets its own stream derived from the run's seed and the
component's name, so that two components given the same seed never draw the
same numbers (e.g. the oracle's flipped labels are not all sent to validation).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(seed: int, component: str) -> int:
    """A 63-bit seed for ``component``, fixed for a given (seed, component)."""
    ss = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(component.encode())])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> 1)
