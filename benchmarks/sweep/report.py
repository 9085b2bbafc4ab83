"""The sweep's aggregate report over seeds: aggregate.csv, aggregate.md, aggregate.png."""


import csv
import json
import math
from pathlib import Path

from benchmarks.sweep.grid import FAMILIES


CSV_COLUMNS = ("family", "env", "labels", "query", "figure", "n", "mean", "ci_low", "ci_high", "iqm", "values")


def collect(root: Path) -> dict[tuple, dict[str, list[float | None]]]:
    """Finished runs under ``root``: {(family, env, labels, query): {figure key: [value per seed]}}, seeds in order."""
    import re

    found: dict[tuple, dict[int, dict]] = {}
    for summary in sorted(Path(root).glob("*/*/labels*-*/seed*/summary.json")):
        seed_dir, cfg_dir = summary.parent, summary.parent.parent
        family, env = cfg_dir.parent.parent.name, cfg_dir.parent.name
        m = re.fullmatch(r"labels(\d+)-(\w+)", cfg_dir.name)
        s = re.fullmatch(r"seed(\d+)", seed_dir.name)
        if family not in FAMILIES or not m or not s:
            continue
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        found.setdefault((family, env, int(m.group(1)), m.group(2)), {})[int(s.group(1))] = data
    out = {}
    for key, by_seed in found.items():
        figures = FAMILIES[key[0]].figures
        out[key] = {k: [by_seed[seed].get(k) for seed in sorted(by_seed)] for k, _ in figures}
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])))


def aggregate(root: Path) -> dict:
    """Writes aggregate.csv, aggregate.md and aggregate.png in ``root`` from its finished runs; returns their paths."""
    from benchmarks.stats import describe

    root = Path(root)
    rows = []
    for (family, env, labels, query), figures in collect(root).items():
        for key, values in figures.items():
            rows.append({"family": family, "env": env, "labels": labels, "query": query, "figure": key,
                         **describe(values), "values": " ".join("nan" if v is None else f"{v:.6g}" for v in values)})
    with open(root / "aggregate.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (root / "aggregate.md").write_text(markdown_table(rows))
    plot_aggregate(root / "aggregate.png", rows)
    return {"rows": rows, "csv": str(root / "aggregate.csv"), "md": str(root / "aggregate.md"),
            "png": str(root / "aggregate.png")}


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def markdown_table(rows: list[dict]) -> str:
    """One markdown table: a row per configuration and figure."""
    labels = {k: v for spec in FAMILIES.values() for k, v in spec.figures}
    lines = ["| family | env | labels | query | figure | n | mean | 95% CI of the mean | IQM |",
             "|---|---|---:|---|---|---:|---:|---|---:|"]
    for r in rows:
        ci = "–" if r["n"] == 0 else f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        lines.append(f"| {r['family']} | {r['env']} | {r['labels']} | {r['query']} | {labels.get(r['figure'], r['figure'])} "
                     f"| {r['n']} | {_fmt(r['mean'])} | {ci} | {_fmt(r['iqm'])} |")
    note = ("\nn: seeds with a finite value (a ratio is undefined when its reference, the true return or gain, is <= 0). "
            "CI: 95% percentile bootstrap of the mean over seeds (2000 resamples, seed 0). "
            "IQM: rliable's interquartile mean (25% trimmed mean: floor(n/4) seeds dropped at each end, "
            "so with fewer than 4 seeds the plain mean; benchmarks/stats.py).\n")
    return "\n".join(lines) + "\n" + note


def plot_aggregate(path: Path, rows: list[dict]) -> None:
    """rliable-style interval plot: a panel per figure, a row per configuration; bar = 95% CI, | = mean, ◆ = IQM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {k: v for spec in FAMILIES.values() for k, v in spec.figures}
    figures = [f for f in dict.fromkeys(r["figure"] for r in rows) if any(x["figure"] == f and x["n"] for x in rows)]
    configs = list(dict.fromkeys((r["family"], r["env"], r["labels"], r["query"]) for r in rows))
    if not figures:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    cmap = plt.get_cmap("tab10")
    envs = list(dict.fromkeys(c[1] for c in configs))
    fig, axes = plt.subplots(1, len(figures), figsize=(3.6 * len(figures) + 2.2, 0.42 * len(configs) + 1.4),
                             sharey=True, squeeze=False)
    for ax, fig_key in zip(axes[0], figures):
        for i, cfg in enumerate(configs):
            r = next((x for x in rows if (x["family"], x["env"], x["labels"], x["query"]) == cfg
                      and x["figure"] == fig_key), None)
            if r is None or not r["n"]:
                continue
            color = cmap(envs.index(cfg[1]) % 10)
            y = len(configs) - 1 - i
            ax.barh(y, r["ci_high"] - r["ci_low"], left=r["ci_low"], height=0.6, color=color, alpha=0.55)
            ax.vlines(r["mean"], y - 0.3, y + 0.3, color="black", lw=2)
            ax.plot(r["iqm"], y, marker="D", ms=4, color="white", mec="black", ls="none")
        if fig_key in ("normalized_ratio", "ratio", "gain_ratio"):
            ax.axvline(1.0, color="gray", ls="--", lw=1)
        ax.margins(x=0.12)
        ax.set_title(labels.get(fig_key, fig_key), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[0][0].set_yticks(range(len(configs)))
    axes[0][0].set_yticklabels([f"{env} · {lab} labels · {q}" for _, env, lab, q in reversed(configs)], fontsize=9)
    fig.suptitle("bar: 95% bootstrap CI of the mean over seeds   |: mean   ◆: IQM", fontsize=9, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- CLI ---------------------------------------------------------------------------
