"""When labels are asked for over a run.

Christiano et al. gather ~25% of the label budget from the initial random
policy (and pre-train on it), then ask at a rate that decays like
T0 / (T + T0) (T0 = 2e6 steps for MuJoCo, 5e6 for Atari). Here the decay is
scaled to the run: T0 = ``t0_fraction`` x total steps, and the cumulative
count is normalised so the whole budget is used by the last step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LabelSchedule"]


@dataclass
class LabelSchedule:
    """Cumulative labels due by each environment step.

    due(T) = n0 + (N - n0) * log(1 + T/T0) / log(1 + T_max/T0),

    whose rate d due / dT is proportional to T0 / (T + T0).

    Attributes:
        total_labels: N, the whole label budget.
        total_steps: T_max, environment steps of the run.
        initial_fraction: share of N labeled before training starts (default 0.25).
        t0_fraction: T0 as a share of T_max (default 0.1). Smaller front-loads labels.
    """

    total_labels: int
    total_steps: int
    initial_fraction: float = 0.25
    t0_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.total_labels < 0:
            raise ValueError(f"label budget must be >= 0, got {self.total_labels}")
        if self.total_steps < 1:
            raise ValueError(f"total steps must be >= 1, got {self.total_steps}")
        if not 0.0 <= self.initial_fraction <= 1.0:
            raise ValueError(f"initial_fraction must be in [0, 1], got {self.initial_fraction}")
        if self.t0_fraction <= 0:
            raise ValueError(f"t0_fraction must be > 0, got {self.t0_fraction}")

    @property
    def initial_labels(self) -> int:
        """Labels collected from the initial policy, before any training."""
        n0 = round(self.initial_fraction * self.total_labels)
        return max(n0, 1) if self.total_labels > 0 else 0

    def due(self, step: int) -> int:
        """Cumulative labels that should have been collected by ``step``."""
        n0, N = self.initial_labels, self.total_labels
        t0 = self.t0_fraction * self.total_steps
        frac = math.log1p(min(max(step, 0), self.total_steps) / t0) / math.log1p(self.total_steps / t0)
        return min(N, n0 + math.floor((N - n0) * frac + 1e-9))
