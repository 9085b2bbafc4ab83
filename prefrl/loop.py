"""The preference loop: record -> segments -> queries -> labels -> fit -> learned reward.

``PreferenceLoop`` owns every piece of the core and exposes three calls:

* ``record(obs, act, true_reward, done)`` after each vector-env step (the
  wrappers do this);
* ``reward(obs, act)``, the normalised learned reward of a batch of steps;
* ``update(env_step)`` between agent updates: measures the current model on
  steps recorded since its last fit, asks for the labels the schedule says are due, stores them, refits the ensemble and recalibrates the
  reward normalisation. ``pretrain()`` does the same once, before training,
  with the initial share of the budget and more epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from prefrl.background_fit import BackgroundFit, OverlappedFits
from prefrl.loop_config import LoopConfig
from prefrl.loop_diagnostics import LoopDiagnostics
from prefrl.loop_state import load_loop_state, loop_state_dict
from prefrl.label_waiting import LabelWaiting
from prefrl.labeling import QueryLabeler, as_query_labeler
from prefrl.oracle import Labeler
from prefrl.query_sampler import QuerySampler
from prefrl.reward_model import MLPEnsemble, RewardEnsemble
from prefrl.schedule import LabelSchedule
from prefrl.seeding import derive_seed
from prefrl.recorder import RolloutRecorder
from prefrl.store import PreferenceStore
from prefrl.trainer import RewardTrainer, TrainerConfig
from prefrl.unlabeled import UnlabeledData, draw_unlabeled

__all__ = ["LoopConfig", "RolloutRecorder", "PreferenceLoop"]


@dataclass
class PreferenceLoop(LabelWaiting, OverlappedFits, LoopDiagnostics):
    """Learns a reward from preferences while an agent trains.

    Every labeler is reached through one protocol, :class:`~prefrl.labeling.QueryLabeler`
    (``post`` / ``collect`` / ``outstanding``): a round posts the queries due; every ``update``
    collects the answers that arrived, and the schedule counts *answered* queries (``labels_used``):
    queries still waiting are not posted again, dropped ones (a lease ran out with
    ``on_timeout="drop"``) are asked again by the schedule. The model is refit when new labels arrived
    and a batch of them is complete (as many as a round asks, or every posted query resolved); the first
    fit uses ``pretrain_epochs``.

    * A synchronous :class:`~prefrl.oracle.Labeler` (``SyntheticOracle``) is wrapped in
      :class:`~prefrl.labeling.ImmediateLabeler`: it answers when a query is posted, so each round
      fits on the labels it asked for.
    * A :class:`~prefrl.queue_labeler.QueueLabeler` (what the web app serves) answers later (``is_async``):
      a round returns at once, and until the first labels arrive the agent trains on the untrained
      model's reward (small random rewards, normalised over the initial policy's steps).

    Args:
        ensemble: the reward model.
        labeler: answers queries: a ``Labeler`` (``SyntheticOracle``) or a ``QueryLabeler`` (``QueueLabeler``,
            people through the web app).
        n_envs: environments per vector step.
        config: loop settings (``LoopConfig``).
        trainer_config: reward-fitting settings (``TrainerConfig``).
        store: where labels go; default an in-memory ``PreferenceStore``.
        obs_transform: what the reward model sees of an observation, applied
            to batches ([n, *obs_shape] -> [n, *rm_obs_shape]) when a step is
            recorded and when its reward is computed: e.g. Atari frames pooled
            to 42x42 with the score area blacked out. ``None``: the
            observation as it is.
        trainer: fits the ensemble to the stored labels (:class:`~prefrl.trainer.RewardTrainer`); default one
            built from ``trainer_config`` (an injected one replaces ``trainer_config`` with its own).
        sampler: picks each round's query pairs (:class:`~prefrl.query_sampler.QuerySampler`); default one
            built from ``config`` (``segment_length``, ``candidate_factor``, ``query``, ``anchor_fraction``)
            drawing from the loop's segment generator.
    """

    ensemble: RewardEnsemble
    labeler: Labeler | QueryLabeler
    n_envs: int
    config: LoopConfig = field(default_factory=LoopConfig)
    trainer_config: TrainerConfig = field(default_factory=TrainerConfig)
    store: PreferenceStore | None = None
    obs_transform: Callable[[np.ndarray], np.ndarray] | None = None
    sampler: QuerySampler | None = None
    trainer: RewardTrainer | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        if self.trainer is not None:  # an injected reward trainer brings its own settings
            if self.trainer.ensemble is not self.ensemble:
                raise ValueError("the trainer fits another ensemble than the loop's: give "
                                 "RewardTrainer(ensemble, config) the ensemble you give the loop")
            self.trainer_config = self.trainer.config
        if self.trainer_config.crop_min_length > cfg.segment_length:
            raise ValueError(f"crop_min_length={self.trainer_config.crop_min_length} is longer than the "
                             f"{cfg.segment_length}-step segments: crop to at most {cfg.segment_length} steps "
                             "(or 0 for no cropping)")
        self.store = self.store if self.store is not None else PreferenceStore(seed=cfg.seed)
        if self.trainer is None:
            self.trainer = RewardTrainer(self.ensemble, self.trainer_config)
        self._unlabeled_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "loop-unlabeled"))
        self._unlabeled_rng = np.random.default_rng(derive_seed(cfg.seed, "loop-unlabeled-steps"))
        self.schedule = LabelSchedule(cfg.total_labels, cfg.total_steps, cfg.initial_fraction, cfg.t0_fraction)
        self.recorder = RolloutRecorder(cfg.buffer_steps, self.n_envs)
        self.device = torch.device(self.trainer_config.device)
        self._gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "loop-segments"))
        if self.sampler is None:  # query candidates and the fresh-correlation segments share one stream
            self.sampler = QuerySampler(cfg.segment_length, cfg.candidate_factor, cfg.query, cfg.anchor_fraction,
                                        self._gen)
        self._np_rng = np.random.default_rng(derive_seed(cfg.seed, "loop-calibration"))
        self.labels_used = 0
        self.reward_mean, self.reward_std = 0.0, 1.0
        self.metrics: dict[str, float] = {}
        self.fit_seconds = 0.0
        self.fit_overlap_cpu_seconds = 0.0  # CPU time of background fits (LoopConfig.overlap_fit), in their thread
        self._steps_at_fit = -1  # recorder.total at the last fit; -1 before any
        self.queries, self.is_async = as_query_labeler(self.labeler, self.store)
        """The labeler behind the loop's one protocol, and whether its answers come later (people)."""
        self.labels_arrived = 0  # pairwise labels that arrived and were not fit yet
        self.queries_posted = 0  # queries this loop posted (re-requests included)
        self._fitted = False
        self._initial_posted = False
        self._background = BackgroundFit()  # LoopConfig.overlap_fit
        self._fit_extra: dict[str, float] = {}  # the round metrics a background fit reports with its own
        self._fit_unreported: dict[str, float] | None = None  # metrics of a background fit not returned yet
        self._refit_due = False  # labels stored after the checkpoint this loop resumed from, not fit yet
        # a fit that draws from torch's global RNG (dropout, random shifts) would interleave its draws with the
        # agent's: such fits stay serial so that a seed gives one run
        self.fit_in_background = self.config.overlap_fit and not self.ensemble.fit_draws_global_rng()
        """Whether refits run in a background thread (``overlap_fit``, and the fit draws no global random numbers)."""

    # -- per step --------------------------------------------------------
    def record(self, obs, act, true_reward, done, valid=None, state=None) -> None:
        """Records one vector step (see ``RolloutRecorder.add``)."""
        self.recorder.add(self._view(obs), act, true_reward, done, valid, state)

    def observe(self, obs, act, true_reward, done, valid=None, state=None) -> np.ndarray:
        """Records one vector step and returns its normalised learned reward.

        What the wrappers call on every step: the observation is transformed
        once, stored, and scored for all envs in one batched call.

        Args:
            obs: [n_envs, *obs_shape] observations o_t the actions were taken at.
            act: [n_envs, *act_shape] actions a_t.
            true_reward: [n_envs] environment rewards (kept for the oracle only).
            done: [n_envs] whether step t ended the episode.
            valid: [n_envs] False for autoreset steps (``None``: all valid).
            state: [n_envs, *state_shape] render states for a person (e.g.
                MuJoCo qpos + qvel after the step), or None.

        Returns:
            [n_envs] float32 learned rewards.
        """
        view = self._view(obs)
        self.recorder.add(view, act, true_reward, done, valid, state)
        return self._normalise(self.raw_reward(view, act, transformed=True))

    def _normalise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.reward_mean) / self.reward_std * self.config.target_std).astype(np.float32)

    def _view(self, obs) -> np.ndarray:
        return np.asarray(obs) if self.obs_transform is None else self.obs_transform(np.asarray(obs))

    def raw_reward(self, obs, act, transformed: bool = False) -> np.ndarray:
        """Ensemble-mean reward, unnormalised: obs [B, ...], act [B, ...] -> [B].

        ``transformed``: obs is already what the reward model sees (recorded steps).
        Waits for a background fit first (``LoopConfig.overlap_fit``).
        """
        self.wait_fit()
        return self.ensemble.mean_reward(obs if transformed else self._view(obs), act)

    def rewards_of_recent(self, steps: int, chunk: int = 1024) -> np.ndarray:
        """Normalised learned rewards of the newest ``steps`` recorded vector steps, scored in large batches.

        The same function ``observe`` pays step by step (the recorded
        observation is what the reward model sees), for a wrapper that defers
        scoring to the end of a rollout (``LearnedRewardVecEnv(defer_rewards=True)``):
        one forward pass per ``chunk`` steps instead of one per vector step.

        Args:
            steps: vector steps, newest last (at most the recorder's capacity).
            chunk: (step, env) rows per forward pass.

        Returns:
            [steps, n_envs] float32 rewards, in time order.

        Raises:
            ValueError: fewer than ``steps`` steps are recorded.
        """
        if not 1 <= steps <= self.recorder.size:
            raise ValueError(f"asked for the rewards of the last {steps} steps; the recorder holds "
                             f"{self.recorder.size} (capacity {self.recorder.capacity}, LoopConfig.buffer_steps)")
        return self._normalise(self._recent_raw(steps, chunk)[0])

    def _recent_raw(self, last: int, chunk: int = 1024) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw rewards [T, n_envs] of the newest ``last`` recorded vector steps, and those steps' arrays."""
        self.wait_fit()
        a = self.recorder.arrays(last)
        T, n = a["true_reward"].shape
        raw = self._score(a["obs"].reshape(T * n, *a["obs"].shape[2:]), a["act"].reshape(T * n, *a["act"].shape[2:]),
                          chunk)
        return raw.reshape(T, n), a

    def _score(self, obs: np.ndarray, act: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Raw ensemble-mean rewards of recorded steps, ``chunk`` rows per forward pass: [B] float32.

        Reads the model without waiting for a background fit (the fit's thread calls it too).
        """
        return np.concatenate([self.ensemble.mean_reward(o, a) for o, a in _chunks(obs, act, chunk)])

    def _set_normalisation(self, raw: np.ndarray) -> None:
        """Mean and std of the raw reward on calibration steps (std 1 when it is constant)."""
        self.reward_mean = float(raw.mean())
        self.reward_std = float(raw.std()) if len(raw) > 1 and raw.std() > 1e-8 else 1.0

    def reward(self, obs, act) -> np.ndarray:
        """Normalised learned reward of a batch of steps: obs [B, ...], act [B, ...] -> [B] float32."""
        return self._normalise(self.raw_reward(obs, act))

    # -- between agent updates ---------------------------------------------
    def _calibrate(self) -> None:
        self._set_normalisation(self._score(*self.recorder.random_steps(self.config.calibration_samples,
                                                                        self._np_rng)))

    def _query(self, n: int) -> None:
        """Samples candidates, selects n queries and posts them; ``_collect`` counts their answers."""
        seg1, seg2 = self.sampler.select(self.recorder, self.store, self.ensemble, n, self._fitted)
        self.queries.post(seg1, seg2)
        self.queries_posted += len(seg1)

    def _unlabeled(self) -> UnlabeledData | None:
        """What a fit reads of the recorded steps beyond the labels (:func:`prefrl.unlabeled.draw_unlabeled`)."""
        return draw_unlabeled(self.recorder, self.trainer_config, self.config.unlabeled_transitions,
                              self.config.unlabeled_pairs, self.config.segment_length, self._unlabeled_rng,
                              self._unlabeled_gen)

    def _fit(self, epochs: int) -> dict[str, float]:
        t = time.perf_counter()
        metrics = self.trainer.fit(self.store, epochs, self.config.fit_min_steps, self._unlabeled())
        self._calibrate()
        self._steps_at_fit = self.recorder.total
        self.fit_seconds += time.perf_counter() - t
        self._fitted = True
        self.labels_arrived = 0
        return metrics

    def pretrain(self) -> dict[str, float]:
        """Labels the initial share of the budget from what was recorded so far and fits on it.

        Call after stepping the wrapped env with the initial (random) policy.
        """
        self.wait_fit()
        n0 = self.schedule.initial_labels
        if n0 == 0:
            return {}
        if isinstance(self.ensemble, MLPEnsemble):  # standardise inputs on the initial policy's data
            obs, act = self.recorder.random_steps(self.config.calibration_samples, self._np_rng)
            self.ensemble.set_input_stats(torch.as_tensor(obs, device=self.device), torch.as_tensor(act, device=self.device))
        self._initial_posted = True  # post the initial queries; fit only on what has arrived (people: maybe nothing yet)
        self._collect()
        missing = n0 - self.labels_used - self.queries.outstanding()
        if missing > 0:
            self._query(missing)
        self._collect()
        if not self.is_async and len(self.store) == 0:
            raise ValueError("the labeler skipped every initial query; lower its skip threshold")
        if self.labels_arrived == 0 or len(self.store) == 0:
            return {}
        self.metrics = self._fit(self.config.pretrain_epochs) | {"labels": float(self.labels_used)}
        return self.metrics

    def _collect(self) -> dict:
        """Counts the answers that arrived since the last look (answered or skipped queries)."""
        new = self.queries.collect()
        self.labels_used += int(new["queries"])
        self.labels_arrived += int(new["labels"])
        return new

    def label_status(self, env_step: int) -> dict[str, int]:
        """Where the labels stand at ``env_step``: for a progress page.

        Returns:
            ``labels_used`` (queries answered or skipped), ``labels_due`` (the
            schedule's count at ``env_step`` minus ``labels_used``, >= 0),
            ``labels_total`` (the budget), ``waiting`` (async: queries posted and
            not answered yet, else 0) and ``labels_not_fit`` (async: arrived since the last fit).
        """
        return {"labels_used": self.labels_used,
                "labels_due": max(0, self.schedule.due(env_step) - self.labels_used),
                "labels_total": self.config.total_labels,
                "waiting": self.queries.outstanding(),
                "labels_not_fit": self.labels_arrived}

    def wait_for_labels(self, env_step: int, poll_seconds: float = 1.0, report_seconds: float = 30.0,
                        on_wait: Callable[[dict], None] | None = None) -> dict[str, float] | None:
        """Blocks until :meth:`labels_short` is 0: the labels the agent needs by ``env_step`` are in.

        Every ``poll_seconds`` it collects the answers given; every ``report_seconds`` (and once at the
        start) it calls ``on_wait`` with :meth:`label_status` plus ``short`` (answers missing) and
        ``waited_seconds``. When it had to wait, the model is then fit on every label that arrived (the
        first fit with ``pretrain_epochs``), so the agent goes on with the reward those labels give.

        Returns:
            that fit's metrics, or ``None`` when nothing was missing.
        """
        if not self._wait_until_answered(env_step, poll_seconds, report_seconds, on_wait,
                                         lambda: self.label_status(env_step)):
            return None
        if self.labels_arrived == 0 or len(self.store) == 0:
            return None
        epochs = self.config.fit_epochs if self._fitted else self.config.pretrain_epochs
        self.metrics = self._fit(epochs) | {"labels": float(self.labels_used)}
        return self.metrics

    # -- checkpoints -------------------------------------------------------
    def state_dict(self, recorder_max_bytes: int = 256 << 20) -> dict:
        """Everything needed to continue this loop after a crash (:func:`prefrl.loop_state.loop_state_dict`)."""
        return loop_state_dict(self, recorder_max_bytes)

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict` (:func:`prefrl.loop_state.load_loop_state`)."""
        load_loop_state(self, state)

    def update(self, env_step: int) -> dict[str, float] | None:
        """Collects the answers that arrived, posts the queries the schedule says are due, refits on a batch.

        Queries still waiting are not posted again; the model is refit when new labels arrived and a batch
        of them is complete (as many as a round asks, or every posted query resolved). With a synchronous
        labeler every round is answered when it is posted, so each round that asks also fits.

        Args:
            env_step: environment steps the agent has taken so far.

        Returns:
            The round's metrics, or ``None`` if nothing was due or nothing is complete to fit yet, or if the
            round's fit was started in the background (``LoopConfig.overlap_fit``): its metrics then come from
            :meth:`finished_fit` (or this call's successor).
        """
        self.wait_fit()
        if self._refit_due and len(self.store):  # resumed with labels the checkpointed model was not fit on
            self._refit_due = False
            self.metrics = self._fit(self.config.fit_epochs) | {"labels": float(self.labels_used)}
            return self.metrics
        if not self._initial_posted and not self._fitted:
            if self.recorder.size < self.config.segment_length:
                return None
            return self.pretrain() or None
        self._collect()
        waiting = self.queries.outstanding()
        due = self.schedule.due(env_step)
        need = due - self.labels_used - waiting  # waiting queries are not posted again; dropped ones are
        batch = self._round_batch()
        final = due == self.config.total_labels
        initial_short = self.labels_used + waiting < self.schedule.initial_labels  # e.g. an initial query was dropped
        post = need >= 1 and (need >= batch or final or initial_short) \
            and self.recorder.size >= self.config.segment_length
        # the current model's correlation on steps it was never asked about, measured before its candidates are drawn
        corr = self.fresh_correlation() if self._fitted and (post or self.labels_arrived) else {}
        if post:
            self._query(need)
            self._collect()
            waiting = self.queries.outstanding()
        if self.labels_arrived == 0 or len(self.store) == 0:
            return None
        if self._fitted and self.labels_arrived < batch and waiting > 0:
            return None  # a batch is still coming in: fit when it is complete
        epochs = self.config.fit_epochs if self._fitted else self.config.pretrain_epochs
        extra = corr | {"labels": float(self.labels_used)}
        if self.fit_in_background and self._fitted:  # its metrics come from finished_fit / the next update
            self._start_fit(epochs, extra)
            return None
        self.metrics = self._fit(epochs) | extra
        return self.metrics

    def _round_batch(self) -> int:
        """Labels a round asks for at least: the budget after the initial share over ``query_rounds``."""
        later = self.config.total_labels - self.schedule.initial_labels
        return max(1, math.ceil(later / self.config.query_rounds))


def _chunks(obs: np.ndarray, act: np.ndarray, size: int):
    for s in range(0, len(obs), size):
        yield obs[s : s + size], act[s : s + size]
