"""Text reward models over completions stored as text: bytes round trip, frozen and fine-tuned ensembles."""

import pytest
import torch

from envs.text_tasks import imdb_reviews, vader_compound
from prefrl import (PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, kwise_ranking_loss, pearson,
                    select_queries)
from prefrl.text_reward import (FineTunedTextEnsemble, FrozenTextEnsemble, SentenceEncoder, decode_texts,
                                encode_texts, text_segments, text_width)

W = 2 + 4 * 60  # bytes per text in these tests


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def test_encoder_gives_unit_vectors_that_reflect_meaning(encoder):
    e = encoder(["A wonderful film, I loved every minute.", "A great movie that I enjoyed a lot.",
                 "The central bank raised interest rates.", ""])
    assert e.shape == (4, encoder.dim) and encoder.dim == 384
    assert torch.allclose(e[:3].norm(dim=1), torch.ones(3), atol=1e-5)
    assert (e[0] @ e[1]) > (e[0] @ e[2]) + 0.3


def test_texts_round_trip_exactly_through_bytes_and_the_store(tmp_path):
    prompts = ["This film", "", "Ünïcödé ☃ and\nnewlines\t", "x" * (W - 2)]
    completions = [" was great.", " \x00 nul inside", "", "emoji 😀 " * 3]
    obs = encode_texts(prompts, completions, W)
    assert obs.shape == (4, 2, W) and obs.dtype == torch.uint8
    assert decode_texts(obs) == (prompts, completions)
    # through the SQLite store (compressed blobs) and back, as a refit or an export reads them
    seg = text_segments(prompts, completions, [0.1, 0.2, 0.3, 0.4], W)
    store = PreferenceStore(tmp_path / "labels.sqlite")
    store.add(seg[:2], seg[2:], torch.tensor([1.0, 0.0]))
    store.close()
    again = PreferenceStore(tmp_path / "labels.sqlite").tensors()["obs"]  # [2, 2, 1, 2, W]
    p, c = decode_texts(again[:, 0])
    assert (p, c) == (prompts[:2], completions[:2])
    p, c = decode_texts(again[:, 1])
    assert (p, c) == (prompts[2:], completions[2:])
    assert (tmp_path / "labels.sqlite").stat().st_size < 40_000  # the zero padding compresses


def test_last_pool_reads_each_row_s_last_real_token():
    from prefrl.text_reward import _last_pool

    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # [B=2, T=4, d=1]
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # right- and left-padded
    assert _last_pool(hidden, mask).flatten().tolist() == [2.0, 7.0]


def test_text_bytes_bad_input():
    with pytest.raises(ValueError, match=r"use width >= 12"):
        encode_texts(["p"], ["0123456789"], 11)
    with pytest.raises(ValueError, match="prompts but"):
        encode_texts(["p"], ["a", "b"], W)
    junk = torch.full((1, 2, 8), 255, dtype=torch.uint8)
    with pytest.raises(ValueError, match="not encode_texts bytes"):
        decode_texts(junk)


def test_text_width_bounds_any_token_sequence():
    from envs.tiny_lm import byte_level_tokenizer

    tok = byte_level_tokenizer()
    n = 12
    width = text_width(tok, n)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):  # random byte tokens, including cut UTF-8 sequences
        ids = torch.randint(0, 256, (n,), generator=g).tolist()
        text = tok.decode(ids)
        assert len(text.encode("utf-8")) + 2 <= width
        assert decode_texts(encode_texts([text], [text], width)) == ([text], [text])


def _review_pairs(n: int):
    pairs = []
    for review in imdb_reviews()[:n]:
        w = review.split()
        pairs.append((" ".join(w[:6]), " ".join(w[6:26])))
    return pairs


