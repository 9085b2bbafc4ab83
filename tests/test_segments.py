import numpy as np
import pytest
import torch

from prefrl.segments import sample_segments, valid_starts


def _rollout(T=50, n=3, seed=0):
    rng = np.random.default_rng(seed)
    dones = rng.random((T, n)) < 0.1
    # obs encodes (t, env, episode id) so tests can check where a segment came from
    episode = np.concatenate([np.zeros((1, n), int), np.cumsum(dones, axis=0)[:-1]])
    t = np.arange(T)[:, None].repeat(n, 1)
    e = np.arange(n)[None, :].repeat(T, 0)
    obs = np.stack([t, e, episode], axis=-1).astype(np.float32)
    act = rng.normal(size=(T, n, 2)).astype(np.float32)
    rew = rng.normal(size=(T, n)).astype(np.float32)
    return obs, act, rew, dones


def test_segments_never_cross_episode_ends(gen):
    obs, act, rew, dones = _rollout()
    seg = sample_segments(obs, act, rew, dones, length=4, n=500, generator=gen)
    assert seg.obs.shape == (500, 4, 3) and seg.act.shape == (500, 4, 2) and seg.true_reward.shape == (500, 4)
    ep = seg.obs[..., 2]
    assert (ep == ep[:, :1]).all(), "a segment spans two episodes"
    env = seg.obs[..., 1]
    assert (env == env[:, :1]).all(), "a segment spans two envs"
    t = seg.obs[..., 0]
    assert (t[:, 1:] - t[:, :-1] == 1).all(), "segment steps are not consecutive"
    # the true reward travels with its steps
    ti, ei = t.long(), env.long()
    assert torch.equal(seg.true_reward, torch.from_numpy(rew)[ti, ei])


def test_valid_starts_known_case():
    dones = torch.tensor([[0], [0], [1], [0], [0], [0]], dtype=torch.bool)
    ok = valid_starts(dones, 3)[:, 0].tolist()
    # windows [0,2] ok (ends at the done), [1,3] crosses, [2,4] crosses, [3,5] ok
    assert ok == [True, False, False, True]


def test_autoreset_steps_are_excluded(gen):
    obs, act, rew, dones = _rollout(T=30, n=2)
    valid = np.ones_like(dones)
    valid[10, :] = False
    ok = valid_starts(torch.from_numpy(dones), 5, torch.from_numpy(valid))
    assert not ok[6:11].any()
    seg = sample_segments(obs, act, rew, dones, 5, 300, gen, valid=valid)
    assert not (seg.obs[..., 0] == 10).any()


def test_errors_are_clear(gen):
    obs, act, rew, dones = _rollout()
    bad = rew.copy()
    bad[3, 1] = np.nan  # a broken env step: left out of every clip, the other windows still sampled
    with pytest.warns(UserWarning, match="1 steps have a NaN true reward"):
        seg = sample_segments(obs, act, bad, dones, 4, 200, gen)
    assert not torch.isnan(seg.true_reward).any()
    with pytest.raises(ValueError, match="act leads with"):
        sample_segments(obs, act[:-1], rew, dones, 4, 10, gen)
    with pytest.raises(ValueError, match="no window of 100 steps"):
        sample_segments(obs, act, rew, dones, 100, 10, gen)


def test_same_seed_same_segments():
    obs, act, rew, dones = _rollout()
    a = sample_segments(obs, act, rew, dones, 4, 50, torch.Generator().manual_seed(3))
    b = sample_segments(obs, act, rew, dones, 4, 50, torch.Generator().manual_seed(3))
    assert torch.equal(a.obs, b.obs)
