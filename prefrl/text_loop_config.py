"""``TextLoopConfig``: how a text preference loop (:class:`prefrl.text_loop.TextPreferenceLoop`) gathers labels,
fits and shapes the learned reward."""

from __future__ import annotations

from dataclasses import dataclass

from prefrl.queries import QUERY_METHODS

__all__ = ["REWARD_NORMS", "TextLoopConfig"]


REWARD_NORMS = ("initial", "recent")
"""What the learned reward may be normalised over (:attr:`TextLoopConfig.reward_norm`)."""


@dataclass(frozen=True)
class TextLoopConfig:
    """How a text preference loop gathers labels and fits (defaults: the text benchmark's)."""

    labels: int = 1000
    """Label budget: queries answered (pairs, or K-wise rankings when rank_k > 2)."""
    total_completions: int = 2560
    """Completions the policy will generate over the run; the schedule spreads the later labels over them."""
    rank_k: int = 2
    """Completions per query: 2 = pairs, K > 2 = rankings."""
    group_size: int = 0
    """Completions per prompt in a rollout (0 = rank_k). With pairs (rank_k = 2) a larger group makes every pair
    of a prompt's G completions a candidate, C(G, 2) per prompt, so the query method picks the pair that differs
    (the most informative pair of many completions, not the two that happened to be drawn together)."""
    query: str = "disagreement"
    """Query selection among candidate groups: disagreement, entropy, gap or random."""
    pool_rollouts: int = 32
    """Candidates are the unlabeled groups of the last N rollouts (before the first round: every rollout
    added, e.g. extra samples of the initial policy); the reward is normalised over their completions."""
    round_completions: int = 128
    """Labels are gathered and the model refit once this many completions arrived since the last round."""
    initial_steps: int = 120
    """Gradient steps of the first fit, on the labels of the initial policy."""
    refit_steps: int = 30
    """Gradient steps of each later refit (warm start)."""
    reward_std: float = 0.5
    """Std the learned reward is normalised to (zero mean), over the completions ``reward_norm`` names."""
    reward_norm: str = "initial"
    """Which completions fix the learned reward's scale after each fit: ``initial``, the initial policy's (those
    in the pool at the first fit), as a fixed true score has one scale all run; or ``recent``, the last
    ``pool_rollouts`` rollouts' (the default before 2026-12-06). Over recent completions the scale follows the
    policy's spread (it grows as the policy narrows), so against a fixed KL beta the push changes over the run:
    on imdb seeds 0-2 the learned arm's largest training KL was 6.5 / 10.2 / 4.6 nats with ``recent`` and
    7.2 / 6.5 / 5.6 with ``initial`` (docs/text.md)."""
    initial_share: float = 0.25
    """Share of ``labels`` asked before training, on the initial policy's completions (Christiano et al.: 25%)."""
    explore_bonus: float = 0.0
    """RUNE's beta0: the policy's reward adds beta0 (1 - explore_decay)^t times the ensemble's spread, in the
    normalised reward's units (t = completions seen; :func:`~prefrl.losses.rune_reward`); 0 = off."""
    explore_decay: float = 0.001
    """RUNE's rho: the bonus weight's decay per completion (0.001: a quarter left after 1,280 completions)."""
    seed: int = 0
    """Seeds query selection and the trainer."""
    min_answered_share: float = 0.0
    """Asynchronous labelers (people): the share of the queries due by now that must be answered before the
    policy goes on (:meth:`TextPreferenceLoop.wait_for_labels`); 0 = never wait. Only posted queries are waited for."""

    @property
    def group(self) -> int:
        """Completions per prompt in a rollout: ``group_size``, or ``rank_k`` when that is 0."""
        return self.group_size or self.rank_k

    def __post_init__(self) -> None:
        checks = {"min_answered_share": 0.0 <= self.min_answered_share <= 1.0, "labels": self.labels >= 1,
                  "total_completions": self.total_completions >= 1, "rank_k": self.rank_k >= 2,
                  "group_size": self.group_size == 0 or self.group_size >= self.rank_k,
                  "pool_rollouts": self.pool_rollouts >= 1,
                  "round_completions": self.round_completions >= 1, "initial_steps": self.initial_steps >= 1,
                  "refit_steps": self.refit_steps >= 1, "reward_std": self.reward_std > 0,
                  "reward_norm": self.reward_norm in REWARD_NORMS, "initial_share": 0 < self.initial_share <= 1,
                  "explore_bonus": self.explore_bonus >= 0, "explore_decay": 0 <= self.explore_decay < 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"TextLoopConfig: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} out of range "
                             "(labels, total_completions, steps >= 1; rank_k >= 2; group_size 0 or >= rank_k; "
                             f"reward_std > 0; min_answered_share in [0, 1]; reward_norm one of {REWARD_NORMS}; "
                             "initial_share in (0, 1]; explore_bonus >= 0; explore_decay in [0, 1))")
        if self.group_size not in (0, self.rank_k) and self.rank_k != 2:
            raise ValueError(f"TextLoopConfig: group_size={self.group_size} > rank_k={self.rank_k}: larger groups "
                             "are for pairs (rank_k=2); for rankings the group is the query (group_size 0)")
        if self.query not in QUERY_METHODS:
            raise ValueError(f"unknown query method {self.query!r}; choose one of {QUERY_METHODS}")
