"""A causal LM run in two parts at a block boundary: the frozen trunk once, the trained top as often as needed.

With ``train_layers=k`` only the top k blocks (and the final norm) of the policy train, so the hidden states
entering block ``L - k`` of a rollout never change during a PPO update, and the reference model (a frozen
copy of the same start model) computes the very same ones. :class:`TrunkCut` computes them once per rollout
(:meth:`TrunkCut.trunk`: a forward that stops at that block) and runs only the top blocks for the policy's
scoring pass, the reference's, and every PPO minibatch (:meth:`TrunkCut.top`). On SmolLM2-135M with the
default 4 trained blocks of 30 that is 4/30 of the forward cost where the whole model ran before.

The top blocks are called with the keyword arguments the model itself passed to the cut block (captured by a
forward pre-hook: attention mask, rotary position embeddings, position ids), so nothing of the model's mask
or position logic is rebuilt here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from agents.lm_layers import _decoder_layers, _final_norm

__all__ = ["TrunkCut", "cut_below_trained", "same_trunk"]

_PER_ROW = ("attention_mask", "position_embeddings", "position_ids")
"""Captured keyword arguments that hold one row per sequence (indexed with the minibatch's rows)."""


class _Stop(Exception):
    """Raised by the pre-hook to end the trunk's forward at the cut block."""


def same_trunk(a: nn.Module, b: nn.Module, cut: int) -> bool:
    """Whether two models of one architecture hold equal embeddings and blocks below ``cut`` (compared once)."""
    emb_a, emb_b = a.get_input_embeddings(), b.get_input_embeddings()
    if emb_a is None or emb_b is None or not torch.equal(emb_a.weight, emb_b.weight):
        return False
    la, lb = _decoder_layers(a), _decoder_layers(b)
    if len(la) != len(lb):
        return False
    for pa, pb in zip(la[:cut].parameters(), lb[:cut].parameters()):
        if pa.shape != pb.shape or not torch.equal(pa, pb):
            return False
    return True


def cut_below_trained(model: nn.Module, ref_model: nn.Module, train_layers: int | None
                      ) -> tuple["TrunkCut | None", bool]:
    """The cut below the top ``train_layers`` blocks of ``model``, and whether ``ref_model`` shares the trunk.

    ``(None, False)`` when everything trains (``None``), when ``train_layers`` covers every block, or when the
    model's blocks or final norm are not found (then the whole model runs each time).
    """
    if train_layers is None:
        return None, False
    try:
        n = len(_decoder_layers(model))
        if train_layers >= n:
            return None, False
        cut = TrunkCut(model, n - train_layers)
    except ValueError:
        return None, False
    return cut, same_trunk(model, ref_model, cut.cut)


class TrunkCut:
    """Splits a causal LM at block ``cut``: the blocks below are the trunk, the rest (and the norm, head) the top.

    Args:
        model: a transformers causal LM whose blocks are found by :func:`agents.lm_layers.set_trainable`'s rules
            (``model.layers``, ``transformer.h``, ...) and that has a final norm.
        cut: the first block of the top (``n_blocks - train_layers``), 1 <= cut < n_blocks.
    """

    def __init__(self, model: nn.Module, cut: int):
        n = len(_decoder_layers(model))
        if not 1 <= cut < n:
            raise ValueError(f"cut must be in [1, {n - 1}] for a model of {n} blocks, got {cut}")
        if _final_norm(model) is None:
            raise ValueError(f"cannot find the final norm of {type(model).__name__}")
        self.cut = cut

    @torch.no_grad()
    def trunk(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              position_ids: torch.Tensor) -> dict[str, Any]:
        """The inputs of block ``cut`` for a batch: ``hidden`` [B, T, H] and the block's other keyword arguments.

        Runs the embeddings and the trunk's blocks only (the forward stops at the cut).
        """
        captured: dict[str, Any] = {}

        def hook(module, args, kwargs):
            captured["hidden"] = args[0] if args else kwargs["hidden_states"]
            captured["kwargs"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            raise _Stop

        handle = _decoder_layers(model)[self.cut].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "hidden" not in captured:
            raise RuntimeError(f"{type(model).__name__}'s forward never reached block {self.cut}")
        captured["batch"] = input_ids.shape[0]
        return captured

    def top(self, model: nn.Module, trunk: dict[str, Any], rows: torch.Tensor | None, keep: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs ``model``'s blocks from ``cut`` on, its final norm and head, on ``rows`` of a :meth:`trunk` batch.

        Args:
            model: the policy or the reference (the same trunk as the model :meth:`trunk` ran).
            trunk: what :meth:`trunk` returned.
            rows: [b] row indices (None: every row).
            keep: the last positions whose logits are computed (as ``logits_to_keep``).

        Returns:
            logits [b, keep, V] and the normed final hidden states [b, keep, H] of those positions.
        """
        B = trunk["batch"]
        hidden = trunk["hidden"] if rows is None else trunk["hidden"][rows]
        kwargs = {k: (_rows(v, rows, B) if k in _PER_ROW and rows is not None else v)
                  for k, v in trunk["kwargs"].items()}
        for key in ("cache", "past_key_values", "past_key_value"):
            if key in kwargs:
                kwargs[key] = None
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        for block in _decoder_layers(model)[self.cut:]:
            out = block(hidden, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = _final_norm(model)(hidden[:, -keep:])
        return model.get_output_embeddings()(hidden), hidden


def _rows(value: Any, rows: torch.Tensor, batch: int) -> Any:
    """``value`` with only ``rows`` of its batch dimension (tensors of another first size are shared: kept)."""
    if isinstance(value, tuple):
        return tuple(_rows(v, rows, batch) for v in value)
    if isinstance(value, dict):  # e.g. one mask per attention type
        return {k: _rows(v, rows, batch) for k, v in value.items()}
    if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == batch and batch > 1:
        return value[rows]
    return value
