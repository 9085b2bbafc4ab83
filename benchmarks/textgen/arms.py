"""One seed of the text benchmark: the zero-shot, true-score and learned-reward arms.

Each arm checkpoints through the kit's :class:`benchmarks.kit.checkpoint.Checkpoint` (``<out>/checkpoints/<arm>-seed<k>/``,
swapped in atomically): ``state.pt`` holds what torch saves (``LMPPO.state_dict``, ``TextPreferenceLoop.state_dict``,
curve rows, counters, RNG states), ``progress.json`` the next iteration. ``pre-seed<k>/`` keeps the zero-shot
evaluation, the rollout speeds and the SFT step (metrics and trained tensors), so a resume does not redo them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from pathlib import Path

from benchmarks.kit.checkpoint import Checkpoint, keep_labels_aside
from benchmarks.textgen.config import ARMS, TB_TAGS, RunOptions, TextBenchConfig, read_prompt_file
from benchmarks.textgen.report import arm_peak_rss_mb, reset_peak_rss

# ---------------------------------------------------------------- pieces




def load_policy(name: str):
    from envs.text_models import load_causal_lm
    from envs.tiny_lm import tiny_causal_lm

    if name == "tiny":
        return tiny_causal_lm()
    return load_causal_lm(name)


def make_envs(cfg: TextBenchConfig, tokenizer, n: int):
    """``n`` TextGen envs of the task; with --prompt-file its lines are the prompts, used whole."""
    from envs.textgen import TextGenEnv

    if cfg.prompt_file is None:
        return [TextGenEnv(cfg.task, tokenizer=tokenizer, max_new_tokens=cfg.max_new_tokens,
                           prompt_tokens=cfg.prompt_tokens) for _ in range(n)]
    prompts = read_prompt_file(cfg.prompt_file)
    return [TextGenEnv(cfg.task, tokenizer=tokenizer, max_new_tokens=cfg.max_new_tokens, task_kwargs={"prompts": prompts},
                       prompt_tokens=cfg.prompt_tokens[1])  # every line fits MAX tokens (checked): used whole
            for _ in range(n)]


def make_ppo(cfg: TextBenchConfig, base_model, tokenizer, seed: int):
    from agents.lm_ppo import LMPPO, LMPPOConfig

    pcfg = LMPPOConfig(lr=cfg.lr, train_layers=cfg.train_layers or None, init_kl_coef=cfg.init_kl_coef,
                       target_kl=None if cfg.kl_control == "fixed" else cfg.target_kl,
                       kl_coef_floor=cfg.min_kl_coef, ptx_coef=cfg.ptx_coef, seed=seed,
                       minibatch_size=min(8, cfg.batch_size))
    return LMPPO(copy.deepcopy(base_model), tokenizer, pcfg, device=cfg.device, ref_model=base_model)


def make_loop(cfg: TextBenchConfig, seed: int, out: Path, tokenizer, opts: "RunOptions | None" = None):
    """The learned arm's core loop: text RM, SQLite store of texts, synthetic oracle, schedule."""
    import torch

    from prefrl import SyntheticOracle, TextLoopConfig, TextPreferenceLoop
    from prefrl.text_reward import make_text_reward_model, text_width

    torch.manual_seed(seed)
    width = text_width(tokenizer, max(cfg.prompt_tokens[1], cfg.max_new_tokens))
    loop_cfg = TextLoopConfig(labels=cfg.labels, total_completions=cfg.iterations * cfg.batch_size, rank_k=cfg.rank_k,
                              group_size=cfg.group_size, query=cfg.query, pool_rollouts=cfg.pool_rollouts,
                              round_completions=cfg.round_completions, initial_steps=cfg.initial_fit_steps,
                              refit_steps=cfg.refit_steps, reward_std=cfg.reward_std,
                              reward_norm=cfg.reward_norm, initial_share=cfg.initial_share,
                              explore_bonus=cfg.explore_bonus, explore_decay=cfg.explore_decay, seed=seed)
    rm = make_text_reward_model(cfg.reward_model, width).to(cfg.device)
    labeler = SyntheticOracle(noise=cfg.noise, seed=seed)
    if opts is not None and opts.labeler == "web":  # queries wait in the store's file; people answer in the page
        from prefrl import LabelQueue, PreferenceStore, QueueLabeler
        from prefrl.text_reward import completion_media

        store = PreferenceStore(out / f"labels-seed{seed}.sqlite", seed=seed)
        queue = LabelQueue(store, timeout_s=opts.label_timeout, on_timeout=opts.on_timeout,
                           repeat_share=opts.repeat_share)
        loop_cfg = dataclasses.replace(loop_cfg, min_answered_share=opts.min_answered_share)
        return TextPreferenceLoop(rm, QueueLabeler(queue, completion_media), loop_cfg, store=store)
    return TextPreferenceLoop.with_store_file(out / f"labels-seed{seed}.sqlite", rm, labeler, loop_cfg)


