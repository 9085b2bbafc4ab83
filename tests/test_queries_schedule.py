import pytest
import torch

from prefrl.queries import select_queries
from prefrl.reward_model import MLPEnsemble
from prefrl.schedule import LabelSchedule
from prefrl.segments import Segments


def test_disagreement_picks_the_pairs_members_disagree_on():
    ens = MLPEnsemble((2,), (1,), n_members=3, hidden=(8,))
    with torch.no_grad():  # member rewards: e0 = x0, e1 = -x0, e2 = x0 (member 1 disagrees on x0); x1 ignored
        for w in ens.weights:
            w.zero_()
        for b in ens.biases:
            b.zero_()
        ens.weights[0][:, 0, 0] = 1.0
        ens.weights[0][:, 0, 1] = -1.0
        ens.weights[1][[0, 2], 0, 0] = 1.0
        ens.weights[1][[0, 2], 1, 0] = -1.0
        ens.weights[1][1, 0, 0] = -1.0
        ens.weights[1][1, 1, 0] = 1.0
    n, L = 20, 2
    obs1 = torch.zeros(n, L, 2)
    obs2 = torch.zeros(n, L, 2)
    contested = torch.tensor([3, 11, 17])
    obs1[contested, :, 0] = 2.0  # large x0 gap: members 0/2 say s1, member 1 says s2
    obs1[:, :, 1] = torch.randn(n, L)  # differences the model ignores
    act = torch.zeros(n, L, 1)
    s1, s2 = Segments(obs1, act, torch.zeros(n, L)), Segments(obs2, act, torch.zeros(n, L))
    pick = select_queries(ens, s1, s2, 3, "disagreement")
    assert sorted(pick.tolist()) == contested.tolist()
    pick = select_queries(ens, s1, s2, 3, "entropy")
    assert len(set(pick.tolist())) == 3
    pick = select_queries(ens, s1, s2, 3, "gap")  # the only pairs with a return gap (members 0, 2: +2, member 1: -2)
    assert sorted(pick.tolist()) == contested.tolist()
    pick = select_queries(ens, s1, s2, 5, "random", torch.Generator().manual_seed(0))
    assert len(set(pick.tolist())) == 5
    with pytest.raises(ValueError, match="unknown query method"):
        select_queries(ens, s1, s2, 3, "vibes")
    with pytest.raises(ValueError, match="cannot pick"):
        select_queries(ens, s1, s2, 21)


def test_schedule_shape():
    s = LabelSchedule(total_labels=700, total_steps=1_000_000)
    assert s.initial_labels == 175 and s.due(0) == 175
    assert s.due(1_000_000) == 700 and s.due(5_000_000) == 700
    dues = [s.due(t) for t in range(0, 1_000_001, 100_000)]
    assert dues == sorted(dues)
    gains = [b - a for a, b in zip(dues, dues[1:])]
    assert gains == sorted(gains, reverse=True), "the label rate must decay"
    # rate ~ T0/(T+T0): the first tenth of the run (T0 = 0.1 T) gets log(2)/log(11) of the rest
    assert s.due(100_000) - 175 == pytest.approx(525 * 0.289, abs=2)


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="label budget"):
        LabelSchedule(total_labels=-1, total_steps=10)
    with pytest.raises(ValueError, match="total steps"):
        LabelSchedule(total_labels=10, total_steps=0)
    assert LabelSchedule(0, 100).due(50) == 0


def test_gap_finds_the_rare_pairs_that_differ_when_the_members_agree():
    """Where most pairs tie and the members agree on the few that differ, disagreement sees nothing; gap does."""
    ens = MLPEnsemble((2,), (1,), n_members=3, hidden=(8,))
    with torch.no_grad():  # every member: reward = x0
        for w in ens.weights:
            w.zero_()
        for b in ens.biases:
            b.zero_()
        ens.weights[0][:, 0, 0] = 1.0
        ens.weights[1][:, 0, 0] = 1.0
    n, L = 30, 2
    obs1, obs2 = torch.zeros(n, L, 2), torch.zeros(n, L, 2)
    rare = torch.tensor([4, 9, 25])
    obs2[rare, :, 0] = 1.0  # the only pairs whose returns differ (the second clip is better)
    act = torch.zeros(n, L, 1)
    s1, s2 = Segments(obs1, act, torch.zeros(n, L)), Segments(obs2, act, torch.zeros(n, L))
    assert sorted(select_queries(ens, s1, s2, 3, "gap").tolist()) == rare.tolist()
    from prefrl.queries import pair_probabilities, pair_return_gaps

    assert torch.allclose(pair_return_gaps(ens, s1, s2)[:, rare], torch.full((3, 3), -2.0))  # L=2 steps of -1
    assert pair_probabilities(ens, s1, s2).var(0).max() == 0  # the members agree everywhere: no disagreement
