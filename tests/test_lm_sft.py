"""Supervised fine-tuning (agents/lm_sft.py) with a tiny Llama on the byte-level tokenizer (fast on a CPU)."""

import copy
import math

import pytest
import torch

from agents.lm_losses import lm_loss
from agents.lm_ppo import LMPPO, LMPPOConfig, ptx_batch_from_texts
from agents.lm_sft import SFTConfig, sft_texts, supervised_finetune
from envs.tiny_lm import byte_level_tokenizer, tiny_causal_lm
from envs.text_tasks import ImdbPositiveTask, imdb_reviews


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(byte_level_tokenizer(), num_layers=2, seed=0)


@pytest.fixture(scope="module")
def reviews():
    return sft_texts("imdb-positive", n_train=64, n_eval=16, seed=0)


def _cfg(**kw):
    return SFTConfig(**{"steps": 4, "batch_size": 8, "max_tokens": 64, "lr": 1e-2, "train_layers": 1, **kw})


# ---------------------------------------------------------------- lm_loss


def test_lm_loss_uniform_logits_is_log_vocab():
    V = 7
    ids = torch.randint(V, (3, 5), generator=torch.Generator().manual_seed(0))
    loss = lm_loss(torch.zeros(3, 5, V), ids, torch.ones(3, 5, dtype=torch.long))
    assert loss.shape == () and loss.item() == pytest.approx(math.log(V))


def test_lm_loss_known_value_and_padding_ignored():
    V, a = 5, 2.0
    ids = torch.tensor([[1, 3, 4, 0], [2, 2, 0, 0]])
    am = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # row 0 right-padded, row 1 left-padded
    logits = torch.zeros(2, 4, V)
    # the real next-token pairs: row 0 (0->1: 3), (1->2: 4); row 1 (1->2: 0), (2->3: 0)
    logits[0, 0, 3] = logits[0, 1, 4] = logits[1, 1, 0] = logits[1, 2, 0] = a
    expected = -math.log(math.exp(a) / (math.exp(a) + V - 1))
    assert lm_loss(logits, ids, am).item() == pytest.approx(expected)
    # whatever sits at padded positions (as context or as target) changes nothing
    noisy = logits.clone()
    noisy[0, 2:] = torch.randn(2, V) * 50  # position 2 predicts the pad at 3; 3 predicts nothing
    noisy[1, 0] = torch.randn(V) * 50  # the pad at 0 "predicts" the first real token
    assert lm_loss(noisy, ids, am).item() == pytest.approx(expected)
    assert lm_loss(logits, ids, torch.zeros_like(am)).item() == 0.0  # no real pair: 0, not NaN


def test_lm_loss_asserts_shapes():
    with pytest.raises(AssertionError, match=r"logits must be \[B, T, V\]"):
        lm_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3))
    with pytest.raises(AssertionError, match="input_ids must be"):
        lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4))


def test_ppo_pretraining_loss_is_lm_loss_and_unchanged(lm):
    model, tok = lm
    ppo = LMPPO(copy.deepcopy(model), tok, LMPPOConfig(train_layers=1), device="cpu")
    ids, am = ptx_batch_from_texts(tok, ["A fine film with a good cast.", "Bad."])
    with torch.no_grad():
        got = ppo.pretraining_loss(ids, am)
        logits = ppo.model(input_ids=ids, attention_mask=am).logits[:, :-1].float()
    # the formula pretraining_loss had before it called lm_loss (right-padded batches)
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                            reduction="none")
    m = am[:, 1:].reshape(-1).float()
    assert got.item() == pytest.approx(((nll * m).sum() / m.sum()).item(), rel=1e-6)


# ---------------------------------------------------------------- supervised_finetune


def test_sft_lowers_the_loss_on_held_out_reviews(lm, reviews):
    model, tok = lm
    train, held_out = reviews
    assert not set(train) & set(held_out)
    sft = copy.deepcopy(model)
    m = supervised_finetune(sft, tok, train, held_out, _cfg(steps=20, eval_every=10))
    # the held-out loss before training is the token mean over all held-out texts
    ids, am = ptx_batch_from_texts(tok, held_out, 64)
    with torch.no_grad():
        assert m["sft/eval_loss_before"] == pytest.approx(lm_loss(model(input_ids=ids, attention_mask=am).logits,
                                                                  ids, am).item(), rel=1e-5)
    assert m["sft/eval_loss_after"] < m["sft/eval_loss_before"] - 0.2, m
    assert [s for s, _ in m["sft/curve"]] == [0, 10, 20]
    assert m["sft/curve"][0][1] == m["sft/eval_loss_before"] and m["sft/curve"][-1][1] == m["sft/eval_loss_after"]
    assert m["sft/steps"] == 20 and m["sft/seconds"] > 0 and m["sft/tokens_per_second"] > 0
    assert math.isfinite(m["sft/train_loss_last"])
    # the tuned model's held-out loss, measured afresh, is the reported one
    with torch.no_grad():
        assert lm_loss(sft(input_ids=ids, attention_mask=am).logits, ids, am).item() == pytest.approx(
            m["sft/eval_loss_after"], rel=1e-5)
    assert "sft/curve" not in supervised_finetune(copy.deepcopy(model), tok, train, held_out, _cfg(steps=1))


