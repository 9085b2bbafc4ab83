"""K-wise rankings (InstructGPT): the oracle's rankings, their pairwise labels, and group queries."""

import math

import pytest
import torch

from prefrl import MLPEnsemble, Segments, SyntheticOracle, ranking_to_pairs, select_groups, select_queries
from prefrl.losses import bt_loss, kwise_ranking_loss


def test_noise_free_rankings_follow_true_returns_with_shared_ranks_for_ties():
    r = torch.tensor([[[1.0], [3.0], [2.0]], [[5.0], [5.0], [0.0]]])  # [G=2, K=3, L=1]
    ranks = SyntheticOracle(noise=0.0).rank(r)
    assert ranks.tolist() == [[2, 0, 1], [0, 0, 2]]


def test_random_rankings_come_at_the_noise_rate_and_are_permutations():
    G, K = 4000, 4
    returns = torch.arange(K, dtype=torch.float32).flip(0).expand(G, K)  # item 0 best, all distinct
    ranks = SyntheticOracle(noise=0.1, seed=1).rank(returns.unsqueeze(-1))
    assert (ranks.sort(1).values == torch.arange(K)).all()  # every row is a permutation
    wrong = (ranks != torch.arange(K)).any(1).float().mean().item()
    expected = 0.1 * (1 - 1 / math.factorial(K))  # a random permutation is right 1 time in K!
    assert abs(wrong - expected) < 0.015
    with pytest.raises(ValueError, match=r"\[G, K >= 2, L\]"):
        SyntheticOracle().rank(torch.zeros(3, 1, 2))


def test_ranking_to_pairs_known_values():
    first, second, mu = ranking_to_pairs(torch.tensor([[1, 0, 1]]))
    assert first.tolist() == [0, 0, 1] and second.tolist() == [1, 2, 2]
    assert mu.tolist() == [0.0, 0.5, 1.0]
    f2, s2, _ = ranking_to_pairs(torch.tensor([[0, 1], [1, 0]]))  # group g's items sit at g * K + k
    assert f2.tolist() == [0, 2] and s2.tolist() == [1, 3]


def test_pairs_of_a_ranking_reproduce_the_kwise_loss():
    rewards = torch.tensor([[0.3, -1.2, 2.0, 0.5]])
    ranks = torch.tensor([[2, 3, 0, 1]])
    first, second, mu = ranking_to_pairs(ranks)
    flat = rewards.reshape(-1)
    pairwise = bt_loss(flat[first], flat[second], mu, eps=0.0)  # mean over the C(4, 2) = 6 pairs
    assert pairwise.item() == pytest.approx(kwise_ranking_loss(rewards, ranks).item(), rel=1e-6)


def _segs(x):
    return Segments(x.reshape(-1, 1, 1), torch.zeros(len(x), 1, dtype=torch.long), torch.zeros(len(x), 1))


def test_group_selection_with_k2_matches_pair_selection_and_checks_input():
    torch.manual_seed(0)
    ens = MLPEnsemble((1,), use_action=False, n_members=3, hidden=(8,))
    a, b = _segs(torch.randn(20)), _segs(torch.randn(20))
    assert torch.equal(select_groups(ens, [a, b], 5), select_queries(ens, a, b, 5))
    c = _segs(torch.randn(20))
    idx = select_groups(ens, [a, b, c], 4, "entropy")
    assert idx.shape == (4,) and len(set(idx.tolist())) == 4
    with pytest.raises(ValueError, match="cannot pick"):
        select_groups(ens, [a, b, c], 21)
    with pytest.raises(ValueError, match="equal length"):
        select_groups(ens, [a, _segs(torch.randn(3))], 1)
