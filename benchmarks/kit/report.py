"""What a benchmark reports: the summary, ``curves.csv``, ``summary.json``/``timing.json``, ``curves.png``
and the table printed at the end.

The writers (:func:`write_csv`, :func:`write_json`, :func:`save_figure`, :func:`print_rows`) serve every
benchmark, text included; :func:`summarize`, :func:`write_outputs`, :func:`curves_figure` and
:func:`print_table` are the Atari/MuJoCo report.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.kit.config import RunConfig

OUTPUTS = ("curves.csv", "curves.png", "summary.json", "timing.json")
ARMS = ("learned", "true")
UPPER = "upper"
"""The optional third arm (``--upper-bound``): the true reward through everything the learned arm gets."""
TIMING_KEYS = ("wall_seconds", "steps_per_second", "cpu_seconds", "steps_per_cpu_second", "fit_seconds",
               "fit_overlapped", "fit_overlap_cpu_seconds", "pretrain_seconds", "eval_seconds")
"""Per-run figures that depend on the machine: they go to timing.json, so that summary.json of
the same command and seed is identical from run to run."""
CURVE_COLUMNS = ("env_step", "run", "seed", "true_return", "episodes", "labels", "rm_accuracy", "reward_correlation",
                 "wall_seconds")


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] | list[str]) -> None:
    """Writes ``rows`` (dicts) as CSV with a header of ``columns``."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)


def write_json(path: Path, data: Any) -> None:
    """Writes strict, indented JSON (NaN/inf as null, numpy numbers as Python ones)."""
    path.write_text(json.dumps(json_safe(data), indent=2) + "\n")


def save_figure(path: Path, fig) -> None:
    """Saves a matplotlib figure as a PNG (100 dpi) and closes it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure(ncols: int = 2, size: tuple[float, float] = (12, 4.5)):
    """A new off-screen figure with ``ncols`` axes side by side: (fig, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=size)


def print_rows(title: str, lines: list[tuple[str, str]]) -> None:
    """Prints a titled two-column table (the summary every benchmark ends with)."""
    width = max(len(k) for k, _ in lines)
    print(f"\n{title}")
    for k, v in lines:
        print(f"  {k:<{width}}  {v}")


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else float("nan")


