"""The text benchmark's learned reward: text RM + store + oracle + trainer + queries, on the core.

``benchmarks.textgen``'s learned arm asks this object for labels as PPO
rollouts come in (``add_candidates`` then ``label_due``) and for the reward
of each rollout (``reward``). Kept apart from the benchmark's flags, arms and
outputs so each file holds one job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.textgen import TextBenchConfig


class LearnedReward:
    """The learned arm's reward: text RM + store + oracle + trainer + query selection, on the core.

    Candidates are the groups (``rank_k`` completions of one prompt) of the last
    ``pool_cap`` rollouts not labeled yet; the learned reward is the ensemble
    mean, normalised to zero mean and std ``reward_std`` over the completions
    of those same recent rollouts.
    """

    def __init__(self, cfg: TextBenchConfig, seed: int, out: Path):
        import torch

        from prefrl import LabelSchedule, PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig
        from prefrl.text_reward import SentenceEncoder, TextRewardModel

        torch.manual_seed(seed)
        self.cfg = cfg
        self.rm = TextRewardModel(SentenceEncoder(), n_members=3)
        self.store = PreferenceStore(out / f"labels-seed{seed}.sqlite", seed=seed)
        self.oracle = SyntheticOracle(noise=cfg.noise, seed=seed)
        self.trainer = RewardTrainer(self.rm.heads, TrainerConfig(seed=seed, batch_size=32))
        self.schedule = LabelSchedule(cfg.labels, cfg.iterations * cfg.batch_size)
        self.pool: list = []  # per recent rollout, K Segments [G] (item k of each group), labeled groups removed
        self.recent: list = []  # features [B, D] of the recent rollouts' completions (normalisation)
        self.pool_cap = cfg.pool_rollouts
        self.labels_used = 0  # queries answered: pairs, or rankings when rank_k > 2
        self.pairs_labeled = 0
        self.mean, self.std = 0.0, 1.0
        self.fit_seconds = 0.0
        self.metrics: dict = {"rm/val_accuracy": float("nan")}
        self._qgen = torch.Generator().manual_seed(seed)

    def add_candidates(self, ro):
        """Adds a rollout's groups (completions kK..kK+K-1 share a prompt) to the pool; returns its Segments."""
        segs = self.rm.segments(ro.prompts, ro.completions, ro.true_scores)
        K = self.cfg.rank_k
        self.pool = [*self.pool, tuple(segs[k::K] for k in range(K))][-self.pool_cap :]
        self.recent = [*self.recent, segs.obs[:, 0]][-self.pool_cap :]
        return segs

    def label_due(self, episodes: int, epochs: int) -> int:
        """Labels the pairs the schedule asks for by now, chosen from the pool, refits and renormalises."""
        import torch

        from prefrl import Segments, ranking_to_pairs, select_groups

        want = self.schedule.due(episodes) - self.labels_used
        if want <= 0 or not self.pool:
            return 0
        sides = _cat_pool(self.pool)  # K Segments [G]
        want = min(want, len(sides[0]))
        if self.labels_used == 0:  # standardise the heads' inputs once, on the initial pool
            feats = torch.cat([side.obs[:, 0] for side in sides])
            self.rm.heads.set_input_stats(feats, torch.zeros(len(feats), dtype=torch.long))
        idx = select_groups(self.rm.heads, list(sides), want, self.cfg.query, generator=self._qgen)
        if len(sides) == 2:  # pairs: the oracle's pairwise answer
            s1, s2 = sides[0][idx], sides[1][idx]
            mu, answered = self.oracle.label(s1, s2)
            self.store.add(s1[answered], s2[answered], mu[answered])
            self.pairs_labeled += int(answered.sum())
        else:  # K-wise rankings, stored as their C(K, 2) pairs
            flat = Segments(*(torch.stack([getattr(side, f)[idx] for side in sides], 1).flatten(0, 1)
                              for f in ("obs", "act", "true_reward")))  # item k of group g at g * K + k
            K = len(sides)
            ranks = self.oracle.rank(flat.true_reward.reshape(len(idx), K, -1))
            first, second, mu = ranking_to_pairs(ranks)
            self.store.add(flat[first], flat[second], mu)
            self.pairs_labeled += int(len(mu))
        self.labels_used += int(len(idx))  # a skipped pair still cost a query
        t0 = time.perf_counter()
        self.metrics = self.trainer.fit(self.store, epochs=epochs, min_steps=50)
        r = self.rm.rewards_from_features(torch.cat(self.recent)).mean(0)
        self.mean, self.std = float(r.mean()), float(r.std().clamp_min(1e-6)) if len(r) > 1 else 1.0
        self.fit_seconds += time.perf_counter() - t0
        # Labeled pairs leave the pool; each rollout keeps its own entry so old ones age out.
        used = torch.zeros(len(sides[0]), dtype=torch.bool)
        used[idx] = True
        pool, start = [], 0
        for entry in self.pool:
            keep_here = ~used[start : start + len(entry[0])]
            start += len(entry[0])
            if keep_here.any():
                pool.append(tuple(side[keep_here] for side in entry))
        self.pool = pool
        return int(len(idx))

    def reward(self, segs) -> tuple:
        """[B] normalised learned reward of the rollout's completions, and its raw ensemble mean."""
        raw = self.rm.rewards_from_features(segs.obs[:, 0]).mean(0)
        return (raw - self.mean) / self.std * self.cfg.reward_std, raw


def _cat_pool(pool):
    """Pool entries (K Segments each) -> K Segments over all entries."""
    import torch

    from prefrl import Segments

    cat = lambda side: Segments(*(torch.cat([getattr(p[side], k) for p in pool])  # noqa: E731
                                  for k in ("obs", "act", "true_reward")))
    return tuple(cat(k) for k in range(len(pool[0])))