def train_seeds(seed: int, it: int, batch: int, k: int = 2) -> list[int]:
    """Reset seeds of one rollout: k envs per prompt (compared completions share a prompt), disjoint from eval."""
    return [1_000_000 * (seed + 1) + it * batch + i // k for i in range(batch)]


def eval_seeds(n: int) -> list[int]:
    return [10_000 + i for i in range(n)]


def evaluate(ppo, envs, cfg: TextBenchConfig) -> dict:
    """Mean true score and KL to the reference on the evaluation prompts (the same for every arm).

    Evaluation episodes use reset seeds disjoint from training; the prompts are
    drawn from the same 25k reviews, so a prompt can recur by chance.
    """
    seeds = eval_seeds(cfg.eval_prompts)
    scores, kls, samples = [], [], []
    B = len(envs)
    for s in range(0, len(seeds), B):
        chunk = seeds[s : s + B]
        ro = ppo.rollout(envs[: len(chunk)], chunk)
        sc = ppo.score_rollout(ro)
        kl = ((sc["logp"] - sc["ref_logp"]) * ro.response_mask).sum(1)
        scores += ro.true_scores.tolist()
        kls += kl.tolist()
        samples += list(zip(ro.prompts, ro.completions, ro.true_scores.tolist()))
    return {"score": sum(scores) / len(scores), "kl": sum(kls) / len(kls), "samples": samples}


def run_sft(cfg: TextBenchConfig, base_model, tokenizer, envs, seed: int):
    """Fine-tunes a copy of the model on the task's review text; returns it and its metrics + evaluation."""
    from agents.lm_sft import SFTConfig, sft_texts, supervised_finetune

    scfg = SFTConfig(steps=cfg.sft_steps, train_layers=cfg.train_layers or None, seed=seed)
    train, held_out = sft_texts(cfg.task, scfg.steps * scfg.batch_size, scfg.eval_texts, seed=seed)
    model = copy.deepcopy(base_model)
    metrics = supervised_finetune(model, tokenizer, train, held_out, scfg, device=cfg.device)
    for p in model.parameters():
        p.requires_grad_(False)
    ev = evaluate(make_ppo(cfg, model, tokenizer, seed), envs, cfg)
    return model, {**{k: v for k, v in metrics.items() if k != "sft/curve"}, **ev}


# ---------------------------------------------------------------- arms


def _load_state(ck: Checkpoint) -> dict | None:
    """``state.pt`` of an arm's latest checkpoint, or None when it has none."""
    import torch

    path = ck.latest()
    return None if path is None else torch.load(path / "state.pt", weights_only=False)


def _commit_state(ck: Checkpoint, state: dict, progress: dict) -> None:
    import torch

    ck.commit(lambda d: torch.save(state, d / "state.pt"), progress)


def _pre_phase(cfg: TextBenchConfig, seed: int, base_model, tokenizer, envs, bar, out: Path, opts):
    """Zero-shot evaluation, rollout speeds and the SFT step; checkpointed as ``pre-seed<k>`` and reloaded by a resume."""
    import torch

    ck = Checkpoint(out, "pre", seed)
    pre = _load_state(ck) if opts.resume else None
    if pre is not None:
        if pre["sft_params"] is not None:
            base_model = copy.deepcopy(base_model)
            params = dict(base_model.named_parameters())
            with torch.no_grad():
                for n, t in pre["sft_params"].items():
                    params[n].copy_(t)
        torch.set_rng_state(pre["rng"])
        bar.update(1)
        return base_model, pre["result"]
    result: dict = {}
    zero = make_ppo(cfg, base_model, tokenizer, seed)
    result["zero_shot"] = evaluate(zero, envs, cfg)
    bar.update(1)
    sft_params = None
    if cfg.sft_steps:  # InstructGPT step 1: PPO starts from the SFT model and is held near it
        before = {n: p.detach().clone() for n, p in base_model.named_parameters()}
        base_model, result["sft"] = run_sft(cfg, base_model, tokenizer, envs, seed)
        sft_params = {n: p.detach().cpu().clone() for n, p in base_model.named_parameters()
                      if not torch.equal(p, before[n])}
        bar.write(f"  seed {seed} SFT: held-out loss {result['sft']['sft/eval_loss_before']:.3f} -> "
                  f"{result['sft']['sft/eval_loss_after']:.3f}, score {result['sft']['score']:+.3f}")
    # Rollout speed of our KV-cached loop vs transformers' generate, same batch and length.
    ro = zero.rollout(envs, train_seeds(seed, -1, cfg.batch_size))
    gen_s, gen_tok = zero.generate_baseline(ro)
    ro2 = zero.rollout(envs, train_seeds(seed, -1, cfg.batch_size))
    result["rollout_tokens_per_second"] = ro2.gen_tokens / ro2.gen_seconds
    result["generate_tokens_per_second"] = gen_tok / gen_s
    _commit_state(ck, {"result": result, "sft_params": sft_params, "rng": torch.get_rng_state()}, {"phase": "pre"})
    return base_model, result


def run_seed(cfg: TextBenchConfig, seed: int, out: Path, base_model, tokenizer, bar,
             opts: RunOptions = RunOptions()) -> dict:
    import torch

    from agents.lm_ppo import ptx_batch_from_texts
    from prefrl import pearson

    torch.manual_seed(seed)
    envs = make_envs(cfg, tokenizer, cfg.batch_size)
    rows: list[dict] = []
    base_model, pre = _pre_phase(cfg, seed, base_model, tokenizer, envs, bar, out, opts)
    result: dict = {"seed": seed, **pre, "resumed": []}

    ptx_texts = None
    if cfg.ptx_coef > 0:
        from envs.text_tasks import make_text_task

        task = make_text_task(cfg.task)
        ptx_texts = [task.prompt(i) for i in range(min(task.num_prompts(), 4096))]

    for arm in ARMS:
        ck = Checkpoint(out, arm, seed)
        done = ck.finished() if opts.resume else None
        if done is not None:  # finished before the interruption: kept as it was
            result[arm] = done["result"]
            rows += done["rows"]
            torch.set_rng_state(torch.tensor(done["rng"], dtype=torch.uint8))
            bar.update(cfg.iterations + 1)
            bar.write(f"  seed {seed} {arm}: finished before the interruption; kept")
            continue
        state = _load_state(ck) if opts.resume else None
        aside = None
        if opts.resume and state is None and arm == "learned":  # died before its first checkpoint: it starts again
            aside = keep_labels_aside(out / f"labels-seed{seed}.sqlite")
        if aside is not None:
            bar.write(f"  seed {seed} learned: no checkpoint yet; its earlier labels are kept in {aside.name}")
        ppo = make_ppo(cfg, base_model, tokenizer, seed)
        lr = make_loop(cfg, seed, out, tokenizer, opts) if arm == "learned" else None
        server = None
        waiting = [0]  # --min-answered-share: answers the policy waits for now (shown on the page)
        if lr is not None and lr.is_async:
            from envs.text_tasks import make_text_task
            from prefrl.web import serve

            lr_task = make_text_task(cfg.task)

            server = serve(lr.labeler.queue, host=opts.web_host, port=opts.web_port, print_url=False,
                           progress=lambda: {"labels_due": max(0, lr.schedule.due(episodes_seen[0]) - lr.labels_used),
                                             "labels_budget": cfg.labels, "labels_counted": lr.labels_used,
                                             "task": cfg.task, "waiting_for_labels": waiting[0],
                                             "instructions": lr_task.instructions})  # never the true score
            bar.write(f"  seed {seed} learned: label at {server.url}\n    open it in a browser, type your name, "
                      "and rank the completions of each prompt by how well they do the task; the policy trains "
                      "meanwhile")
            sys.stdout.flush()
        episodes_seen, arm_rows_ref = [0], [[]]
        arm_rows: list[dict] = []
        episodes, fresh, start = 0, [], 0
        times = {"gen_time": 0.0, "gen_tokens": 0.0, "train_time": 0.0, "train_tokens": 0.0, "elapsed": 0.0}
        ptx_gen = torch.Generator().manual_seed(seed)  # the same pretraining batches in both arms
        if state is not None:
            ppo.load_state_dict(state["ppo"])
            if lr is not None:
                lr.load_state_dict(state["loop"])
            arm_rows, episodes, fresh, start = state["rows"], state["episodes"], state["fresh"], state["next"]
            times = dict(state["times"])
            ptx_gen.set_state(state["ptx_rng"])
            torch.set_rng_state(state["rng"])
            redone = max(0, ck.reached(unit="iteration") - start)
            result["resumed"].append({"arm": arm, "from_iteration": start, "iterations_redone": redone})
            bar.update(start)
            bar.write(f"  seed {seed} {arm}: resumed from its checkpoint at iteration {start} "
                      f"({redone} iteration(s) redone)")
        t_arm = time.perf_counter() - times["elapsed"]
        reset_peak_rss()

        def checkpoint(next_it: int) -> None:
            times["elapsed"] = time.perf_counter() - t_arm
            _commit_state(ck, {"ppo": ppo.state_dict(), "loop": lr.state_dict() if lr is not None else None,
                               "rows": arm_rows, "episodes": episodes, "fresh": fresh, "next": next_it,
                               "times": times, "ptx_rng": ptx_gen.get_state(), "rng": torch.get_rng_state()},
                          {"next": next_it, "episodes": episodes})

        if lr is not None and state is None:
            n0 = lr.schedule.initial_labels
            for k in range(math.ceil(cfg.pool_factor * n0 / (cfg.batch_size // cfg.rank_k))):
                ro = ppo.rollout(envs, train_seeds(seed, 10_000 + k, cfg.batch_size, cfg.group_size or cfg.rank_k),
                                 temperature=cfg.pool_temperatures[k % len(cfg.pool_temperatures)])
                lr.add_rollout(ro.prompts, ro.completions, ro.true_scores)  # candidates from the zero-shot model
            lr.label_due(0)
            bar.write(f"  seed {seed} learned: {lr.labels_used} initial labels, RM held-out accuracy "
                      f"{lr.metrics['rm/val_accuracy']:.3f} ({lr.metrics['rm/fit_seconds']:.0f} s)")
            checkpoint(0)
        last_ckpt = time.perf_counter()
        writer = None
        if opts.tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: after a resume, the iterations past the checkpoint are logged again, not twice
            writer = SummaryWriter(str(opts.tensorboard / f"{arm}-seed{seed}"), purge_step=start + 1 if start else None)
        for it in range(start, cfg.iterations):
            ro = ppo.rollout(envs, train_seeds(seed, it, cfg.batch_size, cfg.group_size or cfg.rank_k))
            times["gen_time"] += ro.gen_seconds
            times["gen_tokens"] += ro.gen_tokens
            episodes += len(ro.prompts)
            episodes_seen[0], arm_rows_ref[0] = episodes, arm_rows
            row = {"iteration": it + 1, "episodes": episodes, "run": arm, "seed": seed,
                   "true_score": float(ro.true_scores.mean()), "labels": "", "rm_accuracy": "",
                   "reward_correlation": "", "explore_bonus": ""}
            labeled = 0
            if lr is not None:
                segs = lr.add_rollout(ro.prompts, ro.completions, ro.true_scores)
                score, raw = lr.reward(segs, episodes)
                row["explore_bonus"] = float((score - lr.normalise(raw)).mean())  # RUNE's share (0 when off)
                fresh.append((raw, ro.true_scores))  # scored before any of these pairs is labeled
                fresh = fresh[-10:]
                row["reward_correlation"] = pearson(torch.cat([f[0] for f in fresh]), torch.cat([f[1] for f in fresh]))
                labeled = lr.label_due(episodes)
                if lr.labels_short(episodes):
                    waiting[0] = lr.labels_short(episodes)
                    checkpoint(it)  # nothing answered is lost if the run is stopped while it waits

                    def say(st: dict) -> None:
                        waiting[0] = st["short"]
                        bar.write(f"  seed {seed} learned: waiting for labels: {st['short']} more answers needed "
                                  f"before the policy goes on ({st['labels_used']} answered, --min-answered-share "
                                  f"{opts.min_answered_share}); waited {st['waited_seconds']:.0f} s")

                    labeled += lr.wait_for_labels(episodes, on_wait=say)
                    waiting[0] = 0
                row["labels"] = lr.labels_used
                row["rm_accuracy"] = lr.metrics["rm/val_accuracy"]
            else:
                score = ro.true_scores
            ptx = None
            if ptx_texts is not None:
                pick = torch.randint(len(ptx_texts), (cfg.batch_size,), generator=ptx_gen).tolist()
                ptx = ptx_batch_from_texts(tokenizer, [ptx_texts[i] for i in pick])
            m = ppo.update(ro, score, ptx)
            times["train_time"] += m["ppo/seconds"]
            times["train_tokens"] += float(ro.response_mask.sum()) * ppo.config.ppo_epochs
            row.update(kl=m["kl/mean"], beta=m["kl/beta"], wall_seconds=time.perf_counter() - t_arm)
            arm_rows.append(row)
            if writer is not None:
                for key, tag in TB_TAGS.items():
                    if row[key] != "":
                        writer.add_scalar(tag, float(row[key]), it + 1)
                if lr is not None:
                    writer.add_scalar("pref/fit_seconds", lr.metrics["rm/fit_seconds"], it + 1)
            ck.set_reached(it + 1, unit="iteration")
            if labeled or time.perf_counter() - last_ckpt >= opts.checkpoint_seconds:
                checkpoint(it + 1)
                last_ckpt = time.perf_counter()
            bar.set_postfix_str(f"{arm} score {row['true_score']:+.2f} kl {m['kl/mean']:.1f}")
            bar.update(1)
        if writer is not None:
            writer.close()
        if server is not None:
            server.stop()
            bar.write(f"  seed {seed} learned: labeling page closed; {lr.labels_used} queries answered")
        ev = evaluate(ppo, envs, cfg)
        result[arm] = {
            **ev,
            "rollout_tokens_per_second": times["gen_tokens"] / max(times["gen_time"], 1e-9),
            "train_tokens_per_second": times["train_tokens"] / max(times["train_time"], 1e-9),
            "wall_seconds": time.perf_counter() - t_arm,
            "peak_rss_mb": arm_peak_rss_mb(),
        }
        if lr is not None:
            result[arm].update(labels_used=lr.labels_used, labels_asked=cfg.labels, labels_stored=lr.store.total_added,
                               pairs_labeled=lr.pairs_labeled, label_ties=lr.ties,
                               rm_accuracy=lr.metrics["rm/val_accuracy"],
                               reward_correlation=arm_rows[-1]["reward_correlation"],
                               fit_seconds=lr.metrics["rm/fit_seconds"])
            if lr.is_async:
                result[arm]["team"] = lr.labeler.queue.team()  # per annotator: answers, speed, agreement
            lr.store.close()
        # rows and result as JSON (NaN kept; tuples come back as lists), the RNG state as its bytes
        ck.finish({"result": result[arm], "rows": arm_rows, "rng": torch.get_rng_state().tolist()}, keep_nan=True)
        rows += arm_rows
        bar.update(1)
        ppo = lr = None  # free the arm's model before the next one is built
    result["rows"] = rows
    return result
