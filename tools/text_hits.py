"""``python -m tools.text_hits``: how often the zero-shot policy scores on a sparse task, per sampling temperature.

Samples the text benchmark's zero-shot label candidates (the learned arm's first rollouts: the same reset seeds,
``--group-size`` completions per prompt) at each temperature given and prints the share of completions that
score (true score > 0) and the share of groups whose completions differ in true score: only such groups hold a
pair a synthetic oracle can rank, so this share bounds the informative labels of the first round. A screen for
``python -m benchmarks.textgen --pool-temperatures`` before a whole run.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m tools.text_hits", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3])
    p.add_argument("--task", default="keyword")
    p.add_argument("--rollouts", type=int, default=16, help="rollouts per temperature")
    p.add_argument("--batch-size", type=int, default=16, help="completions per rollout")
    p.add_argument("--group-size", type=int, default=4, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="the benchmark seed whose candidate prompts are sampled")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--model", default="SmolLM2-135M-Instruct", help="policy model (tiny: a random 2-layer model)")
    args = p.parse_args(argv)
    if not all(t > 0 for t in args.temperatures):
        p.error(f"--temperatures must all be > 0, got {args.temperatures}")
    if args.rollouts < 1 or args.group_size < 1 or args.batch_size % args.group_size:
        p.error("--rollouts >= 1, and --batch-size a multiple of --group-size")

    import torch

    from agents.lm_ppo import LMPPO, LMPPOConfig
    from benchmarks.textgen.arms import load_policy, train_seeds
    from envs.textgen import TextGenEnv

    torch.set_num_threads(args.threads)
    model, tok = load_policy(args.model)
    ppo = LMPPO(model, tok, LMPPOConfig(seed=args.seed), device="cpu")
    envs = [TextGenEnv(args.task, tokenizer=tok, max_new_tokens=args.max_new_tokens, prompt_tokens=(8, 16))
            for _ in range(args.batch_size)]
    results = []
    for temp in args.temperatures:
        t0 = time.perf_counter()
        ppo.reseed_sampling(args.seed)  # each temperature from the same sampling stream: rows do not depend on order
        scores = []
        for k in range(args.rollouts):  # the benchmark's candidate rollouts use iterations 10_000 + k
            ro = ppo.rollout(envs, train_seeds(args.seed, 10_000 + k, args.batch_size, args.group_size),
                             temperature=temp)
            scores.append(ro.true_scores.view(-1, args.group_size))
        s = torch.cat(scores)  # [groups, G]
        row = {"temperature": temp, "completions": s.numel(), "hit_rate": float((s > 0).float().mean()),
               "groups": len(s), "groups_differing": int((s.max(1).values > s.min(1).values).sum()),
               "seconds": time.perf_counter() - t0}
        results.append(row)
        print(f"T={temp:g}: {row['hit_rate']:.3f} of {row['completions']} completions score; "
              f"{row['groups_differing']}/{row['groups']} groups of {args.group_size} differ ({row['seconds']:.0f} s)",
              flush=True)
    return results


if __name__ == "__main__":
    main()