@pytest.mark.slow
def test_frozen_ensemble_fits_sentiment_preferences(encoder):
    """200 noisy labels of VADER sentiment on real IMDB text -> held-out accuracy and correlation.

    Measured on the project machine: validation accuracy 0.69, correlation 0.40
    on 100 unseen texts (an encoder not trained for sentiment, 200 labels).
    """
    pairs = _review_pairs(500)
    torch.manual_seed(0)
    rm = FrozenTextEnsemble(encoder, 2 + 4 * 400, n_members=3)
    segs = rm.segments([p for p, _ in pairs], [c for _, c in pairs], [vader_compound(c) for _, c in pairs])
    assert segs.obs.shape == (500, 1, 2, 2 + 4 * 400)
    train, test = segs[:400], segs[400:]
    store = PreferenceStore(seed=0)
    s1, s2 = train[0::2], train[1::2]
    mu, _ = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
    store.add(s1, s2, mu)
    metrics = RewardTrainer(rm, TrainerConfig(seed=0, batch_size=32)).fit(store, epochs=50, min_steps=50)
    assert metrics["rm/val_accuracy"] > 0.6
    r = rm.rewards(test.obs[:, 0])
    assert r.shape == (3, 100)
    assert pearson(r.mean(0), test.true_reward[:, 0]) > 0.25
    idx = select_queries(rm, test[0::2], test[1::2], 5, "disagreement")  # queries run on text segments unchanged
    assert idx.shape == (5,) and len(set(idx.tolist())) == 5


@pytest.fixture(scope="module")
def tuned():
    torch.manual_seed(0)
    return FineTunedTextEnsemble(W, n_members=2, train_layers=2, trunk_lr=1e-4)


@pytest.mark.slow
def test_fine_tuned_ensemble_learns_a_simple_preference(tuned):
    """Completions that praise beat completions that pan; the trunk's top blocks move, the rest stay."""
    good = ["an excellent, moving film", "wonderful acting and a great story", "I loved it, brilliant",
            "a superb and delightful movie", "great fun, highly recommended", "beautiful and touching"]
    bad = ["a terrible, boring film", "awful acting and a dull story", "I hated it, dreadful",
           "a horrible and painful movie", "bad, avoid it", "ugly and stupid"]
    prompts = ["The movie was", "I thought it", "Overall", "This one is", "My verdict:", "In short"]
    g = torch.Generator().manual_seed(0)
    P, C1, C2, mu = [], [], [], []
    for i in range(48):
        a, b = torch.randint(6, (2,), generator=g).tolist()
        flip = i % 2 == 0
        P.append(prompts[i % 6])
        C1.append(good[a] if flip else bad[b])
        C2.append(bad[b] if flip else good[a])
        mu.append(1.0 if flip else 0.0)
    s1, s2 = tuned.segments(P, C1, mu), tuned.segments(P, C2, [1 - m for m in mu])
    store = PreferenceStore(seed=0)
    store.add(s1, s2, torch.tensor(mu))
    frozen_before = {n: p.clone() for n, p in tuned.trunk.named_parameters() if not p.requires_grad}
    top_before = [p.clone() for p in tuned.trunk.parameters() if p.requires_grad]
    RewardTrainer(tuned, TrainerConfig(seed=0, batch_size=16, lr=3e-3)).fit(store, epochs=6)
    unseen = tuned.score(["It was", "It was", "Honestly", "Honestly"],
                         ["a wonderful, great movie", "a dreadful, boring movie",
                          "I loved it", "I hated it"])  # [E, 4]
    assert unseen.shape == (2, 4)
    assert (unseen[:, 0] > unseen[:, 1]).all() and (unseen[:, 2] > unseen[:, 3]).all()
    assert all(torch.equal(p, frozen_before[n]) for n, p in tuned.trunk.named_parameters() if not p.requires_grad)
    assert any(not torch.equal(a, b) for a, b in zip(top_before, (p for p in tuned.trunk.parameters() if p.requires_grad)))
    groups = {g["lr"] for g in RewardTrainer(tuned).optimizer.param_groups}
    assert groups == {1e-3, 1e-4}  # heads at the trainer's rate, the trunk at trunk_lr


def test_kwise_loss_trains_through_the_fine_tuned_model(tuned):
    """The K-wise ranking loss on [G, K] rewards of ranked completions backpropagates into the trunk."""
    comps = [["superb, wonderful", "fine, decent", "dull, awful"], ["a joy to watch", "watchable", "a disaster"]]
    obs = torch.stack([tuned.encode(["Verdict:"] * 3, c) for c in comps])  # [G, K, 2, W], best first
    opt = torch.optim.Adam(tuned.parameter_groups(1e-3))
    losses = []
    for _ in range(5):
        r = tuned(obs, torch.zeros(2, 3, dtype=torch.long))  # [E, G, K]
        loss = sum(kwise_ranking_loss(r[e]) for e in range(tuned.n_members))
        opt.zero_grad()
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.trunk.parameters() if p.requires_grad)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
