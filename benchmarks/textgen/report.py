"""The text benchmark's summary, curves, plot, table and peak memory."""

from __future__ import annotations

import resource
from dataclasses import asdict
from pathlib import Path

from benchmarks.kit.report import figure, label_shortfall, print_rows, save_figure, write_csv, write_json
from benchmarks.textgen.config import ARMS, TextBenchConfig

def reset_peak_rss() -> None:
    """Restarts the kernel's peak-RSS count of this process (Linux >= 4.0), so each arm reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak stays the process's so far


def arm_peak_rss_mb() -> float:
    """Peak resident memory since :func:`reset_peak_rss` (``VmHWM``), else the process's peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: str) -> dict:
    import torch

    mem = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        mem["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return mem


def summarize(cfg: TextBenchConfig, results: list[dict], wall: float) -> dict:
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    z = mean([r["zero_shot"]["score"] for r in results])
    t = mean([r["true"]["score"] for r in results])
    lrn = mean([r["learned"]["score"] for r in results])
    gain_t, gain_l = t - z, lrn - z
    sft = {}
    if all("sft" in r for r in results):
        sft = {"score_sft": mean([r["sft"]["score"] for r in results]), "kl_sft": mean([r["sft"]["kl"] for r in results]),
               "sft_eval_loss_before": mean([r["sft"]["sft/eval_loss_before"] for r in results]),
               "sft_eval_loss_after": mean([r["sft"]["sft/eval_loss_after"] for r in results]),
               "sft_seconds": mean([r["sft"]["sft/seconds"] for r in results])}
    return {
        **sft,
        "task": cfg.task, "model": cfg.model, "config": asdict(cfg),
        "score_zero_shot": z, "score_true": t, "score_learned": lrn,
        "gain_true": gain_t, "gain_learned": gain_l,
        "gain_ratio": gain_l / gain_t if gain_t > 0 else float("nan"),
        "kl_true": mean([r["true"]["kl"] for r in results]),
        "kl_learned": mean([r["learned"]["kl"] for r in results]),
        "labels_used": mean([r["learned"]["labels_used"] for r in results]),
        "labels_asked": cfg.labels,
        "warnings": label_shortfall([{"seed": r["seed"], **r["learned"]} for r in results]),
        "pairs_labeled": mean([r["learned"]["pairs_labeled"] for r in results]),
        "label_ties": mean([r["learned"]["label_ties"] for r in results]),
        "rm_accuracy": mean([r["learned"]["rm_accuracy"] for r in results]),
        "reward_correlation": mean([r["learned"]["reward_correlation"] for r in results]),
        "rollout_tokens_per_second": mean([r["rollout_tokens_per_second"] for r in results]),
        "generate_tokens_per_second": mean([r["generate_tokens_per_second"] for r in results]),
        "rollout_vs_generate": mean([r["rollout_tokens_per_second"] / r["generate_tokens_per_second"]
                                     for r in results]),
        "train_tokens_per_second": mean([r[a]["train_tokens_per_second"] for r in results for a in ("true", "learned")]),
        "fit_seconds": mean([r["learned"]["fit_seconds"] for r in results]),
        **peak_memory_mb(cfg.device),
        "wall_seconds": wall,
        "score_is": "mean true score of one completion per evaluation prompt",
        "resumed": [{"seed": r["seed"], **x} for r in results for x in r.get("resumed", [])],
        "per_seed": [{k: ({kk: vv for kk, vv in v.items() if kk != "samples"} if isinstance(v, dict) else v)
                      for k, v in r.items() if k not in ("rows", "resumed")} for r in results],
    }


CURVE_COLUMNS = ("iteration", "episodes", "run", "seed", "true_score", "kl", "beta", "labels", "rm_accuracy",
                 "reward_correlation", "explore_bonus", "wall_seconds")


def write_outputs(out: Path, cfg: TextBenchConfig, results: list[dict], summary: dict) -> None:
    """Writes curves.csv, summary.json, samples.md and curves.png to ``out``."""
    rows = [row for r in results for row in r["rows"]]
    write_csv(out / "curves.csv", rows, CURVE_COLUMNS)
    write_json(out / "summary.json", summary)
    lines = [f"# Sample completions ({cfg.task}, {cfg.model}, seed {results[0]['seed']})", "",
             "Evaluation prompts; one sampled completion per arm; true score in brackets.", ""]
    r0 = results[0]
    for i in range(min(6, len(r0["zero_shot"]["samples"]))):
        prompt = r0["zero_shot"]["samples"][i][0]
        lines += [f"## Prompt {i + 1}", "", f"> {prompt}", ""]
        for arm in ("zero_shot", "sft", "true", "learned") if "sft" in r0 else ("zero_shot", "true", "learned"):
            _, comp, score = r0[arm]["samples"][i]
            text = " ".join(comp.split()) or "(empty)"  # one line per completion
            lines.append(f"- **{arm.replace('_', '-')}** [{score:+.2f}]: {text}")
        lines.append("")
    (out / "samples.md").write_text("\n".join(lines))
    plot(out / "curves.png", rows, summary)


def plot(path: Path, rows: list[dict], summary: dict) -> None:
    """Writes ``curves.png``: training score per arm and seed (and its moving mean), KL, the reward model."""
    fig, (ax1, ax2) = figure()
    seeds = sorted({r["seed"] for r in rows})
    for arm, color in (("learned", "tab:blue"), ("true", "tab:orange")):
        for n, seed in enumerate(seeds):
            pts = [(r["episodes"], r["true_score"], r["kl"]) for r in rows if r["run"] == arm and r["seed"] == seed]
            if not pts:
                continue
            x, y, kl = zip(*pts)
            k = 5  # moving average over 5 rollouts
            smooth = [sum(y[max(0, i - k + 1) : i + 1]) / len(y[max(0, i - k + 1) : i + 1]) for i in range(len(y))]
            first = n == 0
            ax1.plot(x, y, color=color, alpha=0.2)
            ax1.plot(x, smooth, color=color, label=f"PPO on {arm} reward" + (" (each seed)" if len(seeds) > 1 else "")
                     if first else None)
            ax2.plot(x, kl, color=color, ls=":", label=f"KL to reference ({arm})" if first else None)
    ax1.axhline(summary["score_zero_shot"], color="gray", ls="--", label="zero-shot (evaluation prompts)")
    ax1.set_xlabel("episodes (completions)")
    ax1.set_ylabel("true score of training completions (5-rollout mean)")
    ax1.set_title(f"{summary['task']}: {summary['model']}, {summary['labels_used']:.0f} labels")
    ax1.legend()
    learned = [r for r in rows if r["run"] == "learned"]
    if learned:
        x = [r["episodes"] for r in learned]
        ax2.plot(x, [r["rm_accuracy"] for r in learned], ".", color="tab:green", label="RM held-out accuracy")
        ax2.plot(x, [r["reward_correlation"] for r in learned], ".", color="tab:red",
                 label="learned/true correlation (fresh, last 10 rollouts)")
    ax2.set_xlabel("episodes (completions)")
    ax2.set_title("reward model and KL (nats/sequence)")
    ax2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)


