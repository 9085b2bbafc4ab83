"""The whole core on a real gymnasium MuJoCo task, through both wrappers."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl import (
    LearnedRewardVecEnv,
    LearnedRewardVectorEnv,
    LoopConfig,
    MLPEnsemble,
    PreferenceCallback,
    PreferenceLoop,
    PreferenceStore,
    SyntheticOracle,
)
from prefrl.diagnostics import segment_return_correlation
from prefrl.loop import RolloutRecorder


def make_loop(venv_obs_space, venv_act_space, n_envs, total_steps, labels, store=None, seed=0, **config):
    torch.manual_seed(seed)
    ens = MLPEnsemble(venv_obs_space.shape, venv_act_space.shape)
    cfg = LoopConfig(total_labels=labels, total_steps=total_steps, segment_length=25, pretrain_epochs=60, seed=seed,
                     **config)
    return PreferenceLoop(ens, SyntheticOracle(seed=seed), n_envs, cfg, store=store)


@pytest.mark.slow
def test_sb3_ppo_on_learned_reward_halfcheetah(tmp_path):
    n_envs, steps = 2, 4096
    venv = DummyVecEnv([lambda: Monitor(gym.make("HalfCheetah-v5")) for _ in range(n_envs)])
    venv.seed(0)
    store = PreferenceStore(tmp_path / "labels.sqlite")
    loop = make_loop(venv.observation_space, venv.action_space, n_envs, steps, labels=160, store=store)
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(300, seed=0)
    pre = loop.pretrain()
    assert pre["labels"] == 40
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=256, n_epochs=2, seed=0, device="cpu")
    cb = PreferenceCallback(loop)
    model.learn(steps, callback=cb)
    assert cb.history, "the callback never ran a query round"
    labels = [m["labels"] for _, m in cb.history]
    assert labels == sorted(labels) and labels[-1] <= 160 and labels[-1] > 40
    last = cb.history[-1][1]
    assert np.isfinite(last["corr/pearson"]), last  # measured on fresh steps of the current policy
    # The final model on an independent random-policy rollout (seeded, never labeled): learned and
    # true 25-step returns must agree. (The in-loop figure above is taken on a few hundred steps of a
    # policy that keeps moving, too noisy to assert on at this size.)
    fresh = DummyVecEnv([lambda: gym.make("HalfCheetah-v5") for _ in range(n_envs)])
    fresh.seed(123)
    fresh.action_space.seed(123)
    rec = RolloutRecorder(600, n_envs)
    o = fresh.reset()
    for _ in range(600):
        a = np.stack([fresh.action_space.sample() for _ in range(n_envs)])
        o2, true_r, done, _ = fresh.step(a)
        rec.add(o, a, true_r, done)
        o = o2
    corr = segment_return_correlation(loop.ensemble, rec.sample(256, 25, torch.Generator().manual_seed(0)))
    assert corr["corr/pearson"] > 0.85, corr  # measured 0.95-0.98 over 5 seeds
    assert last["rm/val_accuracy"] > 0.6, last
    # every label is on disk; the agent saw the learned reward, the info kept the true one
    assert PreferenceStore(tmp_path / "labels.sqlite").total_added == store.total_added
    env.reset()
    _, r, _, infos = env.step(np.stack([env.action_space.sample() for _ in range(n_envs)]))
    assert all("true_reward" in i for i in infos)
    assert not np.allclose(r, [i["true_reward"] for i in infos])
    assert r.dtype == np.float32 and r.shape == (n_envs,)


def test_gymnasium_vector_env_next_step_autoreset_steps_never_enter_segments():
    n_envs = 2
    venv = gym.make_vec("HalfCheetah-v5", num_envs=n_envs, vectorization_mode="sync", max_episode_steps=40)
    loop = make_loop(venv.single_observation_space, venv.single_action_space, n_envs, 1000, labels=20)
    env = LearnedRewardVectorEnv(venv, loop)
    env.collect_random(200, seed=0)
    rec = loop.recorder.arrays()
    # episodes end every 40 steps; the step after each end is an autoreset step, recorded invalid
    assert rec["done"][39].all() and not rec["valid"][40].any() and rec["valid"][41].all()
    assert (~rec["valid"]).sum() == 4 * n_envs
    seg = loop.recorder.sample(400, 25, torch.Generator().manual_seed(0))
    assert (seg.true_reward != 0).all(), "an autoreset step (reward 0) leaked into a segment"
    metrics = loop.pretrain()
    assert metrics["labels"] == 5
    _, r, _, _, info = env.step(venv.action_space.sample())
    assert r.shape == (n_envs,) and info["true_reward"].shape == (n_envs,)


def test_loop_config_bad_input():
    with pytest.raises(ValueError, match="fewer labels than steps"):
        LoopConfig(total_labels=100, total_steps=10)
    with pytest.raises(ValueError, match="unknown query method"):
        LoopConfig(query="best")
    with pytest.raises(ValueError, match="label budget"):
        LoopConfig(total_labels=-5)


def test_obs_transform_is_what_the_reward_model_sees():
    n_envs = 2
    venv = DummyVecEnv([lambda: gym.make("HalfCheetah-v5") for _ in range(n_envs)])
    first_half = lambda obs: obs[:, :8]  # the reward model sees 8 of 17 numbers
    ens = MLPEnsemble((8,), venv.action_space.shape)
    loop = PreferenceLoop(ens, SyntheticOracle(), n_envs, LoopConfig(total_labels=8, total_steps=100),
                          obs_transform=first_half)
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(60)
    assert loop.recorder.arrays()["obs"].shape == (60, n_envs, 8)
    loop.pretrain()
    obs = env.reset()
    acts = np.stack([env.action_space.sample() for _ in range(n_envs)])
    _, r, _, _ = env.step(acts)
    assert np.allclose(r, loop.reward(obs, acts), atol=1e-5)


def test_gymnasium_wrapper_is_seeded_and_pays_nothing_on_reset_steps():
    def run():
        venv = gym.make_vec("HalfCheetah-v5", num_envs=2, vectorization_mode="sync", max_episode_steps=30)
        loop = make_loop(venv.single_observation_space, venv.single_action_space, 2, 1000, labels=10)
        env = LearnedRewardVectorEnv(venv, loop)
        env.collect_random(70, seed=3)
        return loop, env

    (a, env), (b, _) = run(), run()
    ra, rb = a.recorder.arrays(), b.recorder.arrays()
    assert np.array_equal(ra["act"], rb["act"]) and np.array_equal(ra["obs"], rb["obs"])
    a.pretrain()
    env.collect_random(31, seed=4)  # episode ends at step 30; step 31 is the reset step
    rewards = []
    for _ in range(31):
        _, r, _, _, _ = env.step(env.env.action_space.sample())
        rewards.append(r)
    assert (rewards[30] == 0).all() and (np.abs(np.stack(rewards[:30])) > 0).any()


def test_constant_inputs_are_not_blown_up():
    ens = MLPEnsemble((3,), (1,))
    obs = torch.randn(100, 3)
    obs[:, 1] = 0.0  # e.g. contact forces that are all zero under a random policy
    ens.set_input_stats(obs, torch.randn(100, 1))
    assert ens.in_std[1].item() == 1.0 and ens.in_std[0].item() != 1.0


def test_anchor_fraction_pairs_recent_clips_with_clips_labeled_before():
    n_envs = 2
    venv = DummyVecEnv([lambda: gym.make("HalfCheetah-v5") for _ in range(n_envs)])
    ens = MLPEnsemble(venv.observation_space.shape, venv.action_space.shape)
    cfg = LoopConfig(total_labels=40, total_steps=2000, segment_length=10, pretrain_epochs=2, query="random",
                     anchor_fraction=1.0, buffer_steps=60)
    loop = PreferenceLoop(ens, SyntheticOracle(), n_envs, cfg)
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(60, seed=1)
    loop.pretrain()  # the first labels: both clips recent (the store was empty)
    first = loop.store.tensors()["obs"].clone()  # [M, 2, L, 17]
    old_clips = first.flatten(0, 1)  # [2M, L, 17]
    env.collect_random(60, seed=2)  # the buffer now holds only new steps
    loop._query(5)
    new = loop.store.tensors()["obs"][len(first):]  # [5, 2, L, 17]
    assert len(new) == 5

    def is_old(clip):
        return bool((old_clips == clip).flatten(1).all(dim=1).any())

    assert all(is_old(pair[1]) for pair in new)  # every second clip was labeled before
    assert not any(is_old(pair[0]) for pair in new)  # every first clip is recent
    with pytest.raises(ValueError, match="anchor_fraction"):
        LoopConfig(anchor_fraction=1.5)


class _NaNRewardOnce(gym.Wrapper):
    """An env that pays a NaN reward at step 3 of every other episode: a broken simulator step."""

    def reset(self, **kw):
        self.t = 0
        return self.env.reset(**kw)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        self.episodes = getattr(self, "episodes", 0) + (term or trunc)
        return obs, (float("nan") if self.t == 3 and self.episodes % 2 == 0 else r), term, trunc, info


def test_one_nan_true_reward_skips_its_pairs_and_later_fits_still_run():
    venv = DummyVecEnv([lambda: _NaNRewardOnce(gym.make("InvertedPendulum-v5"))])
    ens = MLPEnsemble(venv.observation_space.shape, venv.action_space.shape)
    cfg = LoopConfig(total_labels=30, total_steps=400, segment_length=5, pretrain_epochs=2, query="random")
    loop = PreferenceLoop(ens, SyntheticOracle(noise=0.0), 1, cfg)
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(100, seed=0)
    with pytest.warns(UserWarning, match="NaN true reward; no clip includes them"):
        loop.pretrain()
    for k in range(1, 4):  # later rounds fit as usual on the labels that could be given
        env.collect_random(100, seed=k)
        with pytest.warns(UserWarning, match="NaN true reward"):
            loop.update(100 * k)
    data = loop.store.tensors()
    assert len(loop.store) > 0 and not torch.isnan(data["true_reward"]).any()
    assert np.isfinite(loop.metrics["rm/train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id", [("SAC", "InvertedPendulum-v5"), ("DQN", "CartPole-v1")])
def test_off_policy_replay_buffer_holds_the_current_learned_reward(tmp_path, algo, env_id):
    """After every refit the replay buffer is relabeled; the preference metrics reach SB3's logger."""
    import csv

    import stable_baselines3
    from stable_baselines3.common.logger import configure

    from prefrl import relabel_replay_buffer

    torch.manual_seed(0)
    venv = DummyVecEnv([lambda: gym.make(env_id)])
    discrete = isinstance(venv.action_space, gym.spaces.Discrete)
    ens = (MLPEnsemble(venv.observation_space.shape, n_actions=venv.action_space.n) if discrete
           else MLPEnsemble(venv.observation_space.shape, venv.action_space.shape))
    cfg = LoopConfig(total_labels=40, total_steps=600, segment_length=5, pretrain_epochs=5, fit_epochs=2)
    loop = PreferenceLoop(ens, SyntheticOracle(seed=0), 1, cfg)
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(100, seed=0)
    loop.pretrain()
    kw = dict(learning_starts=50, train_freq=50, gradient_steps=5, seed=0, device="cpu")
    model = getattr(stable_baselines3, algo)("MlpPolicy", env, buffer_size=2000, **kw)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    cb = PreferenceCallback(loop)
    model.learn(600, callback=cb)
    model.logger.close()  # its CSV file would otherwise be closed by the GC, warning inside a later test
    rounds = [m for _, m in cb.history]
    assert rounds and all(m["relabeled"] > 0 for m in rounds)
    buf = model.replay_buffer
    size = buf.pos
    obs = buf.observations[:size, 0]
    act = buf.actions[:size, 0].reshape(size) if discrete else buf.actions[:size, 0]
    np.testing.assert_allclose(buf.rewards[:size, 0], loop.reward(obs, act), atol=1e-5)
    loop._fit(3)  # a refit without relabeling leaves stale rewards behind ...
    assert np.abs(buf.rewards[:size, 0] - loop.reward(obs, act)).max() > 1e-3
    assert relabel_replay_buffer(buf, loop) == size  # ... which relabeling replaces
    np.testing.assert_allclose(buf.rewards[:size, 0], loop.reward(obs, act), atol=1e-5)
    with open(tmp_path / "progress.csv") as f:
        cols = next(csv.reader(f))
    assert "pref/relabeled" in cols and "pref/rm/val_accuracy" in cols


