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


def test_recorder_draws_what_sample_segments_draws_on_its_arrays():
    """The ring buffer gathers only the drawn steps; the segments are those of sample_segments on a full copy."""
    from prefrl.loop import RolloutRecorder

    rng = np.random.default_rng(0)
    rec = RolloutRecorder(capacity=37, n_envs=3)
    for t in range(90):  # wraps around the ring twice
        done = rng.random(3) < 0.05
        valid = rng.random(3) > 0.1
        rec.add(rng.integers(0, 255, (3, 4, 4, 2), dtype=np.uint8), rng.integers(0, 5, 3), rng.normal(size=3),
                done, valid, state=rng.normal(size=(3, 2)))
    for last in (None, 20):
        a = rec.arrays(last)
        want = sample_segments(a["obs"], a["act"], a["true_reward"], a["done"], 5, 40, torch.Generator().manual_seed(3),
                               a["valid"], a["state"])
        got = rec.sample(40, 5, torch.Generator().manual_seed(3), last=last)
        for k in ("obs", "act", "true_reward", "state"):
            assert torch.equal(getattr(got, k), getattr(want, k)), k
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    o, x = rec.random_steps(30, r1)
    a = rec.arrays()
    flat = a["valid"].reshape(-1).nonzero()[0]
    t, e = np.divmod(r2.choice(flat, size=30, replace=False), 3)
    np.testing.assert_array_equal(o, a["obs"][t, e])
    np.testing.assert_array_equal(x, a["act"][t, e])
