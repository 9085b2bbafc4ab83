"""The loop's one labeling protocol: a synchronous labeler behind ``ImmediateLabeler``, a queue as it is."""

import pytest
import torch

from prefrl.label_queue import LabelQueue, text_media
from prefrl.labeling import ImmediateLabeler, QueryLabeler, as_query_labeler
from prefrl.oracle import SyntheticOracle
from prefrl.queue_labeler import QueueLabeler
from prefrl.segments import Segments
from prefrl.store import PreferenceStore


def _segs(returns, L: int = 4) -> Segments:
    r = torch.tensor(returns, dtype=torch.float32)
    return Segments(torch.zeros(len(r), L, 3), torch.zeros(len(r), L, 1), (r[:, None] / L).repeat(1, L))


def test_immediate_labeler_answers_at_post_and_counts_skips_as_asked():
    store = PreferenceStore()
    # B-Pref's skip teacher: both returns below 0 -> no answer
    lab = ImmediateLabeler(SyntheticOracle(noise=0.0, skip_threshold=0.0), store)
    assert lab.post(_segs([1.0, -2.0, 3.0]), _segs([0.5, -1.0, 4.0])) == 2
    assert lab.outstanding() == 0
    assert lab.collect() == {"queries": 3, "labels": 2}
    assert lab.collect() == {"queries": 0, "labels": 0}  # counted once
    mu = store.tensors()["mu"]
    assert mu.tolist() == [1.0, 0.0]  # 1 > 0.5: left; 3 < 4: right


def test_as_query_labeler_wraps_a_labeler_keeps_a_queue_and_refuses_anything_else():
    store = PreferenceStore()
    wrapped, later = as_query_labeler(SyntheticOracle(), store)
    assert isinstance(wrapped, ImmediateLabeler) and not later
    queue = QueueLabeler(LabelQueue(store), lambda s: [text_media("x")] * len(s))
    same, later = as_query_labeler(queue, store)
    assert same is queue and later and isinstance(queue, QueryLabeler)
    with pytest.raises(TypeError, match="is not a labeler"):
        as_query_labeler(object(), store)


def test_a_queue_answered_by_the_oracle_and_the_oracle_itself_store_the_same_labels():
    seg1, seg2 = _segs([1.0, 2.0, 0.0, 5.0]), _segs([0.0, 3.0, 0.0, 1.0])
    direct = PreferenceStore()
    ImmediateLabeler(SyntheticOracle(noise=0.0), direct).post(seg1, seg2)
    queued = PreferenceStore()
    q = QueueLabeler(LabelQueue(queued), lambda s: [text_media("x")] * len(s), answer_with=SyntheticOracle(noise=0.0))
    q.post(seg1, seg2)
    assert q.collect()["labels"] == 4 and q.outstanding() == 0
    assert direct.tensors()["mu"].tolist() == queued.tensors()["mu"].tolist() == [1.0, 0.0, 0.5, 1.0]


def test_the_loop_takes_its_pieces_injected():
    import numpy as np

    from prefrl import LoopConfig, MLPEnsemble, PreferenceLoop, RewardTrainer, TrainerConfig
    from prefrl.query_sampler import QuerySampler

    ens = MLPEnsemble((3,), (1,))
    trainer = RewardTrainer(ens, TrainerConfig(batch_size=4))
    sampler = QuerySampler(segment_length=4, method="random")
    loop = PreferenceLoop(ens, SyntheticOracle(noise=0.0), 1, LoopConfig(total_labels=4, total_steps=100,
                          segment_length=4, pretrain_epochs=1), sampler=sampler, trainer=trainer)
    assert loop.trainer is trainer and loop.trainer_config.batch_size == 4 and loop.sampler is sampler
    rng = np.random.default_rng(0)
    for _ in range(40):
        loop.record(rng.normal(size=(1, 3)), rng.normal(size=(1, 1)), rng.normal(size=1), np.zeros(1, bool))
    assert loop.pretrain()["labels"] == 1.0  # the initial quarter of 4 labels, picked by the injected sampler
    with pytest.raises(ValueError, match="another ensemble"):
        PreferenceLoop(MLPEnsemble((3,), (1,)), SyntheticOracle(), 1, trainer=trainer)
