"""``python -m benchmarks.peers.trl_text``: prefrl's token-level PPO against TRL's GRPO and RLOO trainers.

Every trainer gets the same policy (SmolLM2-135M-Instruct, its top 4 blocks and final norm trained), the same
prompts (the text benchmark's training prompts, in its order: 8 per update, 2 completions each), the same
batch (16 completions per update), completion length (20 tokens, fewer at EOS), sampling (temperature 1,
no top-k/top-p), reward (the task's true score, e.g. VADER for ``imdb-positive``), learning rate (1e-4,
constant), optimizer steps per batch (2 epochs x 2 minibatches of 8) and starting KL coefficient (0.05).
Each trainer runs in its own process, one after the other (so each peak RSS is its own), with all the
machine's cores; then each trained policy is scored by the text benchmark's evaluation (``--eval-prompts``
held-out prompts, one sample each, KL to the start model). Writes ``trl.md`` / ``trl.json`` in ``--out``.

What differs and stays (the table's notes say it): prefrl's PPO has a value head, GAE over tokens and the
KL as a per-token penalty in the reward under Ziegler's adaptive coefficient (target 4 nats); GRPO and RLOO
have no critic (group-relative and leave-one-out baselines over the 2 completions of a prompt) and keep
their own KL handling at a fixed beta (GRPO: k3 estimator in the loss; RLOO: TRL's default).
Needs ``pip install -e ".[trl]"`` (trl, datasets).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TRAINERS = ("ours", "grpo", "rloo")
"""``ours``: prefrl's ``agents.lm_ppo.LMPPO``; ``grpo`` / ``rloo``: TRL's GRPOTrainer / RLOOTrainer."""
NAMES = {"ours": "prefrl LMPPO (value head, GAE, adaptive KL penalty)", "grpo": "TRL {v} GRPOTrainer",
         "rloo": "TRL {v} RLOOTrainer"}


def _bench_config(args):
    from benchmarks.textgen.config import TextBenchConfig

    return TextBenchConfig(task=args.task, iterations=args.iterations, eval_prompts=args.eval_prompts,
                           init_kl_coef=args.kl_coef, seeds=(args.seed,), device=args.device,
                           model="tiny" if args.tiny else TextBenchConfig.model)


def _evaluate(cfg, model, base, tok, envs, seed: int) -> dict:
    """The text benchmark's evaluation of ``model`` (KL to ``base``), with the same sampling seed for every trainer."""
    from agents.lm_ppo import LMPPO, LMPPOConfig
    from benchmarks.textgen.arms import evaluate

    ev = evaluate(LMPPO(model, tok, LMPPOConfig(seed=seed + 7), device=cfg.device, ref_model=base), envs, cfg)
    return {"score": ev["score"], "kl": ev["kl"]}


def train_ours(cfg, base, tok, envs, seed: int) -> tuple:
    """prefrl's PPO on the true score; returns (trained model, completion tokens, per-update rows)."""
    from benchmarks.textgen.arms import make_ppo, train_seeds

    ppo = make_ppo(cfg, base, tok, seed)
    tokens, rows = 0, []
    for it in range(cfg.iterations):
        ro = ppo.rollout(envs, train_seeds(seed, it, cfg.batch_size, cfg.rank_k))
        m = ppo.update(ro, ro.true_scores)
        tokens += int(ro.response_mask.sum())
        rows.append({"update": it + 1, "true_score": float(ro.true_scores.mean()), "kl": m["kl/mean"],
                     "beta": m["kl/beta"]})
    return ppo.model, tokens, rows


def train_prompts(cfg, envs, seed: int) -> list[str]:
    """The text benchmark's training prompts, update by update (one per compared group of completions)."""
    from benchmarks.textgen.arms import train_seeds

    prompts = []
    for it in range(cfg.iterations):
        for s in train_seeds(seed, it, cfg.batch_size, cfg.rank_k)[:: cfg.rank_k]:
            prompts.append(envs[0].reset(seed=s)[1]["prompt"])
    return prompts


