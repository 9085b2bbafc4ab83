"""Reward-model quality on Atari, offline: held-out accuracy and correlations vs label count.

Two steps, each a subcommand:

``collect``
    Trains the true-reward agent (the benchmark's true arm: PPO, clipped
    rewards, life-loss episodes), saving a checkpoint at a few points, then
    rolls out the random policy and each checkpoint (stochastic actions) and
    saves every step: frames ``[T, n_envs, 84, 84, 4]`` (score shown),
    actions, unclipped game reward, game-over flags and which policy acted.
    The checkpoints give behaviour from random to the true-reward agent's,
    the range a learned-reward agent passes through.

``fit``
    For each reward-model variant and label count: draws pairs of 25-step
    clips from the training envs of the dataset, labels them with the
    synthetic oracle (10% random answers), fits the ensemble with the loop's
    trainer, and measures on the held-out envs (other games, never seen in
    training): accuracy on labeled held-out pairs (noisy labels, as the loop
    reports it, and noise-free), Pearson correlation of predicted and true
    segment returns, and of per-step rewards (also at 5 steps).

``python -m tools.atari_rm_offline collect --game Seaquest --out runs/rm-seaquest``
``python -m tools.atari_rm_offline fit --data runs/rm-seaquest --labels 250 500 1000 2000 4000``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

CHECKPOINT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
"""Points of the true-reward agent's training (share of --train-steps) that are rolled out."""


def _collect(args) -> None:
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from agents import make_agent
    from agents.wrappers import SignRewardVecEnv
    from envs.atari import canonical_game_id, make_atari_vec_env

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    game = canonical_game_id(args.game)
    venv = make_atari_vec_env(game, 8, args.seed, num_threads=args.threads)
    agent = make_agent("ppo", SignRewardVecEnv(venv), "atari", seed=args.seed, device="cpu")
    marks = sorted({int(f * args.train_steps) for f in CHECKPOINT_FRACTIONS})
    saved: list[Path] = []

    class Save(BaseCallback):
        def _on_step(self) -> bool:
            while marks and self.num_timesteps >= marks[0]:
                path = args.out / f"agent-{marks.pop(0)}.zip"
                self.model.save(path)
                saved.append(path)
                print(f"  saved {path.name} at {self.num_timesteps} steps", flush=True)
            return True

    t = time.perf_counter()
    agent.learn(args.train_steps, callback=Save())
    print(f"trained {args.train_steps} steps in {time.perf_counter() - t:.0f} s", flush=True)
    venv.close()

    from stable_baselines3 import PPO

    policies = [None] + [PPO.load(p, device="cpu") for p in saved]
    n, T = args.n_envs, args.rollout_steps
    obs_all = np.lib.format.open_memmap(args.out / "obs.npy", "w+", np.uint8, (len(policies) * T, n, 84, 84, 4))
    act, rew, over = (np.zeros((len(policies) * T, n), d) for d in (np.int64, np.float32, bool))
    policy_id = np.repeat(np.arange(len(policies)), T)
    returns: dict[int, list[float]] = {}
    for k, pol in enumerate(policies):
        env = make_atari_vec_env(game, n, args.seed + 1000 + k, num_threads=args.threads)
        rng = np.random.default_rng(args.seed + k)
        obs = env.reset()
        for t in range(T):
            a = rng.integers(env.action_space.n, size=n) if pol is None else pol.predict(obs, deterministic=False)[0]
            nxt, r, _, infos = env.step(a)
            i = k * T + t
            obs_all[i], act[i], rew[i] = obs, a, r
            over[i] = [info["game_over"] for info in infos]
            returns.setdefault(k, []).extend(info["episode"]["r"] for info in infos if "episode" in info)
            obs = nxt
        env.close()
        print(f"  policy {k} ({'random' if pol is None else saved[k - 1].name}): {T * n} steps, "
              f"{len(returns[k])} games, mean return {np.mean(returns[k]) if returns[k] else float('nan'):.1f}",
              flush=True)
    obs_all.flush()
    np.savez(args.out / "steps.npz", act=act, reward=rew, game_over=over, policy_id=policy_id)
    meta = {"game": game, "seed": args.seed, "train_steps": args.train_steps, "n_envs": n,
            "rollout_steps": T, "policies": ["random"] + [p.name for p in saved],
            "mean_game_return": {str(k): float(np.mean(v)) if v else None for k, v in returns.items()}}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _load(data: Path, size: int, mask_score: bool):
    """The dataset as arrays, frames as the predictor sees them: obs [T, n, size, size, 4] and the rest [T, n]."""
    from envs.atari_reward import reward_model_view

    meta = json.loads((data / "meta.json").read_text())
    steps = np.load(data / "steps.npz")
    raw = np.load(data / "obs.npy", mmap_mode="r")
    view = reward_model_view(meta["game"], mask_score=mask_score, size=size)
    T, n = raw.shape[:2]
    obs = np.empty((T, n, size, size, 4), np.uint8)
    for t0 in range(0, T, 256):
        chunk = np.asarray(raw[t0 : t0 + 256])
        obs[t0 : t0 + len(chunk)] = view(chunk.reshape(-1, 84, 84, 4)).reshape(len(chunk), n, size, size, 4)
    done = steps["game_over"].copy()
    pid = steps["policy_id"]
    done[np.r_[pid[1:] != pid[:-1], True]] = True  # no segment crosses from one policy's rollout to the next
    return meta, obs, steps["act"], steps["reward"], done, pid


