"""What the agent sees of the reward, beyond the environment."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

__all__ = ["ContinuingEpisodes", "EpisodeEndsAsTimeouts", "NormalisedTrueReward", "SignRewardVecEnv"]


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


class ContinuingEpisodes(VecEnvWrapper):
    """No episode end reaches the agent: every ``done`` is cleared, as if the task never ended.

    A life loss or a game over is then just another step of one endless
    stream: the agent goes on into the respawn (or the next game) and feels
    what that costs through the reward that follows (a learned reward pays
    little while the game restarts), instead of being told that the episode
    ended (which a zero-mean learned reward makes attractive) or bootstrapping
    through it as a time-out (which makes dying free, since the value of the
    last frame before the end is never trained on what follows it). The
    information the agent gets is the paper's: pixels and the learned reward.
    """

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, reward, dones, infos = self.venv.step_wait()
        for done, info in zip(dones, infos):
            if done:
                info.pop("terminal_observation", None)
                info.pop("TimeLimit.truncated", None)
        return obs, reward, np.zeros_like(dones), infos


class NormalisedTrueReward(VecEnvWrapper):
    """The environment's own reward, normalised as the learned reward is: the upper-bound arm.

    A perfect reward model recovers the true reward up to scale and offset;
    the loop then normalises it to zero mean and ``target_std`` over recent
    steps. This wrapper gives the agent exactly that: the true per-step reward,
    standardised with the mean/std of the last ``window`` vector steps,
    recalibrated every ``recalibrate_every`` vector steps (before the first
    recalibration: mean 0, std 1). Put ``EpisodeEndsAsTimeouts`` around it, as
    around the learned reward, and the agent gets what a perfect reward model
    would give it under this pipeline.

    Args:
        venv: the environments (rewards unclipped).
        window: vector steps of rewards kept for the statistics.
        recalibrate_every: vector steps between recalibrations.
        target_std: std of the normalised reward (the loop's ``target_std``).
    """

    def __init__(self, venv, window: int = 10_000, recalibrate_every: int = 512, target_std: float = 1.0):
        super().__init__(venv)
        if window < 1 or recalibrate_every < 1 or not target_std > 0:
            raise ValueError(f"window and recalibrate_every must be >= 1 and target_std > 0, got "
                             f"{window}, {recalibrate_every}, {target_std}")
        self._recent = np.zeros((window, venv.num_envs), np.float64)
        self._filled = 0
        self._steps = 0
        self.recalibrate_every, self.target_std = recalibrate_every, target_std
        self.mean, self.std = 0.0, 1.0

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, reward, dones, infos = self.venv.step_wait()
        self._recent[self._steps % len(self._recent)] = reward
        self._steps += 1
        self._filled = min(self._filled + 1, len(self._recent))
        if self._steps % self.recalibrate_every == 0:
            seen = self._recent[: self._filled]
            self.mean, std = float(seen.mean()), float(seen.std())
            self.std = std if std > 1e-8 else 1.0
        for info, r in zip(infos, reward):
            info["true_reward"] = float(r)
        normalised = (np.asarray(reward, np.float64) - self.mean) / self.std * self.target_std
        return obs, normalised.astype(np.float32), dones, infos
