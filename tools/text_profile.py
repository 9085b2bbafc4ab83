"""``python -m tools.text_profile``: where a text benchmark iteration spends its time, phase by phase.

Runs the learned arm's iteration (``benchmarks.textgen``'s defaults, SmolLM2-135M on the CPU) for
``--iterations`` updates after its initial labels, and times each phase with a wall clock:

* ``rollout``: sampling the batch (one KV-cached forward per token, each token a ``TextGenEnv.step``);
* ``rm score``: the learned reward of the batch (``TextPreferenceLoop.add_rollout`` + ``reward``);
* ``labels + fit``: the label round and refit when one is due (``label_due``);
* ``ppo score``: old log-probs, values (policy forward) and reference log-probs (reference forward);
* ``ppo epochs``: the PPO epochs' forward and backward passes (``update`` minus its scoring pass);
* the initial labels and fit, before the first update, on their own line.

Prints a table (seconds per iteration and share) and writes it as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from benchmarks.kit.report import write_json


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.text_profile", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--iterations", type=int, default=16, help="updates timed after the initial labels")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--model", default="SmolLM2-135M-Instruct", help="policy model (tiny: a random 2-layer model)")
    p.add_argument("--whole-model", action="store_true",
                   help="run the whole model for every scoring pass and minibatch (LMPPOConfig.share_trunk=False)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.threads < 1:
        p.error("--iterations and --threads must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    import torch

    from benchmarks.textgen.arms import load_policy, make_envs, make_loop, make_ppo, train_seeds
    from benchmarks.textgen.config import TextBenchConfig

    torch.set_num_threads(args.threads)
    cfg = TextBenchConfig(model=args.model, device="cpu")
    seed = 0
    base, tok = load_policy(cfg.model)
    for prm in base.parameters():
        prm.requires_grad_(False)
    envs = make_envs(cfg, tok, cfg.batch_size)
    ppo = make_ppo(cfg, base, tok, seed)
    if args.whole_model:
        ppo._cut, ppo._ref_shares = None, False  # as LMPPOConfig(share_trunk=False) builds it
    times = {k: 0.0 for k in ("rollout", "rm score", "labels + fit", "ppo score", "ppo epochs")}
    with tempfile.TemporaryDirectory() as tmp:
        loop = make_loop(cfg, seed, Path(tmp), tok)
        t = time.perf_counter()
        n0 = loop.schedule.initial_labels
        for k in range(math.ceil(cfg.pool_factor * n0 / (cfg.batch_size // cfg.rank_k))):
            ro = ppo.rollout(envs, train_seeds(seed, 10_000 + k, cfg.batch_size, cfg.rank_k))
            loop.add_rollout(ro.prompts, ro.completions, ro.true_scores)
        loop.label_due(0)
        initial, initial_labels = time.perf_counter() - t, loop.labels_used
        episodes, tokens = 0, 0
        for it in range(args.iterations):
            t = time.perf_counter()
            ro = ppo.rollout(envs, train_seeds(seed, it, cfg.batch_size, cfg.rank_k))
            times["rollout"] += time.perf_counter() - t
            tokens += int(ro.response_mask.sum())
            episodes += len(ro.prompts)
            t = time.perf_counter()
            score, _ = loop.reward(loop.add_rollout(ro.prompts, ro.completions, ro.true_scores))
            times["rm score"] += time.perf_counter() - t
            t = time.perf_counter()
            loop.label_due(episodes)
            times["labels + fit"] += time.perf_counter() - t
            t = time.perf_counter()
            ppo.score_rollout(ro)
            scoring = time.perf_counter() - t
            t = time.perf_counter()
            ppo.update(ro, score)  # scores the rollout once more, then the epochs
            times["ppo score"] += scoring
            times["ppo epochs"] += time.perf_counter() - t - scoring
        loop.store.close()
    total = sum(times.values())
    n = args.iterations
    rows = [(k, v / n, v / total) for k, v in times.items()]
    print(f"text iteration profile: {cfg.model}, batch {cfg.batch_size} x {cfg.max_new_tokens} tokens, "
          f"{n} iterations, {args.threads} thread(s), {'whole model' if args.whole_model else 'shared trunk'}; {tokens / total:.0f} completion tokens/s over whole iterations")
    print("| phase | seconds per iteration | share |\n|---|---|---|")
    for k, per, share in rows:
        print(f"| {k} | {per:.2f} | {share:.0%} |")
    print(f"| initial labels and fit (once, {initial_labels} labels) | {initial:.1f} s | |")
    result = {"model": cfg.model, "iterations": n, "threads": args.threads, "whole_model": args.whole_model, "tokens_per_second": tokens / total,
              "seconds_per_iteration": {k: per for k, per, _ in rows}, "initial_seconds": initial,
              "initial_labels": initial_labels, "labels_used": loop.labels_used}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
