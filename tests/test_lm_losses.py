"""Known values of the token-level PPO math (agents/lm_losses.py)."""

import math

import pytest
import torch

from agents.lm_losses import (
    AdaptiveKLController,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    ppo_clip_loss,
    token_gae,
    value_loss,
)


def test_kl_penalty_per_token_plus_score_on_last_real_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -9.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rewards, kl = kl_penalized_rewards(logp, ref, torch.tensor([2.0, -1.0]), mask, beta=0.1)
    # row 0: -0.1 * (0.5, -1.0) and the score on token 1; the padded token is ignored
    assert torch.allclose(rewards[0], torch.tensor([-0.05, 0.1 + 2.0, 0.0]))
    assert torch.allclose(rewards[1], torch.tensor([-0.1, 0.0, -1.0]))
    assert torch.allclose(kl, torch.tensor([-0.5, 1.0]))


def test_kl_penalty_rejects_an_empty_sequence():
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="at least one real token"):
        kl_penalized_rewards(z, z, torch.zeros(1), torch.zeros(1, 2, dtype=torch.long), 0.1)


def test_gae_with_lambda_one_is_return_to_go_minus_value():
    r = torch.tensor([[1.0, 0.0, 2.0, 5.0]])
    v = torch.tensor([[0.5, 0.5, 0.5, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the 4th token is padding: its reward and value never count
    adv, ret = token_gae(r, v, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[2.5, 1.5, 1.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[3.0, 2.0, 2.0, 0.0]]))


def test_gae_with_lambda_zero_is_the_td_error():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    v = torch.tensor([[0.1, 0.2, 0.3]])
    adv, _ = token_gae(r, v, torch.ones(1, 3), gamma=0.9, lam=0.0)
    expected = torch.tensor([[1.0 + 0.9 * 0.2 - 0.1, 2.0 + 0.9 * 0.3 - 0.2, 3.0 - 0.3]])
    assert torch.allclose(adv, expected)


def test_ppo_loss_unclipped_and_clipped_values():
    mask = torch.ones(1, 1)
    zero = torch.zeros(1, 1)
    loss, info = ppo_clip_loss(zero, zero, torch.tensor([[3.0]]), mask)
    assert loss.item() == pytest.approx(-3.0) and info["clipfrac"].item() == 0.0
    up = torch.full((1, 1), math.log(2.0))  # ratio 2
    loss, info = ppo_clip_loss(up, zero, torch.ones(1, 1), mask, clip=0.2)
    assert loss.item() == pytest.approx(-1.2)  # min(2 * 1, 1.2 * 1)
    assert info["clipfrac"].item() == 1.0
    assert info["approx_kl"].item() == pytest.approx(1.0 - math.log(2.0))  # (rho - 1) - log rho
    loss, _ = ppo_clip_loss(up, zero, -torch.ones(1, 1), mask, clip=0.2)
    assert loss.item() == pytest.approx(2.0)  # min(-2, -1.2): the pessimistic bound is not clipped


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old = torch.zeros(1, 1)
    ret = torch.ones(1, 1)
    v = torch.full((1, 1), 2.0)  # clipped to 0.2: (0.2 - 1)^2 = 0.64 < (2 - 1)^2 = 1
    assert value_loss(v, old, ret, torch.ones(1, 1), clip=0.2).item() == pytest.approx(0.5)
    v = torch.full((1, 1), 0.5)  # clipped to 0.2: 0.64 > 0.25
    assert value_loss(v, old, ret, torch.ones(1, 1), clip=0.2).item() == pytest.approx(0.32)


def test_masked_statistics_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    w = masked_whiten(x, mask)
    assert torch.allclose(w, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4)


def test_adaptive_kl_controller_follows_ziegler_et_al():
    ctl = AdaptiveKLController(value=0.1, target=4.0, horizon=100)
    assert ctl.update(kl=8.0, n=10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # error clipped at +0.2
    ctl = AdaptiveKLController(value=0.1, target=4.0, horizon=100)
    assert ctl.update(kl=3.6, n=10) == pytest.approx(0.1 * (1 - 0.1 * 10 / 100))
    fixed = AdaptiveKLController(value=0.1, target=None)
    assert fixed.update(kl=100.0, n=10) == 0.1


def test_a_floor_stops_beta_winding_down_while_the_kl_is_low():
    free = AdaptiveKLController(value=0.05, target=4.0, horizon=64)
    floored = AdaptiveKLController(value=0.05, target=4.0, horizon=64, floor=0.05)
    for _ in range(35):  # a policy that has not moved yet: KL far below the target
        free.update(kl=0.5, n=16)
        floored.update(kl=0.5, n=16)
    assert free.value == pytest.approx(0.05 * 0.95**35) and floored.value == 0.05
    assert floored.update(kl=8.0, n=16) == pytest.approx(0.05 * 1.05)  # above the floor it adapts as before


def test_an_asymmetric_controller_rises_fast_and_falls_as_before():
    ctl = AdaptiveKLController(value=0.01, target=4.0, horizon=64, up_horizon=16, up_clip=1.0)
    assert ctl.update(kl=8.0, n=16) == pytest.approx(0.02)  # KL at 2x the target: beta doubles in one update
    assert ctl.update(kl=40.0, n=16) == pytest.approx(0.04)  # the error is clipped at up_clip = 1
    assert ctl.update(kl=0.0, n=16) == pytest.approx(0.04 * (1 - 0.2 * 16 / 64))  # down: Ziegler's clip, horizon
    same = AdaptiveKLController(value=0.1, target=4.0, horizon=100, up_horizon=None)
    assert same.update(kl=8.0, n=10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # None: the symmetric rule
