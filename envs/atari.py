"""Atari (ALE) games as SB3 vector envs for preference-based RL.

:func:`make_atari_vec_env` returns a stable-baselines3 ``VecEnv`` whose
observations are uint8 ``[n_envs, 84, 84, frame_stack]`` (channel-last, which
SB3's ``CnnPolicy`` transposes itself) with the usual DQN preprocessing:

* up to 30 random no-ops at reset, FIRE at reset for games that need it
  and (``fire_on_life_loss``) on the step after each life loss, so that no
  policy can pause the game by never pressing FIRE,
* action repeat 4 with a max-pool over the last two frames,
* 84x84 grayscale (the full 210x160 screen resized), frame stack 4,
* no sticky actions (``repeat_action_probability=0``, i.e. the v4
  "NoFrameskip" dynamics used by Christiano et al. 2017), minimal action set,
  at most 108,000 emulator frames (30 min) per game.

:func:`envs.atari_gym.make_atari_env` builds one game with the same preprocessing as a plain
``gymnasium.Env`` (gymnasium's ``AtariPreprocessing`` and
``FrameStackObservation`` plus the FIRE wrappers here): same observation space,
same frames for the same actions without no-ops, but an episode is a whole game
(no life-loss ``done``). It backs the registered ``prefrl/<Game>DQN-v5`` ids.

**Rewards are not clipped.** The vector env's reward is the raw game-score
change, also given as ``info["game_reward"]``; clipping for the agent is the
agent's business.

Per-step ``info`` keys (one dict per sub-env, SB3 convention):

* ``"game_reward"`` (float): unclipped score change of this step.
* ``"game_over"`` (bool): the *game* ended on this step (real game over or the
  frame limit), never set on a mere life loss.
* ``"lives"`` (int): lives left after this step (0 at game over).
* ``"episode"``: ``{"r", "l", "t"}`` at game over, like SB3's ``Monitor``:
  unclipped return of the whole game (all lives), its length in agent steps,
  and wall time since the env was created.
* ``"terminal_observation"`` and ``"TimeLimit.truncated"`` whenever
  ``done`` is true (SB3 convention; the returned obs is then the next start).

With ``episodic_life=True`` (default, as in SB3's ``AtariWrapper``) ``done``
is also true on a life loss, which helps the agent's value estimates, but the
game is *not* reset then: it continues with the remaining lives.

**What the reward model may see (paper protocol).** Christiano et al. hide
everything from the reward predictor except the pixels: with
``mask_score=True`` the rows of the frame that show the score (and, where they
share the area, score-like counters) are set to 0 in every frame, see
:data:`SCORE_MASK_ROWS`. Life-loss and episode-end signals (``done``,
``lives``, ``game_over``, ``game_reward``) live only in ``dones``/``infos``,
which the agent and the benchmark use but which are never part of the
observation; the benchmark must cut comparison segments only within one game
(segments end at ``game_over``, never at a life-loss ``done``), so that a
segment boundary carries no information about lives or rewards.
:func:`frames_for_labeling` extracts the frames a (human or synthetic)
labeller is shown.

Backends: ``"native"`` (default: ale-py's C++ ``AtariVectorEnv`` adapted to SB3 in
:mod:`envs.atari_native`), ``"sb3-dummy"`` and ``"sb3-subproc"`` (SB3's ``atari_wrappers``, a pure-Python
reference); their speeds and differences are in docs/speed.md ("Atari backends").
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Callable

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from stable_baselines3.common.vec_env import VecEnv

__all__ = [
    "ATARI_GAMES",
    "ATARI_BACKENDS",
    "SCORE_MASK_ROWS",
    "atari_game_name",
    "canonical_game_id",
    "frames_for_labeling",
    "make_atari_vec_env",
    "mask_score_rows",
    "score_mask",
]

from envs.atari_spec import ATARI_GAMES  # noqa: E402  (supported games; ``"ALE/<name>-v5"`` ids also accepted)

ATARI_BACKENDS: tuple[str, ...] = ("native", "sb3-dummy", "sb3-subproc")

from envs.atari_spec import _FRAME_SIZE, _FRAME_SKIP, _ROM_NAMES, SCORE_MASK_ROWS  # noqa: E402,F401


def atari_game_name(game: str) -> str:
    """Normalizes a game name or id to its entry in :data:`ATARI_GAMES`.

    Accepts ``"Pong"``, ``"pong"``, ``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"``,
    ``"Pong-v5"``, ``"space_invaders"`` and similar spellings.

    Args:
        game: Name or gym id.

    Returns:
        The canonical name, e.g. ``"Pong"``.

    Raises:
        ValueError: If it is not one of the supported games (e.g. a MuJoCo id).
    """
    name = str(game).strip()
    if name.startswith("ALE/"):
        name = name[4:]
    name = re.sub(r"-v\d+$", "", name)
    name = re.sub(r"(NoFrameskip|Deterministic)$", "", name)
    key = name.replace("_", "").replace("-", "").lower()
    for canonical in ATARI_GAMES:
        if canonical.lower() == key:
            return canonical
    raise ValueError(
        f"Unsupported Atari game {game!r}; supported games: {', '.join(ATARI_GAMES)} "
        f"(also as 'ALE/<Game>-v5' or '<Game>NoFrameskip-v4')"
    )


def canonical_game_id(game: str) -> str:
    """Returns the ALE v5 gymnasium id of a supported game, e.g. ``"ALE/Pong-v5"``.

    Args:
        game: Any spelling accepted by :func:`atari_game_name`.

    Returns:
        ``"ALE/<Game>-v5"``.

    Raises:
        ValueError: If the game is not supported.
    """
    return f"ALE/{atari_game_name(game)}-v5"


def score_mask(game: str) -> np.ndarray:
    """Returns the score area of a game as a boolean image.

    Args:
        game: Any spelling accepted by :func:`atari_game_name`.

    Returns:
        bool ``[84, 84]``, True on the rows :data:`SCORE_MASK_ROWS` blanks.
    """
    mask = np.zeros((_FRAME_SIZE, _FRAME_SIZE), dtype=bool)
    for start, stop in SCORE_MASK_ROWS[atari_game_name(game)]:
        mask[start:stop] = True
    return mask


def mask_score_rows(frames: np.ndarray, game: str) -> np.ndarray:
    """Blanks (sets to 0), in place, the score rows of channel-last frames.

    Args:
        frames: uint8 ``[..., 84, 84, C]`` (rows are axis -3).
        game: Game name or id (see :func:`atari_game_name`).

    Returns:
        ``frames`` (the same array, modified in place).
    """
    for start, stop in SCORE_MASK_ROWS[atari_game_name(game)]:
        frames[..., start:stop, :, :] = 0
    return frames


def frames_for_labeling(obs: np.ndarray) -> np.ndarray:
    """Returns the newest frame of each stacked observation, for display.

    Args:
        obs: uint8 ``[L, 84, 84, K]`` stacked observations of one segment.

    Returns:
        uint8 ``[L, 84, 84]`` (a contiguous copy of ``obs[..., -1]``).

    Raises:
        ValueError: If ``obs`` is not 4-D.
    """
    obs = np.asarray(obs)
    if obs.ndim != 4:
        raise ValueError(f"expected obs of shape [L, H, W, K], got {obs.shape}")
    return np.ascontiguousarray(obs[..., -1])


# --------------------------------------------------------------------------
# Native backend: ale-py's C++ vector env behind SB3's VecEnv API. The
# adapter lives in envs/atari_native.py, imported only when it is used (it
# needs ale_py and stable-baselines3).
# --------------------------------------------------------------------------


def _native_class() -> type:
    """Returns the native backend's ``VecEnv`` class (see :mod:`envs.atari_native`)."""
    from envs.atari_native import native_vec_env_class

    return native_vec_env_class()


