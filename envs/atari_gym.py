"""One Atari game as a plain ``gymnasium.Env`` with the benchmark's preprocessing: :func:`make_atari_env`.

The single-env counterpart of :func:`envs.atari.make_atari_vec_env` (gymnasium's ``AtariPreprocessing`` and
``FrameStackObservation`` plus the FIRE wrappers here): same observation space, same frames for the same
actions without no-ops, but an episode is a whole game (no life-loss ``done``). It backs the registered
``prefrl/<Game>DQN-v5`` ids.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.atari import _make_ale, _ScoreMaskWrapper, atari_game_name
from envs.atari_spec import _FRAME_SIZE, _FRAME_SKIP, SCORE_MASK_ROWS

__all__ = ["FireOnLifeLossWrapper", "FireOnResetWrapper", "StackLastWrapper", "make_atari_env"]


class FireOnResetWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Presses FIRE for one emulator frame after every ``reset``.

    Goes directly on a ``frameskip=1`` ALE env (below ``AtariPreprocessing``,
    whose random no-ops then follow), as the native backend's C++ reset does:
    reset the game, FIRE once, then the no-ops. The FIRE frame's reward is
    dropped; a game that ends on it is reset again.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._fire = env.unwrapped.get_action_meanings().index("FIRE")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Resets the game and presses FIRE once."""
        self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(self._fire)
        if terminated or truncated:
            obs, info = self.env.reset(seed=seed, options=options)
        return obs, info


class FireOnLifeLossWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """On the step after a life loss, presses FIRE in place of the agent's action.

    The single-env form of the native backend's ``fire_on_life_loss``: goes on
    top of ``AtariPreprocessing`` (one step = 4 frames, as in the vector env),
    so that no policy can pause a game like Breakout by never relaunching the
    ball. A life loss is counted as in SB3's ``EpisodicLifeEnv``: the lives
    counter drops and stays above 0, and the game did not end on that step.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._fire = env.unwrapped.get_action_meanings().index("FIRE")
        self._lives = 0
        self._fire_next = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Resets the game and the life counter."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = int(self.env.unwrapped.ale.lives())
        self._fire_next = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Steps with ``action``, or with FIRE right after a life loss."""
        if self._fire_next:
            action = self._fire
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(self.env.unwrapped.ale.lives())
        self._fire_next = not (terminated or truncated) and 0 < lives < self._lives
        self._lives = lives
        return obs, reward, terminated, truncated, info


class StackLastWrapper(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Moves the stack axis of ``FrameStackObservation`` last: ``[K, H, W]`` -> ``[H, W, K]``.

    Gives the channel-last layout of :func:`make_atari_vec_env` (newest frame
    at index ``K - 1``), which SB3's ``CnnPolicy`` transposes itself.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and len(space.shape) == 3, space
        self.observation_space = gym.spaces.Box(
            low=np.moveaxis(space.low, 0, -1),
            high=np.moveaxis(space.high, 0, -1),
            dtype=space.dtype,
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Returns a contiguous channel-last copy of the stacked frames."""
        return np.ascontiguousarray(np.moveaxis(observation, 0, -1))


def make_atari_env(
    game: str,
    *,
    mask_score: bool = False,
    frame_stack: int = 4,
    fire_on_life_loss: bool = True,
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    max_episode_frames: int = 108_000,
    render_mode: str | None = None,
) -> gym.Env:
    """Builds one preprocessed Atari game as a plain ``gymnasium.Env``.

    The single-env counterpart of :func:`make_atari_vec_env` (and the entry
    point of the registered ``prefrl/<Game>DQN-v5`` ids), built from ale-py's
    ``ALE/<Game>-v5`` env (``frameskip=1``, minimal action set) and
    gymnasium's wrappers: :class:`FireOnResetWrapper` (games with FIRE),
    ``AtariPreprocessing`` (up to ``noop_max`` random no-ops at reset, action
    repeat 4 with a max-pool over the last two frames, 84x84 grayscale,
    ``terminal_on_life_loss=False``), :class:`FireOnLifeLossWrapper`,
    ``FrameStackObservation`` (zero padding at reset, like the C++ env) and
    :class:`StackLastWrapper`. Observations have the vector env's space:
    uint8 ``[84, 84, frame_stack]``, channel-last, newest frame last.

    Unlike the vector env (whose ``episodic_life`` is a training aid), an
    episode is one whole game: ``terminated`` only at game over, ``truncated``
    at ``max_episode_frames`` emulator frames; a life loss is not signalled
    (``info["lives"]``, from ALE, still counts them). Rewards are the raw,
    unclipped score changes. Random no-ops come from the env's seeded
    ``np_random``, so ``reset(seed=s)`` is reproducible; the same seed gives
    other no-op counts than the native vector env.

    Args:
        game: A name from :data:`ATARI_GAMES` or an id like ``"ALE/Pong-v5"``.
        mask_score: Blank the score rows (:data:`SCORE_MASK_ROWS`) of every frame.
        frame_stack: Number of stacked frames K (>= 1).
        fire_on_life_loss: In games with FIRE, press FIRE in place of the
            agent's action on the step after a life loss.
        repeat_action_probability: Sticky actions (0 = paper setup).
        noop_max: Maximum random no-ops at reset (0 disables them).
        max_episode_frames: Emulator-frame limit per game (truncation).
        render_mode: ``None`` or ``"rgb_array"`` (the full-size RGB screen).

    Returns:
        The environment.

    Raises:
        ValueError: On an unsupported game or ``frame_stack < 1``.
    """
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    name = atari_game_name(game)
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    env = _make_ale(name, repeat_action_probability, max_episode_frames,
                    obs_type="grayscale",  # AtariPreprocessing reads the screen from ALE itself
                    render_mode=render_mode, disable_env_checker=True)
    has_fire = "FIRE" in env.unwrapped.get_action_meanings()
    if has_fire:
        env = FireOnResetWrapper(env)
    env = AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=_FRAME_SKIP,
        screen_size=_FRAME_SIZE,
        terminal_on_life_loss=False,
        grayscale_obs=True,
    )
    if has_fire and fire_on_life_loss:
        env = FireOnLifeLossWrapper(env)
    env = FrameStackObservation(env, frame_stack, padding_type="zero")
    env = StackLastWrapper(env)
    if mask_score:
        env = _ScoreMaskWrapper(env, SCORE_MASK_ROWS[name])
    return env