def train_trl(kind: str, cfg, base, tok, envs, seed: int, workdir: Path) -> tuple:
    """TRL's GRPO or RLOO trainer on the true score; returns (trained model, completion tokens, per-update rows)."""
    import datasets
    import trl

    from agents.lm_layers import set_trainable
    from envs.text_tasks import make_text_task

    task = make_text_task(cfg.task)
    tokens, scores = [0], []

    def true_score(prompts, completions, completion_ids=None, **_):
        tokens[0] += sum(len(c) for c in completion_ids) if completion_ids is not None else 0
        out = [float(task.score(c, p)) for p, c in zip(prompts, completions)]
        scores.extend(out)
        return out

    model = copy.deepcopy(base)
    if not Path(getattr(model.config, "_name_or_path", "") or "/nonexistent").is_dir():
        base.save_pretrained(workdir / "start-model")  # TRL builds its reference model from the policy's path
        model.config._name_or_path = str(workdir / "start-model")
    set_trainable(model, cfg.train_layers or None)  # the same trained blocks as ours; the Trainer skips frozen ones
    steps_per_batch = 2 * (cfg.batch_size // 8)  # ours: 2 epochs of minibatches of 8
    Config, Trainer = (trl.GRPOConfig, trl.GRPOTrainer) if kind == "grpo" else (trl.RLOOConfig, trl.RLOOTrainer)
    args = Config(output_dir=str(workdir), use_cpu=cfg.device == "cpu", report_to="none", save_strategy="no", logging_steps=4,
                  per_device_train_batch_size=8, gradient_accumulation_steps=1,
                  steps_per_generation=cfg.batch_size // 8, num_iterations=2, num_generations=cfg.rank_k,
                  max_completion_length=cfg.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0,
                  learning_rate=cfg.lr, lr_scheduler_type="constant", max_steps=steps_per_batch * cfg.iterations,
                  beta=cfg.init_kl_coef, shuffle_dataset=False, seed=seed, disable_dropout=True,
                  dataloader_num_workers=0, bf16=False)
    trainer = Trainer(model=model, reward_funcs=true_score, args=args, processing_class=tok,
                      train_dataset=datasets.Dataset.from_dict({"prompt": train_prompts(cfg, envs, seed)}))
    trainer.train()
    if not tokens[0]:
        raise RuntimeError(f"TRL {trl.__version__} passed no completion_ids to the reward function: cannot count tokens")
    B = cfg.batch_size
    rows = [{"update": i + 1, "true_score": sum(scores[i * B:(i + 1) * B]) / B} for i in range(len(scores) // B)]
    kls = [h for h in trainer.state.log_history if "kl" in h]
    return trainer.model, tokens[0], rows + [{"trl_log": h} for h in kls]


def run_one(kind: str, args, result_path: Path) -> dict:
    """One trainer in this process: train, time, evaluate; writes ``result_path``."""
    import torch

    from benchmarks.kit.report import write_json
    from benchmarks.textgen.arms import load_policy, make_envs

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = _bench_config(args)
    base, tok = load_policy(cfg.model)
    for p in base.parameters():
        p.requires_grad_(False)
    envs = make_envs(cfg, tok, cfg.batch_size)
    result: dict = {"trainer": kind}
    if kind == "ours":  # the start model's score, once
        result["zero_shot"] = _evaluate(cfg, copy.deepcopy(base), base, tok, envs, args.seed)
    t = time.perf_counter()
    if kind == "ours":
        model, tokens, rows = train_ours(cfg, base, tok, envs, args.seed)
    else:
        model, tokens, rows = train_trl(kind, cfg, base, tok, envs, args.seed, result_path.parent / f"{kind}-trainer")
    wall = time.perf_counter() - t
    result.update(train_seconds=wall, completion_tokens=tokens, tokens_per_second=tokens / wall,
                  completions=cfg.iterations * cfg.batch_size, rows=rows,
                  final=_evaluate(cfg, model, base, tok, envs, args.seed),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    write_json(result_path, result)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.trl_text", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--iterations", type=int, default=30, help="updates of each trainer (16 completions each)")
    p.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS), help="trainers to run")
    p.add_argument("--task", default="imdb-positive", help="TextGen task (its true score is every trainer's reward)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-prompts", type=int, default=64, help="held-out prompts each trained policy is scored on")
    p.add_argument("--kl-coef", type=float, default=0.05, help="(starting) KL coefficient beta of every trainer")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda: every trainer's device")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of each trainer")
    p.add_argument("--tiny", action="store_true", help="a random 2-layer model instead of SmolLM2 (tests)")
    p.add_argument("--out", type=Path, default=None, help="output directory (new); default runs/peers/trl-<task>")
    p.add_argument("--one", choices=TRAINERS, help=argparse.SUPPRESS)  # internal: run one trainer in this process
    return p


def _problem(args) -> str | None:
    import importlib.util

    from envs.text_tasks import TEXT_TASKS

    if args.task not in TEXT_TASKS:
        return f"--task {args.task!r} does not exist; choose one of {', '.join(sorted(TEXT_TASKS))}"
    if min(args.iterations, args.eval_prompts, args.threads) < 1:
        return "--iterations, --eval-prompts and --threads must be >= 1"
    if not args.kl_coef > 0:
        return f"--kl-coef must be > 0 (got {args.kl_coef})"
    from agents.factory import resolve_device

    try:
        args.device = resolve_device(args.device)
    except ValueError as err:
        return str(err)
    if any(t != "ours" for t in args.trainers) and importlib.util.find_spec("trl") is None:
        return "TRL is not installed: pip install -e \".[trl]\" (or leave it out: --trainers ours)"
    if args.one is None and (args.out / "trl.json").exists():
        return f"--out {args.out} already holds a comparison; give a new --out"
    return None


def main(argv: list[str] | None = None) -> dict:
    p = build_parser()
    args = p.parse_args(argv)
    args.out = (args.out or Path(f"runs/peers/trl-{args.task}")).resolve()
    problem = _problem(args)
    if problem:
        p.error(problem)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        return run_one(args.one, args, args.out / f"{args.one}.json")

    results = {}
    for kind in args.trainers:
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "benchmarks.peers.trl_text", "--one", kind, "--out", str(args.out),
               "--iterations", str(args.iterations), "--task", args.task, "--seed", str(args.seed),
               "--eval-prompts", str(args.eval_prompts), "--kl-coef", str(args.kl_coef), "--device", args.device,
               "--threads", str(args.threads), *(["--tiny"] if args.tiny else [])]
        print(f"trl peer: {kind} ({args.iterations} updates of 16 completions) ...", flush=True)
        log = args.out / f"{kind}.log"
        with log.open("w") as fh:  # the trainers' own progress bars and warnings go to the log
            done = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], stdout=fh, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        if done.returncode:
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            raise SystemExit(f"trl peer: {kind} failed (exit {done.returncode}); the end of {log}:\n{tail}")
        results[kind] = json.loads((args.out / f"{kind}.json").read_text())
        print(f"trl peer: {kind} done in {time.perf_counter() - t:.0f} s", flush=True)
    return report(args, results)