# --------------------------------------------------------------------------
# SB3 reference backend (Python wrappers, one process or one per env).
# --------------------------------------------------------------------------


class _GameInfoWrapper(gym.Wrapper):
    """Adds ``game_reward``, ``game_over`` and ``lives`` below EpisodicLifeEnv."""

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["game_reward"] = float(reward)
        info["game_over"] = bool(terminated or truncated)
        info["lives"] = int(self.env.unwrapped.ale.lives())
        return obs, reward, terminated, truncated, info


class _ScoreMaskWrapper(gym.ObservationWrapper):
    """Zeroes the score rows of a ``[84, 84, 1]`` frame."""

    def __init__(self, env: gym.Env, rows: tuple[tuple[int, int], ...]) -> None:
        super().__init__(env)
        self._rows = rows

    def observation(self, observation: np.ndarray) -> np.ndarray:
        observation = np.array(observation, copy=True)
        for start, stop in self._rows:
            observation[start:stop] = 0
        return observation


def _sb3_thunk(
    game: str,
    rank: int,
    seed: int,
    *,
    episodic_life: bool,
    mask_score: bool,
    repeat_action_probability: float,
    noop_max: int,
    max_episode_frames: int,
) -> Callable[[], gym.Env]:
    def _init() -> gym.Env:
        from stable_baselines3.common.atari_wrappers import (
            EpisodicLifeEnv,
            FireResetEnv,
            MaxAndSkipEnv,
            NoopResetEnv,
            WarpFrame,
        )
        from stable_baselines3.common.monitor import Monitor

        env = _make_ale(game, repeat_action_probability, max_episode_frames)  # registers in SubprocVecEnv workers too
        env = NoopResetEnv(env, noop_max=noop_max)
        env = MaxAndSkipEnv(env, skip=_FRAME_SKIP)
        env = Monitor(env)  # counts agent steps and whole-game returns
        env = _GameInfoWrapper(env)
        if episodic_life:
            env = EpisodicLifeEnv(env)
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireResetEnv(env)
        env = WarpFrame(env, width=_FRAME_SIZE, height=_FRAME_SIZE)
        if mask_score:
            env = _ScoreMaskWrapper(env, SCORE_MASK_ROWS[game])
        env.action_space.seed(seed + rank)
        return env

    return _init