def _ppo_rollouts(defer: bool, n_rollouts: int = 3, wrap=None, overlap: bool = False, history=None, n_steps=64):
    """PPO on Pendulum with the learned reward; the rollout buffer's rewards/advantages at each rollout end."""
    n_envs = 2
    venv = DummyVecEnv([lambda: Monitor(gym.make("Pendulum-v1")) for _ in range(n_envs)])
    venv.seed(0)
    loop = make_loop(venv.observation_space, venv.action_space, n_envs, n_steps * n_envs * n_rollouts, labels=60,
                     overlap_fit=overlap)
    env = LearnedRewardVecEnv(venv, loop, defer_rewards=defer)
    env.collect_random(100, seed=0)
    loop.pretrain()
    seen = []

    class Capture(PreferenceCallback):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()  # pays (deferred), then refits when labels are due
            buf = self.model.rollout_buffer
            seen.append((buf.rewards.copy(), buf.advantages.copy(), buf.returns.copy()))

    model = PPO("MlpPolicy", wrap(env) if wrap else env, n_steps=n_steps, batch_size=64, n_epochs=1, seed=0,
                device="cpu")
    cb = Capture(loop)
    model.learn(n_steps * n_envs * n_rollouts, callback=cb)
    if history is not None:
        history.extend(cb.history)
        loop.wait_fit()
    return seen, loop


