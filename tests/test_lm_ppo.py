"""Token-level PPO on TextGen-v0 envs with a tiny randomly initialised Llama."""

import pytest
import torch

from agents.lm_ppo import LMPPO, LMPPOConfig, ptx_batch_from_texts
from envs.tiny_lm import tiny_causal_lm
from envs.textgen import TextGenEnv


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(seed=0)


def _ppo(lm, **kw):
    model, tok = lm
    cfg = LMPPOConfig(**{"minibatch_size": 2, "train_layers": 1, **kw})
    import copy

    return LMPPO(copy.deepcopy(model), tok, cfg, device="cpu")


def _envs(tok, n=4, new=(2, 6, 4, 6)):
    """Envs with different max_new_tokens, so rows end at different steps and padding is exercised."""
    return [TextGenEnv("imdb-positive", tokenizer=tok, max_new_tokens=new[i % len(new)], prompt_tokens=(3, 9))
            for i in range(n)]


def test_rollout_shapes_pairs_and_env_scores(lm):
    ppo = _ppo(lm)
    envs = _envs(lm[1])
    ro = ppo.rollout(envs, [5, 5, 7, 8])
    B, N = ro.response_ids.shape
    assert B == 4 and N <= 6
    assert ro.query_ids.shape == ro.query_mask.shape and ro.logprobs.shape == (B, N)
    # left padding: every prompt ends at the last column
    assert (ro.query_mask[:, -1] == 1).all()
    assert ro.prompts[0] == ro.prompts[1]  # equal reset seeds share the prompt: a comparable pair
    assert ro.response_mask.sum(1).tolist() == [2, 6, 4, 6]  # each row ends when its env ends
    assert (ro.response_ids[0, 2:] == ppo.pad_id).all() and (ro.logprobs[0, 2:] == 0).all()
    for i, env in enumerate(envs):  # the env saw exactly the sampled tokens and scored them
        n = int(ro.response_mask[i].sum())
        assert env.completion_ids.tolist() == ro.response_ids[i, :n].tolist()
        assert ro.true_scores[i].item() == pytest.approx(env.task.score(ro.completions[i], ro.prompts[i]))
    assert (ro.logprobs <= 0).all()


def test_kv_cached_logprobs_match_a_full_forward_pass(lm):
    ppo = _ppo(lm)
    ro = ppo.rollout(_envs(lm[1]), [1, 1, 2, 3])
    sc = ppo.score_rollout(ro)
    m = ro.response_mask.bool()
    assert torch.allclose(sc["logp"][m], ro.logprobs[m], atol=1e-4)
    assert torch.allclose(sc["ref_logp"][m], ro.logprobs[m], atol=1e-4)  # no update yet: policy == reference
    # left padding and position ids change nothing: each row alone, unpadded, gives the same log-probs
    model = ppo.model
    for i in range(len(ro.prompts)):
        n = int(ro.response_mask[i].sum())
        ids = torch.cat([ro.query_ids[i][ro.query_mask[i].bool()], ro.response_ids[i, :n]]).unsqueeze(0)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -n - 1 : -1, : ppo.vocab_size].float()
        alone = torch.log_softmax(logits, -1).gather(1, ro.response_ids[i, :n, None]).squeeze(1)
        assert torch.allclose(alone, ro.logprobs[i, :n], atol=1e-4), i


def test_same_seed_same_rollout(lm):
    a = _ppo(lm, seed=3).rollout(_envs(lm[1]), [1, 1, 2, 2])
    b = _ppo(lm, seed=3).rollout(_envs(lm[1]), [1, 1, 2, 2])
    assert torch.equal(a.response_ids, b.response_ids) and a.completions == b.completions
    ppo = _ppo(lm, seed=0)  # another seed's stream, restarted at seed 3: the same rollout again
    ppo.rollout(_envs(lm[1]), [1, 1, 2, 2])
    ppo.reseed_sampling(3)
    assert torch.equal(ppo.rollout(_envs(lm[1]), [1, 1, 2, 2]).response_ids, a.response_ids)


def test_rollout_temperature_overrides_the_config_for_one_call(lm):
    """A near-zero temperature samples the argmax token at every step: equal prompts give equal completions,
    whatever the sampling seed; at the config's temperature (1) they differ; a bad temperature is refused."""
    envs = _envs(lm[1], new=(6,))
    cold = [_ppo(lm, seed=s).rollout(envs, [1, 1, 1, 1], temperature=1e-4) for s in (0, 1)]
    assert cold[0].completions == cold[1].completions and len(set(cold[0].completions)) == 1
    warm = _ppo(lm, seed=0).rollout(envs, [1, 1, 1, 1])
    assert len(set(warm.completions)) > 1
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        _ppo(lm).rollout(envs, [1, 1, 1, 1], temperature=0)


