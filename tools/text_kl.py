"""``python -m tools.text_kl``: how a KL controller holds the text benchmark's training KL, on the true score.

Runs the text benchmark's true-score arm (its defaults: SmolLM2-135M, 16 completions of 20 tokens per update,
target 4 nats) for ``--iterations`` updates with one KL controller, then the benchmark's evaluation, and
prints the training KL (max, mean of the last quarter), the final beta and the evaluated score and KL.
A screen for levers on the issue's "never above 2x the target" before a whole benchmark run.

Controllers (``--controller``):

* ``adaptive``: the benchmark's default, Ziegler's adaptive beta (horizon 64 sequences, +-5% per update);
* ``fast-up``: the same, but while the KL is above the target beta rises over 16 sequences with the error
  clipped at 1 (up to 2x per update) and falls as before;
* ``fixed``: beta fixed at ``--init-kl-coef``;
* ``floor``: adaptive with beta never below its start (``--min-kl-coef 0.05``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.kit.report import write_json

CONTROLLERS = ("adaptive", "fast-up", "fixed", "floor")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.text_kl", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--controller", choices=CONTROLLERS, default="adaptive")
    p.add_argument("--iterations", type=int, default=80, help="PPO updates (the benchmark's default)")
    p.add_argument("--init-kl-coef", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="imdb-positive")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--model", default="SmolLM2-135M-Instruct", help="policy model (tiny: a random 2-layer model)")
    p.add_argument("--out", type=Path, default=None, help="also write the result (with every update's KL) as JSON")
    args = p.parse_args(argv)
    if args.iterations < 1 or not args.init_kl_coef > 0:
        p.error("--iterations must be >= 1 and --init-kl-coef > 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from benchmarks.textgen.arms import evaluate, load_policy, make_envs, make_ppo, train_seeds
    from benchmarks.textgen.config import TextBenchConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = TextBenchConfig(task=args.task, model=args.model, iterations=args.iterations, device="cpu",
                          init_kl_coef=args.init_kl_coef, kl_control="fixed" if args.controller == "fixed" else "adaptive",
                          min_kl_coef=args.init_kl_coef if args.controller == "floor" else 0.0)
    base, tok = load_policy(cfg.model)
    for prm in base.parameters():
        prm.requires_grad_(False)
    envs = make_envs(cfg, tok, cfg.batch_size)
    ppo = make_ppo(cfg, base, tok, args.seed)
    if args.controller == "fast-up":
        ppo.kl_ctl.up_horizon, ppo.kl_ctl.up_clip = 16, 1.0
    t0 = time.perf_counter()
    rows = []
    for it in range(cfg.iterations):
        ro = ppo.rollout(envs, train_seeds(args.seed, it, cfg.batch_size, cfg.rank_k))
        m = ppo.update(ro, ro.true_scores)
        rows.append({"update": it + 1, "kl": m["kl/mean"], "beta": m["kl/beta"],
                     "true_score": float(ro.true_scores.mean())})
    wall = time.perf_counter() - t0
    zero = evaluate(make_ppo(cfg, base, tok, args.seed), envs, cfg)
    ev = evaluate(ppo, envs, cfg)
    kls = [r["kl"] for r in rows]
    last = kls[-max(1, len(kls) // 4):]
    result = {"controller": args.controller, "iterations": cfg.iterations, "target_kl": cfg.target_kl,
              "max_kl": max(kls), "max_kl_update": kls.index(max(kls)) + 1, "last_quarter_kl": sum(last) / len(last),
              "final_beta": ppo.kl_ctl.value, "zero_shot": zero["score"], "score": ev["score"], "eval_kl": ev["kl"],
              "train_seconds": wall, "rows": rows}
    print(f"{args.controller}: max training KL {result['max_kl']:.2f} nats (update {result['max_kl_update']}), "
          f"last quarter {result['last_quarter_kl']:.2f}, final beta {result['final_beta']:.4f}; "
          f"score {zero['score']:+.3f} -> {ev['score']:+.3f} (eval KL {ev['kl']:.2f}); {wall:.0f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