@pytest.mark.slow
def test_deferred_rewards_equal_the_per_step_rewards():
    """Scoring once per rollout pays the agent what scoring every step pays: same rewards, returns, advantages."""
    per_step, loop_a = _ppo_rollouts(defer=False)
    deferred, loop_b = _ppo_rollouts(defer=True)
    assert len(per_step) == len(deferred) == 3
    # one 256-step rollout before any update (so both runs take the same steps): Pendulum truncates at step 200,
    # where SB3 adds gamma * V(terminal observation) to the reward and the deferred payment adds to that
    first = [_ppo_rollouts(defer=d, n_rollouts=1, n_steps=256)[0][0] for d in (False, True)]
    for (r1, a1, g1), (r2, a2, g2) in zip(per_step + first[:1], deferred + first[1:]):
        assert np.abs(r1).sum() > 0  # a real learned reward, not zeros
        np.testing.assert_allclose(r2, r1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a2, a1, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-4)
    assert loop_a.labels_used == loop_b.labels_used > loop_a.schedule.initial_labels
    # The rewards agree to float32 rounding (batches of 128 vs 2 rows), not bit for bit: after a PPO update on
    # them the two policies differ in the last bits and their trajectories (so the later queries) part. The
    # initial labels come before any agent update and are the same.
    n0 = loop_a.schedule.initial_labels
    ta, tb = loop_a.store.tensors(), loop_b.store.tensors()
    assert torch.equal(ta["obs"][:n0], tb["obs"][:n0]) and torch.equal(ta["mu"][:n0], tb["mu"][:n0])