def test_ppo_raises_the_probability_of_the_rewarded_completion(lm):
    ppo = _ppo(lm, lr=3e-3, ppo_epochs=4, init_kl_coef=0.0, target_kl=None)
    ro = ppo.rollout(_envs(lm[1]), [1, 2, 3, 4])
    before = ppo.score_rollout(ro)["logp"]
    frozen = {n: p.clone() for n, p in ppo.model.named_parameters() if not p.requires_grad}
    scores = torch.tensor([1.0, -1.0, -1.0, -1.0])
    for _ in range(3):
        metrics = ppo.update(ro, scores)
    after = ppo.score_rollout(ro)["logp"]
    m = ro.response_mask.float()
    gain = ((after - before) * m).sum(1)
    assert gain[0] > 0 and gain[0] > gain[1:].max()
    for n, p in ppo.model.named_parameters():  # only the top block (and final norm) trained
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["kl/mean"] != 0.0  # the policy moved away from the reference


def test_update_rejects_bad_scores_and_missing_ptx(lm):
    ppo = _ppo(lm)
    ro = ppo.rollout(_envs(lm[1], n=2), [1, 2])
    with pytest.raises(ValueError, match="one score per completion"):
        ppo.update(ro, torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        ppo.update(ro, torch.tensor([0.0, float("nan")]))
    ptx = _ppo(lm, ptx_coef=0.5)
    with pytest.raises(ValueError, match="ptx_batch"):
        ptx.update(ro, torch.zeros(2))
    batch = ptx_batch_from_texts(lm[1], ["A fine film with a good cast.", "Bad."])
    metrics = ptx.update(ro, torch.zeros(2), batch)
    assert metrics["ppo/ptx_loss"] > 0


def test_cuda_request_without_cuda_is_a_clear_error(lm):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="no CUDA"):
        LMPPO(lm[0], lm[1], device="cuda")


def test_train_layers_none_trains_every_block_even_of_a_frozen_copy(lm):
    import copy

    model = copy.deepcopy(lm[0])
    for p in model.parameters():  # e.g. a copy of a reference that another LMPPO froze
        p.requires_grad_(False)
    ppo = LMPPO(model, lm[1], LMPPOConfig(train_layers=None), device="cpu")
    assert all(p.requires_grad for p in ppo.model.parameters())
    assert not any(p.requires_grad for p in ppo.ref_model.parameters())
    top = LMPPO(copy.deepcopy(lm[0]), lm[1], LMPPOConfig(train_layers=1), device="cpu")
    n_train = sum(p.numel() for p in top.model.parameters() if p.requires_grad)
    assert 0 < n_train < sum(p.numel() for p in top.model.parameters())


def _trained_pair(lm, share: bool, ref_differs: bool = False):
    """Scores before and after one update, and the update's metrics, with or without the shared trunk."""
    import copy

    model, tok = lm
    ref = copy.deepcopy(model)
    if ref_differs:  # a reference whose bottom block is not the policy's: it must run whole
        with torch.no_grad():
            next(ref.model.layers[0].parameters()).add_(0.01)
    torch.manual_seed(0)
    ppo = LMPPO(copy.deepcopy(model), tok, LMPPOConfig(train_layers=1, minibatch_size=2, share_trunk=share, seed=0),
                device="cpu", ref_model=ref)
    ro = ppo.rollout(_envs(tok), [1, 1, 2, 2])
    before = ppo.score_rollout(ro)
    metrics = ppo.update(ro, torch.tensor([0.1, 0.5, -0.2, 0.3]))
    return ppo, before, metrics, ppo.score_rollout(ro)


@pytest.mark.parametrize("ref_differs", [False, True])
def test_the_shared_trunk_gives_the_whole_model_s_scores_and_update(lm, ref_differs):
    whole, *a = _trained_pair(lm, share=False, ref_differs=ref_differs)
    cut, *b = _trained_pair(lm, share=True, ref_differs=ref_differs)
    assert whole._cut is None and cut._cut is not None and cut._cut.cut == 1  # tiny: 2 blocks, the top one trains
    assert cut._ref_shares is not ref_differs
    for x, y in ((a[0], b[0]), (a[2], b[2])):  # before and after the update
        for k in ("logp", "values", "ref_logp"):
            torch.testing.assert_close(x[k], y[k], rtol=1e-5, atol=1e-6)
    for k in ("ppo/policy_loss", "ppo/value_loss", "kl/mean", "ppo/approx_kl"):
        assert a[1][k] == pytest.approx(b[1][k], rel=1e-4, abs=1e-7)
    assert any((p != 0).any() for p in cut.value_head.parameters())  # the update trained something


def test_trunk_cut_refuses_a_cut_outside_the_blocks(lm):
    from agents.lm_trunk import TrunkCut, cut_below_trained

    with pytest.raises(ValueError, match=r"cut must be in \[1, 1\]"):
        TrunkCut(lm[0], 2)
    assert cut_below_trained(lm[0], lm[0], None) == (None, False)  # everything trains: nothing to share
    assert cut_below_trained(lm[0], lm[0], 2) == (None, False)  # every block trains
