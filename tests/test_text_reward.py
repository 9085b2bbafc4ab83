"""The text reward model: frozen all-MiniLM-L6-v2 + the core's MLP heads, fit with the core's trainer."""

import pytest
import torch

from envs.text_tasks import imdb_reviews, vader_compound
from prefrl import PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, pearson, select_queries
from prefrl.text_reward import SentenceEncoder, TextRewardModel


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def test_encoder_gives_unit_vectors_that_reflect_meaning(encoder):
    e = encoder(["A wonderful film, I loved every minute.", "A great movie that I enjoyed a lot.",
                 "The central bank raised interest rates.", ""])
    assert e.shape == (4, encoder.dim) and encoder.dim == 384
    assert torch.allclose(e[:3].norm(dim=1), torch.ones(3), atol=1e-5)
    assert (e[0] @ e[1]) > (e[0] @ e[2]) + 0.3


def test_reward_model_shapes_and_bad_input(encoder):
    torch.manual_seed(0)
    rm = TextRewardModel(encoder, n_members=3)
    r = rm(["p1", "p2"], ["good", "bad"])
    assert r.shape == (3, 2)
    segs = rm.segments(["p1", "p2"], ["good", "bad"], [0.5, -0.5])
    assert segs.obs.shape == (2, 1, 2 * 384) and segs.true_reward.shape == (2, 1)
    assert torch.allclose(rm.rewards_from_features(segs.obs[:, 0]), r)
    with pytest.raises(ValueError, match="NaN"):
        rm.segments(["p"], ["c"], [float("nan")])
    with pytest.raises(ValueError, match="prompts but"):
        rm(["p"], ["a", "b"])


def test_fit_on_synthetic_sentiment_preferences_generalises(encoder):
    """200 noisy labels of VADER sentiment on real IMDB text -> held-out accuracy and correlation.

    Measured on the project machine: validation accuracy 0.69, correlation 0.40
    on 100 unseen texts (an encoder not trained for sentiment, 200 labels).
    """
    pairs = []
    for review in imdb_reviews()[:500]:
        w = review.split()
        pairs.append((" ".join(w[:6]), " ".join(w[6:26])))
    torch.manual_seed(0)
    rm = TextRewardModel(encoder, n_members=3)
    segs = rm.segments([p for p, _ in pairs], [c for _, c in pairs], [vader_compound(c) for _, c in pairs])
    train, test = segs[:400], segs[400:]
    store = PreferenceStore(seed=0)
    s1, s2 = train[0::2], train[1::2]
    mu, _ = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
    store.add(s1, s2, mu)
    metrics = RewardTrainer(rm.heads, TrainerConfig(seed=0, batch_size=32)).fit(store, epochs=50, min_steps=50)
    assert metrics["rm/val_accuracy"] > 0.6
    r = rm.rewards_from_features(test.obs[:, 0]).mean(0)
    assert pearson(r, test.true_reward[:, 0]) > 0.25
    # queries by disagreement run on text segments unchanged
    idx = select_queries(rm.heads, test[0::2], test[1::2], 5, "disagreement")
    assert idx.shape == (5,) and len(set(idx.tolist())) == 5
