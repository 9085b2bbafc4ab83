import copy
import math
import numpy as np
import pytest
import torch
import torch.nn as nn

from prefrl.diagnostics import (event_triggered_average, pearson, segment_return_correlation, spearman,
                                window_correlation)
from prefrl.oracle import SyntheticOracle
from prefrl.reward_model import MLPEnsemble, ModuleEnsemble
from prefrl.segments import Segments
from prefrl.store import PreferenceStore
from prefrl.trainer import RewardTrainer, TrainerConfig

W = torch.tensor([1.0, -2.0, 0.5, 0.0])


def true_reward(obs, act):
    return obs @ W + torch.sin(3 * act[..., 0])


def make_segments(n, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, L, 4, generator=g)
    act = torch.rand(n, L, 1, generator=g) * 2 - 1
    return Segments(obs, act, true_reward(obs, act))


def test_ensemble_shapes_and_batched_members():
    ens = MLPEnsemble((4,), (1,), n_members=5)
    obs, act = torch.randn(7, 3, 4), torch.randn(7, 3, 1)
    assert ens(obs, act).shape == (5, 7, 3)
    assert ens.segment_returns(obs, act).shape == (5, 7)
    # member e of a per-member call equals member e of a shared call
    shared = ens(obs[0], act[0])
    per = ens(obs[0].expand(5, 3, 4), act[0].expand(5, 3, 1), per_member=True)
    assert torch.allclose(shared, per, atol=1e-6)
    # members are different functions (independent init)
    assert not torch.allclose(shared[0], shared[1])
    assert ens.l2_penalty().shape == (5,)
    with pytest.raises(ValueError, match="trailing"):
        ens(torch.randn(3, 5), torch.randn(3, 1))
    with pytest.raises(ValueError, match="do not match"):
        ens(torch.randn(3, 4), torch.randn(2, 1))


