"""imitation's preference comparisons at prefrl's MuJoCo settings, run INSIDE the peer virtualenv.

This file imports imitation, stable-baselines3, gymnasium, numpy and torch only (never prefrl): it runs
in a virtualenv with imitation 1.0.1's own pins (gymnasium 0.29, SB3 2.2, mujoco < 3). Start it through
``python -m benchmarks.peers.run``, which builds that virtualenv and compares the two libraries.

Settings, as prefrl's ``benchmarks.mujoco`` defaults: PPO with 4 envs x 512 steps, 10 epochs, minibatch 64,
lr 3e-4, gamma 0.99, GAE 0.95, clip 0.2; clips of 25 steps; 25% of the comparisons up front, the rest on imitation's hyperbolic
schedule; one reward net (imitation's ``BasicRewardNet``), 3 epochs per fit. Labels: imitation's
``SyntheticGatherer`` (Boltzmann-rational, temperature 1: it has no uniform-noise option like prefrl's 10%).
One difference we cannot remove: imitation's ``AgentTrainer`` sets the agent's env to its own reward
wrapper, so the agent cannot train on ``VecNormalize`` as prefrl's MuJoCo agents do (the SB3 zoo's setting).

Writes ``result.json``: env steps, CPU and wall seconds of training, steps per CPU-second, and the final
policy's true return on ``--eval-episodes`` fresh episodes (actions sampled, env seeds 10000 + i), the
same protocol prefrl's benchmarks use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def evaluate(agent, venv_norm, env_id: str, episodes: int) -> list[float]:
    """True returns of ``episodes`` fresh episodes, actions sampled, observations normalised as in training."""
    import gymnasium as gym

    returns = []
    for i in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=10_000 + i)
        total, done = 0.0, False
        while not done:
            o = venv_norm.normalize_obs(obs[None]) if venv_norm is not None else obs[None]
            action, _ = agent.predict(o, deterministic=False)
            obs, r, term, trunc, _ = env.step(action[0])
            total += float(r)
            done = term or trunc
        env.close()
        returns.append(total)
    return returns


def main() -> None:
    p = argparse.ArgumentParser(description="imitation's preference comparisons at prefrl's MuJoCo settings")
    p.add_argument("--env", default="HalfCheetah-v4", help="gymnasium 0.29 id (default HalfCheetah-v4)")
    p.add_argument("--steps", type=int, default=200_000, help="agent env steps (default 200000)")
    p.add_argument("--comparisons", type=int, default=700, help="labels (default 700)")
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--fit-epochs", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    import torch
    from imitation.algorithms import preference_comparisons as pc
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    venv = make_vec_env(args.env, rng=rng, n_envs=args.n_envs)
    reward_net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
    agent = PPO("MlpPolicy", venv, n_steps=512, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, seed=args.seed, device="cpu", verbose=0)
    generator = pc.AgentTrainer(algorithm=agent, reward_fn=reward_net, venv=venv, rng=rng, exploration_frac=0.0)
    trainer = pc.BasicRewardTrainer(preference_model=pc.PreferenceModel(reward_net),
                                    loss=pc.CrossEntropyRewardLoss(), rng=rng, epochs=args.fit_epochs)
    n_iter = 15
    algo = pc.PreferenceComparisons(generator, reward_net, num_iterations=n_iter,
                                    fragmenter=pc.RandomFragmenter(rng=rng, warning_threshold=0),
                                    preference_gatherer=pc.SyntheticGatherer(rng=rng),
                                    reward_trainer=trainer, fragment_length=25, transition_oversampling=1,
                                    initial_comparison_frac=0.25, initial_epoch_multiplier=4,
                                    allow_variable_horizon=False, query_schedule="hyperbolic")
    c0, w0 = time.process_time(), time.perf_counter()
    algo.train(total_timesteps=args.steps, total_comparisons=args.comparisons)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    steps = int(agent.num_timesteps)
    returns = evaluate(agent, None, args.env, args.eval_episodes)
    result = {"library": "imitation", "env": args.env, "steps": steps, "comparisons": args.comparisons,
              "cpu_seconds": cpu, "wall_seconds": wall, "steps_per_cpu_second": steps / cpu,
              "true_return": float(np.mean(returns)), "returns": returns, "iterations": n_iter}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "returns"}))


if __name__ == "__main__":
    main()
