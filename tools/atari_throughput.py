"""``python -m tools.atari_throughput``: where an Atari learned-reward step spends its time.

A micro-benchmark of the learned-reward arm's path, piece by piece, on the
device you pick (the CPU here; a GPU when one is present): the vector env, the
agent's policy, the reward model's view of the frames, the reward model scoring
the steps (one vector step at a time, and one rollout at a time as the
benchmark's deferred rewards do), the agent's PPO update and one reward-model
fit step. From the per-step costs it composes what the full runs cost per
vector step: the true-reward arm (env + policy + update) and the learned arm
with per-step scoring, with deferred scoring, and with the fit overlapped
(what a spare core or a GPU stream takes off the critical path). The fit and
query costs are spread over the run as the label schedule spreads them
(``--steps``, ``--labels``).

Everything is measured on random frames from the real game and random
actions; nothing learns. Writes nothing unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def _time(fn, repeat: int, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def measure(game: str, n_envs: int, device: str, steps: int, labels: int, repeat: int) -> dict:
    """Per-vector-step costs (seconds) of each piece and the composed steps/s of each arm.

    Args:
        game: Atari game (any spelling ``envs.atari`` accepts).
        n_envs: environments per vector step (the benchmark's default: 8).
        device: "cpu" or "cuda".
        steps: run length the fit/query costs are spread over.
        labels: label budget of that run.
        repeat: timed repetitions of each piece.
    """
    import torch

    from agents import make_agent
    from benchmarks.atari import FAMILY, AtariOptions
    from envs.atari import make_atari_vec_env
    from prefrl import LoopConfig, TrainerConfig
    from prefrl.wrappers import random_actions

    if device == "cpu":
        torch.set_num_threads(1)  # what each benchmark run uses on the CPU
    options = AtariOptions()
    venv = make_atari_vec_env(game, n_envs, 0, num_threads=1)
    venv.reset()
    agent = make_agent("ppo", venv, "atari", seed=0, device=device)
    view = options.obs_transform(game)
    ens = options.ensemble().to(device)
    lcfg = LoopConfig(total_labels=labels, total_steps=steps, **FAMILY.loop_overrides)
    tcfg = TrainerConfig(**FAMILY.trainer_overrides)
    n_steps = agent.n_steps

    def random_step() -> np.ndarray:
        return venv.step(random_actions(venv.action_space, n_envs))[0]

    obs = random_step()
    frames = np.stack([view(random_step()) for _ in range(64)])  # [64, n_envs, 42, 42, 4] recorded views
    rollout = np.concatenate([frames] * (n_steps // 64 + 1))[:n_steps].reshape(-1, *frames.shape[2:])
    act_none = np.zeros(len(rollout), np.int64)

    def policy():
        agent.policy.predict(obs, deterministic=False)

    def score(batch: np.ndarray):
        return lambda: ens.mean_reward(batch, act_none[: len(batch)])

    cost = {
        "env": _time(random_step, repeat * 4),
        "policy": _time(policy, repeat * 4),
        "view": _time(lambda: view(obs), repeat * 4),
        "rm_per_step": _time(score(frames[0]), repeat * 4),
        "rm_deferred": _time(lambda: [score(rollout[s : s + 1024])() for s in range(0, len(rollout), 1024)],
                             max(1, repeat // 4)) / n_steps,
    }
    # the PPO update of one rollout, spread over its steps
    from stable_baselines3.common.buffers import RolloutBuffer

    from stable_baselines3.common.vec_env import VecTransposeImage

    agent.rollout_buffer = RolloutBuffer(n_steps, agent.observation_space, venv.action_space, device=agent.device,
                                         gamma=agent.gamma, gae_lambda=agent.gae_lambda, n_envs=n_envs)
    tobs = VecTransposeImage.transpose_image(obs)  # what the agent's own env wrapper hands it (channels first)
    o = agent.policy.obs_to_tensor(tobs)[0]
    with torch.no_grad():
        a, v, lp = agent.policy(o)
    for _ in range(n_steps):
        agent.rollout_buffer.add(tobs, a.cpu().numpy().reshape(n_envs, 1), np.zeros(n_envs, np.float32),
                                 np.zeros(n_envs, bool), v, lp)
    agent.rollout_buffer.compute_returns_and_advantage(v, np.zeros(n_envs, bool))
    agent._logger = __import__("stable_baselines3.common.logger", fromlist=["configure"]).configure(None, [])
    cost["ppo_update"] = _time(agent.train, 1) / n_steps
    # one fit step (batch_size pairs per member) and its share per vector step
    E, B, L = ens.n_members, tcfg.batch_size, lcfg.segment_length
    seg = torch.as_tensor(frames[:L].transpose(1, 0, 2, 3, 4)[np.arange(B) % n_envs])  # [B, L, ...]
    pair_obs = torch.stack([seg, seg.flip(1)], 1).expand(E, -1, -1, -1, -1, -1, -1).to(device)
    pair_act = torch.zeros(pair_obs.shape[:4], dtype=torch.long, device=device)
    opt = torch.optim.Adam(ens.parameters(), tcfg.lr)

    def fit_step():
        ens.train()
        R = ens.segment_returns(pair_obs, pair_act, per_member=True)
        loss = torch.nn.functional.softplus(R[..., 1] - R[..., 0]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_s = _time(fit_step, max(1, repeat // 4))
    later = labels - round(labels * lcfg.initial_fraction)
    rounds = min(lcfg.query_rounds, later)
    fit_steps = rounds * lcfg.fit_min_steps  # the refits (pretraining happens before the agent's steps)
    vector_steps = steps / n_envs
    # each refit also scores every label twice (train + validation metrics) and each round its candidates
    frames_scored = rounds * (labels * 2 * L * 0.5 + later / rounds * lcfg.candidate_factor * 2 * L)
    per_frame = cost["rm_deferred"] * n_steps / len(rollout)
    cost["fit"] = fit_steps * step_s / vector_steps
    cost["queries_and_metrics"] = frames_scored * per_frame / vector_steps
    venv.close()
    true_arm = cost["env"] + cost["policy"] + cost["ppo_update"]
    rm_rounds = cost["fit"] + cost["queries_and_metrics"]
    arms = {
        "true": true_arm,
        "learned, scored per step": true_arm + cost["view"] + cost["rm_per_step"] + rm_rounds,
        "learned, deferred scoring": true_arm + cost["view"] + cost["rm_deferred"] + rm_rounds,
        # a round's fit hides behind the PPO update and the next rollout (``n_steps`` vector steps)
        "learned, deferred + overlapped fit": true_arm + cost["view"] + cost["rm_deferred"] + cost["queries_and_metrics"]
        + rounds * max(0.0, lcfg.fit_min_steps * step_s - n_steps * true_arm) / vector_steps,
    }
    return {
        "game": game, "n_envs": n_envs, "device": device, "steps": steps, "labels": labels,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
                   + (f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ", 1 torch thread"),
        "fit_step_seconds": step_s,
        "per_vector_step_ms": {k: v * 1e3 for k, v in cost.items()},
        "env_steps_per_second": {k: n_envs / v for k, v in arms.items()},
        "overhead_ratio": {k: arms["true"] / v for k, v in arms.items() if k != "true"},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.atari_throughput", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--game", default="Seaquest", help="Atari game")
    p.add_argument("--n-envs", type=int, default=8, help="environments per vector step")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--steps", type=int, default=300_000, help="run length the fit and query costs are spread over")
    p.add_argument("--labels", type=int, default=500, help="label budget of that run")
    p.add_argument("--repeat", type=int, default=20, help="timed repetitions of each piece (more: steadier figures)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    for name in ("n_envs", "steps", "labels", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here; use --device cpu")
    r = measure(args.game, args.n_envs, device, args.steps, args.labels, args.repeat)
    print(f"{r['game']}, {r['n_envs']} envs, {r['device']} ({r['machine']})")
    print("per vector step (ms):")
    for k, v in r["per_vector_step_ms"].items():
        print(f"  {k:<22} {v:8.2f}")
    print("composed env steps/s (overhead ratio = true / learned):")
    for k, v in r["env_steps_per_second"].items():
        ratio = r["overhead_ratio"].get(k)
        print(f"  {k:<36} {v:8.0f}" + (f"   ratio {ratio:.2f}" if ratio else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return r


if __name__ == "__main__":
    main()
