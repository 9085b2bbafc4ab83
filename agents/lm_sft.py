"""Supervised fine-tuning (SFT) of a causal LM on demonstration text: InstructGPT's step 1.

InstructGPT (Ouyang et al. 2022) first fine-tunes the pretrained LM on
demonstrations with the plain language-modelling objective, then learns a
reward model from preferences and runs PPO from the SFT model (step 3,
:mod:`agents.lm_ppo`). Here the demonstrations are real text from the task's
own prompt source (:func:`sft_texts`): for the TextGen tasks, IMDB reviews
of both labels, so SFT teaches the policy the domain (how reviews read) and
not the task's goal (e.g. positive sentiment), which is left to the reward.

:func:`supervised_finetune` minimises :func:`~agents.lm_losses.lm_loss`, the
mean next-token cross-entropy, over the texts cut to ``max_tokens`` tokens,
training only the top ``train_layers`` transformer blocks and the final norm
(as :class:`~agents.lm_ppo.LMPPOConfig` does on a CPU), with AdamW and a
gradient-norm clip, and reports the loss on held-out texts before and after.

Example::

    model, tok = load_causal_lm()
    cfg = SFTConfig()
    train, held_out = sft_texts("imdb-positive", cfg.steps * cfg.batch_size, cfg.eval_texts)
    sft_model = copy.deepcopy(model)
    metrics = supervised_finetune(sft_model, tok, train, held_out, cfg)
    # then LMPPO(sft_model, tok, ...): the SFT model is also PPO's reference
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from agents.factory import resolve_device
from agents.lm_losses import lm_loss
from agents.lm_layers import ptx_batch_from_texts, set_trainable

__all__ = ["SFTConfig", "lm_loss", "sft_texts", "supervised_finetune"]


@dataclass
class SFTConfig:
    """Hyper-parameters of supervised fine-tuning (defaults sized for a 135M model on a CPU)."""

    steps: int = 150
    """Gradient steps (each on ``batch_size`` texts)."""
    batch_size: int = 8
    """Texts per gradient step (and per evaluation forward pass)."""
    lr: float = 5e-5
    """AdamW learning rate of the trainable blocks (AdamW's default weight decay, 0.01)."""
    max_tokens: int = 48
    """Tokens kept of each text (its first ones): about a prompt plus a continuation; >= 2."""
    train_layers: int | None = 4
    """Train only the top N transformer blocks (+ final norm); None = all (as in LMPPOConfig)."""
    eval_texts: int = 64
    """Held-out texts to measure the loss on (the ``n_eval`` to give :func:`sft_texts`)."""
    eval_every: int = 0
    """Also measure the held-out loss every this many steps (``sft/curve``); 0 = only before and after."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seeds the order of the training texts (and any dropout)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first out-of-range field."""
        for name, low in (("steps", 1), ("batch_size", 1), ("max_tokens", 2), ("eval_texts", 1), ("eval_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"SFTConfig.{name} must be an int >= {low}, got {value!r}")
        if self.train_layers is not None and (isinstance(self.train_layers, bool) or self.train_layers < 1):
            raise ValueError(f"SFTConfig.train_layers must be >= 1 or None (all blocks), got {self.train_layers!r}")
        for name in ("lr", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"SFTConfig.{name} must be a finite number > 0, got {value!r}")


def sft_texts(task: Any, n_train: int, n_eval: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Demonstration texts from a task's own prompt source, split into train and held-out sets.

    The texts are the task's full prompts (``task.prompt(i)``: whole IMDB
    reviews for the built-in tasks, of both labels unless the task itself was
    built with ``label=``); they are NOT filtered by sentiment or score, so
    SFT does not hand the policy the task's goal. Prompts are visited in an
    order drawn from ``seed``; the first ``n_eval`` distinct texts are held
    out and the next ``n_train`` distinct ones train, so the two sets share
    no text (exact duplicates in the source are skipped) and the held-out set
    does not depend on ``n_train``.

    Args:
        task: A ``TEXT_TASKS`` name (e.g. ``"imdb-positive"``) or a ``TextTask``.
        n_train: Training texts (>= 1).
        n_eval: Held-out texts (>= 1).
        seed: Seeds the order; equal seeds give equal splits.

    Returns:
        ``(train_texts, eval_texts)``, lists of ``n_train`` and ``n_eval`` strings.

    Raises:
        ValueError: Bad counts, or the task has fewer distinct non-blank
            texts than ``n_train + n_eval``.
    """
    from envs.text_tasks import make_text_task

    for name, value in (("n_train", n_train), ("n_eval", n_eval)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    task = make_text_task(task)
    total = int(task.num_prompts())
    want = int(n_train) + int(n_eval)
    if want > total:
        raise ValueError(f"task {task.name!r} has {total} texts, fewer than n_train + n_eval = "
                         f"{n_train} + {n_eval} = {want}")
    seen: set[str] = set()
    picked: list[str] = []
    for i in np.random.default_rng(seed).permutation(total).tolist():
        text = task.prompt(i)
        if text.strip() and text not in seen:
            seen.add(text)
            picked.append(text)
            if len(picked) == want:
                return picked[n_eval:], picked[:n_eval]
    raise ValueError(f"task {task.name!r} has {len(picked)} distinct non-blank texts among its {total}, "
                     f"fewer than n_train + n_eval = {want}")


def _check_texts(name: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a sequence of strings, not one string")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty: SFT needs at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"{name}[{i}] has type {type(t).__name__}, not str")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is blank")
    return texts


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of indices in [0, n): one shuffled pass after another, every text once per pass."""
    stream = torch.empty(0, dtype=torch.long)
    while True:
        while len(stream) < batch_size:
            stream = torch.cat([stream, torch.randperm(n, generator=gen)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def _trim(ids: torch.Tensor, am: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drops the all-padding columns on the right of a right-padded batch."""
    T = int(am.sum(1).max())
    return ids[:, :T], am[:, :T]


@torch.no_grad()
def _eval_loss(model: nn.Module, ids: torch.Tensor, am: torch.Tensor, batch_size: int, vocab: int,
               device: torch.device) -> float:
    """Token-weighted mean of ``lm_loss`` over all rows of (ids [N, T], am [N, T]), in eval mode."""
    was = model.training
    model.eval()
    total, count = 0.0, 0.0
    for idx in torch.arange(len(ids)).split(batch_size):
        i, m = _trim(ids[idx], am[idx])
        i, m = i.to(device), m.to(device)
        n = float((m[:, :-1] * m[:, 1:]).sum())
        total += float(lm_loss(model(input_ids=i, attention_mask=m).logits[..., :vocab], i, m)) * n
        count += n
    model.train(was)
    return total / max(count, 1.0)


def supervised_finetune(model: nn.Module, tokenizer: Any, train_texts: Sequence[str], eval_texts: Sequence[str],
                        config: SFTConfig | None = None, device: str = "cpu") -> dict[str, Any]:
    """Fine-tunes a causal LM in place on next-token cross-entropy over texts (InstructGPT's SFT).

    Each text is tokenised once and cut to its first ``max_tokens`` tokens;
    a step draws ``batch_size`` texts (shuffled passes over the training set,
    order from ``config.seed``), right-pads them to [b, T] and minimises
    :func:`~agents.lm_losses.lm_loss` of the logits [b, T, V]. Only the top
    ``train_layers`` blocks and the final norm train (AdamW, gradient-norm
    clip); the rest, embeddings included, stay bit-identical. Pass a copy of
    the model if the original is still needed (e.g. as a baseline).

    Afterwards every parameter's ``requires_grad`` is what it was before the
    call (also on an error), gradients are cleared and the model is in eval
    mode. Equal seeds on the same machine give identical weights.

    Args:
        model: a transformers causal LM (``logits`` [B, T, V']), V' >= V.
        tokenizer: its tokenizer; V = ``len(tokenizer)`` (``pad_token_id`` or
            ``eos_token_id`` pads).
        train_texts: the demonstrations (non-blank strings), e.g. from :func:`sft_texts`.
        eval_texts: held-out texts for ``sft/eval_loss_*`` (keep them out of
            ``train_texts`` for a held-out figure).
        config: see :class:`SFTConfig` (its ``eval_texts`` count is not used here).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; the model is moved there.

    Returns:
        Metrics: ``sft/eval_loss_before`` and ``sft/eval_loss_after`` (nats per
        held-out next token), ``sft/train_loss_last`` (mean training loss of the
        last min(10, steps) steps), ``sft/steps``, ``sft/seconds`` (wall time of
        the training steps, evaluations excluded), ``sft/tokens_per_second``
        (real input tokens trained on per second of ``sft/seconds``), and, when
        ``eval_every > 0``, ``sft/curve``: [(step, held-out loss)] from step 0
        every ``eval_every`` steps and at the last step.

    Raises:
        ValueError: empty or blank texts, a bad config, a tokenizer larger than
            the model's vocabulary, or no trainable block.
        FloatingPointError: the training loss became NaN or inf (lr too high).
    """
    cfg = config or SFTConfig()
    cfg.validate()
    train_texts = _check_texts("train_texts", train_texts)
    eval_texts = _check_texts("eval_texts", eval_texts)
    dev = torch.device(resolve_device(device))
    vocab = int(len(tokenizer))
    emb = model.get_input_embeddings()
    if emb is not None and int(emb.num_embeddings) < vocab:
        raise ValueError(f"the tokenizer has {vocab} tokens but the model's embedding only "
                         f"{int(emb.num_embeddings)}: not this model's tokenizer")
    train_ids, train_am = ptx_batch_from_texts(tokenizer, train_texts, cfg.max_tokens)
    eval_ids, eval_am = ptx_batch_from_texts(tokenizer, eval_texts, cfg.max_tokens)
    if int((train_am[:, :-1] * train_am[:, 1:]).sum()) == 0:
        raise ValueError("every training text is a single token: there is no next token to learn")

    model.to(dev)
    was_grad = [p.requires_grad for p in model.parameters()]
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    try:
        params = set_trainable(model, cfg.train_layers)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        before = _eval_loss(model, eval_ids, eval_am, cfg.batch_size, vocab, dev)
        curve = [(0, before)] if cfg.eval_every > 0 else []
        losses: list[float] = []
        seconds, tokens = 0.0, 0
        batches = _batches(len(train_texts), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
        with torch.random.fork_rng(devices=rng_devices):  # dropout, if any, is seeded; the caller's RNG is not
            torch.manual_seed(cfg.seed)
            model.train()
            for step in range(1, cfg.steps + 1):
                t0 = time.perf_counter()
                idx = next(batches)
                ids, am = _trim(train_ids[idx], train_am[idx])
                ids, am = ids.to(dev), am.to(dev)
                loss = lm_loss(model(input_ids=ids, attention_mask=am).logits[..., :vocab], ids, am)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()))
                seconds += time.perf_counter() - t0
                tokens += int(am.sum())
                if not math.isfinite(losses[-1]):
                    raise FloatingPointError(f"the training loss became {losses[-1]} at step {step}: lower lr")
                if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                    curve.append((step, _eval_loss(model, eval_ids, eval_am, cfg.batch_size, vocab, dev)))
        after = curve[-1][1] if curve else _eval_loss(model, eval_ids, eval_am, cfg.batch_size, vocab, dev)
        optimizer.zero_grad(set_to_none=True)
    finally:
        for p, g in zip(model.parameters(), was_grad):
            p.requires_grad_(g)
        model.eval()
    metrics: dict[str, Any] = {
        "sft/eval_loss_before": before,
        "sft/eval_loss_after": after,
        "sft/train_loss_last": sum(losses[-10:]) / len(losses[-10:]),
        "sft/steps": cfg.steps,
        "sft/seconds": seconds,
        "sft/tokens_per_second": tokens / max(seconds, 1e-9),
    }
    if cfg.eval_every > 0:
        metrics["sft/curve"] = curve
    return metrics
