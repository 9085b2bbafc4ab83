"""What the agent sees of the reward, beyond the environment."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

__all__ = ["SignRewardVecEnv"]


class SignRewardVecEnv(VecEnvWrapper):
    """Rewards clipped to their sign, {-1, 0, +1}: the standard Atari reward for the agent.

    Used for the true-reward agent only; the learned reward is already
    normalised and keeps its magnitude.
    """

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, reward, dones, infos = self.venv.step_wait()
        return obs, np.sign(reward).astype(np.float32), dones, infos
