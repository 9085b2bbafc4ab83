"""The preference loop for completions: candidate groups, labels, refits and the learned reward.

The same steps as :class:`prefrl.PreferenceLoop` runs for env steps, for
texts: completions arrive in rollouts of groups of K completions of one
prompt; the label schedule (25% up front, then T0 / (T + T0)) says how many
queries are due; :func:`prefrl.select_groups` picks the most informative
groups from the recent rollouts; the labeler answers pairs (K = 2) or ranks K
completions (stored as their C(K, 2) pairs); the reward ensemble is refit on
the store; the learned reward is the ensemble mean, normalised over the
initial policy's completions (or the recent ones). Everything is text: the
store holds each prompt and completion (:func:`prefrl.text_reward.decode_texts`
rebuilds it), so a run's labels can be read, exported and refit with another model.

Usage, with any policy that returns prompts and completions::

    from prefrl import SyntheticOracle, TextLoopConfig, TextPreferenceLoop
    from prefrl.text_reward import FineTunedTextEnsemble

    loop = TextPreferenceLoop(FineTunedTextEnsemble(width=2048), SyntheticOracle(noise=0.1),
                              TextLoopConfig(labels=1000, total_completions=2560))
    for it in range(iterations):
        prompts, completions, true_scores = sample(...)         # K completions per prompt, adjacent
        segs = loop.add_rollout(prompts, completions, true_scores)
        reward, _ = loop.reward(segs)                           # [B] learned reward for the agent
        loop.label_due(completions_seen=(it + 1) * len(prompts))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prefrl.label_waiting import LabelWaiting
from prefrl.labeling import as_query_labeler
from prefrl.losses import rune_reward
from prefrl.oracle import Labeler
from prefrl.queries import select_groups
from prefrl.schedule import LabelSchedule
from prefrl.segments import Segments
from prefrl.store import TEXT_FORMAT, PreferenceStore
from prefrl.text_loop_config import TextLoopConfig
from prefrl.text_reward import TextRewardEnsemble
from prefrl.trainer import RewardTrainer, TrainerConfig

__all__ = ["TextLoopConfig", "TextPreferenceLoop", "within_group_pairs"]


def within_group_pairs(n: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of completions that share a prompt, for ``n`` completions in adjacent groups of ``group``.

    Returns:
        (a, b): long [n / group * C(group, 2)] indices with a < b in the same group, group by group.
    """
    if group < 2 or n % group:
        raise ValueError(f"{n} completions do not form groups of {group} >= 2")
    i, j = torch.triu_indices(group, group, offset=1)
    base = torch.arange(0, n, group).unsqueeze(1)
    return (base + i).flatten(), (base + j).flatten()


@dataclass
class _Pool:
    """Candidate groups of recent rollouts: per rollout, K Segments [G] (item k of each group)."""

    cap: int
    entries: list[tuple[Segments, ...]] = field(default_factory=list)

    def add(self, sides: tuple[Segments, ...]) -> None:
        self.entries = [*self.entries, sides][-self.cap :]

    def sides(self) -> tuple[Segments, ...]:
        return tuple(Segments.cat([e[k] for e in self.entries]) for k in range(len(self.entries[0])))

    def remove(self, idx: torch.Tensor) -> None:
        """Drops the groups at flat indices ``idx``; rollouts keep their own entries so old ones age out."""
        used = torch.zeros(sum(len(e[0]) for e in self.entries), dtype=torch.bool)
        used[idx] = True
        kept, start = [], 0
        for e in self.entries:
            keep = ~used[start : start + len(e[0])]
            start += len(e[0])
            if keep.any():
                kept.append(tuple(side[keep] for side in e))
        self.entries = kept

    def __len__(self) -> int:
        return sum(len(e[0]) for e in self.entries)


