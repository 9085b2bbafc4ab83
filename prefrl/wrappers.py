"""One wrapper per job: put the learned reward in place of the environment's.

``LearnedRewardVecEnv`` wraps a stable-baselines3 ``VecEnv``;
``LearnedRewardVectorEnv`` wraps a gymnasium ``VectorEnv``. Both, on every
vector step, record (o_t, a_t, true r_t, done_t) in the loop's recorder,
compute the learned reward of all envs in ONE batched call, return it as the
reward, and keep the true reward in the info (``info["true_reward"]``) for
evaluation only. When the loop keeps render states
(``LoopConfig.keep_render_state``) they also pass each step's
``info["sim_state"]`` (MuJoCo's qpos + qvel) so a person can see the clips.
``PreferenceCallback`` runs the query/label/fit round
between the updates of any stable-baselines3 algorithm.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

import gymnasium as gym

from prefrl.loop import PreferenceLoop

__all__ = ["LearnedRewardVecEnv", "LearnedRewardVectorEnv", "PreferenceCallback", "deferring_wrapper",
           "relabel_replay_buffer"]


def random_actions(space: gym.Space, n: int) -> np.ndarray:
    """n actions drawn from ``space`` (one per env), stacked: [n, *action_shape]."""
    return np.stack([space.sample() for _ in range(n)])


class LearnedRewardVecEnv(VecEnvWrapper):
    """stable-baselines3 VecEnv whose reward is the loop's learned reward.

    With ``defer_rewards=True`` (on-policy agents: PPO, A2C) the steps are
    recorded but scored only at the end of each rollout, in batches of 1024
    (``PreferenceLoop.rewards_of_recent``) instead of one small forward pass
    per vector step: ``step`` returns 0 as the reward and :meth:`pay_rollout`
    adds the learned rewards to the algorithm's ``RolloutBuffer`` and
    recomputes its returns and advantages (``PreferenceCallback`` calls it).
    The agent then trains on the same rewards as without deferral, up to
    float32 rounding of a different batch size, on two conditions: nothing
    between this wrapper and the algorithm reads the reward (true for reward
    pass-through wrappers such as ``VecTransposeImage`` or
    ``agents.wrappers.EpisodeEndsAsTimeouts``; not for ``VecNormalize`` with
    ``norm_reward=True``, whose running return statistics need every step's
    reward), and the model is refit only after the rollout is paid (what the
    callback does: pay, then ``loop.update``). SB3 adds gamma * V(terminal
    observation) to the reward of a truncated step; that term stays in the
    buffer and the learned reward is added to it.

    Args:
        venv: the environments (SB3 VecEnv, same-step autoreset).
        loop: the preference loop that records steps and owns the reward model.
        episode_end_key: info key that marks the true end of an episode for
            segment cutting (e.g. "game_over" for Atari with life-loss
            episodes). ``None``: the VecEnv's ``done`` flag.
        defer_rewards: score once per rollout (see above); default False
            (score every step, right for any algorithm and wrapper stack).
    """

    def __init__(self, venv: VecEnv, loop: PreferenceLoop, episode_end_key: str | None = None,
                 defer_rewards: bool = False):
        super().__init__(venv)
        if loop.n_envs != venv.num_envs:
            raise ValueError(f"the loop expects {loop.n_envs} envs, the VecEnv has {venv.num_envs}")
        self.loop = loop
        self.episode_end_key = episode_end_key
        self.defer_rewards = defer_rewards
        self.unpaid = 0
        """Vector steps recorded since the last :meth:`pay_rollout` (deferred mode)."""
        self._paid_at = 0  # the loop's recorder.total at the last payment
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.loop.recorder.mark_episode_break()
        self._obs = np.array(obs, copy=True)  # some VecEnvs (frame stacks) reuse their buffer
        self.start_rollout()
        return obs

    def pay_rollout(self, rollout_buffer, last_values, dones) -> None:
        """Deferred mode: adds the learned reward of the rollout's steps to an SB3 ``RolloutBuffer``.

        Call at the end of a rollout (``on_rollout_end``), before the reward
        model is refit. The buffer's returns and advantages are recomputed.

        Args:
            rollout_buffer: the algorithm's full ``RolloutBuffer``: rewards [T, n_envs].
            last_values: [n_envs] value of the observation after the rollout
                (``locals["values"]`` at ``on_rollout_end``).
            dones: [n_envs] done flags of the rollout's last step (``locals["dones"]``).

        Raises:
            RuntimeError: the wrapper does not defer, or it recorded a number of
                steps other than the buffer's T since the last payment.
        """
        if not self.defer_rewards:
            raise RuntimeError("pay_rollout is for LearnedRewardVecEnv(defer_rewards=True): this wrapper pays every step")
        T = rollout_buffer.buffer_size
        if self.loop.recorder.total - self._paid_at != self.unpaid:
            raise RuntimeError(f"the loop recorded {self.loop.recorder.total - self._paid_at} steps since the last "
                               f"payment but this wrapper stepped {self.unpaid}: another env records into the same "
                               "loop, so the newest steps are not this rollout's")
        if self.unpaid != T or not rollout_buffer.full:
            raise RuntimeError(f"the rollout buffer holds {T if rollout_buffer.full else rollout_buffer.pos} steps "
                               f"but {self.unpaid} were recorded since the last payment: pay once per complete "
                               "rollout, at its end")
        rollout_buffer.rewards += self.loop.rewards_of_recent(T)
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        self.start_rollout()

    def start_rollout(self) -> None:
        """Deferred mode: the next steps start a rollout (a callback calls it at training start: SB3 drops a
        rollout that a callback stopped early, and ``learn`` does not reset the env on a continued run)."""
        self.unpaid, self._paid_at = 0, self.loop.recorder.total

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        obs, true_reward, dones, infos = self.venv.step_wait()
        ends = dones
        if self.episode_end_key is not None:
            ends = np.array([bool(info.get(self.episode_end_key, d)) for info, d in zip(infos, dones)])
        if self.defer_rewards:
            if self.unpaid >= self.loop.recorder.capacity:
                raise RuntimeError(f"{self.unpaid} steps recorded with deferred rewards and never paid: use "
                                   "PreferenceCallback (or call pay_rollout at each rollout end), or defer_rewards=False")
            self.loop.record(self._obs, self._actions, true_reward, ends, state=self._render_state(infos))
            reward = np.zeros(self.num_envs, np.float32)
            self.unpaid += 1
        else:
            reward = self.loop.observe(self._obs, self._actions, true_reward, ends, state=self._render_state(infos))
        for info, r in zip(infos, true_reward):
            info["true_reward"] = float(r)
        self._obs = np.array(obs, copy=True)
        return obs, reward, dones, infos

    def _render_state(self, infos) -> np.ndarray | None:
        """[n_envs, d] ``info["sim_state"]`` rows when the loop keeps render states and every env reports one."""
        if not self.loop.config.keep_render_state or not all("sim_state" in info for info in infos):
            return None
        return np.stack([np.asarray(info["sim_state"]) for info in infos])

    def collect_random(self, n_steps: int, seed: int | None = None) -> None:
        """Steps every env ``n_steps`` times with uniformly random actions (the initial policy).

        Args:
            n_steps: steps per env.
            seed: seeds the action space's sampler first (otherwise it draws
                from whatever state it has), for reproducible initial data.
        """
        if seed is not None:
            self.action_space.seed(seed)
        self.reset()
        for _ in range(n_steps):
            self.step(random_actions(self.action_space, self.num_envs))
            self.start_rollout()  # the initial policy's steps train no agent: nothing to pay


class LearnedRewardVectorEnv(gym.vector.VectorWrapper):
    """gymnasium VectorEnv whose reward is the loop's learned reward.

    Handles both autoreset modes: with NEXT_STEP (gymnasium's default) the step
    after an episode end is a reset step whose action is ignored; it is
    recorded as invalid so no segment contains it.

    Args:
        env: the gymnasium vector env.
        loop: the preference loop.
    """

    def __init__(self, env: gym.vector.VectorEnv, loop: PreferenceLoop):
        super().__init__(env)
        if loop.n_envs != env.num_envs:
            raise ValueError(f"the loop expects {loop.n_envs} envs, the vector env has {env.num_envs}")
        self.loop = loop
        mode = gym.vector.AutoresetMode(env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP))
        self._next_step_reset = mode == gym.vector.AutoresetMode.NEXT_STEP
        self._obs: np.ndarray | None = None
        self._prev_done = np.zeros(env.num_envs, bool)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.loop.recorder.mark_episode_break()
        self._obs = np.array(obs, copy=True)
        self._prev_done[:] = False
        return obs, info

    def step(self, actions):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        obs, true_reward, terminated, truncated, info = self.env.step(actions)
        done = np.logical_or(terminated, truncated)
        valid = ~self._prev_done if self._next_step_reset else None
        actions = np.asarray(actions)
        state = None
        if self.loop.config.keep_render_state and "sim_state" in info:
            state = np.asarray(info["sim_state"])
        reward = self.loop.observe(self._obs, actions, true_reward, done, valid, state)
        if valid is not None:
            reward[~valid] = 0.0  # a reset step: its action was ignored, the env itself pays 0
        info = dict(info)
        info["true_reward"] = np.asarray(true_reward)
        self._obs = np.array(obs, copy=True)
        self._prev_done = done
        return obs, reward, terminated, truncated, info

    def collect_random(self, n_steps: int, seed: int | None = None) -> None:
        """Steps every env ``n_steps`` times with random actions (the initial policy)."""
        if seed is not None:
            self.env.action_space.seed(seed)
        self.reset(seed=seed)
        for _ in range(n_steps):
            self.step(self.env.action_space.sample())


class PreferenceCallback(BaseCallback):
    """Runs ``loop.update`` at the end of every rollout of an SB3 algorithm.

    The metrics of each round are kept in ``history`` as (env step, metrics)
    and recorded under ``pref/`` in the algorithm's logger (and dumped at
    once, so even a run shorter than an off-policy algorithm's log interval
    shows them). For off-policy algorithms (SAC, TD3, DQN, ...) the rewards
    already in the replay buffer were computed by older reward models: after
    every refit they are recomputed with the current one
    (:func:`relabel_replay_buffer`), as the loop would pay them now.

    Args:
        loop: the preference loop whose wrapper the algorithm is training on.
        relabel: recompute the replay buffer's rewards after each refit (default True).
    """

    def __init__(self, loop: PreferenceLoop, verbose: int = 0, relabel: bool = True):
        super().__init__(verbose)
        self.loop = loop
        self.relabel = relabel
        self.history: list[tuple[int, dict[str, float]]] = []
        self.deferred: LearnedRewardVecEnv | None = None

    def _on_step(self) -> bool:
        return True

    def _on_training_start(self) -> None:
        if self.loop.config.overlap_fit and getattr(self.model, "replay_buffer", None) is not None:
            raise ValueError("LoopConfig.overlap_fit is for on-policy algorithms (PPO, A2C): an off-policy one reads "
                             f"the reward every step and relabels its replay buffer after each fit ({type(self.model).__name__})")
        self.deferred = deferring_wrapper(self.training_env)
        if self.deferred is not None:
            self.deferred.start_rollout()
        if self.deferred is not None and getattr(self.model, "rollout_buffer", None) is None:
            raise ValueError("LearnedRewardVecEnv(defer_rewards=True) needs an on-policy algorithm (PPO, A2C), "
                             f"whose rollout buffer it pays at each rollout end; {type(self.model).__name__} is not: "
                             "use defer_rewards=False")

    def _on_rollout_end(self) -> None:
        if self.deferred is not None:  # the rollout's rewards, from the model it was collected under
            self.deferred.pay_rollout(self.model.rollout_buffer, self.locals["values"], self.locals["dones"])
        # a background fit started at the last rollout end (LoopConfig.overlap_fit) is reported first
        self._report(self.loop.finished_fit())
        self._report(self.loop.update(self.num_timesteps))

    def _on_training_end(self) -> None:
        self._report(self.loop.finished_fit())  # the last background fit, if one is still running

    def _report(self, metrics: dict[str, float] | None) -> None:
        if not metrics:
            return
        buffer = getattr(self.model, "replay_buffer", None)
        if self.relabel and buffer is not None:
            metrics = {**metrics, "relabeled": float(relabel_replay_buffer(buffer, self.loop))}
        self.history.append((self.num_timesteps, metrics))
        for k, v in metrics.items():
            self.logger.record(f"pref/{k}", v)
        self.logger.dump(self.num_timesteps)


def deferring_wrapper(venv) -> "LearnedRewardVecEnv | None":
    """The ``LearnedRewardVecEnv(defer_rewards=True)`` inside a stack of SB3 VecEnv wrappers, or None.

    Raises:
        ValueError: a ``VecNormalize`` that normalises rewards sits above a
            deferring wrapper (it would see only the placeholder zeros).
    """
    above = []
    while venv is not None:
        if isinstance(venv, LearnedRewardVecEnv):
            if venv.defer_rewards and any(isinstance(w, VecNormalize) and w.norm_reward for w in above):
                raise ValueError("VecNormalize(norm_reward=True) above LearnedRewardVecEnv(defer_rewards=True) would "
                                 "normalise placeholder zeros: use defer_rewards=False, or norm_reward=False")
            return venv if venv.defer_rewards else None
        above.append(venv)
        venv = getattr(venv, "venv", None)
    return None


def relabel_replay_buffer(buffer, loop: PreferenceLoop, batch_size: int = 4096) -> int:
    """Overwrites the rewards of every transition in an SB3 replay buffer with the loop's current learned reward.

    Transition t of env e holds the observation its action was taken at
    (``observations[t, e]``) and that action; its reward becomes
    ``loop.reward(obs, act)``, the normalised reward the wrapper would pay now.

    Args:
        buffer: a ``stable_baselines3`` ``ReplayBuffer`` (dict observations are not supported).
        loop: the loop whose reward model trains the agent.
        batch_size: transitions scored per call.

    Returns:
        number of transitions relabeled.

    Raises:
        TypeError: the buffer holds dict observations (HER, multi-input).
    """
    if isinstance(buffer.observations, dict):
        raise TypeError("relabel_replay_buffer supports array observations, not dict observation buffers")
    size = buffer.buffer_size if buffer.full else buffer.pos
    if size == 0:
        return 0
    n_envs = buffer.n_envs
    obs = buffer.observations[:size].reshape(size * n_envs, *buffer.observations.shape[2:])
    act = buffer.actions[:size].reshape(size * n_envs, *buffer.actions.shape[2:])
    ens_act = loop.ensemble.act_shape
    if len(ens_act) == 0:  # discrete actions: SB3 stores them as [.., 1]
        act = act.reshape(size * n_envs)
    rewards = np.concatenate([loop.reward(obs[i : i + batch_size], act[i : i + batch_size])
                              for i in range(0, len(obs), batch_size)])
    buffer.rewards[:size] = rewards.reshape(size, n_envs).astype(buffer.rewards.dtype)
    return size * n_envs
