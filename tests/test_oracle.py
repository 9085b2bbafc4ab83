import math

import pytest
import torch

from prefrl.oracle import SyntheticOracle
from prefrl.segments import Segments


def _segs(returns: torch.Tensor, L: int = 5) -> Segments:
    n = len(returns)
    rew = returns[:, None].repeat(1, L) / L
    return Segments(torch.zeros(n, L, 1), torch.zeros(n, L, 1), rew.float())


def test_error_rate_is_about_ten_percent():
    n = 20000
    g = torch.Generator().manual_seed(0)
    R1, R2 = torch.randn(n, generator=g), torch.randn(n, generator=g)
    mu, answered = SyntheticOracle(seed=1).label(_segs(R1), _segs(R2))
    assert answered.all()
    wrong = (mu != (R1 > R2).float()).float().mean().item()
    # a random answer is wrong half the time: expected error 0.1 / 2 = 0.05
    assert wrong == pytest.approx(0.05, abs=0.006)
    assert set(mu.unique().tolist()) <= {0.0, 1.0}


def test_noise_free_oracle_is_exact_and_ties_give_half():
    R1 = torch.tensor([1.0, 2.0, 3.0])
    R2 = torch.tensor([2.0, 2.0, 0.0])
    mu, _ = SyntheticOracle(noise=0.0).label(_segs(R1), _segs(R2))
    assert mu.tolist() == [0.0, 0.5, 1.0]


def test_bpref_teachers():
    R1 = torch.tensor([1.0, 5.0, 0.2])
    R2 = torch.tensor([1.05, 0.0, 0.1])
    mu, _ = SyntheticOracle(noise=0.0, equal_threshold=0.1).label(_segs(R1), _segs(R2))
    assert mu.tolist() == [0.5, 1.0, 0.5]
    _, answered = SyntheticOracle(noise=0.0, skip_threshold=0.5).label(_segs(R1), _segs(R2))
    assert answered.tolist() == [True, True, False]
    mu, _ = SyntheticOracle(noise=0.0, mistake=1.0).label(_segs(R1), _segs(R2))
    assert mu.tolist() == [1.0, 0.0, 0.0]
    # myopic: segment 1 is good early, segment 2 good late; gamma < 1 prefers the late one
    early = Segments(torch.zeros(1, 4, 1), torch.zeros(1, 4, 1), torch.tensor([[1.0, 0, 0, 0]]))
    late = Segments(torch.zeros(1, 4, 1), torch.zeros(1, 4, 1), torch.tensor([[0, 0, 0, 0.9]]))
    assert SyntheticOracle(noise=0.0).label(early, late)[0].item() == 1.0
    assert SyntheticOracle(noise=0.0, gamma=0.5).label(early, late)[0].item() == 0.0


def test_boltzmann_rationality_matches_sigmoid():
    n = 20000
    R1, R2 = torch.full((n,), 1.0), torch.zeros(n)
    mu, _ = SyntheticOracle(noise=0.0, beta=1.0, seed=2).label(_segs(R1), _segs(R2))
    assert mu.mean().item() == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)


def test_same_seed_same_labels_and_bad_input():
    R1, R2 = torch.randn(500), torch.randn(500)
    a, _ = SyntheticOracle(seed=7).label(_segs(R1), _segs(R2))
    b, _ = SyntheticOracle(seed=7).label(_segs(R1), _segs(R2))
    c, _ = SyntheticOracle(seed=8).label(_segs(R1), _segs(R2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="probability"):
        SyntheticOracle(noise=1.5)
    for name in ("beta", "equal_threshold", "skip_threshold", "noise"):
        with pytest.raises(ValueError, match=f"{name} is NaN"):
            SyntheticOracle(**{name: float("nan")})
    # a NaN true return leaves that pair unanswered (with a warning); the other pairs are labeled as usual
    with pytest.warns(UserWarning, match="1 of 3 pairs have a NaN true return"):
        mu, answered = SyntheticOracle(noise=0.0).label(_segs(torch.tensor([float("nan"), 2.0, 0.0])),
                                                        _segs(torch.tensor([0.0, 1.0, 1.0])))
    assert answered.tolist() == [False, True, True] and mu[1:].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="cannot pair"):
        SyntheticOracle().label(_segs(R1), _segs(R2[:3]))
