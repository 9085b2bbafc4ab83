"""``LoopConfig``: the settings of the query/label/fit loop (:class:`prefrl.loop.PreferenceLoop`)."""

from __future__ import annotations

from dataclasses import dataclass

from prefrl.queries import QUERY_METHODS

__all__ = ["LoopConfig"]


@dataclass
class LoopConfig:
    """Settings of the query/label/fit loop."""

    total_labels: int = 700
    """Label budget of the whole run (the paper's MuJoCo runs: 700 or 1400)."""
    total_steps: int = 1_000_000
    """Environment steps of the run; the label schedule is scaled to it."""
    segment_length: int = 25
    """L, steps per segment (paper: 25 for Atari, 15-60 for MuJoCo)."""
    candidate_factor: int = 10
    """Candidate pairs drawn per label wanted (paper: ~10x)."""
    query: str = "disagreement"
    """Query selection: "disagreement", "entropy", "gap" or "random"."""
    initial_fraction: float = 0.25
    """Share of the budget labeled from the initial (random) policy before training."""
    t0_fraction: float = 0.1
    """Decay constant T0 of the label rate T0/(T+T0), as a share of total_steps."""
    pretrain_epochs: int = 200
    """Epochs over the initial labels before the agent starts (paper, Atari: 200)."""
    fit_epochs: int = 5
    """Epochs of refitting after each batch of new labels."""
    fit_min_steps: int = 60
    """At least this many gradient steps per refit (and per pretraining)."""
    query_rounds: int = 30
    """Most query/fit rounds after pretraining: labels are asked in batches of at least
    (budget - initial) / query_rounds, which bounds the time spent refitting."""
    buffer_steps: int = 10_000
    """Recent steps per env kept for sampling segments."""
    anchor_fraction: float = 0.0
    """Share of query candidates whose second clip is a clip labeled before (from the store)
    instead of a recent one. 0 (the paper): every clip comes from recent steps. Above 0, the
    current behaviour keeps being compared with earlier behaviour, so a policy that found a
    blind spot of the reward model (Seaquest: parking at the surface, where every recent clip
    scores 0) is still shown next to clips that scored."""
    target_std: float = 1.0
    """Std of the normalised learned reward (the mean is 0)."""
    calibration_samples: int = 4096
    """Recent steps used to re-estimate the reward's mean/std after each fit."""
    correlation_segments: int = 256
    """Fresh segments scored for the learned-vs-true correlation metric."""
    seed: int = 0
    """Seeds segment sampling and query selection."""
    overlap_fit: bool = False
    """Refit in a background thread while the agent goes on (its update, the next rollout), instead of
    between them. Whatever reads the model first (a reward, a query round, a checkpoint) waits for the fit,
    so the labels, rewards and fits are the serial ones; the wait is short only when nothing reads the
    model until the next rollout ends: an on-policy agent on ``LearnedRewardVecEnv(defer_rewards=True)``.
    Pays only with a spare core (the fit and the agent each use one). The first fit (``pretrain``), a fit
    after waiting for people's labels (``wait_for_labels``) and models whose fit draws from torch's global RNG (dropout, random shifts:
    the agent draws from it too, so the order would depend on timing) stay serial."""
    unlabeled_transitions: int = 4096
    """Recorded transitions drawn for each fit when the trainer learns a representation from them
    (``TrainerConfig.ssl_weight`` > 0); the fit's batches are drawn from these."""
    unlabeled_pairs: int = 256
    """Pairs of recorded clips drawn for each fit when the trainer pseudo-labels them
    (``TrainerConfig.pseudo_threshold``); the fit's batches are drawn from these."""
    keep_render_state: bool = False
    """Record what a person needs to see each step (the wrappers pass MuJoCo's ``info["sim_state"]``) so
    queried segments carry ``Segments.state`` for rendering. Off by default (memory: see
    ``RolloutRecorder.add``); the benchmarks turn it on when a person labels MuJoCo clips."""
    min_answered_share: float = 0.0
    """Asynchronous labelers (people): the share of the labels the schedule wants by now that must be
    answered before the agent goes on (:meth:`PreferenceLoop.labels_short`, :meth:`PreferenceLoop.wait_for_labels`).
    0 (default): never wait, the agent trains on whatever reward the labels so far give (and a run whose
    labelers never come trains on an untrained model). 1: wait for every label due. Only queries already
    posted are waited for, so a round never waits for labels it has not asked yet."""

    def __post_init__(self) -> None:
        if self.query not in QUERY_METHODS:
            raise ValueError(f"unknown query method {self.query!r}; choose one of {QUERY_METHODS}")
        for name in ("segment_length", "candidate_factor", "buffer_steps", "calibration_samples", "query_rounds",
                     "unlabeled_transitions", "unlabeled_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.anchor_fraction <= 1.0:
            raise ValueError(f"anchor_fraction must be in [0, 1], got {self.anchor_fraction}")
        if not 0.0 <= self.min_answered_share <= 1.0:
            raise ValueError(f"min_answered_share must be in [0, 1] (0 = never wait for labels), "
                             f"got {self.min_answered_share}")
        if self.total_labels < 0:
            raise ValueError(f"the label budget must be >= 0, got {self.total_labels}")
        if self.total_labels > self.total_steps:
            raise ValueError(
                f"{self.total_labels} labels for {self.total_steps} steps: ask for fewer labels than steps"
            )