@pytest.mark.slow
def test_deferred_rewards_refuse_what_they_cannot_pay():
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import VecNormalize

    with pytest.raises(ValueError, match="norm_reward"):
        _ppo_rollouts(defer=True, n_rollouts=1, wrap=lambda env: VecNormalize(env, norm_reward=True))
    _ppo_rollouts(defer=True, n_rollouts=1, wrap=lambda env: VecNormalize(env, norm_reward=False))  # obs only: fine
    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    loop = make_loop(venv.observation_space, venv.action_space, 1, 1000, labels=20)
    env = LearnedRewardVecEnv(venv, loop, defer_rewards=True)
    with pytest.raises(ValueError, match="on-policy"):
        SAC("MlpPolicy", env, learning_starts=10, seed=0, device="cpu").learn(20, callback=PreferenceCallback(loop))
    with pytest.raises(RuntimeError, match="pay_rollout"):  # nobody pays: a clear error, not zeros forever
        env.reset()
        for _ in range(loop.recorder.capacity + 1):
            env.step(np.zeros((1, 1), np.float32))


@pytest.mark.slow
def test_overlapped_fit_gives_the_serial_labels_rewards_and_model(tmp_path):
    """A fit in a background thread (LoopConfig.overlap_fit) while PPO updates: bit for bit the serial run.

    With deferred rewards nothing reads the model between a round and the next rollout's end, where the
    fit is joined; what the fit reads (labels, calibration steps) is taken before it starts.
    """
    h_serial, h_overlap = [], []
    serial, loop_s = _ppo_rollouts(defer=True, n_rollouts=6, history=h_serial)
    overlap, loop_o = _ppo_rollouts(defer=True, n_rollouts=6, overlap=True, history=h_overlap)
    assert loop_o.fit_in_background and not loop_s.fit_in_background
    assert loop_o.fit_overlap_cpu_seconds > 0 and loop_s.fit_overlap_cpu_seconds == 0  # it did run in the thread
    for (r1, a1, g1), (r2, a2, g2) in zip(serial, overlap, strict=True):
        assert np.array_equal(r1, r2) and np.array_equal(a1, a2) and np.array_equal(g1, g2)
    ts, to = loop_s.store.tensors(), loop_o.store.tensors()
    assert torch.equal(ts["obs"], to["obs"]) and torch.equal(ts["mu"], to["mu"])
    for (k, p), q in zip(loop_s.ensemble.state_dict().items(), loop_o.ensemble.state_dict().values()):
        assert torch.equal(p, q), k
    assert (loop_s.reward_mean, loop_s.reward_std) == (loop_o.reward_mean, loop_o.reward_std)
    from prefrl import load_reward, save_reward

    obs, act = loop_o.recorder.random_steps(50, np.random.default_rng(0))
    loop_o._start_fit(5, {})  # a refit in the background (as update() starts them) ...
    assert loop_o._background.running
    saved = load_reward(save_reward(loop_o, tmp_path))  # ... and is finished before the model is written
    np.testing.assert_array_equal(saved(obs, act), loop_o.reward(obs, act))
    # every round is reported once, one rollout later than the serial fit's
    assert [m for _, m in h_serial] == [m for _, m in h_overlap] and len(h_serial) >= 2
    assert all(to_ >= ts_ for (ts_, _), (to_, _) in zip(h_serial, h_overlap))
    assert any(to_ > ts_ for (ts_, _), (to_, _) in zip(h_serial, h_overlap))