def summarize(cfg: RunConfig, results: list[dict], random: dict, wall: float) -> tuple[dict, dict]:
    """(summary, timing): the run's figures, and the machine-dependent ones (wall/CPU time, steps/s).

    Returns are the evaluation means of the final policies (``--eval-episodes`` fresh episodes per
    seed); the mean of the last 10 training episodes is kept as ``*_last10``.
    """
    from benchmarks.evaluation import mean_ci

    arms = [a for a in (*ARMS, UPPER) if any(r["arm"] == a for r in results)]
    by_arm = {a: [r for r in results if r["arm"] == a] for a in arms}
    rnd = random["eval_mean"]

    def above_random(x: float, ref: float) -> float:
        return (x - rnd) / (ref - rnd) if ref - rnd > 0 else float("nan")

    summary = {
        "env": cfg.env, "agent": cfg.agent, "steps": cfg.steps, "seeds": list(cfg.seeds), "noise": cfg.noise,
        "query": cfg.query, "device": cfg.device, "n_envs": cfg.n_envs, "eval_episodes": cfg.eval_episodes,
        "final_return_is": f"mean true return of {cfg.eval_episodes} fresh evaluation episodes of the final policy "
                           "per seed (actions sampled), averaged over seeds; ci95: bootstrap over the pooled episodes",
        "true_return_random": rnd,
        "true_return_random_ci95": random["eval_ci95"],
    }
    for a in arms:
        pooled = [x for r in by_arm[a] for x in r["eval_returns"]]
        summary[f"true_return_{a}"] = _mean(r["eval_mean"] for r in by_arm[a])
        summary[f"true_return_{a}_ci95"] = list(mean_ci(pooled, seed=0)[1:])
        summary[f"true_return_{a}_last10"] = _mean(r["final_true_return_last10"] for r in by_arm[a])
    tl, tt = summary["true_return_learned"], summary["true_return_true"]
    true_by_seed = {r["seed"]: r["eval_mean"] for r in by_arm["true"]}
    summary["ratio"] = tl / tt if tt > 0 else float("nan")  # a ratio of negative returns means nothing
    summary["normalized_ratio"] = above_random(tl, tt)
    summary["normalized_ratio_per_seed"] = [above_random(r["eval_mean"], true_by_seed[r["seed"]])
                                            for r in by_arm["learned"]]
    if UPPER in by_arm:
        summary["normalized_ratio_upper"] = above_random(summary["true_return_upper"], tt)
    learned = by_arm["learned"]
    summary.update({
        "labels_used": _mean(r["labels_used"] for r in learned),
        "labels_asked": _mean(r.get("labels_asked", r["labels_used"]) for r in learned),
        "labels_stored": _mean(r.get("labels_stored", r["labels_used"]) for r in learned),
        "label_tie_share": _mean(r["label_tie_share"] for r in learned),
        "rm_accuracy": _mean(r["rm_accuracy"] for r in learned),
        "reward_correlation": _mean(r["reward_correlation"] for r in learned),
        "reward_correlation_step": _mean(r["reward_correlation_step"] for r in learned),
        "pretrain_accuracy": _mean(r["pretrain_accuracy"] for r in learned),
    })
    summary["resumed"] = [{"arm": r["arm"], "seed": r["seed"], "from_step": r["resumed_from_step"],
                           "steps_redone": r["steps_redone"]}
                          for r in results if "resumed_from_step" in r]  # empty for a run never interrupted
    summary["warnings"] = _warnings(summary, random) + label_shortfall(learned)
    summary["per_seed"] = [{k: v for k, v in r.items() if k != "rows" and k not in TIMING_KEYS} for r in results]

    sps = {a: _mean(r["steps_per_second"] for r in by_arm[a]) for a in arms}
    timing = {
        "wall_seconds": wall,
        **{f"steps_per_second_{a}": sps[a] for a in arms},
        "overhead_ratio": sps["learned"] / sps["true"] if sps["true"] else float("nan"),
        # CPU time is not skewed when the arms share the cores for part of the run
        "overhead_ratio_cpu": _mean(r["steps_per_cpu_second"] for r in learned)
        / _mean(r["steps_per_cpu_second"] for r in by_arm["true"]),
        "pretrain_seconds": _mean(r["pretrain_seconds"] for r in learned),
        "fit_seconds": _mean(r["fit_seconds"] for r in learned),
        "per_seed": [{"arm": r["arm"], "seed": r["seed"], **{k: r[k] for k in TIMING_KEYS if k in r}}
                     for r in results],
    }
    return summary, timing


def label_shortfall(learned: list[dict]) -> list[str]:
    """One warning per learned arm that ended with fewer answered labels than ``--labels`` asked (people
    labeling, ``--labeler web``): its figures are for fewer labels, or none at all."""
    return [f"seed {r['seed']}: the learned arm counted {r['labels_used']} of the {r['labels_asked']} labels asked "
            f"before it ended ({r['labels_stored']} stored by the end): its result is for fewer labels than asked"
            + (", and its reward model was never fit: the agent trained on an untrained model's reward"
               if r["labels_stored"] == 0 else "")
            for r in learned if r.get("labels_used", 0) < r.get("labels_asked", 0)]


def _warnings(s: dict, random: dict) -> list[str]:
    """Reasons why a run says little about preference learning (printed and kept in summary.json)."""
    out = []
    if not s["true_return_true_ci95"][0] > random["eval_ci95"][1]:
        out.append("the true-reward agent is not clearly above the random policy (95% intervals overlap): "
                   "the budget is too small for this task, so the learned arm cannot be judged")
    if s["label_tie_share"] > 0.5:
        out.append(f"{s['label_tie_share']:.0%} of the labels are ties (equal true returns): the behaviour "
                   "compared rarely differs in score, so the reward model gets little to learn from")
    return out


def write_outputs(out: Path, results: list[dict], summary: dict, timing: dict) -> None:
    """Writes curves.csv, summary.json, timing.json and curves.png to ``out``."""
    rows = [row for r in results for row in r["rows"]]
    write_csv(out / "curves.csv", rows, CURVE_COLUMNS)
    write_json(out / "summary.json", summary)
    write_json(out / "timing.json", timing)
    plot_curves(out / "curves.png", rows, summary)


def json_safe(x):
    """NaN/inf -> None (strict JSON has no NaN); numpy scalars -> Python numbers; paths -> text."""
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def plot_curves(path: Path, rows: list[dict], summary: dict) -> None:
    """Writes ``curves.png``: true return per arm and seed, and the reward model's figures."""
    save_figure(path, curves_figure(rows, summary))


