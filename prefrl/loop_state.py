"""A :class:`prefrl.loop.PreferenceLoop`'s checkpoint: what continues it after a crash, and restoring it.

The labels are in the store already; this is the model, the optimiser, every random generator's state,
the counters, the reward normalisation and (when small) the recent-steps buffer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_loop_state", "loop_state_dict"]


def loop_state_dict(loop: Any, recorder_max_bytes: int = 256 << 20) -> dict:
    """Everything needed to continue this loop after a crash (the labels are in the store already).

    Args:
        recorder_max_bytes: the recent-steps buffer is included when it is
            smaller than this (MuJoCo: a few MB); a larger one (Atari frames)
            is left out and refills from the steps after the resume.

    Returns:
        a dict of tensors, numbers and RNG states for ``torch.save``.
    """
    loop.wait_fit()
    rec = loop.recorder
    keep_rec = rec._buf and sum(a.nbytes for a in rec._buf.values()) <= recorder_max_bytes
    return {
        "ensemble": loop.ensemble.state_dict(),
        "optimizer": loop.trainer.optimizer.state_dict(),
        "l2": loop.trainer.l2.clone(),
        "trainer_rng": loop.trainer._rng.get_state(),
        "trainer_unlabeled_rng": loop.trainer._unlabeled_rng.get_state(),
        "predictor": None if loop.trainer.predictor is None else loop.trainer.predictor.state_dict(),
        "ssl_pretrained": loop.trainer.ssl_pretrained,
        "unlabeled_rngs": (loop._unlabeled_gen.get_state(), loop._unlabeled_rng.bit_generator.state),
        "segments_rng": loop._gen.get_state(),
        "calibration_rng": loop._np_rng.bit_generator.state,
        "labels_used": loop.labels_used,
        "labels_stored": loop.store.total_added,
        "reward_mean": loop.reward_mean, "reward_std": loop.reward_std,
        "metrics": dict(loop.metrics), "fit_seconds": loop.fit_seconds,
        "recorder": ({"buf": {k: v.copy() for k, v in rec._buf.items()}, "next": rec._next, "size": rec.size,
                      "total": rec.total, "steps_at_fit": loop._steps_at_fit} if keep_rec else None),
        "async": ({"cursor": loop.labeler.cursor, "labels_arrived": loop.labels_arrived,
                   "queries_posted": loop.queries_posted, "fitted": loop._fitted,
                   "initial_posted": loop._initial_posted} if loop.is_async else None),
    }


def load_loop_state(loop: Any, state: dict) -> None:
    """Restores :meth:`state_dict`. Labels the store gained after the checkpoint count as used."""
    loop.wait_fit()
    loop.ensemble.load_state_dict(state["ensemble"])
    loop.trainer.optimizer.load_state_dict(state["optimizer"])
    loop.trainer.l2 = state["l2"].clone()
    loop.trainer._rng.set_state(state["trainer_rng"])
    if "trainer_unlabeled_rng" in state:  # checkpoints written before unlabeled learning have none
        loop.trainer._unlabeled_rng.set_state(state["trainer_unlabeled_rng"])
        loop._unlabeled_gen.set_state(state["unlabeled_rngs"][0])
        loop._unlabeled_rng.bit_generator.state = state["unlabeled_rngs"][1]
        loop.trainer.ssl_pretrained = state["ssl_pretrained"]
    if loop.trainer.predictor is not None and state.get("predictor") is not None:
        loop.trainer.predictor.load_state_dict(state["predictor"])
    loop._gen.set_state(state["segments_rng"])
    loop._np_rng.bit_generator.state = state["calibration_rng"]
    asy = state.get("async") if loop.is_async else None
    if asy is not None:  # answers after the checkpoint are counted by the next collect, from the saved cursor
        loop.labels_used = state["labels_used"]
        loop.labeler.cursor = asy["cursor"]
        loop.labels_arrived, loop.queries_posted = asy["labels_arrived"], asy["queries_posted"]
        loop._fitted, loop._initial_posted = asy["fitted"], asy["initial_posted"]
    else:
        extra = max(0, loop.store.total_added - state["labels_stored"])
        loop.labels_used = state["labels_used"] + extra
        loop._refit_due = extra > 0  # the next update fits on them first
        loop._fitted = loop._initial_posted = loop.labels_used > 0
    loop.reward_mean, loop.reward_std = state["reward_mean"], state["reward_std"]
    loop.metrics, loop.fit_seconds = dict(state["metrics"]), state["fit_seconds"]
    rec = state["recorder"]
    if rec is not None:
        loop.recorder._buf = {k: v.copy() for k, v in rec["buf"].items()}
        loop.recorder._next, loop.recorder.size, loop.recorder.total = rec["next"], rec["size"], rec["total"]
        loop._steps_at_fit = rec["steps_at_fit"]
