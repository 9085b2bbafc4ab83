"""Hyper-parameters per (family, agent).

MuJoCo PPO follows the PPO paper's MuJoCo settings (2048-step rollouts,
10 epochs, minibatch 64, lr 3e-4, GAE 0.95); Atari A2C follows the A2C
paper's settings as used by Christiano et al. (5-step rollouts, lr 7e-4,
RMSprop), and Atari PPO the PPO paper's Atari settings.
"""

from __future__ import annotations

DEFAULTS: dict[tuple[str, str], dict] = {
    ("mujoco", "ppo"): dict(
        policy="MlpPolicy",
        n_steps=512,  # per env; with 4 envs = 2048 steps per update, as in the PPO paper
        batch_size=64,
        n_epochs=10,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
    ),
    ("mujoco", "a2c"): dict(
        policy="MlpPolicy",
        n_steps=8,
        learning_rate=7e-4,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.0,
    ),
    ("atari", "a2c"): dict(
        policy="CnnPolicy",
        n_steps=5,
        learning_rate=7e-4,
        gamma=0.99,
        ent_coef=0.01,
        vf_coef=0.25,
        policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5, alpha=0.99)),
    ),
    ("atari", "ppo"): dict(
        policy="CnnPolicy",
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=2.5e-4,
        clip_range=0.1,
        ent_coef=0.01,
        vf_coef=0.5,
    ),
}
