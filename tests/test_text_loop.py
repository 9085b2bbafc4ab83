"""The core text preference loop, without the benchmark CLI: schedule, store of texts, export, reward."""

import pytest
import torch

from envs.text_tasks import imdb_reviews, vader_compound
from prefrl import PreferenceStore, SyntheticOracle, TextLoopConfig, TextPreferenceLoop, iter_records, pearson
from prefrl.store import TEXT_FORMAT
from prefrl.text_loop import within_group_pairs
from prefrl.text_reward import FrozenTextEnsemble, SentenceEncoder, decode_texts

W = 2 + 4 * 200


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def rollouts(n_rollouts: int, batch: int, k: int, offset: int = 0):
    """Real review text as a stand-in policy: K continuations (other reviews' words) per prompt."""
    reviews = imdb_reviews()
    i = offset
    for _ in range(n_rollouts):
        prompts, completions = [], []
        for _ in range(batch // k):
            prompt = " ".join(reviews[i].split()[:6])
            for j in range(k):
                completions.append(" ".join(reviews[i + 1 + j].split()[6:26]))
                prompts.append(prompt)
            i += k + 1
        yield prompts, completions, [vader_compound(c) for c in completions]


@pytest.mark.slow
def test_loop_labels_on_schedule_stores_text_and_learns(tmp_path, encoder):
    torch.manual_seed(0)
    cfg = TextLoopConfig(labels=120, total_completions=20 * 16, pool_rollouts=8, round_completions=32,
                         initial_steps=200, refit_steps=40, seed=0)
    loop = TextPreferenceLoop.with_store_file(tmp_path / "labels.sqlite", FrozenTextEnsemble(encoder, W),
                                              SyntheticOracle(noise=0.1, seed=0), cfg)
    added = {}
    gen = rollouts(27, 16, 2)
    for _ in range(7):  # candidates from the "initial policy"
        p, c, s = next(gen)
        loop.add_rollout(p, c, s)
        added.update({(pp, cc): ss for pp, cc, ss in zip(p, c, s)})
    assert loop.label_due(0) == loop.schedule.initial_labels == 30
    corr = []
    for it in range(20):
        p, c, s = next(gen)
        added.update({(pp, cc): ss for pp, cc, ss in zip(p, c, s)})
        segs = loop.add_rollout(p, c, s)
        reward, raw = loop.reward(segs)
        assert reward.shape == raw.shape == (16,)
        corr.append(pearson(raw, torch.tensor(s)))
        n = loop.label_due((it + 1) * 16)
        assert n == 0 or (it + 1) * 16 % 32 == 0  # labels come in rounds of 32 completions
    assert loop.labels_used == 120 == loop.schedule.due(20 * 16)
    assert len(loop.pool.entries) <= 8
    assert sum(corr[-5:]) / 5 > 0.2  # the learned reward follows VADER on completions it never saw labeled
    loop.store.close()
    # the store holds the texts: every stored pair decodes to a (prompt, completion) the loop was given
    store = PreferenceStore(tmp_path / "labels.sqlite")
    assert store.meta["obs_format"] == TEXT_FORMAT and store.total_added == loop.pairs_labeled
    obs = store.tensors()["obs"]
    for side in (0, 1):
        prompts, completions = decode_texts(obs[:, side])
        for p, c, r in zip(prompts, completions, store.tensors()["true_reward"][:, side, 0]):
            assert added[(p, c)] == pytest.approx(float(r))
    store.close()
    # and its export reads as prompt / chosen / rejected
    recs = list(iter_records(tmp_path / "labels.sqlite"))
    assert len(recs) == loop.pairs_labeled
    for rec in recs:
        assert rec["prompt"] and (rec["prompt"], rec["completion_0"]) in added
        if rec["mu"] == 1.0:
            assert (rec["chosen"], rec["rejected"]) == (rec["completion_0"], rec["completion_1"])
        elif rec["mu"] == 0.0:
            assert (rec["chosen"], rec["rejected"]) == (rec["completion_1"], rec["completion_0"])
        else:
            assert rec["chosen"] is None and rec["rejected"] is None


def test_loop_with_rankings_stores_all_pairs(encoder):
    cfg = TextLoopConfig(labels=12, total_completions=4 * 12, rank_k=3, round_completions=12, initial_steps=5,
                         refit_steps=2)
    loop = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(noise=0.0, seed=1), cfg)
    for it, (p, c, s) in enumerate(rollouts(6, 12, 3)):
        loop.add_rollout(p, c, s)
        if it >= 1:
            loop.label_due((it - 1) * 12)
    assert loop.labels_used == 12 and loop.pairs_labeled == 36 == len(loop.store)


