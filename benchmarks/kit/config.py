"""The typed, frozen configs of a benchmark run; their flags are generated from them (``benchmarks.kit.flags``).

:class:`LabelerConfig` is who labels (every benchmark, text included); :class:`RunConfig` the flags the
Atari and MuJoCo benchmarks share, with the labeler and the family's own options (a small frozen
dataclass each family declares) nested in it. A config is never changed in place: ``--quick``,
the GPU defaults and validation (canonical env id, resolved device, default ``--out``) each give a
new one (:func:`with_unset`, :func:`benchmarks.kit.flags.replace_flat`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.kit.flags import flat_fields, json_flags, replace_flat

QueryMethod = Literal["disagreement", "entropy", "gap", "random"]
"""The query methods a command offers: ``prefrl.QUERY_METHODS`` (tested equal; spelled out here so that
parsing flags does not import torch)."""

LABELERS = ("synthetic-oracle", "web")


@dataclass(frozen=True)
class LabelerConfig:
    """Who answers the queries, and the web app's settings when people do."""

    labeler: Literal["synthetic-oracle", "web"] | None = field(
        default=None, metadata={"aliases": {"--synthetic-oracle": "synthetic-oracle"}, "default_text": "none: choose one"})
    """who labels: synthetic-oracle (prefers the larger true return, with --noise random answers) or web (you, in a
    local web page whose URL is printed when the run starts; training goes on while you label)"""
    web_host: str = "127.0.0.1"
    """--labeler web: interface the page listens on (0.0.0.0: colleagues on a trusted network)"""
    web_port: int = 0
    """--labeler web: TCP port (0 = any free port)"""
    label_timeout: float = 300.0
    """--labeler web: seconds a shown query waits for its answer before it goes back to the queue (or is dropped,
    see --on-timeout)"""
    on_timeout: Literal["requeue", "drop"] = "requeue"
    """--labeler web: what happens to a query nobody answered in --label-timeout seconds"""
    min_answered_share: float = 0.5
    """--labeler web: after each query round the agent waits (saying so, on the console and the page) until this
    share of the labels due by then is answered; 0 = never wait (the agent trains on whatever labels came), 1 = wait
    for all"""
    repeat_share: float = 0.0
    """--labeler web: share of answered queries asked once more, to whoever asks next, to measure how often answers
    agree between people and with oneself (the repeat writes no label; the summary's "team" reports agreement and
    speed per annotator); 0 = none, 0.1 is a common choice"""