def test_same_seed_same_weights_other_seed_differs(lm, reviews):
    model, tok = lm
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = copy.deepcopy(model)
        supervised_finetune(runs[name], tok, *reviews, _cfg(seed=seed))
    sa, sb, sc = (runs[k].state_dict() for k in "abc")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)  # another batch order


def test_only_the_top_blocks_and_final_norm_change(lm, reviews):
    model, tok = lm
    sft = copy.deepcopy(model)
    sft.model.layers[0].mlp.up_proj.weight.requires_grad_(False)  # a caller's own flag, to be restored
    flags = {n: p.requires_grad for n, p in sft.named_parameters()}
    sft.train()
    supervised_finetune(sft, tok, *reviews, _cfg(train_layers=1))
    before, after = dict(model.named_parameters()), dict(sft.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    trainable = {n for n in before if n.startswith(("model.layers.1.", "model.norm."))}
    assert changed == trainable  # the bottom block and the (tied) embeddings are bit-identical
    assert {n: p.requires_grad for n, p in sft.named_parameters()} == flags
    assert not sft.training and all(p.grad is None for p in sft.parameters())


def test_bad_input_is_a_clear_error(lm, reviews):
    model, tok = lm
    train, held_out = reviews
    for kw, match in ((dict(steps=0), "steps must be an int >= 1"), (dict(batch_size=0), "batch_size"),
                      (dict(max_tokens=1), "max_tokens"), (dict(lr=0.0), "lr must be"),
                      (dict(lr=float("nan")), "lr must be"), (dict(train_layers=0), "train_layers"),
                      (dict(eval_every=-1), "eval_every")):
        with pytest.raises(ValueError, match=match):
            SFTConfig(**kw)
    cases = (([], held_out, "train_texts is empty"), (train, [], "eval_texts is empty"),
             (train[:3] + ["  "], held_out, r"train_texts\[3\] is blank"),
             (train, [held_out[0], 7], r"eval_texts\[1\] has type int, not str"),
             ("one review", held_out, "not one string"))
    for tr, ev, match in cases:
        with pytest.raises(ValueError, match=match):
            supervised_finetune(copy.deepcopy(model), tok, tr, ev, _cfg())
    with pytest.raises(ValueError, match="single token"):
        supervised_finetune(copy.deepcopy(model), tok, ["a", "b"], held_out, _cfg())
    with pytest.raises(ValueError, match="not this model's tokenizer"):
        supervised_finetune(copy.deepcopy(model), _FakeBigTokenizer(tok), train, held_out, _cfg())


class _FakeBigTokenizer:
    """A tokenizer that claims more tokens than the model embeds."""

    def __init__(self, tok):
        self._tok = tok

    def __len__(self):
        return len(self._tok) + 100

    def __getattr__(self, name):
        return getattr(self._tok, name)


# ---------------------------------------------------------------- sft_texts


def test_sft_texts_disjoint_deterministic_and_not_label_filtered():
    train, held_out = sft_texts("imdb-positive", n_train=300, n_eval=40, seed=0)
    assert len(train) == 300 and len(held_out) == 40
    assert len(set(train)) == 300 and len(set(held_out)) == 40 and not set(train) & set(held_out)
    assert sft_texts("imdb-positive", 300, 40, seed=0) == (train, held_out)
    assert sft_texts("imdb-positive", 300, 40, seed=1)[1] != held_out
    assert sft_texts("imdb-positive", 10, 40, seed=0)[1] == held_out  # the held-out set does not depend on n_train
    everything, pos = set(imdb_reviews()), set(imdb_reviews(1))
    assert set(train) <= everything  # whole reviews, as the task's prompts are
    n_pos = sum(t in pos for t in train)
    assert 100 < n_pos < 200  # both labels, about half each: no sentiment filtering


def test_sft_texts_too_few_texts_is_a_clear_error():
    task = ImdbPositiveTask(prompts=["one review", "another review", "one review", "a third"])
    train, held_out = sft_texts(task, n_train=2, n_eval=1, seed=0)
    assert sorted(train + held_out) == ["a third", "another review", "one review"]  # the duplicate skipped
    with pytest.raises(ValueError, match="3 distinct non-blank texts"):
        sft_texts(task, n_train=3, n_eval=1)
    with pytest.raises(ValueError, match="has 4 texts, fewer than n_train \\+ n_eval"):
        sft_texts(task, n_train=4, n_eval=1)
    with pytest.raises(ValueError, match="n_eval must be an int >= 1"):
        sft_texts(task, n_train=1, n_eval=0)