def test_discrete_actions_are_one_hot():
    ens = MLPEnsemble((4,), n_actions=3, n_members=2)
    r = ens(torch.zeros(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert r.shape == (2, 6)
    assert torch.allclose(r[:, :3], r[:, 3:])
    assert not torch.allclose(r[:, 0], r[:, 1])


@pytest.mark.parametrize("kind", ["continuous", "discrete", "no_action"])
def test_numpy_mean_reward_is_the_torch_forward(kind):
    torch.manual_seed(0)
    if kind == "discrete":
        ens, act = MLPEnsemble((3, 2), n_actions=4, n_members=3), torch.randint(4, (9,))
    elif kind == "no_action":
        ens, act = MLPEnsemble((3, 2), (2,), use_action=False, dropout=0.3), torch.randn(9, 2)
    else:
        ens, act = MLPEnsemble((3, 2), (2,), n_members=3, hidden=(8, 5, 4)), torch.randn(9, 2)
    obs = torch.randn(9, 3, 2) * 3 + 1
    ens.set_input_stats(obs, act)
    ens.eval()
    want = ens(obs, act).mean(0).detach().numpy()
    got = ens.mean_reward(obs.numpy().astype(np.float64), act.numpy())  # float64 obs (MuJoCo) are cast
    assert got.dtype == np.float32 and got.shape == (9,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # it reads the live parameters, not a copy taken once
        ens.biases[-1].add_(1.0)
    np.testing.assert_allclose(ens.mean_reward(obs.numpy(), act.numpy()), want + 1.0, rtol=1e-5, atol=1e-5)
    twin = copy.deepcopy(ens)  # a copy reads its own parameters, before and after they move
    with torch.no_grad():
        twin.biases[-1].add_(1.0)
        twin.weights[0].data = twin.weights[0].data * 2
    np.testing.assert_allclose(twin.mean_reward(obs.numpy(), act.numpy()), twin(obs, act).mean(0).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ens.mean_reward(obs.numpy(), act.numpy()), want + 1.0, rtol=1e-5, atol=1e-5)


def test_module_ensemble_stacks_members():
    class Member(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, obs, act):
            return self.lin(obs).squeeze(-1)

    ens = ModuleEnsemble(Member, obs_shape=(4,), act_shape=(1,), n_members=3)
    assert ens(torch.randn(2, 5, 4), torch.randn(2, 5, 1)).shape == (3, 2, 5)
    assert ens.l2_penalty().shape == (3,)


def _labeled_store(n_labels=600, seed=0):
    seg1, seg2 = make_segments(n_labels, seed=seed), make_segments(n_labels, seed=seed + 100)
    mu, _ = SyntheticOracle(seed=seed).label(seg1, seg2)
    store = PreferenceStore(seed=seed)
    store.add(seg1, seg2, mu)
    return store


def _fit_store(n_labels=600, seed=0, epochs=60, **config):
    store = _labeled_store(n_labels, seed)
    torch.manual_seed(seed)
    ens = MLPEnsemble((4,), (1,), n_members=3)
    trainer = RewardTrainer(ens, TrainerConfig(seed=seed, **config))
    metrics = trainer.fit(store, epochs=epochs)
    return ens, trainer, metrics


def test_fit_on_known_reward_reaches_high_accuracy_and_correlation():
    ens, _, m = _fit_store()
    # labels carry 10% random answers: a perfect model scores ~95% on them
    assert m["rm/val_accuracy"] > 0.85, m
    assert m["rm/n_val"] > 150 and m["rm/n_train"] > 300
    corr = segment_return_correlation(ens, make_segments(500, seed=999))
    assert corr["corr/pearson"] > 0.9 and corr["corr/spearman"] > 0.9, corr


def test_same_seed_same_weights():
    a, _, ma = _fit_store(n_labels=100, seed=3)
    b, _, mb = _fit_store(n_labels=100, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert ma == mb


def test_early_stopping_ends_a_converged_fit_and_keeps_its_quality():
    full = _fit_store(epochs=60)[2]
    assert full["rm/epochs"] == 60
    ens, trainer, m = _fit_store(epochs=60, stop_tolerance=0.02)
    assert 2 <= m["rm/epochs"] < 30, m  # stopped once an epoch lowered the loss by < 2%
    assert m["rm/steps"] == m["rm/epochs"] * math.ceil(m["rm/n_train"] / 64)
    assert m["rm/val_accuracy"] > 0.85, m  # still the known reward, at a fraction of the steps
    # a warm refit of the same labels has little left to learn: it stops far sooner than the first fit
    again = trainer.fit(_labeled_store(), epochs=60)
    assert again["rm/epochs"] < m["rm/epochs"] / 2, (m, again)


def test_early_stopping_never_runs_past_the_epochs_asked():
    m = _fit_store(n_labels=100, epochs=3, stop_tolerance=1e-9)[2]
    assert m["rm/epochs"] <= 3


@pytest.mark.parametrize("tol", [-0.1, 1.0, float("nan"), float("inf")])
def test_stop_tolerance_out_of_range_is_refused(tol):
    with pytest.raises(ValueError, match="stop_tolerance"):
        TrainerConfig(stop_tolerance=tol)


def test_adaptive_l2_moves_toward_target_band():
    ens = MLPEnsemble((4,), (1,), n_members=3)
    trainer = RewardTrainer(ens, TrainerConfig(l2_init=1e-3))
    trainer._adapt_l2(torch.tensor([0.1, 0.5, 0.5]), torch.tensor([0.5, 0.6, 0.5]))
    assert trainer.l2.tolist() == pytest.approx([2e-3, 1e-3, 5e-4])


def test_fit_rejects_empty_store():
    trainer = RewardTrainer(MLPEnsemble((4,), (1,)))
    with pytest.raises(ValueError, match="empty"):
        trainer.fit(PreferenceStore())


def test_correlations_known_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 2.0])) == pytest.approx(1.0)


def test_frame_cnn_member_paper_and_pooled_shapes():
    from prefrl.members import FrameCNN

    for shape in ((84, 84, 4), (42, 42, 4)):
        ens = ModuleEnsemble(lambda: FrameCNN(shape), shape, (), n_members=2)
        frames = torch.randint(0, 256, (3, 5, *shape), dtype=torch.uint8)
        assert ens(frames, torch.zeros(3, 5, dtype=torch.long)).shape == (2, 3, 5)
    paper = FrameCNN((84, 84, 4))
    convs = [m for m in paper.convs if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == [(7, 3, 16), (5, 2, 16), (3, 1, 16), (3, 1, 16)]
    assert paper.head[1].out_features == 64


def test_atari_reward_variants_shapes_and_score_mask():
    """Every Atari predictor variant scores [E, B, L] and reads frames with the score area blacked out."""
    from envs.atari import score_mask
    from envs.atari_reward import RM_VARIANTS, make_frame_ensemble, reward_model_view

    obs = np.full((3, 84, 84, 4), 180, np.uint8)
    for name, spec in RM_VARIANTS.items():
        view = reward_model_view("Seaquest", mask_score=True, size=spec.size)(obs)
        assert view.shape == (3, *spec.frame_shape), name
        rows = np.nonzero(score_mask("Seaquest").any(axis=1))[0] // (84 // spec.size)
        assert (view[:, rows] == 0).all() and (view[:, rows.max() + 1 :] == 180).all(), name
        ens = make_frame_ensemble(name)
        frames = torch.from_numpy(np.stack([view, view]))  # [2, 3, H, W, C]: B=2 segments of L=3
        assert ens(frames, torch.zeros(2, 3, dtype=torch.long)).shape == (3, 2, 3), name
    with pytest.raises(ValueError, match="unknown reward-model variant"):
        make_frame_ensemble("resnet")


def test_frame_cnn_shift_augments_only_in_training():
    from prefrl.members import FrameCNN

    torch.manual_seed(0)
    net = FrameCNN((42, 42, 4), batchnorm=False, dropout=0.0, shift=2)
    x = torch.randint(0, 256, (16, 42, 42, 4), dtype=torch.uint8)
    net.eval()
    assert torch.equal(net(x), net(x)), "inference is deterministic"
    net.train()
    assert not torch.allclose(net(x), net(x)), "training sees randomly shifted frames"
    flat = torch.full((4, 42, 42, 4), 77, dtype=torch.uint8)
    net.eval()
    ref = net(flat)
    net.train()
    assert torch.allclose(net(flat), ref, atol=1e-6), "a uniform frame is unchanged by a shift (edges replicated)"


def test_frame_cnn_frame_diff_channels():
    from prefrl.members import FrameCNN

    net = FrameCNN((42, 42, 4), batchnorm=False, dropout=0.0, frame_diff=True)
    x = torch.zeros(1, 42, 42, 4, dtype=torch.uint8)
    x[..., 3] = 255  # newest frame white, older ones black
    prepared = net._prepare(x)  # [1, 4, 42, 42]: newest frame, then f1-f0, f2-f1, f3-f2
    assert torch.equal(prepared[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0, 1.0]))


def test_event_triggered_average_and_window_correlation_known_values():
    true = torch.zeros(10, 2)
    true[4, 0] = 1.0  # one scoring step
    learned = torch.zeros(10, 2)
    learned[5, 0] = 3.0  # the model credits the step after it (the event shows in the next frame)
    profile = event_triggered_average(learned, true, span=2)
    z = (learned - learned.mean()) / learned.std()
    assert profile == pytest.approx([z[2, 0].item(), z[3, 0].item(), z[4, 0].item(), z[5, 0].item(), z[6, 0].item()])
    assert max(range(5), key=lambda i: profile[i]) == 3  # peak at d = +1
    assert window_correlation(learned, true, 1) < 0.1  # per step the credit is one step late...
    assert window_correlation(learned, true, 2) == pytest.approx(1.0)  # ...over 2-step windows it lines up
    assert math.isnan(event_triggered_average(learned, torch.zeros(10, 2), span=1)[0])
