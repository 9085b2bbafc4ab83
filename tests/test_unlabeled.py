"""Reward learning from unlabeled steps: the temporal-consistency loss (REED), SURF's pseudo-labels and
temporal crops, the recorder's transitions, and non-finite data refused where it enters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prefrl import LoopConfig, MLPEnsemble, ModuleEnsemble, PreferenceLoop, PreferenceStore, RewardTrainer
from prefrl import Segments, SyntheticOracle, TrainerConfig
from prefrl.losses import inverse_dynamics_loss, pseudo_labels, temporal_consistency_loss, temporal_contrastive_loss
from prefrl.members import FrameCNN
from prefrl.recorder import RolloutRecorder
from prefrl.unlabeled import TransitionPredictor, UnlabeledData, temporal_crop


# -- the math ------------------------------------------------------------------
def test_temporal_consistency_loss_known_values():
    z = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # [E=1, B=3, D=2]
    same = temporal_consistency_loss(z, z.clone())
    assert torch.allclose(same, torch.zeros(1), atol=1e-6)
    opposite = temporal_consistency_loss(z, -z)
    assert torch.allclose(opposite, torch.full((1,), 2.0))
    orth = temporal_consistency_loss(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 5.0]]]))
    assert torch.allclose(orth, torch.ones(1))
    # per member: [E=2]
    two = temporal_consistency_loss(torch.cat([z, z]), torch.cat([z, -z]))
    assert torch.allclose(two, torch.tensor([0.0, 2.0]), atol=1e-6)


def test_temporal_consistency_loss_stops_the_gradient_at_the_target():
    pred = torch.randn(2, 4, 3, requires_grad=True)
    target = torch.randn(2, 4, 3, requires_grad=True)
    temporal_consistency_loss(pred, target).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None


def test_temporal_contrastive_loss_known_values():
    z = 5.0 * torch.eye(4)[None]  # [E=1, B=4, D=4]: orthogonal latents
    # each prediction equals its own target: logits 1/tau on the diagonal, 0 elsewhere
    expected = -math.log(math.exp(10.0) / (math.exp(10.0) + 3.0))
    assert torch.allclose(temporal_contrastive_loss(z, z), torch.tensor([expected]), atol=1e-6)
    # predictions that cannot tell the transitions apart: log B
    assert torch.allclose(temporal_contrastive_loss(torch.ones(1, 4, 4), z), torch.tensor([math.log(4)]))
    # a target barely different from its prediction is not enough when all latents point one way
    same_way = torch.ones(1, 4, 4) + 0.01 * torch.eye(4)
    assert temporal_consistency_loss(same_way, same_way).item() < 1e-6
    assert temporal_contrastive_loss(same_way, same_way).item() > 1.0
    with pytest.raises(ValueError, match="temperature"):
        temporal_contrastive_loss(z, z, temperature=0.0)


def test_inverse_dynamics_loss_known_values():
    assert torch.allclose(inverse_dynamics_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)),
                          torch.full((2,), math.log(4)))
    sure = torch.tensor([[[0.0, 50.0], [50.0, 0.0]]])  # [E=1, B=2, A=2]
    assert inverse_dynamics_loss(sure, torch.tensor([[1, 0]])).item() < 1e-6
    assert torch.allclose(inverse_dynamics_loss(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)), torch.tensor([2.0]))


def test_temporal_consistency_loss_checks_shapes():
    with pytest.raises(AssertionError):
        temporal_consistency_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5))


def test_pseudo_labels_known_values():
    p = torch.tensor([0.99, 0.6, 0.02, 0.5, 0.95])
    mu, keep = pseudo_labels(p, 0.95)
    assert mu.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert keep.tolist() == [True, False, True, False, True]
    mu, keep = pseudo_labels(p, 1.0)
    assert not keep.any()


@pytest.mark.parametrize("bad", [0.5, 0.2, 1.01, float("nan")])
def test_pseudo_labels_refuse_a_threshold_outside_half_to_one(bad):
    with pytest.raises(ValueError, match=r"\(0.5, 1\]"):
        pseudo_labels(torch.tensor([0.9]), bad)


def test_temporal_crop_keeps_consecutive_windows_of_one_length():
    P, L = 50, 10
    act = torch.arange(P * 2 * L).reshape(P, 2, L)
    obs = act[..., None, None].expand(P, 2, L, 3, 3).clone().float()
    o, a = temporal_crop(obs, act, 4, torch.Generator().manual_seed(0), time_dim=2)
    assert a.shape == (P, 2, 4) and o.shape == (P, 2, 4, 3, 3)
    assert torch.equal(o[..., 0, 0], a.float())
    assert (a.diff(dim=-1) == 1).all()  # consecutive steps
    start = a[..., 0] - torch.arange(P * 2).reshape(P, 2) * L
    assert ((start >= 0) & (start <= L - 4)).all()
    assert (start[:, 0] != start[:, 1]).any()  # the two clips start independently


def test_temporal_crop_of_the_whole_clip_is_the_clip_and_a_longer_one_is_refused():
    obs, act = torch.randn(3, 2, 5, 2), torch.randn(3, 2, 5, 1)
    o, a = temporal_crop(obs, act, 5, torch.Generator(), time_dim=2)
    assert o is obs and a is act
    with pytest.raises(ValueError, match="1..5 steps"):
        temporal_crop(obs, act, 6, torch.Generator(), time_dim=2)


def test_transition_predictor_shapes_and_action_range():
    pred = TransitionPredictor(3, 8, act_shape=(), n_actions=4)
    out = pred(torch.randn(3, 5, 8), torch.randint(4, (3, 5)))
    assert out.shape == (3, 5, 8)
    with pytest.raises(ValueError, match=r"ids in \[0, 4\)"):
        pred(torch.randn(3, 5, 8), torch.full((3, 5), 7))
    cont = TransitionPredictor(2, 6, act_shape=(2,))
    assert cont(torch.randn(2, 4, 6), torch.randn(2, 4, 2)).shape == (2, 4, 6)


def test_unlabeled_data_checks_its_parts():
    with pytest.raises(ValueError, match="together"):
        UnlabeledData(obs=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\[P, 2, L"):
        UnlabeledData(pair_obs=torch.zeros(4, 3, 5, 2), pair_act=torch.zeros(4, 3, 5))


# -- latents of the ensembles -----------------------------------------------------
def test_mlp_latent_feeds_its_reward_head():
    ens = MLPEnsemble((3,), (2,), n_members=2, hidden=(16, 8))
    obs, act = torch.randn(2, 5, 3), torch.randn(2, 5, 2)
    z = ens.member_embed(obs, act)
    assert ens.latent_dim == 8 and z.shape == (2, 5, 8)
    head = torch.baddbmm(ens.biases[-1], z, ens.weights[-1]).squeeze(-1)
    assert torch.allclose(head, ens.member_forward(obs, act))


def test_frame_cnn_latent_feeds_its_reward_head():
    torch.manual_seed(0)
    for head in ("fc", "sum"):
        ens = ModuleEnsemble(lambda: FrameCNN((42, 42, 4), batchnorm=False, dropout=0.0, head=head), (42, 42, 4),
                             n_members=2)
        obs = torch.randint(0, 255, (2, 3, 42, 42, 4), dtype=torch.uint8)
        z = ens.member_embed(obs, torch.zeros(2, 3, dtype=torch.long))
        assert z.shape == (2, 3, ens.latent_dim) and ens.latent_dim == 64
        if head == "fc":
            assert torch.allclose(ens.members[0].head[3](z[0]).squeeze(-1), ens.members[0](obs[0]))


# -- the trainer ------------------------------------------------------------------------
def _linear_world(n_pairs=60, L=8, seed=0):
    """Pairs of clips from a 2-d linear system whose reward is its first coordinate, plus its transitions."""
    g = torch.Generator().manual_seed(seed)
    T = 4000
    s = torch.zeros(T, 2)
    a = torch.randn(T, 1, generator=g)
    for t in range(1, T):
        s[t] = 0.9 * s[t - 1] + torch.cat([a[t - 1], 0.5 * a[t - 1]])
    r = s[:, 0]
    starts = torch.randint(0, T - L, (2 * n_pairs,), generator=g)
    win = starts[:, None] + torch.arange(L)
    segs = Segments(s[win], a[win], r[win])
    seg1, seg2 = segs[:n_pairs], segs[n_pairs:]
    idx = torch.arange(T - 1)
    trans = UnlabeledData(obs=s[idx], act=a[idx], next_obs=s[idx + 1], next_act=a[idx + 1])
    pw = torch.randint(0, T - L, (400,), generator=g)[:, None] + torch.arange(L)
    pw = pw.reshape(200, 2, L)
    pairs = UnlabeledData(pair_obs=s[pw], pair_act=a[pw], pair_true_return=r[pw].sum(-1))
    return seg1, seg2, trans, pairs


def _store(seg1, seg2, seed=0):
    store = PreferenceStore(seed=seed)
    mu, _ = SyntheticOracle(noise=0.0, seed=seed).label(seg1, seg2)
    store.add(seg1, seg2, mu)
    return store


@pytest.mark.parametrize("objective", ["cosine", "contrastive", "inverse"])
def test_ssl_pretraining_lowers_the_temporal_consistency_loss_and_is_deterministic(objective):
    seg1, seg2, trans, _ = _linear_world()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        ens = MLPEnsemble((2,), (1,), n_members=2)
        cfg = TrainerConfig(ssl_weight=1.0, ssl_pretrain_steps=150, seed=3, ssl_objective=objective)
        trainer = RewardTrainer(ens, cfg)
        before = trainer._ssl_loss(trans).mean().item()
        m = trainer.fit(_store(seg1, seg2), epochs=2, unlabeled=trans)
        assert trainer.ssl_pretrained
        # cosine, inverse (squared error of the action): at least halved; contrastive: at least 1 nat below its
        # start (log 64 = 4.16 is chance)
        bound = before - 1.0 if objective == "contrastive" else 0.5 * before
        assert m["rm/ssl_pretrain_loss"] < bound, (before, m["rm/ssl_pretrain_loss"])
        assert math.isfinite(m["rm/ssl_loss"])
        results.append(torch.cat([p.detach().flatten() for p in ens.parameters()]))
        m2 = trainer.fit(_store(seg1, seg2), epochs=1, unlabeled=trans)
        assert "rm/ssl_pretrain_loss" not in m2  # pretraining runs once
    assert torch.equal(results[0], results[1])


def test_pseudo_labels_are_mostly_right_on_an_easy_task_and_reported():
    seg1, seg2, _, pairs = _linear_world()
    torch.manual_seed(0)
    ens = MLPEnsemble((2,), (1,), n_members=3)
    store = _store(seg1, seg2)
    RewardTrainer(ens, TrainerConfig(seed=0)).fit(store, epochs=30)  # labels only first: the model gets confident
    m = RewardTrainer(ens, TrainerConfig(pseudo_threshold=0.9, crop_min_length=5, seed=0)).fit(
        store, epochs=5, unlabeled=pairs)
    assert 0.0 < m["rm/pseudo_share"] <= 1.0
    assert m["rm/pseudo_accuracy"] > 0.85


def test_trainer_needs_the_unlabeled_data_its_options_read():
    seg1, seg2, trans, pairs = _linear_world(n_pairs=10)
    store = _store(seg1, seg2)
    with pytest.raises(ValueError, match="ssl_weight > 0 needs recorded transitions"):
        RewardTrainer(MLPEnsemble((2,), (1,)), TrainerConfig(ssl_weight=1.0)).fit(store)
    with pytest.raises(ValueError, match="pseudo_threshold needs unlabeled pairs"):
        RewardTrainer(MLPEnsemble((2,), (1,)), TrainerConfig(pseudo_threshold=0.9)).fit(store, unlabeled=trans)
    with pytest.raises(ValueError, match="longer than the 8-step segments"):
        RewardTrainer(MLPEnsemble((2,), (1,)), TrainerConfig(crop_min_length=9)).fit(store)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pseudo_threshold=0.5), r"\(0.5, 1\]"),
    (dict(pseudo_threshold=1.5), r"\(0.5, 1\]"),
    (dict(ssl_weight=1.0, ssl_pretrain_steps=0), "ssl_pretrain_steps must be >= 1"),
    (dict(ssl_weight=float("nan")), "must be finite"),
    (dict(ssl_weight=-1.0), "must be >= 0"),
    (dict(crop_min_length=-1), "crop_min_length must be >= 0"),
    (dict(ssl_batch_size=0), "ssl_batch_size must be >= 1"),
    (dict(ssl_objective="byol"), "ssl_objective must be"),
])
def test_trainer_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig(**kwargs)


def test_loop_refuses_a_crop_longer_than_its_segments():
    with pytest.raises(ValueError, match="longer than the 10-step segments"):
        PreferenceLoop(MLPEnsemble((2,), (1,)), SyntheticOracle(), 2, LoopConfig(segment_length=10, total_steps=100,
                                                                                  total_labels=10),
                       TrainerConfig(crop_min_length=11))


def test_ensemble_without_latent_refuses_ssl():
    class Plain(torch.nn.Module):
        def forward(self, obs, act):
            return obs.float().sum(-1)

    with pytest.raises(ValueError, match="needs an ensemble with a latent"):
        RewardTrainer(ModuleEnsemble(Plain, (3,), n_members=2), TrainerConfig(ssl_weight=1.0))


# -- the recorder and the loop -----------------------------------------------------------
def test_recorder_transitions_never_cross_an_episode_end_or_an_autoreset():
    rec = RolloutRecorder(50, 2)
    for t in range(60):  # obs carries (t, env); env 0 ends every 7th step, env 1's step 20 is an autoreset step
        obs = np.array([[t, 0], [t, 1]], np.float32)
        done = np.array([t % 7 == 6, False])
        valid = np.array([True, t != 20])
        rec.add(obs, np.zeros((2, 1), np.float32), np.zeros(2), done, valid)
    tr = rec.transitions(10_000, np.random.default_rng(0))
    t0, env, t1 = tr["obs"][:, 0], tr["obs"][:, 1], tr["next_obs"][:, 0]
    assert len(t0) > 50
    assert (t1 == t0 + 1).all() and (tr["next_obs"][:, 1] == env).all()
    assert not ((env == 0) & (t0 % 7 == 6)).any()  # an episode's last step has no successor
    assert not ((env == 1) & ((t0 == 20) | (t0 == 19))).any()  # nor a step next to an autoreset step


def test_recorder_refuses_non_finite_steps_and_names_them():
    rec = RolloutRecorder(10, 3)
    rec.add(np.zeros((3, 2), np.float32), np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool))
    obs = np.zeros((3, 2), np.float32)
    obs[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite obs .* vector step 1 in env\(s\) \[2\]"):
        rec.add(obs, np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool))
    act = np.zeros((3, 1), np.float32)
    act[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"non-finite act .* vector step 1 in env\(s\) \[0\]"):
        rec.add(np.zeros((3, 2), np.float32), act, np.zeros(3), np.zeros(3, bool))
    assert rec.total == 1  # nothing was recorded
    # a NaN true reward is recorded (the oracle never labels a clip that holds it: test_loop_end_to_end)
    rec.add(np.zeros((3, 2), np.float32), np.zeros((3, 1)), np.array([np.nan, 0, 0]), np.zeros(3, bool))
    assert rec.total == 2


def test_store_refuses_non_finite_clips_and_keeps_what_it_had(tmp_path):
    store = PreferenceStore(tmp_path / "labels.sqlite")
    good = Segments(torch.zeros(2, 4, 3), torch.zeros(2, 4, 1), torch.zeros(2, 4))
    store.add(good, good, torch.tensor([1.0, 0.5]))
    obs = torch.zeros(2, 4, 3)
    obs[1, 2, 0] = float("nan")
    bad = Segments(obs, torch.zeros(2, 4, 1), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"non-finite obs .* pair\(s\) \[1\]"):
        store.add(bad, good, torch.tensor([1.0, 0.0]))
    assert len(store) == 2
    store.close()
    assert len(PreferenceStore(tmp_path / "labels.sqlite")) == 2


_RNG = np.random.default_rng(0)
_ACTS = _RNG.normal(size=(600, 2, 1)).astype(np.float32)


def _run_loop(loop, start, stop):
    """Steps t in [start, stop) of one fixed 2-env stream (obs_t+1 = 0.9 obs_t + a_t, reward = obs[0])."""
    obs = np.ones((2, 3), np.float32)
    for t in range(stop):
        a = _ACTS[t]
        if t >= start:
            loop.record(obs, a, obs[:, 0].copy(), np.array([t % 50 == 49] * 2))
            if t >= 100 and t % 100 == 0:
                m = loop.pretrain() if loop.labels_used == 0 else loop.update(t * 2)
                if m:
                    loop.last_round = m
        obs = (0.9 * obs + a).astype(np.float32)
        if t % 50 == 49:
            obs = np.ones((2, 3), np.float32)


def _loop(store, seed=0):
    torch.manual_seed(seed)
    return PreferenceLoop(MLPEnsemble((3,), (1,), n_members=2), SyntheticOracle(seed=seed), 2,
                          LoopConfig(total_labels=40, total_steps=1200, segment_length=10, pretrain_epochs=5,
                                     unlabeled_transitions=256, unlabeled_pairs=32, seed=seed),
                          TrainerConfig(ssl_weight=0.5, ssl_pretrain_steps=10, pseudo_threshold=0.9,
                                        crop_min_length=6, seed=seed), store)


@pytest.mark.slow
def test_loop_with_every_piece_reports_their_metrics_and_resumes_exactly(tmp_path):
    import shutil

    whole = _loop(PreferenceStore(tmp_path / "whole.sqlite"))
    _run_loop(whole, 0, 600)
    m = whole.last_round
    assert all(k in m for k in ("rm/ssl_loss", "rm/pseudo_share", "rm/pseudo_accuracy")), m
    first = _loop(PreferenceStore(tmp_path / "first.sqlite"))
    _run_loop(first, 0, 300)
    state = first.state_dict()
    assert state["ssl_pretrained"] and state["predictor"] is not None
    first.store.close()
    shutil.copy(tmp_path / "first.sqlite", tmp_path / "resumed.sqlite")
    resumed = _loop(PreferenceStore(tmp_path / "resumed.sqlite"))
    resumed.load_state_dict(state)
    _run_loop(resumed, 300, 600)
    assert resumed.labels_used == whole.labels_used
    for a, b in zip(whole.ensemble.parameters(), resumed.ensemble.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(whole.trainer.predictor.parameters(), resumed.trainer.predictor.parameters()):
        assert torch.equal(a, b)