def print_table(s: dict) -> None:
    """Prints the summary table of a text run."""
    lines = [
        ("true score, zero-shot", f"{s['score_zero_shot']:+.3f}"),
        *([("true score, SFT (held-out loss)", f"{s['score_sft']:+.3f}  ({s['sft_eval_loss_before']:.3f} -> "
                                                 f"{s['sft_eval_loss_after']:.3f})")] if "score_sft" in s else []),
        ("true score, PPO on true score", f"{s['score_true']:+.3f}  (KL {s['kl_true']:.2f})"),
        ("true score, PPO on learned reward", f"{s['score_learned']:+.3f}  (KL {s['kl_learned']:.2f})"),
        ("gain learned / gain true", f"{s['gain_ratio']:.2f}"),
        ("labels used (pairwise labels, ties)", f"{s['labels_used']:.0f} ({s['pairs_labeled']:.0f}, "
                                                f"{s['label_ties']:.0f})"),
        ("RM held-out accuracy", f"{s['rm_accuracy']:.3f}"),
        ("learned/true reward correlation", f"{s['reward_correlation']:.3f}"),
        ("rollout tokens/s (vs generate)", f"{s['rollout_tokens_per_second']:.0f} "
                                           f"({s['rollout_vs_generate']:.2f}x of {s['generate_tokens_per_second']:.0f})"),
        ("training tokens/s", f"{s['train_tokens_per_second']:.0f}"),
        ("peak memory", f"{s['peak_rss_mb']:.0f} MB RSS" + (f", {s['peak_cuda_mb']:.0f} MB CUDA" if 'peak_cuda_mb' in s else "")),
        *[(f"{arm} arm: time, peak memory", f"{r[arm]['wall_seconds'] / 60:.1f} min, {r[arm]['peak_rss_mb']:.0f} MB RSS "
           f"(seed {r['seed']})") for r in s["per_seed"] for arm in ARMS if "peak_rss_mb" in r[arm]],
        ("wall time", f"{s['wall_seconds'] / 60:.1f} min"),
        *[(f"resumed (seed {x['seed']})", f"the {x['arm']} arm from iteration {x['from_iteration']}, "
           f"{x['iterations_redone']} redone") for x in s.get("resumed", [])],
    ]
    print_rows(f"{s['task']} ({s['model']}, {s['config']['iterations']} PPO updates x {s['config']['batch_size']} "
               f"completions, seeds {list(s['config']['seeds'])}, {s['config']['device']})", lines)
    for w in s.get("warnings", []):
        print(f"warning: {w}")