def test_within_group_pairs_known_values():
    a, b = within_group_pairs(8, 4)
    assert a.tolist() == [0, 0, 0, 1, 1, 2, 4, 4, 4, 5, 5, 6]
    assert b.tolist() == [1, 2, 3, 2, 3, 3, 5, 6, 7, 6, 7, 7]
    assert [t.tolist() for t in within_group_pairs(4, 2)] == [[0, 2], [1, 3]]  # groups of 2: the pairs as drawn
    with pytest.raises(ValueError, match="groups of 3"):
        within_group_pairs(8, 3)


@pytest.mark.parametrize("query", ["disagreement", "gap"])
def test_loop_pairs_from_larger_groups(encoder, query):
    """group_size 4: every pair of a prompt's 4 completions is a candidate, and the pairs asked share a prompt."""
    cfg = TextLoopConfig(labels=20, total_completions=5 * 16, group_size=4, round_completions=16, initial_steps=5,
                         refit_steps=2, seed=0, query=query)
    loop = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(noise=0.0, seed=1), cfg)
    gen = rollouts(8, 16, 4)
    for _ in range(2):  # 2 rollouts of 4 prompts x 4 completions: 2 x 4 x 6 candidate pairs
        loop.add_rollout(*next(gen))
    assert len(loop.pool) == 48
    assert loop.label_due(0) == loop.schedule.initial_labels == 5
    assert len(loop.pool) == 43  # the asked pairs leave; their completions stay in the other pairs
    for it in range(5):
        loop.add_rollout(*next(gen))
        loop.label_due((it + 1) * 16)
    assert loop.labels_used == 20 == loop.pairs_labeled == len(loop.store)
    prompts0, _ = decode_texts(loop.store.tensors()["obs"][:, 0])
    prompts1, _ = decode_texts(loop.store.tensors()["obs"][:, 1])
    assert prompts0 == prompts1
    with pytest.raises(ValueError, match="groups of group_size=4"):
        loop.add_rollout(["a"] * 6, list("uvwxyz"), [0.0] * 6)
    with pytest.raises(ValueError, match="group_size=3 out of range"):
        TextLoopConfig(rank_k=4, group_size=3)
    with pytest.raises(ValueError, match="larger groups are for pairs"):
        TextLoopConfig(rank_k=3, group_size=6)


@pytest.mark.parametrize("norm", ["initial", "recent"])
def test_learned_reward_scale_is_fixed_on_the_named_completions(encoder, norm):
    """After every fit the reward has mean 0 and std reward_std over the initial completions (``initial``: kept
    from the first fit, whatever the policy samples later) or over the last pool_rollouts rollouts (``recent``)."""
    torch.manual_seed(0)
    cfg = TextLoopConfig(labels=24, total_completions=6 * 16, pool_rollouts=2, round_completions=16, initial_steps=20,
                         refit_steps=10, reward_std=0.5, reward_norm=norm, seed=0)
    loop = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(noise=0.0, seed=0), cfg)
    gen = rollouts(8, 16, 2)
    initial = [loop.add_rollout(*next(gen)) for _ in range(2)]
    loop.label_due(0)
    assert (loop.reference is not None) == (norm == "initial")
    for it in range(6):
        loop.add_rollout(*next(gen))
        loop.label_due((it + 1) * 16)
    assert loop.labels_used == 24
    over = [seg.obs[:, 0] for seg in initial] if norm == "initial" else loop.recent  # text bytes [B, 2, W]
    assert len(over) == 2 and not torch.equal(torch.cat(over), torch.cat(loop.recent if norm == "initial" else
                                                                          [seg.obs[:, 0] for seg in initial]))
    r = (loop.rm.rewards(torch.cat(over)).mean(0) - loop.mean) / loop.std * cfg.reward_std  # as loop.reward does
    assert float(r.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(r.std()) == pytest.approx(0.5, rel=1e-3)
    # the state carries the reference, so a resumed loop keeps the same scale
    state = loop.state_dict()
    again = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(noise=0.0, seed=0), cfg)
    again.load_state_dict(state)
    assert (again.reference is None) == (norm == "recent")
    assert torch.equal(again.reward(initial[0])[0], loop.reward(initial[0])[0])


