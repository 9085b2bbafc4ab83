"""``python -m benchmarks.peers.run``: prefrl against imitation's preference comparisons, same settings.

Builds (once) a virtualenv with imitation 1.0.1 and its own pins (gymnasium 0.29, stable-baselines3 2.2,
mujoco < 3; torch 2.13.0 CPU), runs :mod:`benchmarks.peers.imitation_pc` in it, then prefrl's
``benchmarks.mujoco`` (standard env, learned and true-reward arms) here, with the same PPO settings,
steps, comparisons, clip length and evaluation (``--eval-episodes`` fresh episodes, actions sampled), one
torch thread each, one after the other. Prints and writes ``peers.md`` / ``peers.json`` in ``--out``:
true return of each library's preference-learning agent and its env steps per CPU-second of training.

Differences that stay (said in the table's notes): imitation runs HalfCheetah-v4 (gymnasium 0.29), prefrl
HalfCheetah-v5; imitation's labels are Boltzmann-rational (its ``SyntheticGatherer``), prefrl's answer at
random 10% of the time; imitation trains one reward net, prefrl a 3-member ensemble; imitation's agent
cannot use ``VecNormalize`` (its trainer replaces the agent's env), prefrl's does, as the SB3 zoo does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PEER_PINS = ["imitation==1.0.1", "mujoco<3", "imageio"]
"""What the peer virtualenv installs after ``torch==2.13.0`` (imitation pins gymnasium 0.29 and SB3 2.2)."""


def ensure_venv(venv: Path) -> Path:
    """The peer virtualenv's python, building the env first if it has no imitation yet (~1-2 min)."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import imitation"], capture_output=True).returncode == 0:
        return py
    print(f"peers: building {venv} (torch 2.13.0, {', '.join(PEER_PINS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for pkgs in (["torch==2.13.0"], PEER_PINS):
        subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
    return py


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=200_000, help="agent env steps of each run")
    p.add_argument("--comparisons", type=int, default=700, help="labels of each run")
    p.add_argument("--eval-episodes", type=int, default=10, help="fresh evaluation episodes of each final policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--venv", type=Path, default=Path("runs/peers/imitation-venv"), help="the peer virtualenv")
    p.add_argument("--out", type=Path, default=Path("runs/peers/halfcheetah"), help="output directory (new)")
    args = p.parse_args(argv)
    if min(args.steps, args.comparisons, args.eval_episodes) < 1:
        p.error("--steps, --comparisons and --eval-episodes must be >= 1")
    if (args.out / "peers.json").exists():
        p.error(f"--out {args.out} already holds a comparison; give a new --out")
    args.out = args.out.resolve()  # the two runs start in other directories
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    py = ensure_venv(args.venv.resolve())
    here = Path(__file__).resolve()

    t = time.perf_counter()
    subprocess.run([str(py), str(here.with_name("imitation_pc.py")), "--steps", str(args.steps),
                    "--comparisons", str(args.comparisons), "--eval-episodes", str(args.eval_episodes),
                    "--seed", str(args.seed), "--out", str(args.out / "imitation")],
                   check=True, env=env, cwd=args.out, stdout=subprocess.DEVNULL)
    imit = json.loads((args.out / "imitation" / "result.json").read_text())
    print(f"peers: imitation done in {time.perf_counter() - t:.0f} s", flush=True)

    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "benchmarks.mujoco", "--synthetic-oracle", "--env", "HalfCheetah-v5",
                    "--standard-env", "--steps", str(args.steps), "--labels", str(args.comparisons), "--n-envs", "4",
                    "--eval-episodes", str(args.eval_episodes), "--seeds", str(args.seed), "--workers", "1",
                    "--out", str(args.out / "prefrl")], check=True, env={**env, "MUJOCO_GL": "egl"},
                   stdout=subprocess.DEVNULL, cwd=here.parents[2])
    summ = json.loads((args.out / "prefrl" / "summary.json").read_text())
    timing = json.loads((args.out / "prefrl" / "timing.json").read_text())
    arm = {r["arm"]: r for r in timing["per_seed"]}
    print(f"peers: prefrl done in {time.perf_counter() - t:.0f} s", flush=True)

    rows = [
        ("imitation 1.0.1, HalfCheetah-v4, 1 reward net", imit["steps_per_cpu_second"], imit["true_return"]),
        ("prefrl, HalfCheetah-v5 --standard-env, 3-member ensemble", arm["learned"]["steps_per_cpu_second"],
         summ["true_return_learned"]),
        ("prefrl's true-reward arm (reference)", arm["true"]["steps_per_cpu_second"], summ["true_return_true"]),
    ]
    result = {"steps": args.steps, "comparisons": args.comparisons, "eval_episodes": args.eval_episodes,
              "seed": args.seed, "imitation": imit, "prefrl": {"summary": summ, "timing": timing},
              "throughput_ratio": arm["learned"]["steps_per_cpu_second"] / imit["steps_per_cpu_second"]}
    lines = [f"| run ({args.steps} steps, {args.comparisons} comparisons, seed {args.seed}) | env steps per CPU-second "
             f"of training | true return ({args.eval_episodes} fresh episodes, actions sampled) |", "|---|---|---|"]
    lines += [f"| {name} | {sps:,.0f} | {ret:.0f} |" for name, sps, ret in rows]
    lines.append(f"\nprefrl / imitation throughput: {result['throughput_ratio']:.2f}x")
    text = "\n".join(lines)
    (args.out / "peers.md").write_text(text + "\n")
    (args.out / "peers.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