def curves_figure(rows: list[dict], summary: dict):
    """The figure behind ``curves.png``: one line per (arm, seed), never one line across seeds."""
    fig, (ax1, ax2) = figure()
    for arm, color in (("learned", "tab:blue"), ("true", "tab:orange"), ("upper", "tab:green")):
        for seed in sorted({r["seed"] for r in rows}):
            pts = [(r["env_step"], r["true_return"]) for r in rows if r["run"] == arm and r["seed"] == seed]
            if pts:
                x, y = zip(*pts)
                label = f"{arm} reward" + (f" (seed {seed})" if len(summary["seeds"]) > 1 else "")
                ax1.plot(x, y, color=color, label=label, alpha=0.9)
    if not math.isnan(summary["true_return_random"]):
        ax1.axhline(summary["true_return_random"], color="gray", ls="--", label="random policy")
    ax1.set_xlabel("environment steps")
    ax1.set_ylabel("true episode return (last 10)")
    ax1.set_title(f"{summary['env']}: {summary['agent']}, {summary['labels_used']:.0f} labels")
    ax1.legend()
    learned = [r for r in rows if r["run"] == "learned"]
    if learned:
        x = [r["env_step"] for r in learned]
        ax2.plot(x, [r["rm_accuracy"] for r in learned], ".", label="RM held-out accuracy")
        ax2.plot(x, [r["reward_correlation"] for r in learned], ".", label="learned/true return correlation")
        ax2b = ax2.twinx()
        for seed in sorted({r["seed"] for r in learned}):  # one line per seed: joined, they draw a diagonal
            pts = [(r["env_step"], r["labels"]) for r in learned if r["seed"] == seed]
            ax2b.plot(*zip(*pts), color="gray", alpha=0.5)
        ax2b.set_ylabel("labels used (gray)")
    ax2.set_ylim(-0.1, 1.05)
    ax2.set_xlabel("environment steps")
    ax2.set_title("reward model")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    return fig


def print_table(s: dict, t: dict) -> None:
    """Prints the summary table of an Atari/MuJoCo run."""
    def ret(arm: str) -> str:
        lo, hi = s[f"true_return_{arm}_ci95"]
        return f"{s[f'true_return_{arm}']:.1f}  (95% CI {lo:.1f}..{hi:.1f})"

    lines = [("true return, learned-reward agent", ret("learned")),
             ("true return, true-reward agent", ret("true"))]
    if "true_return_upper" in s:
        lines.append(("true return, upper bound (true reward, learned pipeline)", ret("upper")))
    lines += [
        ("true return, random policy", ret("random")),
        ("ratio above random (learned)", f"{s['normalized_ratio']:.2f}  per seed "
         + " ".join(f"{x:.2f}" for x in s["normalized_ratio_per_seed"])),
    ]
    if "normalized_ratio_upper" in s:
        lines.append(("ratio above random (upper bound)", f"{s['normalized_ratio_upper']:.2f}"))
    lines += [
        ("last 10 training games: learned | true", f"{s['true_return_learned_last10']:.1f} | "
                                                   f"{s['true_return_true_last10']:.1f}"),
        ("labels answered of asked (stored, ties)", f"{s['labels_used']:.0f} of {s.get('labels_asked', s['labels_used']):.0f} "
                                                    f"({s.get('labels_stored', s['labels_used']):.0f}, "
                                                    f"{s['label_tie_share']:.0%})"),
        ("RM held-out accuracy", f"{s['rm_accuracy']:.3f}"),
        ("learned/true reward correlation: segments | steps", f"{s['reward_correlation']:.3f} | "
                                                             f"{s['reward_correlation_step']:.3f}"),
        ("steps/s learned | true", f"{t['steps_per_second_learned']:.0f} | {t['steps_per_second_true']:.0f}"),
        ("loop overhead (learned / true steps/s)", f"{t['overhead_ratio']:.2f} wall, {t['overhead_ratio_cpu']:.2f} CPU time"),
        ("wall time", f"{t['wall_seconds'] / 60:.1f} min"),
    ]
    print_rows(f"{s['env']} ({s['agent']}, {s['steps']} steps, seeds {s['seeds']})", lines)
    for r in s["resumed"]:
        print(f"resumed: the {r['arm']} arm of seed {r['seed']} continued from its checkpoint at step {r['from_step']} "
              f"({r['steps_redone']} steps redone)")
    for w in s["warnings"]:
        print(f"WARNING: {w}")
