"""``python -m tools.text_rm_offline collect|fit``: text reward-model quality without PPO.

``collect`` samples completions of the zero-shot policy on TextGen prompts, two per prompt (the
pairs the learned arm's first queries come from), with their true scores, into ``completions.json``.

``fit`` fits a text reward model (``--rm finetune|frozen``) to synthetic labels (10% random
answers) on the first N pairs and reports, on the last ``--test-pairs`` pairs: accuracy against
the true score on pairs whose scores differ, Pearson correlation of the learned and true scores
of their completions, and the fit time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.text_rm_offline", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="sample zero-shot completions with their true scores")
    c.add_argument("--task", default="imdb-positive")
    c.add_argument("--rollouts", type=int, default=160, help="rollouts of 16 completions (default 160)")
    c.add_argument("--seed", type=int, default=7, help="reset seeds disjoint from the benchmark's (default 7)")
    c.add_argument("--out", type=Path, required=True, help="directory for completions.json")
    f = sub.add_parser("fit", help="fit a reward model on N labeled pairs, test on held-out pairs")
    f.add_argument("--data", type=Path, required=True, help="a collect --out directory")
    f.add_argument("--rm", choices=("finetune", "frozen"), default="finetune")
    f.add_argument("--labels", type=int, nargs="+", default=[250, 750], help="label budgets (pairs)")
    f.add_argument("--steps", type=int, default=150, help="gradient steps per fit (default 150)")
    f.add_argument("--batch-size", type=int, default=24)
    f.add_argument("--train-layers", type=int, default=2, help="finetune: top MiniLM blocks trained")
    f.add_argument("--trunk-lr", type=float, default=2e-4, help="finetune: learning rate of those blocks")
    f.add_argument("--encoder", default="all-MiniLM-L6-v2",
                   help="finetune: the trunk: all-MiniLM-L6-v2 (default), 'policy' (the text benchmark's policy "
                        "model, SmolLM2-135M-Instruct: the policy itself as the reward model's trunk, as "
                        "InstructGPT starts its reward model from the SFT model) or a local transformers directory")
    f.add_argument("--pool", choices=("mean", "last"), default="mean",
                   help="finetune: mean of the token states (default) or the last token's (for a causal LM)")
    f.add_argument("--lora-rank", type=int, default=0,
                   help="finetune: 0 trains the top --train-layers blocks; r > 0 trains rank-r LoRA adapters on "
                        "their attention projections instead (pip install peft)")
    f.add_argument("--test-pairs", type=int, default=300)
    f.add_argument("--threads", type=int, default=2)
    return p


def collect(args) -> None:
    import torch

    from benchmarks.textgen import TextBenchConfig, load_policy, make_envs, make_ppo, train_seeds

    cfg = TextBenchConfig(task=args.task, device="cpu")
    model, tok = load_policy(cfg.model)
    envs = make_envs(cfg, tok, cfg.batch_size)
    ppo = make_ppo(cfg, model, tok, args.seed)
    rows, t = [], time.time()
    with torch.no_grad():
        for k in range(args.rollouts):
            ro = ppo.rollout(envs, train_seeds(args.seed, 50_000 + k, cfg.batch_size, 2))
            rows += [dict(prompt=p, completion=c, score=float(s), group=k * cfg.batch_size // 2 + i // 2)
                     for i, (p, c, s) in enumerate(zip(ro.prompts, ro.completions, ro.true_scores.tolist()))]
            print(f"\rrollout {k + 1}/{args.rollouts} ({time.time() - t:.0f} s)", end="", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "completions.json").write_text(json.dumps(rows))
    print(f"\nwrote {len(rows)} completions to {args.out / 'completions.json'}")


def fit(args) -> list[dict]:
    import torch

    from prefrl import PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, pearson
    from prefrl.text_reward import make_text_reward_model

    torch.set_num_threads(args.threads)
    if args.encoder == "policy":
        from envs.text_models import DEFAULT_MODEL, model_directory

        encoder = model_directory(DEFAULT_MODEL)
    else:
        encoder = args.encoder
    rows = json.loads((args.data / "completions.json").read_text())
    groups: dict[int, list] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    pairs = [g for g in groups.values() if len(g) == 2]
    test, pool = pairs[-args.test_pairs :], pairs[: -args.test_pairs]
    width = 2 + 4 * 81 * 20  # SmolLM2's longest token x 20 tokens (text_width)
    out = []
    for n in args.labels:
        if n > len(pool):
            raise SystemExit(f"prefrl: error: {n} labels but only {len(pool)} training pairs; collect more")
        torch.manual_seed(0)
        kw = (dict(train_layers=args.train_layers, trunk_lr=args.trunk_lr, encoder=encoder, pool=args.pool,
                   lora_rank=args.lora_rank) if args.rm == "finetune" else {})
        rm = make_text_reward_model(args.rm, width, **kw)
        side = lambda k, gs: rm.segments([g[k]["prompt"] for g in gs], [g[k]["completion"] for g in gs],  # noqa: E731
                                         [g[k]["score"] for g in gs])
        s1, s2 = side(0, pool[:n]), side(1, pool[:n])
        rm.set_input_stats(torch.cat([s1.obs[:, 0], s2.obs[:, 0]]))
        mu, ok = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
        store = PreferenceStore(seed=0)
        store.add(s1[ok], s2[ok], mu[ok])
        trainer = RewardTrainer(rm, TrainerConfig(seed=0, batch_size=args.batch_size, bootstrap=args.rm == "frozen"))
        t = time.time()
        m = trainer.fit(store, epochs=1, min_steps=args.steps)
        fit_s = time.time() - t
        t1, t2 = side(0, test), side(1, test)
        r1, r2 = rm.rewards(t1.obs[:, 0]).mean(0), rm.rewards(t2.obs[:, 0]).mean(0)
        d_true = t1.true_reward[:, 0] - t2.true_reward[:, 0]
        decided = d_true != 0
        acc = float((((r1 - r2)[decided] > 0) == (d_true[decided] > 0)).float().mean())
        corr = pearson(torch.cat([r1, r2]), torch.cat([t1.true_reward[:, 0], t2.true_reward[:, 0]]))
        row = {"rm": args.rm, "encoder": args.encoder if args.rm == "finetune" else None, "pool": args.pool,
               "lora_rank": args.lora_rank, "labels": n, "steps": int(m["rm/steps"]), "test_accuracy": acc,
               "test_correlation": corr, "val_accuracy_noisy": m["rm/val_accuracy"], "fit_seconds": fit_s,
               "test_ties": float(1 - decided.float().mean())}
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def main(argv: list[str] | None = None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    return collect(args) if args.cmd == "collect" else fit(args)


if __name__ == "__main__":
    main(sys.argv[1:])