@dataclass(frozen=True)
class RunConfig:
    """Everything an Atari or MuJoCo benchmark run depends on (``--help`` shows the flags).

    ``env``, ``steps``, ``labels``, ``agent`` and ``n_envs`` have no default here: each family gives its
    own (``Family.defaults``).
    """

    env: str
    """environment to train on"""
    steps: int
    """environment steps per run"""
    labels: int
    """total label budget"""
    agent: Literal["ppo", "a2c"]
    """RL algorithm"""
    n_envs: int
    """parallel environments per run"""
    labeling: LabelerConfig = field(default_factory=LabelerConfig, metadata={"nested": True})
    """who labels"""
    noise: float = 0.1
    """probability that the oracle answers at random"""
    query: QueryMethod = "disagreement"
    """how queries are picked from the candidate pool (gap: pairs the ensemble expects to differ most, for sparse tasks)"""
    seeds: tuple[int, ...] = (0,)
    """seeds; each runs both arms"""
    anchor_fraction: float | None = field(default=None, metadata={"default_text": "the family's"})
    """share of query candidates paired with a clip labeled before instead of a recent one (0 = the paper)"""
    segment_length: int | None = field(default=None, metadata={"default_text": "the family's"})
    """steps per segment"""
    reward_std: float | None = field(default=None, metadata={"default_text": "the family's"})
    """std of the normalised learned reward the agent gets"""
    ssl_weight: float | None = field(default=None, metadata={"default_text": "the family's"})
    """weight of the self-supervised temporal-consistency loss (REED: each reward member's latent of a recorded
    step predicts the next step's) on every recorded transition; 0 = off"""
    ssl_objective: Literal["cosine", "contrastive", "inverse"] | None = field(
        default=None, metadata={"default_text": "the family's"})
    """the self-supervised objective: cosine (REED: predict the next latent), contrastive (InfoNCE over the batch)
    or inverse (inverse dynamics: the action from two consecutive latents)"""
    ssl_pretrain_steps: int | None = field(default=None, metadata={"default_text": "the family's"})
    """gradient steps of that loss alone before the first reward fit (>= 1)"""
    pseudo_threshold: float | None = field(default=None, metadata={"default_text": "the family's"})
    """SURF: an unlabeled pair of recorded clips whose predicted preference is at least this confident gets it as a
    label, in (0.5, 1]; 0 = off"""
    crop: int | None = field(default=None, metadata={"default_text": "the family's"})
    """SURF's temporal cropping: train on random windows of between this many steps and the whole segment; 0 = off"""
    stop_tolerance: float | None = field(default=None, metadata={"default_text": "the family's"})
    """early stopping of reward fits: a fit ends once an epoch lowers the training loss by less than this fraction,
    in [0, 1); 0 = off"""
    device: str = "auto"
    """auto (GPU when present), cpu or cuda"""
    workers: int | None = field(default=None, metadata={"default_text": "one per CPU core, at most one per run"})
    """runs in parallel processes"""
    out: Path | None = field(default=None, metadata={"default_text": "runs/<family>-<env>-<time>"})
    """output directory"""
    resume: bool = False
    """continue the interrupted run in --out (same flags): finished arms are kept, the others restart from their
    last checkpoint with the labels already in their store"""
    checkpoint_minutes: float = 10.0
    """an arm saves a checkpoint after each reward-model fit and at least this often"""
    tensorboard: Path | None = field(default=None, metadata={"metavar": "DIR"})
    """also log each run to TensorBoard under DIR/<arm>-seed<k>_1 (SB3's train/ and rollout/ metrics, true_return,
    and the pref/ metrics of the learned arm); needs `pip install tensorboard`"""
    eval_episodes: int = 30
    """fresh episodes on which each final policy (and the random policy) is evaluated"""
    upper_bound: bool = False
    """add a third arm: the true reward through everything the learned arm gets (normalised per step, episode ends
    as time-outs): what a perfect reward model would give"""
    quick: bool = False
    """a ~1-minute smoke run: tiny budget, few labels"""
    options: Any = field(default=None, metadata={"nested": True})
    """the family's own options (its frozen dataclass, e.g. Atari's --rm), or None"""

    @property
    def labeler(self) -> str | None:
        """``labeling.labeler``, the labeler's name."""
        return self.labeling.labeler


NOT_COMPARED = frozenset({"out", "resume", "checkpoint_minutes", "workers", "tensorboard", "device", "web_host",
                          "web_port", "label_timeout", "on_timeout", "min_answered_share",
                          "repeat_share"})
"""Flags that do not change what a run computes: ``--resume`` accepts other values for them."""


def run_flags(cfg: RunConfig) -> dict:
    """The flags saved in a run's ``run.json`` and compared on ``--resume`` (flat, as the flags name them)."""
    return json_flags(cfg, NOT_COMPARED)


def with_unset(cfg: Any, values: dict[str, Any], defaults: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A new config where each field of ``values`` still at its default takes the given value instead.

    Args:
        cfg: a (nested) config.
        values: field -> value (``--quick``'s budget, the GPU defaults).
        defaults: field -> the parser's default; a field the user set explicitly differs from it.

    Returns:
        (the new config, the values applied).
    """
    now = flat_fields(cfg)
    grown = {k: v for k, v in values.items() if now[k] == defaults.get(k)}
    return (replace_flat(cfg, **grown) if grown else cfg), grown


RUN_FILE = "run.json"
"""The flags of a run, written when it starts; ``--resume`` refuses flags that differ from them."""