# --------------------------------------------------------------------------
# Public factory.
# --------------------------------------------------------------------------


def _register_ale() -> None:
    """Registers the ``ALE/*`` gymnasium ids (idempotent)."""
    import ale_py

    gym.register_envs(ale_py)


def _make_ale(game: str, repeat_action_probability: float, max_episode_frames: int, **kwargs) -> gym.Env:
    """ale-py's ``ALE/<game>-v5`` as both our Atari stacks start from it: every frame (no frame
    skip; the wrappers repeat actions), the minimal action set, the given sticky-action
    probability and emulator-frame limit; ``kwargs`` go on to ``gym.make``."""
    _register_ale()
    return gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=repeat_action_probability,
                    full_action_space=False, max_num_frames_per_episode=max_episode_frames, **kwargs)


def make_atari_vec_env(
    game: str,
    n_envs: int,
    seed: int,
    *,
    mask_score: bool = False,
    frame_stack: int = 4,
    episodic_life: bool = True,
    fire_on_life_loss: bool = True,
    backend: str = "native",
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    max_episode_frames: int = 108_000,
    num_threads: int | None = None,
) -> VecEnv:
    """Builds a seeded, preprocessed Atari ``VecEnv`` (see module docstring).

    Sub-env ``i`` is seeded with ``seed + i`` at the first ``reset()``, so the
    same seed and actions give identical observations.

    Args:
        game: A name from :data:`ATARI_GAMES` or an id like ``"ALE/Pong-v5"``.
        n_envs: Number of parallel games (>= 1).
        seed: Base seed.
        mask_score: Blank the score rows (:data:`SCORE_MASK_ROWS`) in all frames.
        frame_stack: Number of stacked frames K (>= 1).
        episodic_life: Also signal ``done`` on a life loss (game continues).
        fire_on_life_loss: In games with a FIRE action, press FIRE in place
            of the agent's action on the step after a life loss (native
            backend; the ``sb3-*`` backends do it inside ``EpisodicLifeEnv``'s
            reset, i.e. only with ``episodic_life``). Default True: without it
            an agent trained on a learned reward learned to stop Breakout by
            never relaunching the ball. The agent's own action is what SB3
            records for that one step per life.
        backend: ``"native"`` (fastest, default), ``"sb3-dummy"`` or
            ``"sb3-subproc"``; see :data:`ATARI_BACKENDS`.
        repeat_action_probability: Sticky-action probability (0 = paper setup,
            0.25 = Machado et al. 2018 / ALE v5 default).
        noop_max: Maximum random no-ops at reset.
        max_episode_frames: Emulator-frame limit per game (truncation).
        num_threads: Worker threads of the native backend (default
            ``min(n_envs, os.cpu_count())``).

    Returns:
        An SB3 ``VecEnv`` with uint8 observations ``[n_envs, 84, 84, K]``,
        float32 unclipped rewards ``[n_envs]``, bool dones ``[n_envs]``.

    Raises:
        ValueError: On an unsupported game/id, backend or argument.
    """
    name = atari_game_name(game)
    _register_ale()
    if backend not in ATARI_BACKENDS:
        raise ValueError(f"backend must be one of {ATARI_BACKENDS}, got {backend!r}")
    if n_envs < 1 or frame_stack < 1:
        raise ValueError(f"n_envs and frame_stack must be >= 1, got {n_envs}, {frame_stack}")
    if backend == "native":
        threads = num_threads or max(1, min(n_envs, os.cpu_count() or 1))
        venv = _native_class()(
            name,
            n_envs,
            frame_stack=frame_stack,
            episodic_life=episodic_life,
            mask_score=mask_score,
            fire_on_life_loss=fire_on_life_loss,
            repeat_action_probability=repeat_action_probability,
            noop_max=noop_max,
            max_episode_frames=max_episode_frames,
            num_threads=threads,
        )
    else:
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

        thunks = [
            _sb3_thunk(
                name,
                i,
                seed,
                episodic_life=episodic_life,
                mask_score=mask_score,
                repeat_action_probability=repeat_action_probability,
                noop_max=noop_max,
                max_episode_frames=max_episode_frames,
            )
            for i in range(n_envs)
        ]
        inner = DummyVecEnv(thunks) if backend == "sb3-dummy" else SubprocVecEnv(thunks)
        venv = VecFrameStack(inner, n_stack=frame_stack, channels_order="last")
    venv.seed(seed)
    venv.action_space.seed(seed)
    return venv


# --------------------------------------------------------------------------
# Single (non-vector) env: the same preprocessing from gymnasium's wrappers.
# It backs the registered ``prefrl/<Game>DQN-v5`` ids (see envs/__init__.py).
# --------------------------------------------------------------------------
