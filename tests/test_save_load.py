"""save_reward / load_reward: a reloaded reward model gives the saved loop's rewards exactly."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from prefrl import (
    LearnedRewardVecEnv,
    LoopConfig,
    MLPEnsemble,
    ModuleEnsemble,
    PreferenceLoop,
    RewardFunction,
    SyntheticOracle,
    TrainerConfig,
    load_reward,
    save_reward,
)


def _fresh_steps(n_envs=2, steps=40, seed=123):
    """(obs [B, 17], act [B, 6]) of a random policy on HalfCheetah, never recorded by any loop."""
    venv = DummyVecEnv([lambda: gym.make("HalfCheetah-v5") for _ in range(n_envs)])
    venv.seed(seed)
    venv.action_space.seed(seed)
    o, obs, act = venv.reset(), [], []
    for _ in range(steps):
        a = np.stack([venv.action_space.sample() for _ in range(n_envs)])
        obs.append(o)
        act.append(a)
        o, *_ = venv.step(a)
    venv.close()
    return np.concatenate(obs), np.concatenate(act)


@pytest.fixture(scope="module")
def mujoco_loop():
    """A real loop on HalfCheetah: random steps, 8 labels, a short pretraining (standardised inputs, calibrated)."""
    torch.manual_seed(0)
    n_envs = 2
    venv = DummyVecEnv([lambda: gym.make("HalfCheetah-v5") for _ in range(n_envs)])
    venv.seed(0)
    ens = MLPEnsemble(venv.observation_space.shape, venv.action_space.shape, hidden=(32, 32), dropout=0.1)
    cfg = LoopConfig(total_labels=8, total_steps=1000, segment_length=10, pretrain_epochs=5, fit_min_steps=10,
                     calibration_samples=256, target_std=0.5, seed=7)
    loop = PreferenceLoop(ens, SyntheticOracle(seed=7), n_envs, cfg, TrainerConfig(batch_size=8, seed=7))
    env = LearnedRewardVecEnv(venv, loop)
    env.collect_random(120, seed=7)
    loop.pretrain()
    env.close()
    return loop


def test_mlp_loop_reloaded_gives_the_same_rewards(tmp_path, mujoco_loop):
    loop = mujoco_loop
    assert loop.reward_mean != 0.0 and loop.reward_std != 1.0  # normalisation that must survive the trip
    assert not torch.all(loop.ensemble.in_std == 1)  # so do the input statistics
    path = save_reward(loop, tmp_path)
    assert path == tmp_path / "reward-model-seed7.pt" and not list(tmp_path.glob(".*tmp*"))
    reward = load_reward(tmp_path)
    assert isinstance(reward, RewardFunction) and reward.seed == 7 and reward.target_std == 0.5
    obs, act = _fresh_steps()
    r = reward(obs, act)
    assert r.dtype == np.float32 and r.shape == (len(obs),)
    np.testing.assert_array_equal(r, loop.reward(obs, act))
    np.testing.assert_array_equal(reward.raw(obs, act), loop.raw_reward(obs, act))
    members = reward.raw(obs, act, members=True)
    assert members.shape == (3, len(obs))
    np.testing.assert_allclose(members.mean(0), reward.raw(obs, act), atol=1e-6)
    assert reward.info["config"]["segment_length"] == 10 and reward.info["labels_used"] == loop.labels_used == 2
    # the same weights without the saved normalisation would give other rewards (the bug this fixes)
    assert not np.allclose(reward.raw(obs, act), r)


def test_loaded_reward_resaves_and_loads_to_a_file_path(tmp_path, mujoco_loop):
    first = load_reward(save_reward(mujoco_loop, tmp_path / "a.pt"))
    again = load_reward(save_reward(first, tmp_path / "b.pt"))
    obs, act = _fresh_steps(steps=5, seed=5)
    np.testing.assert_array_equal(again(obs, act), mujoco_loop.reward(obs, act))
    assert again.info["labels_used"] == mujoco_loop.labels_used


def test_parts_discrete_actions_and_obs_transform_spec(tmp_path):
    """Anything with ensemble/reward_mean/reward_std/target_std saves; a transform is rebuilt from its spec."""
    torch.manual_seed(1)
    ens = MLPEnsemble((3,), n_actions=4, n_members=2, hidden=(8,))
    ens.set_input_stats(torch.randn(50, 3), torch.randint(0, 4, (50,)))
    parts = SimpleNamespace(ensemble=ens, reward_mean=0.3, reward_std=2.0, target_std=1.5, obs_transform=None,
                            seed=4)
    reward = load_reward(save_reward(parts, tmp_path))
    obs, act = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32), np.arange(9) % 4
    with torch.no_grad():
        expected = ((ens(torch.as_tensor(obs), torch.as_tensor(act)).mean(0).numpy() - 0.3) / 2.0 * 1.5)
    np.testing.assert_allclose(reward(obs, act), expected, atol=1e-6)
    # an obs_transform is rebuilt by calling the factory its spec names, only from packages trusted
    ens5 = MLPEnsemble((3,), (1,), n_members=2, hidden=(8,))
    parts = SimpleNamespace(ensemble=ens5, reward_mean=0.0, reward_std=1.0, target_std=1.0,
                            obs_transform=take_columns(3), seed=0)
    with pytest.raises(ValueError, match="obs_transform without a build_spec"):
        save_reward(parts, tmp_path)
    spec = {"factory": f"{__name__}:take_columns", "kwargs": {"n": 3}}
    f = save_reward(parts, tmp_path / "t.pt", obs_transform_spec=spec)
    with pytest.raises(ValueError, match="outside the trusted packages"):
        load_reward(f)
    reward = load_reward(f, trusted_modules=("prefrl", __name__))
    wide = np.random.default_rng(1).normal(size=(4, 7)).astype(np.float32)
    act1 = np.ones((4, 1), np.float32)
    with torch.no_grad():
        expected = ens5(torch.as_tensor(wide[:, :3]), torch.as_tensor(act1)).mean(0).numpy()
    np.testing.assert_allclose(reward(wide, act1), expected, atol=1e-6)


def take_columns(n):
    """A test obs_transform factory: keeps the first n numbers of each observation."""
    return lambda obs: obs[:, :n]


def test_atari_frame_ensemble_with_score_mask_reloads(tmp_path):
    """A loop with the 42x42 frame CNN behind the pooled, score-masked view: both rebuilt from their specs."""
    from envs.atari_reward import make_frame_ensemble, reward_model_view

    torch.manual_seed(0)
    n_envs, rng = 2, np.random.default_rng(0)
    ens = make_frame_ensemble("cnn42", n_members=2)
    view = reward_model_view("Seaquest", mask_score=True, size=42)
    cfg = LoopConfig(total_labels=4, total_steps=100, segment_length=5, pretrain_epochs=1, fit_min_steps=2,
                     calibration_samples=32, target_std=0.2)
    loop = PreferenceLoop(ens, SyntheticOracle(seed=0), n_envs, cfg, TrainerConfig(batch_size=4), obs_transform=view)
    for t in range(30):
        loop.record(rng.integers(0, 256, (n_envs, 84, 84, 4), dtype=np.uint8), np.zeros(n_envs, np.int64),
                    rng.random(n_envs), np.zeros(n_envs, bool))
    loop.pretrain()
    reward = load_reward(save_reward(loop, tmp_path))
    assert reward.info["ensemble"] == {"factory": "envs.atari_reward:make_frame_ensemble",
                                       "kwargs": {"variant": "cnn42", "n_members": 2}}
    assert reward.info["obs_transform"]["kwargs"] == {"game": "Seaquest", "mask_score": True, "size": 42}
    frames = rng.integers(0, 256, (6, 84, 84, 4), dtype=np.uint8)
    act = np.zeros(6, np.int64)
    np.testing.assert_array_equal(reward(frames, act), loop.reward(frames, act))
    np.testing.assert_array_equal(reward(view(frames), act, transformed=True), loop.reward(frames, act))


def test_batchnorm_buffers_travel(tmp_path):
    from envs.atari_reward import make_frame_ensemble

    torch.manual_seed(0)
    ens = make_frame_ensemble("paper84", n_members=1)
    ens.train()
    with torch.no_grad():  # move the batch-norm running statistics away from their init
        ens(torch.randint(0, 256, (4, 84, 84, 4), dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    assert ens.members[0].convs[1].running_mean.abs().sum() > 0
    parts = SimpleNamespace(ensemble=ens, reward_mean=0.1, reward_std=0.5, target_std=0.2, obs_transform=None, seed=0)
    reward = load_reward(save_reward(parts, tmp_path))
    frames = np.random.default_rng(1).integers(0, 256, (3, 84, 84, 4), dtype=np.uint8)
    with torch.no_grad():
        ens.eval()
        expected = ((ens(torch.as_tensor(frames), torch.zeros(3, dtype=torch.long)).mean(0).numpy() - 0.1) / 0.5 * 0.2)
    np.testing.assert_allclose(reward(frames, np.zeros(3, np.int64)), expected, atol=1e-6)
    bn = reward.ensemble.members[0].convs[1]
    assert isinstance(bn, torch.nn.BatchNorm2d) and torch.equal(bn.running_mean, ens.members[0].convs[1].running_mean)


def test_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt does not exist"):
        load_reward(tmp_path / "nowhere.pt")
    with pytest.raises(FileNotFoundError, match="holds no reward-model-seed"):
        load_reward(tmp_path)
    ens = MLPEnsemble((3,), (1,), n_members=1, hidden=(4,))
    for seed in (0, 2):
        save_reward(SimpleNamespace(ensemble=ens, reward_mean=0.0, reward_std=1.0, target_std=1.0, obs_transform=None,
                                    seed=seed), tmp_path)
    with pytest.raises(ValueError, match=r"seeds 0, 2: choose one with load_reward\(path, seed=...\)"):
        load_reward(tmp_path)
    assert load_reward(tmp_path, seed=2).seed == 2
    with pytest.raises(FileNotFoundError, match="reward-model-seed5.pt does not exist; it has seeds 0, 2"):
        load_reward(tmp_path, seed=5)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a reward model saved by prefrl.save_reward"):
        load_reward(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_text("not a torch file")
    with pytest.raises(ValueError, match="junk.pt is not a reward model"):
        load_reward(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="give an existing directory or a file name ending in .pt"):
        save_reward(SimpleNamespace(ensemble=ens, reward_mean=0.0, reward_std=1.0, target_std=1.0, obs_transform=None,
                                    seed=0), tmp_path / "missing-dir")
    odd = ModuleEnsemble(lambda: torch.nn.Linear(3, 1), (3,), ())
    with pytest.raises(ValueError, match="cannot save a ModuleEnsemble: give it a build_spec"):
        save_reward(SimpleNamespace(ensemble=odd, reward_mean=0.0, reward_std=1.0, target_std=1.0, obs_transform=None,
                                    seed=0), tmp_path)