def _pairs(obs, act, rew, done, pid, envs, n, L, gen):
    """n pairs of L-step clips; both clips of a pair come from the same policy's rollout (as in the loop,
    where both come from the recent steps), the envs given; policies take equal shares.

    Returns:
        the first clips, the second clips, and the policy id of each pair ``[n]``.
    """
    import torch

    from prefrl import Segments, sample_segments

    firsts, seconds, which = [], [], []
    policies = np.unique(pid)
    for i, k in enumerate(policies):
        rows = np.nonzero(pid == k)[0]
        m = n // len(policies) + (i < n % len(policies))
        if m == 0:
            continue
        block = [x[rows][:, envs] for x in (obs, act, rew, done)]
        firsts.append(sample_segments(*block, L, m, gen))
        seconds.append(sample_segments(*block, L, m, gen))
        which.append(torch.full((m,), int(k)))
    return Segments.cat(firsts), Segments.cat(seconds), torch.cat(which)


def _fit(args) -> None:
    import torch

    from envs.atari_reward import RM_VARIANTS, make_frame_ensemble
    from prefrl import PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, pearson
    from prefrl.seeding import derive_seed

    torch.set_num_threads(args.threads)
    results = []
    out = args.out or args.data / "fits.jsonl"
    for variant in args.rm:
        spec = RM_VARIANTS[variant]
        meta, obs, act, rew, done, pid = _load(args.data, spec.size, mask_score=not args.show_score)
        n_envs = obs.shape[1]
        test_envs = list(range(n_envs - max(1, n_envs // 4), n_envs))
        train_envs = [e for e in range(n_envs) if e not in test_envs]
        gen = torch.Generator().manual_seed(derive_seed(args.seed, "offline-test"))
        t1, t2, t_pid = _pairs(obs, act, rew, done, pid, test_envs, args.test_pairs, 25, gen)  # measured on 25-step clips
        clean = SyntheticOracle(noise=0.0, seed=args.seed).label(t1, t2)[0]
        noisy = SyntheticOracle(noise=0.1, seed=args.seed + 1).label(t1, t2)[0]
        test_obs = torch.from_numpy(obs[:, test_envs].reshape(-1, *spec.frame_shape))
        test_rew = torch.from_numpy(rew[:, test_envs].reshape(-1))
        for n_labels in args.labels:
            torch.manual_seed(args.seed)
            ens = make_frame_ensemble(variant)
            gen = torch.Generator().manual_seed(derive_seed(args.seed, f"offline-train-{n_labels}"))
            s1, s2, _ = _pairs(obs, act, rew, done, pid, train_envs, n_labels, args.segment_length, gen)
            mu, _ = SyntheticOracle(noise=0.1, seed=args.seed).label(s1, s2)
            store = PreferenceStore(capacity=max(n_labels, 1), seed=args.seed)
            store.add(s1, s2, mu)
            tcfg = TrainerConfig(batch_size=args.batch_size, lr=args.lr, seed=args.seed, ssl_weight=args.ssl_weight,
                                 ssl_pretrain_steps=args.ssl_pretrain_steps, pseudo_threshold=args.pseudo_threshold,
                                 ssl_objective=args.ssl_objective,
                                 crop_min_length=args.crop)
            trainer = RewardTrainer(ens, tcfg)
            unlabeled = _unlabeled(obs, act, rew, done, pid, train_envs, args, tcfg) if tcfg.uses_unlabeled else None
            t = time.perf_counter()
            if args.fit_steps:  # a fixed compute budget: about that many gradient steps, whatever the label count
                fit = trainer.fit(store, 1, min_steps=args.fit_steps, unlabeled=unlabeled)
            else:
                fit = trainer.fit(store, args.epochs, min_steps=150, unlabeled=unlabeled)
            fit_s = time.perf_counter() - t
            ens.eval()
            with torch.no_grad():
                per_step = torch.cat([ens(o, torch.zeros(len(o), dtype=torch.long)).mean(0)
                                      for o in test_obs.split(2048)])
                R1 = ens.segment_returns(t1.obs, t1.act).mean(0)
                R2 = ens.segment_returns(t2.obs, t2.act).mean(0)
            diff = R1 - R2
            decided_c, decided_n = clean != 0.5, noisy != 0.5
            row = {
                "game": meta["game"], "seed": args.seed, "variant": variant, "ssl_weight": args.ssl_weight,
                "ssl_pretrain_steps": args.ssl_pretrain_steps if args.ssl_weight else None,
                "ssl_objective": args.ssl_objective if args.ssl_weight else None,
                "pseudo_threshold": args.pseudo_threshold, "crop": args.crop,
                **{k: round(v, 4) for k, v in fit.items() if k.startswith(("rm/ssl", "rm/pseudo"))}, "segment_length": args.segment_length, "labels": n_labels, "epochs": None if args.fit_steps else args.epochs, "lr": args.lr,
                "fit_seconds": round(fit_s, 1), "fit_steps": fit["rm/steps"],
                "store_val_accuracy": fit["rm/val_accuracy"], "train_accuracy": fit["rm/train_accuracy"],
                "l2": fit["rm/l2"],
                "test_accuracy_noisy": float(((diff[decided_n] > 0) == (noisy[decided_n] > 0.5)).float().mean()),
                "test_accuracy_clean": float(((diff[decided_c] > 0) == (clean[decided_c] > 0.5)).float().mean()),
                "test_tie_share": float((clean == 0.5).float().mean()),
                # the decided held-out pairs of each policy (random, then the checkpoints in meta["policies"])
                "test_accuracy_clean_by_policy": {
                    meta["policies"][k]: round(float(((diff[m] > 0) == (clean[m] > 0.5)).float().mean()), 3)
                    for k in range(len(meta["policies"])) if (m := decided_c & (t_pid == k)).any()},
                "corr_segment": pearson(torch.cat([R1, R2]), torch.cat([t1.true_return, t2.true_return])),
                "corr_step": pearson(per_step, test_rew),
                "corr_5step": _window_corr(per_step, test_rew, len(test_envs), 5),
                "event_average": _event_average(per_step, test_rew, len(test_envs)),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


def _unlabeled(obs, act, rew, done, pid, envs, args, tcfg):
    """What the loop would give the trainer beyond the labels, drawn from the training envs' steps: recorded
    transitions (step t and t + 1 of one game) and pairs of clips of one policy's rollout."""
    import torch

    from prefrl.seeding import derive_seed
    from prefrl.unlabeled import UnlabeledData

    parts = {}
    rng = np.random.default_rng(derive_seed(args.seed, "offline-unlabeled"))
    if tcfg.ssl_weight > 0:
        ok = ~done[:-1][:, envs]  # [T-1, len(envs)]: step t has a successor in the same game and rollout
        t, j = np.nonzero(ok)
        pick = np.sort(rng.choice(len(t), size=min(args.unlabeled_transitions, len(t)), replace=False))
        t, e = t[pick], np.asarray(envs)[j[pick]]
        parts.update(obs=torch.from_numpy(obs[t, e]), act=torch.from_numpy(act[t, e]),
                     next_obs=torch.from_numpy(obs[t + 1, e]), next_act=torch.from_numpy(act[t + 1, e]))
    if tcfg.pseudo_threshold is not None:
        gen = torch.Generator().manual_seed(derive_seed(args.seed, "offline-unlabeled-pairs"))
        s1, s2, _ = _pairs(obs, act, rew, done, pid, envs, args.unlabeled_pairs, args.segment_length, gen)
        parts.update(pair_obs=torch.stack([s1.obs, s2.obs], 1), pair_act=torch.stack([s1.act, s2.act], 1),
                     pair_true_return=torch.stack([s1.true_return, s2.true_return], 1))
    return UnlabeledData(**parts)


def _window_corr(pred, true, n_envs: int, k: int) -> float:
    """Pearson correlation of k-step sums (windows within one env's column)."""
    from prefrl import pearson

    p, t = pred.reshape(-1, n_envs), true.reshape(-1, n_envs)
    T = (len(p) // k) * k
    return pearson(p[:T].reshape(-1, k, n_envs).sum(1).flatten(), t[:T].reshape(-1, k, n_envs).sum(1).flatten())


def _event_average(pred, true, n_envs: int, span: int = 6) -> list[float]:
    """Mean standardised learned reward at offsets -span..span around steps that scored (reward > 0)."""
    z = ((pred - pred.mean()) / pred.std().clamp_min(1e-8)).reshape(-1, n_envs)
    t = true.reshape(-1, n_envs)
    ts, es = (t > 0).nonzero(as_tuple=True)
    out = []
    for d in range(-span, span + 1):
        ok = (ts + d >= 0) & (ts + d < len(z))
        out.append(round(float(z[ts[ok] + d, es[ok]].mean()), 2) if ok.any() else float("nan"))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.atari_rm_offline", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="train the true-reward agent, roll out its checkpoints, save every step")
    c.add_argument("--game", default="Seaquest")
    c.add_argument("--train-steps", type=int, default=300_000, help="steps of the true-reward agent")
    c.add_argument("--rollout-steps", type=int, default=2_500, help="vector steps per policy")
    c.add_argument("--n-envs", type=int, default=8, help="envs per rollout (the last quarter are held out)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fit", help="fit reward-model variants at several label counts and measure them")
    f.add_argument("--data", type=Path, required=True, help="a directory written by `collect`")
    f.add_argument("--rm", nargs="+", default=["cnn42"], help="predictor variants (envs.atari_reward.RM_VARIANTS)")
    f.add_argument("--labels", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    f.add_argument("--epochs", type=int, default=8, help="passes over the training labels (at least 150 steps)")
    f.add_argument("--fit-steps", type=int, default=None,
                   help="fit for about this many gradient steps of 16 pairs instead of --epochs (a fixed budget)")
    f.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (the Atari benchmark's)")
    f.add_argument("--batch-size", type=int, default=16, help="pairs per gradient step (the Atari benchmark's)")
    f.add_argument("--segment-length", type=int, default=25, help="steps per training clip (test clips: 25)")
    f.add_argument("--test-pairs", type=int, default=2000)
    f.add_argument("--show-score", action="store_true", help="do not black out the score")
    f.add_argument("--ssl-weight", type=float, default=0.0,
                   help="weight of the temporal-consistency loss on unlabeled transitions (REED); 0 = off")
    f.add_argument("--ssl-objective", choices=("cosine", "contrastive", "inverse"), default="cosine",
                   help="self-supervised objective: cosine (REED/SimSiam next latent), contrastive (InfoNCE "
                        "over the batch) or inverse (inverse dynamics: the action from two latents)")
    f.add_argument("--ssl-pretrain-steps", type=int, default=200,
                   help="steps of the temporal-consistency loss alone before the preference fit")
    f.add_argument("--pseudo-threshold", type=float, default=None,
                   help="SURF: confidence in (0.5, 1] at which an unlabeled pair gets a pseudo-label (default off)")
    f.add_argument("--crop", type=int, default=0,
                   help="SURF's temporal cropping: keep between this many steps and the whole clip (0 = off)")
    f.add_argument("--unlabeled-transitions", type=int, default=8192,
                   help="recorded transitions (training envs) the temporal-consistency loss draws from")
    f.add_argument("--unlabeled-pairs", type=int, default=512,
                   help="unlabeled pairs of clips (training envs) that pseudo-labels are drawn from")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--out", type=Path, default=None, help="JSON lines to append to (default DATA/fits.jsonl)")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        _collect(args)
    else:
        from envs.atari_reward import RM_VARIANTS

        bad = [v for v in args.rm if v not in RM_VARIANTS]
        if bad:
            p.error(f"unknown --rm {' '.join(bad)}; choose from {', '.join(RM_VARIANTS)}")
        _fit(args)


if __name__ == "__main__":
    main(sys.argv[1:])
