"""ale-py's C++ ``AtariVectorEnv`` adapted to stable-baselines3's ``VecEnv`` API.

This is the ``"native"`` backend of :func:`envs.atari.make_atari_vec_env`, the
default and fastest one; build envs through that factory, which validates the
arguments, picks the thread count and seeds the env. :mod:`envs.atari` owns
the game catalogue, the preprocessing constants and the score masks, and its
module docstring documents the observations, rewards and per-step ``info``
keys this adapter produces.

What the adapter does on top of ``ale_py.vector_env.AtariVectorEnv``:

* observations ``[N, K, 84, 84]`` become contiguous channel-last
  ``[N, 84, 84, K]`` uint8, with the score rows blanked when ``mask_score``;
* the C++ env resets a finished game in the same step
  (``autoreset_mode="SameStep"``); its last frame stack is returned as
  ``info["terminal_observation"]``, SB3's convention;
* after a life loss in a game that waits for FIRE to go on (Breakout,
  Seaquest, ...) the adapter presses FIRE on that env's next step in place of
  the agent's action (``fire_on_life_loss``), as SB3's ``FireResetEnv`` under
  ``EpisodicLifeEnv`` does inside its reset; otherwise an agent can stop the
  game by never pressing FIRE (a learned reward made one do so);
* the C++ env never ends a game on a life loss; with ``episodic_life`` a
  life-loss ``done`` is derived here from the lives counter (as SB3's
  ``EpisodicLifeEnv`` does), without resetting the game;
* ``game_reward``/``game_over``/``lives`` and a ``Monitor``-like
  ``info["episode"]`` are added; sub-env results are put back in ``env_id``
  order if the thread pool returns them permuted.

Import cost: at import time this module needs only numpy, gymnasium and
:mod:`envs.atari`; ale_py and stable-baselines3 are imported when the class is
first built or instantiated. The class derives from SB3's ``VecEnv``, so it is
created by a factory on first use (:func:`native_vec_env_class`) rather than
at module level. :mod:`envs.atari` imports this module lazily, only when a
native env is requested.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from envs.atari_spec import _FRAME_SIZE, _FRAME_SKIP, _ROM_NAMES, SCORE_MASK_ROWS

__all__ = ["native_vec_env_class"]


def _sb3_vec_env_base() -> type:
    from stable_baselines3.common.vec_env import VecEnv

    return VecEnv


def _make_native_class() -> type:
    """Builds the adapter class (SB3 is imported lazily, hence a factory).

    Use :func:`native_vec_env_class`, which builds it once per process.
    """
    VecEnv = _sb3_vec_env_base()

    class AtariNativeVecEnv(VecEnv):
        """SB3 ``VecEnv`` over ``ale_py.vector_env.AtariVectorEnv``.

        The C++ env runs all sub-envs on a thread pool, resets a finished game
        in the same step (``autoreset_mode="SameStep"``, its last frame stack
        comes back as ``terminal_observation``), keeps rewards unclipped and
        never ends a game on a life loss; life-loss ``done`` flags are derived
        here from the lives counter, as SB3's ``EpisodicLifeEnv`` does.
        """

        def __init__(
            self,
            game: str,
            n_envs: int,
            *,
            frame_stack: int,
            episodic_life: bool,
            mask_score: bool,
            fire_on_life_loss: bool,
            repeat_action_probability: float,
            noop_max: int,
            max_episode_frames: int,
            num_threads: int,
        ) -> None:
            from ale_py.vector_env import AtariVectorEnv

            self.game = game
            self.render_mode = None
            self._episodic_life = episodic_life
            self._mask = SCORE_MASK_ROWS[game] if mask_score else ()
            self._venv = AtariVectorEnv(
                _ROM_NAMES[game],
                n_envs,
                num_threads=num_threads,
                autoreset_mode="SameStep",
                img_height=_FRAME_SIZE,
                img_width=_FRAME_SIZE,
                grayscale=True,
                stack_num=frame_stack,
                frameskip=_FRAME_SKIP,
                maxpool=True,
                noop_max=noop_max,
                episodic_life=False,  # would reset the whole game on life loss
                life_loss_info=False,
                reward_clipping=False,
                use_fire_reset=True,
                repeat_action_probability=repeat_action_probability,
                max_num_frames_per_episode=max_episode_frames,
            )
            self._action_meanings = [a.name for a in self._venv.ale.get_action_set()]
            self._fire = (
                self._action_meanings.index("FIRE")
                if fire_on_life_loss and "FIRE" in self._action_meanings
                else None
            )
            self._fire_next = np.zeros(n_envs, dtype=bool)
            obs_space = spaces.Box(
                0, 255, (_FRAME_SIZE, _FRAME_SIZE, frame_stack), dtype=np.uint8
            )
            act_space = spaces.Discrete(len(self._action_meanings))
            super().__init__(n_envs, obs_space, act_space)
            self._actions = np.zeros(n_envs, dtype=np.int32)
            self._lives = np.zeros(n_envs, dtype=np.int64)
            self._ep_return = np.zeros(n_envs, dtype=np.float64)
            self._ep_len = np.zeros(n_envs, dtype=np.int64)
            self._t_start = time.time()

        # -- helpers ---------------------------------------------------------
        def _convert(self, obs: np.ndarray) -> np.ndarray:
            """[N, K, 84, 84] -> masked, contiguous [N, 84, 84, K]."""
            out = np.ascontiguousarray(np.transpose(obs, (0, 2, 3, 1)))
            for start, stop in self._mask:
                out[:, start:stop] = 0
            return out

        def get_action_meanings(self) -> list[str]:
            """Returns the minimal action set's names, e.g. ``["NOOP", "FIRE"]``."""
            return list(self._action_meanings)

        # -- VecEnv API ------------------------------------------------------
        def reset(self) -> np.ndarray:
            """Resets all games (using seeds from ``seed()`` if set)."""
            seeds = self._seeds
            if all(s is not None for s in seeds):
                obs, info = self._venv.reset(seed=np.asarray(seeds, dtype=np.int64))
            else:
                obs, info = self._venv.reset()
            self._reset_seeds()
            self._reset_options()
            lives = np.asarray(info["lives"], dtype=np.int64)
            self._lives = lives.copy()
            self._fire_next[:] = False
            self._ep_return[:] = 0.0
            self._ep_len[:] = 0
            self.reset_infos = [{"lives": int(x)} for x in lives]
            return self._convert(obs)

        def step_async(self, actions: np.ndarray) -> None:
            """Stores the actions ``[n_envs]`` for :meth:`step_wait`."""
            self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int32)
            if self._fire is not None and self._fire_next.any():
                self._actions = self._actions.copy()
                self._actions[self._fire_next] = self._fire

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
            """Steps all sub-envs; see :mod:`envs.atari` for the info keys."""
            obs, reward, terminated, truncated, info = self._venv.step(self._actions)
            env_ids = np.asarray(info["env_id"])
            final_obs = info.get("final_obs")
            if not np.array_equal(env_ids, np.arange(self.num_envs)):
                order = np.argsort(env_ids)
                obs, reward = obs[order], reward[order]
                terminated, truncated = terminated[order], truncated[order]
                info = {
                    k: (np.asarray(v)[order] if k != "final_obs" else v)
                    for k, v in info.items()
                }
                final_obs = None if final_obs is None else np.asarray(final_obs)[order]
            game_reward = np.asarray(reward, dtype=np.float32)
            terminated = np.asarray(terminated, dtype=bool)
            truncated = np.asarray(truncated, dtype=bool)
            ended = terminated | truncated
            lives_now = np.asarray(info["lives"], dtype=np.int64)
            # As SB3's EpisodicLifeEnv: `0 < lives` because Q*bert shows 0
            # lives for a few frames before its real game over.
            life_lost = ~ended & (lives_now > 0) & (lives_now < self._lives)
            dones = ended | (life_lost if self._episodic_life else False)
            self._fire_next = life_lost
            self._ep_return += game_reward
            self._ep_len += 1
            new_obs = self._convert(obs)
            if ended.any():
                assert final_obs is not None, "SameStep autoreset must return final_obs"
                ended_obs = self._convert(np.asarray(final_obs)[ended])
            ended_rows = np.cumsum(ended) - 1
            infos: list[dict[str, Any]] = []
            for i in range(self.num_envs):
                d: dict[str, Any] = {
                    "game_reward": float(game_reward[i]),
                    "game_over": bool(ended[i]),
                    "lives": (
                        0
                        if terminated[i]
                        else int(self._lives[i] if ended[i] else lives_now[i])
                    ),
                }
                if dones[i]:
                    d["terminal_observation"] = (
                        ended_obs[ended_rows[i]] if ended[i] else new_obs[i].copy()
                    )
                    d["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                if ended[i]:
                    d["episode"] = {
                        "r": float(self._ep_return[i]),
                        "l": int(self._ep_len[i]),
                        "t": round(time.time() - self._t_start, 6),
                    }
                    self._ep_return[i] = 0.0
                    self._ep_len[i] = 0
                infos.append(d)
            self._lives = lives_now
            return new_obs, game_reward, dones, infos

        def close(self) -> None:
            """Releases the C++ environments and threads."""
            self._venv.close()

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            """Returns ``[getattr(self, attr_name)]`` per requested sub-env."""
            value = getattr(self, attr_name)
            return [value for _ in self._get_indices(indices)]

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            """Sets an attribute on the adapter (shared by all sub-envs)."""
            setattr(self, attr_name, value)

        def env_method(
            self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
        ) -> list[Any]:
            """Calls a method of the adapter once per requested sub-env."""
            method = getattr(self, method_name)
            return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            """True only for SB3's ``Monitor``, whose ``info["episode"]`` is emulated."""
            from stable_baselines3.common.monitor import Monitor

            flag = wrapper_class is Monitor
            return [flag for _ in self._get_indices(indices)]

        def get_images(self) -> Sequence[np.ndarray | None]:
            """Rendering is not supported; use the observations."""
            return [None for _ in range(self.num_envs)]

    return AtariNativeVecEnv


_NATIVE_CLASS: type | None = None


def native_vec_env_class() -> type:
    """Returns the ``AtariNativeVecEnv`` class, building it on first call.

    Building it imports stable-baselines3 (its base class); the class is
    cached, so every env of this process shares one class object.

    Returns:
        A ``VecEnv`` subclass. Its constructor is
        ``cls(game, n_envs, *, frame_stack, episodic_life, mask_score, fire_on_life_loss,
        repeat_action_probability, noop_max, max_episode_frames, num_threads)``
        with ``game`` a canonical name from :data:`envs.atari.ATARI_GAMES`.
    """
    global _NATIVE_CLASS
    if _NATIVE_CLASS is None:
        _NATIVE_CLASS = _make_native_class()
    return _NATIVE_CLASS
