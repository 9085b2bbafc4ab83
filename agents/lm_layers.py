"""What of a causal LM trains, and its text batches: the top transformer blocks and final norm
(:func:`set_trainable`), right-padded token batches of plain text (:func:`ptx_batch_from_texts`).

Shared by token-level PPO (:mod:`agents.lm_ppo`) and supervised fine-tuning (:mod:`agents.lm_sft`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

__all__ = ["ptx_batch_from_texts", "set_trainable"]


def _submodule(model: nn.Module, paths: tuple[str, ...], kind: type) -> Any:
    """The first of the dotted ``paths`` that exists on ``model`` as a ``kind``, else None."""
    for path in paths:
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, kind):
            return obj
    return None


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    blocks = _submodule(model, ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"),
                        nn.ModuleList)
    if blocks is None:
        raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}: use train_layers=None")
    return blocks


def _final_norm(model: nn.Module) -> nn.Module | None:
    return _submodule(model, ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm"), nn.Module)


def set_trainable(model: nn.Module, train_layers: int | None) -> list[nn.Parameter]:
    """Sets ``requires_grad`` so that only the top ``train_layers`` blocks and the final norm train.

    ``None`` makes every parameter trainable (a copy of a frozen reference
    comes in frozen, so this sets them all, not just leaves them). A
    ``train_layers`` above the number of blocks trains every block (but not
    the embeddings).

    Returns:
        The trainable parameters, in ``model.parameters()`` order.

    Raises:
        ValueError: ``train_layers < 1``, blocks not found, or nothing trainable.
    """
    if train_layers is None:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        if train_layers < 1:
            raise ValueError(f"train_layers must be >= 1 or None, got {train_layers}")
        for p in model.parameters():
            p.requires_grad_(False)
        blocks = list(_decoder_layers(model))[-train_layers:]
        norm = _final_norm(model)
        for m in blocks + ([norm] if norm is not None else []):
            for p in m.parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameter in the policy model")
    return params


def ptx_batch_from_texts(tokenizer: Any, texts: Sequence[str], max_tokens: int = 48
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, attention_mask) of texts cut to ``max_tokens`` tokens, for PPO-ptx."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [list(tokenizer.encode(t))[:max_tokens] or [pad] for t in texts]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    am = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        am[i, : len(r)] = 1
    return ids, am
