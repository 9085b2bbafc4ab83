"""What the agent sees of the reward, beyond the environment."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

__all__ = ["EpisodeEndsAsTimeouts", "SignRewardVecEnv"]


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


class EpisodeEndsAsTimeouts(VecEnvWrapper):
    """Every episode end (life loss, game over) reaches the agent as a time-out.

    With a zero-mean learned reward, a terminal state tells the agent that the
    future is worth exactly 0, which beats a run of negative rewards: the agent
    learns to lose lives on purpose. Marked as a time-out
    (``info["TimeLimit.truncated"]``), SB3 bootstraps the value of the terminal
    observation instead, so ending an episode gains nothing, as if episodes did
    not end (Christiano et al. did not leak episode ends to the agent). The
    VecEnv must put ``terminal_observation`` in the info of each done env.
    """

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, reward, dones, infos = self.venv.step_wait()
        for done, info in zip(dones, infos):
            if done:
                if "terminal_observation" not in info:
                    raise KeyError("EpisodeEndsAsTimeouts needs info['terminal_observation'] on every done env")
                info["TimeLimit.truncated"] = True
        return obs, reward, dones, infos