def test_overlap_stays_serial_when_the_fit_draws_global_random_numbers():
    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    ens = MLPEnsemble(venv.observation_space.shape, venv.action_space.shape, dropout=0.2)
    loop = PreferenceLoop(ens, SyntheticOracle(), 1, LoopConfig(total_labels=20, total_steps=1000, overlap_fit=True))
    assert not loop.fit_in_background  # dropout masks would interleave with the agent's draws


def test_deferred_wrapper_collects_more_random_steps_than_its_recorder_holds():
    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    loop = make_loop(venv.observation_space, venv.action_space, 1, 1000, labels=20, buffer_steps=50)
    env = LearnedRewardVecEnv(venv, loop, defer_rewards=True)
    env.collect_random(60, seed=0)  # nothing to pay for the initial policy: no "never paid" error
    assert env.unpaid == 0 and loop.recorder.size == 50


def test_resumed_loop_first_fits_on_labels_stored_after_its_checkpoint():
    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1") for _ in range(2)])
    store = PreferenceStore()
    loop = make_loop(venv.observation_space, venv.action_space, 2, 10_000, labels=40, store=store)
    LearnedRewardVecEnv(venv, loop).collect_random(150, seed=0)
    loop.pretrain()
    state = loop.state_dict()
    loop._query(8)  # labels asked and stored after the checkpoint, then the process died before the fit
    loop._collect()  # (the loop counts them when it collects the answers)
    again = make_loop(venv.observation_space, venv.action_space, 2, 10_000, labels=40, store=store)
    again.recorder = loop.recorder
    again.load_state_dict(state)
    assert again.labels_used == loop.labels_used == 18
    metrics = again.update(0)  # nothing is due at step 0, but the 8 labels are fit first
    assert metrics is not None and metrics["rm/n_train"] + metrics["rm/n_val"] == len(store) == 18
    assert again.update(0) is None