def test_initial_share_and_rune_bonus(encoder):
    """``initial_share`` sets the labels asked before training; ``explore_bonus`` adds RUNE's decaying ensemble
    spread, on the normalised reward's scale, and only to the policy's reward (the raw mean is unchanged)."""
    torch.manual_seed(0)
    cfg = TextLoopConfig(labels=20, total_completions=4 * 16, initial_share=0.5, round_completions=16,
                         initial_steps=10, refit_steps=5, explore_bonus=2.0, explore_decay=0.1, seed=0)
    loop = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(noise=0.0, seed=0), cfg)
    assert loop.schedule.initial_labels == 10
    gen = rollouts(3, 16, 2)
    segs = [loop.add_rollout(*next(gen)) for _ in range(3)]
    loop.label_due(0)
    assert loop.labels_used == 10
    r = loop.rm.rewards(segs[0].obs[:, 0])  # [E, B]
    spread = r.std(0, unbiased=False)
    assert float(spread.min()) > 0  # the members differ, so the bonus is not trivially zero
    for t in (0, 5):
        score, raw = loop.reward(segs[0], completions_seen=t)
        assert torch.allclose(raw, r.mean(0))
        bonus = 2.0 * 0.9 ** t * spread / loop.std * cfg.reward_std
        assert torch.allclose(score, loop.normalise(raw) + bonus, atol=1e-5)
    plain = TextLoopConfig(labels=20, total_completions=4 * 16, seed=0)
    assert TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(), plain).schedule.initial_labels == 5


def test_loop_bad_input(encoder):
    loop = TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(), TextLoopConfig())
    with pytest.raises(ValueError, match="share one prompt"):
        loop.add_rollout(["a", "b"], ["x", "y"], [0.0, 1.0])
    with pytest.raises(ValueError, match="groups of rank_k=2"):
        loop.add_rollout(["a", "a", "a"], ["x", "y", "z"], [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        loop.add_rollout(["a", "a"], ["x", "y"], [0.0, float("nan")])
    with pytest.raises(ValueError, match="labels=0"):
        TextLoopConfig(labels=0)
    with pytest.raises(ValueError, match="unknown query"):
        TextLoopConfig(query="best")
    with pytest.raises(ValueError, match="reward_norm='batch'"):
        TextLoopConfig(reward_norm="batch")
    with pytest.raises(ValueError, match="initial_share=0"):
        TextLoopConfig(initial_share=0)
    with pytest.raises(ValueError, match="explore_bonus=-1"):
        TextLoopConfig(explore_bonus=-1)
    with pytest.raises(ValueError, match="explore_decay=1"):
        TextLoopConfig(explore_decay=1)
    with pytest.raises(ValueError, match="this reward model has 1: give one with n_members >= 2"):  # no spread
        TextPreferenceLoop(FrozenTextEnsemble(encoder, W, n_members=1), SyntheticOracle(),
                           TextLoopConfig(explore_bonus=1.0))
    assert TextPreferenceLoop(FrozenTextEnsemble(encoder, W, n_members=1), SyntheticOracle(), TextLoopConfig()).rm
    store = PreferenceStore()
    store.set_meta("obs_format", "frames")
    with pytest.raises(ValueError, match="separate store"):
        TextPreferenceLoop(FrozenTextEnsemble(encoder, W), SyntheticOracle(), store=store)