class TextPreferenceLoop(LabelWaiting):
    """Preference learning over completions, as the core does it for steps.

    Args:
        reward_model: a :class:`~prefrl.text_reward.TextRewardEnsemble` (fine-tuned or frozen).
        labeler: answers pairs (``label``) and, for rank_k > 2, rankings (``rank``):
            :class:`~prefrl.SyntheticOracle` or your own; or a
            :class:`~prefrl.QueueLabeler` (people in the web app, or the oracle through
            the queue): its queries show the prompt and the K completions, the loop
            goes on while they wait and refits on the answers as they arrive.
        config: see :class:`TextLoopConfig`.
        store: where labels go; default an in-memory store. Give a path-backed
            :class:`~prefrl.PreferenceStore` to keep them.
        trainer: fit settings; default batch 24, no bootstrap when the model
            shares a trunk (each text read once per step).

    Attributes:
        labels_used: queries answered so far; pairs_labeled: pairwise labels stored.
        metrics: the last fit's ``rm/*`` metrics plus ``rm/fit_seconds`` (total).
    """

    def __init__(self, reward_model: TextRewardEnsemble, labeler: Labeler, config: TextLoopConfig | None = None,
                 store: PreferenceStore | None = None, trainer: TrainerConfig | None = None):
        self.config = cfg = config or TextLoopConfig()
        if cfg.explore_bonus > 0 and reward_model.n_members < 2:
            raise ValueError(f"explore_bonus={cfg.explore_bonus} (RUNE) adds the spread of the reward ensemble's "
                             f"members, and this reward model has {reward_model.n_members}: give one with "
                             "n_members >= 2, or explore_bonus=0")
        self.rm = reward_model
        self.labeler = labeler
        self.store = store if store is not None else PreferenceStore(seed=cfg.seed)
        self.store.set_meta("obs_format", TEXT_FORMAT)  # an export writes prompt / chosen / rejected text
        shared = hasattr(reward_model, "trunk")
        device = str(next(reward_model.parameters()).device)
        self.trainer = RewardTrainer(reward_model, trainer or TrainerConfig(seed=cfg.seed, batch_size=24,
                                                                             bootstrap=not shared, device=device))
        self.schedule = LabelSchedule(cfg.labels, cfg.total_completions, initial_fraction=cfg.initial_share)
        self.pool = _Pool(cfg.pool_rollouts)
        self.recent: list[torch.Tensor] = []  # text bytes [B, 2, W] of the recent rollouts (normalisation)
        self.reference: list[torch.Tensor] | None = None  # the recent completions at the first fit (reward_norm initial)
        self.labels_used = 0
        self.pairs_labeled = 0
        self.ties = 0  # pairwise labels that were ties (mu = 0.5)
        self.mean, self.std = 0.0, 1.0
        self.metrics: dict[str, float] = {"rm/val_accuracy": float("nan"), "rm/fit_seconds": 0.0}
        self._last_round = 0
        self._qgen = torch.Generator().manual_seed(cfg.seed)
        self._refit_due = False
        self.queries, self.is_async = as_query_labeler(labeler, self.store)
        """The labeler behind the one protocol the loops share, and whether its answers come later (people)."""
        self._arrived = 0  # pairwise labels that arrived and were not fit yet
        self._posted_any = self._fit_any = False

    @classmethod
    def with_store_file(cls, path: str | Path, reward_model: TextRewardEnsemble, labeler: Labeler,
                        config: TextLoopConfig | None = None, **kwargs) -> TextPreferenceLoop:
        """A loop whose labels go to the SQLite file ``path`` as they arrive."""
        cfg = config or TextLoopConfig()
        return cls(reward_model, labeler, cfg, store=PreferenceStore(path, seed=cfg.seed), **kwargs)

    def add_rollout(self, prompts: Sequence[str], completions: Sequence[str],
                    true_scores: Sequence[float] | torch.Tensor) -> Segments:
        """Adds a rollout's groups (completions gG..gG+G-1 share a prompt, G = ``config.group``) as candidates.

        Candidates are the groups themselves (G = rank_k) or, for pairs from larger groups, every pair of a
        group: C(G, 2) per prompt.

        Returns:
            the completions as Segments (``obs`` uint8 [B, 1, 2, width]).
        """
        K, G = self.config.rank_k, self.config.group
        name = "group_size" if self.config.group_size else "rank_k"
        if len(completions) % G:
            raise ValueError(f"{len(completions)} completions do not form groups of {name}={G}")
        for g in range(0, len(prompts), G):
            if len(set(prompts[g : g + G])) != 1:
                raise ValueError(f"completions {g}..{g + G - 1} must share one prompt (groups of {name}={G})")
        segs = self.rm.segments(prompts, completions, true_scores)
        self.pool.cap = self.config.pool_rollouts if self.labels_used else 1 << 30  # all initial rollouts count
        if G == K:
            self.pool.add(tuple(segs[k::K] for k in range(K)))
        else:
            a, b = within_group_pairs(len(completions), G)
            self.pool.add((segs[a], segs[b]))
        self.recent = [*self.recent, segs.obs[:, 0]][-self.config.pool_rollouts :]
        return segs

    def label_due(self, completions_seen: int) -> int:
        """Collects the answers that arrived, posts the groups due (in rounds), refits and renormalises on new labels.

        Groups still waiting for an answer are not posted again (they count against the schedule once
        answered); the reward model is refit whenever new labels arrived (the first fit with
        ``initial_steps``). A synchronous labeler answers when a round is posted, so that round refits at
        once; with people the policy trains on the unfit model's reward until their first answers.

        Args:
            completions_seen: completions the policy generated so far (0 before training).

        Returns:
            queries answered since the last call (0 between rounds).
        """
        cfg = self.config
        if self._refit_due:  # labels stored after the checkpoint this loop resumed from, not fit yet
            self._refit_due = False
            self.refit(cfg.refit_steps)
        answered = self._collect()
        if not self._posted_any or completions_seen - self._last_round >= cfg.round_completions:
            want = self.schedule.due(completions_seen) - self.labels_used - self.queries.outstanding()
            if want > 0 and len(self.pool):
                from prefrl.text_reward import decode_texts

                self._last_round = completions_seen
                sides = self.pool.sides()
                want = min(want, len(sides[0]))
                if not self._posted_any:  # standardise the heads' inputs once, on the initial candidates
                    self.rm.set_input_stats(torch.cat([side.obs[:, 0] for side in sides]))
                idx = select_groups(self.rm, list(sides), want, cfg.query, generator=self._qgen)
                chosen = [side[idx] for side in sides]
                self.queries.post_groups(chosen, decode_texts(chosen[0].obs)[0])
                self._posted_any = True
                self.pool.remove(idx)
                self.pool.entries = self.pool.entries[-cfg.pool_rollouts :]
                answered += self._collect()
        if self._arrived and len(self.store):
            self.ties = int((self.store.tensors()["mu"] == 0.5).sum())
            self.refit(cfg.refit_steps if self._fit_any else cfg.initial_steps)
            self._fit_any, self._arrived = True, 0
        return answered

    def _collect(self) -> int:
        new = self.queries.collect()
        self.labels_used += int(new["queries"])
        self.pairs_labeled += int(new["labels"])
        self._arrived += int(new["labels"])
        return int(new["queries"])

    def wait_for_labels(self, completions_seen: int, poll_seconds: float = 1.0, report_seconds: float = 30.0,
                        on_wait: Callable[[dict], None] | None = None) -> int:
        """Blocks until :meth:`labels_short` is 0, collecting answers every ``poll_seconds``; calls
        ``on_wait({"short", "labels_used", "waited_seconds"})`` every ``report_seconds``. When it had to wait,
        the model is then refit on what arrived (:meth:`label_due`). Returns the queries answered meanwhile."""
        before = self.labels_used
        if not self._wait_until_answered(completions_seen, poll_seconds, report_seconds, on_wait,
                                         lambda: {"labels_used": self.labels_used}):
            return 0
        self.label_due(completions_seen)  # refits on the answers that arrived
        return self.labels_used - before

    def refit(self, steps: int) -> dict[str, float]:
        """Fits the ensemble for ``steps`` gradient steps (at least one epoch) and renormalises the reward."""
        t0 = time.perf_counter()
        total = self.metrics.get("rm/fit_seconds", 0.0)
        self.metrics = self.trainer.fit(self.store, epochs=1, min_steps=steps)
        if self.config.reward_norm == "initial" and self.reference is None and self.recent:
            self.reference = list(self.recent)
        norm_over = self.reference if self.config.reward_norm == "initial" else self.recent
        if norm_over:
            r = self.rm.rewards(torch.cat(norm_over)).mean(0)
            self.mean = float(r.mean())
            self.std = float(r.std().clamp_min(1e-6)) if len(r) > 1 else 1.0
        self.metrics["rm/fit_seconds"] = total + time.perf_counter() - t0
        return self.metrics

    def state_dict(self) -> dict:
        """Everything needed to continue this loop after a crash (the labels are in the store already).

        Returns:
            reward model and its optimizer, the candidate pool and recent completions
            (texts, a few MB), counters, normalisation and every RNG stream (the
            labeler's too when it has one, as :class:`~prefrl.SyntheticOracle` does).
        """
        rng = getattr(self.labeler, "_rng", None)
        return {
            "rm": self.rm.state_dict(), "optimizer": self.trainer.optimizer.state_dict(),
            "l2": self.trainer.l2.clone(), "trainer_rng": self.trainer._rng.get_state(),
            "query_rng": self._qgen.get_state(), "labeler_rng": rng.get_state() if rng is not None else None,
            "pool": list(self.pool.entries), "pool_cap": self.pool.cap, "recent": list(self.recent),
            "reference": None if self.reference is None else list(self.reference),
            "labels_used": self.labels_used, "pairs_labeled": self.pairs_labeled, "ties": self.ties,
            "labels_stored": self.store.total_added, "mean": self.mean, "std": self.std,
            "metrics": dict(self.metrics), "last_round": self._last_round,
            "async": ({"cursor": self.labeler.cursor, "arrived": self._arrived, "posted_any": self._posted_any,
                       "fit_any": self._fit_any} if self.is_async else None),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict`.

        Pairs the store gained after the checkpoint (a kill between a label round and the
        next checkpoint) count as used and leave the candidate pool, so no query is asked
        twice and no label is lost; the next :meth:`label_due` call refits on them first.
        From such a kill on, the run is no longer the same as an uninterrupted one (the
        labeler's random stream is back at the checkpoint); from a kill anywhere else it is.
        """
        self.rm.load_state_dict(state["rm"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.trainer.l2 = state["l2"].clone()
        self.trainer._rng.set_state(state["trainer_rng"])
        self._qgen.set_state(state["query_rng"])
        rng = getattr(self.labeler, "_rng", None)
        if rng is not None and state["labeler_rng"] is not None:
            rng.set_state(state["labeler_rng"])
        self.pool.entries, self.pool.cap = list(state["pool"]), state["pool_cap"]
        self.recent = list(state["recent"])
        ref = state.get("reference")  # None in checkpoints from before reward_norm: fixed at the next fit
        self.reference = None if ref is None else list(ref)
        extra = max(0, self.store.total_added - state["labels_stored"])
        K = self.config.rank_k
        if extra and len(self.store) and len(self.pool):  # groups labeled after the checkpoint leave the pool
            t = self.store.tensors()["obs"]
            if K == 2:  # a pair is done when both its completions were stored together (groups share completions)
                stored = {bytes(o.numpy()) for o in t.flatten(1)}
                sides = self.pool.sides()
                keys = torch.cat([sides[0].obs.flatten(1), sides[1].obs.flatten(1)], 1)
            else:  # a ranking's first completion is in none of the other groups
                stored = {bytes(o.numpy()) for o in t.flatten(0, 1).flatten(1)}
                keys = self.pool.sides()[0].obs.flatten(1)
            done = [i for i, o in enumerate(keys) if bytes(o.numpy()) in stored]
            if done:
                self.pool.remove(torch.tensor(done))
        self.labels_used = state["labels_used"] + (extra if K == 2 else extra // (K * (K - 1) // 2))
        self.pairs_labeled, self.ties = state["pairs_labeled"] + extra, state["ties"]
        self.mean, self.std = state["mean"], state["std"]
        self.metrics, self._last_round = dict(state["metrics"]), state["last_round"]
        self._refit_due = extra > 0
        asy = state.get("async") if self.is_async else None
        if asy is not None:  # answers after the checkpoint are counted by the next collect, from the saved cursor
            self.labels_used, self.pairs_labeled = state["labels_used"], state["pairs_labeled"]
            self.labeler.cursor, self._arrived = asy["cursor"], asy["arrived"]
            self._posted_any, self._fit_any, self._refit_due = asy["posted_any"], asy["fit_any"], False
        else:  # a synchronous labeler answered every query it was asked
            self._posted_any = self._fit_any = self.labels_used > 0
            self.queries.asked = self.labels_used

    def reward(self, segs: Segments, completions_seen: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """[B] normalised learned reward of a rollout's completions (plus RUNE's bonus when ``explore_bonus`` > 0,
        decayed over ``completions_seen``), and [B] the raw ensemble mean."""
        r, cfg = self.rm.rewards(segs.obs[:, 0]), self.config  # [E, B]
        raw = r.mean(0)
        if cfg.explore_bonus > 0:  # the constructor made sure the ensemble has a spread (E >= 2)
            return self.normalise(rune_reward(r, cfg.explore_bonus, cfg.explore_decay, completions_seen)), raw
        return self.normalise(raw), raw

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """[B] raw rewards on the policy's scale: zero mean and ``reward_std`` over the completions normalised over."""
        return (raw - self.mean) / self.std * self.config.reward_std
