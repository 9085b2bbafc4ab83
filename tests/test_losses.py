import math

import pytest
import torch

from prefrl.losses import (
    bt_loss,
    bt_probability,
    disagreement,
    gap_upper_bound,
    kwise_ranking_loss,
    mean_entropy,
    rune_reward,
)


def test_bt_loss_is_log2_for_equal_returns_whatever_the_label():
    R = torch.tensor([0.0, 3.0, -7.5])
    for mu in (0.0, 0.5, 1.0):
        loss = bt_loss(R, R.clone(), torch.full((3,), mu), eps=0.1, reduction="none")
        assert torch.allclose(loss, torch.full((3,), math.log(2)))


def test_noise_aware_probability_matches_formula():
    R1, R2 = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([0.5, 1.0, 0.3])
    p = torch.sigmoid(R1 - R2)
    assert torch.allclose(bt_probability(R1, R2, eps=0.1), 0.9 * p + 0.05)
    mu = torch.tensor([1.0, 0.0, 0.5])
    expected = -(mu * torch.log(0.9 * p + 0.05) + (1 - mu) * torch.log(0.9 * (1 - p) + 0.05))
    assert torch.allclose(bt_loss(R1, R2, mu, eps=0.1, reduction="none"), expected, atol=1e-6)


def test_noise_aware_loss_is_bounded_for_confident_wrong_predictions():
    # P' >= eps/2, so loss <= -log(eps/2) even when the model is confidently wrong
    loss = bt_loss(torch.tensor([1000.0]), torch.tensor([0.0]), torch.tensor([0.0]), eps=0.1)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-math.log(0.05), rel=1e-5)
    plain = bt_loss(torch.tensor([30.0]), torch.tensor([0.0]), torch.tensor([0.0]), eps=0.0)
    assert plain.item() == pytest.approx(30.0, rel=1e-4)


def test_bt_loss_broadcasts_over_ensemble_members():
    R1 = torch.randn(3, 5)
    R2 = torch.randn(3, 5)
    mu = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0])
    loss = bt_loss(R1, R2, mu)
    assert loss.shape == (3,)
    assert torch.allclose(loss[1], bt_loss(R1[1], R2[1], mu))


def test_kwise_with_k2_equals_pairwise_loss():
    r = torch.randn(6, 2)  # column 0 is ranked better
    pairwise = bt_loss(r[:, 0], r[:, 1], torch.ones(6), eps=0.0)
    assert kwise_ranking_loss(r).item() == pytest.approx(pairwise.item(), rel=1e-6)


def test_kwise_known_value_and_ranks():
    r = torch.tensor([[3.0, 2.0, 0.0]])
    pairs = [(3.0, 2.0), (3.0, 0.0), (2.0, 0.0)]
    expected = sum(-math.log(1 / (1 + math.exp(-(w - l)))) for w, l in pairs) / 3
    assert kwise_ranking_loss(r).item() == pytest.approx(expected, rel=1e-6)
    # the same completions in another order, with explicit ranks, give the same loss
    perm = torch.tensor([2, 0, 1])
    ranks = torch.tensor([[0, 1, 2]])[:, perm]
    assert kwise_ranking_loss(r[:, perm], ranks).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="K >= 2"):
        kwise_ranking_loss(torch.zeros(4, 1))


def test_disagreement_and_entropy():
    p = torch.tensor([[0.5, 0.9, 0.1], [0.5, 0.9, 0.9]])
    d = disagreement(p)
    assert torch.allclose(d, torch.tensor([0.0, 0.0, 0.16]))
    h = mean_entropy(p)
    assert h[0].item() == pytest.approx(math.log(2), rel=1e-5)
    assert h[1] < h[0]


def test_gap_upper_bound_known_values():
    delta = torch.tensor([[1.0, -1.0, 0.0], [3.0, -1.0, 0.0]])  # [E=2, N=3] member return gaps
    # |mean| + population std: |2| + 1, |-1| + 0, 0 + 0
    assert torch.allclose(gap_upper_bound(delta), torch.tensor([3.0, 1.0, 0.0]))
    assert torch.equal(gap_upper_bound(-delta), gap_upper_bound(delta))  # the order within a pair does not matter
    with pytest.raises(AssertionError, match=r"\[E, N\]"):
        gap_upper_bound(torch.zeros(3))


def test_rune_reward_known_values():
    r = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # [E=2, B=2]: the members differ on the first sample only
    # mean + beta0 (1 - rho)^t population std: 2 + 0.5 * 1, 0 + 0
    assert torch.allclose(rune_reward(r, 0.5, 0.1, 0), torch.tensor([2.5, 0.0]))
    assert torch.allclose(rune_reward(r, 0.5, 0.1, 2), torch.tensor([2.0 + 0.5 * 0.81, 0.0]))  # decayed twice
    assert torch.equal(rune_reward(r, 0.0, 0.1, 0), r.mean(0))  # beta0 = 0: the plain ensemble mean
    with pytest.raises(AssertionError, match="E >= 2"):
        rune_reward(r[:1], 0.5, 0.1, 0)
    with pytest.raises(AssertionError, match="decay in"):
        rune_reward(r, 0.5, 1.0, 0)


def test_bad_noise_is_rejected():
    with pytest.raises(ValueError, match="eps"):
        bt_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), eps=1.0)