def report(args, results: dict) -> dict:
    """Writes trl.md / trl.json: throughput, peak memory, gain over the start model at equal samples."""
    from importlib.metadata import PackageNotFoundError, version

    from benchmarks.kit.report import write_json

    try:
        trl_version = version("trl")
    except PackageNotFoundError:
        trl_version = "(not installed)"
    zero = results.get("ours", {}).get("zero_shot")
    lines = [f"| trainer ({args.iterations} updates x 16 completions, task {args.task}, seed {args.seed}) | "
             "completion tokens/s of whole updates | peak RSS (GB) | true score (KL nats) | gain over start |",
             "|---|---|---|---|---|"]
    if zero:
        lines.append(f"| start model (zero-shot) | | | {zero['score']:+.3f} | |")
    for kind, r in results.items():
        f = r["final"]
        gain = f"{f['score'] - zero['score']:+.3f}" if zero else "(run ours for the start score)"
        lines.append(f"| {NAMES[kind].format(v=trl_version)} | {r['tokens_per_second']:.0f} | "
                     f"{r['peak_rss_mb'] / 1024:.2f} | {f['score']:+.3f} ({f['kl']:.2f}) | {gain} |")
    if "ours" in results:
        for kind in results:
            if kind != "ours":
                lines.append(f"\nprefrl / TRL {kind.upper()} throughput: "
                             f"{results['ours']['tokens_per_second'] / results[kind]['tokens_per_second']:.2f}x")
    text = "\n".join(lines)
    (args.out / "trl.md").write_text(text + "\n")
    summary = {"iterations": args.iterations, "task": args.task, "seed": args.seed, "threads": args.threads,
               "device": args.device,
               "trl_version": trl_version, "results": results}
    write_json(args.out / "trl.json", summary)
    print(text)
    return summary


if __name__ == "__main__":
    main()
