"""Completions stored as text: (prompt, completion) pairs as ``uint8 [B, 2, width]`` bytes and back.

Each row holds a 2-byte little-endian length, then the UTF-8 bytes, so a store of text comparisons keeps
readable text that :func:`decode_texts` rebuilds exactly; :func:`text_segments` makes length-1 segments of
them for the core's oracle, store and trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from prefrl.segments import Segments

__all__ = ["decode_texts", "encode_texts", "text_segments", "text_width"]

_HEADER = 2  # bytes of little-endian length before each text


def text_width(tokenizer: Any, n_tokens: int) -> int:
    """Bytes per text that hold any decoding of ``n_tokens`` tokens of ``tokenizer``.

    A token string of n characters decodes to at most 4n UTF-8 bytes: a
    byte-level BPE character stands for one raw byte, which decodes to at
    most 3 bytes (U+FFFD where a UTF-8 sequence is cut); any other character
    is at most 4 bytes.

    Args:
        tokenizer: a transformers tokenizer (the policy's).
        n_tokens: the most tokens a text may have.

    Returns:
        width in bytes, length header included.
    """
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
    vocab = tokenizer.get_vocab()
    longest = max(max(len(t) for t in vocab), 1)
    return _HEADER + 4 * longest * n_tokens


def encode_texts(prompts: Sequence[str], completions: Sequence[str], width: int) -> torch.Tensor:
    """(prompt, completion) pairs -> ``uint8 [B, 2, width]``: each row a 2-byte length, then UTF-8 bytes.

    Raises:
        ValueError: the lists differ in length, or a text needs more than
            ``width - 2`` bytes (the message gives the size needed).
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if not _HEADER < width < 2 ** 16 + _HEADER:
        raise ValueError(f"width must be in 3..65537 bytes, got {width}")
    out = torch.zeros(len(prompts), 2, width, dtype=torch.uint8)
    for i, pair in enumerate(zip(prompts, completions)):
        for j, text in enumerate(pair):
            b = text.encode("utf-8")
            if len(b) > width - _HEADER:
                raise ValueError(f"a text of {len(b)} UTF-8 bytes does not fit width {width}; "
                                 f"use width >= {len(b) + _HEADER}: {text[:60]!r}...")
            out[i, j, 0], out[i, j, 1] = len(b) & 0xFF, len(b) >> 8
            out[i, j, _HEADER : _HEADER + len(b)] = torch.frombuffer(bytearray(b), dtype=torch.uint8) if b else 0
    return out


def decode_texts(obs: torch.Tensor) -> tuple[list[str], list[str]]:
    """``uint8 [B, 2, width]`` (or ``[B, 1, 2, width]`` segments) -> (prompts, completions), exactly as encoded."""
    x = obs.reshape(-1, 2, obs.shape[-1]) if obs.dim() >= 3 else obs
    if x.dim() != 3 or x.shape[1] != 2:
        raise ValueError(f"expected text bytes [B, 2, width], got {tuple(obs.shape)}")
    raw = x.to(torch.uint8).cpu().numpy()
    n = raw[:, :, 0].astype(int) + (raw[:, :, 1].astype(int) << 8)
    if (n > x.shape[-1] - _HEADER).any():
        raise ValueError("a text's length header exceeds its width: these are not encode_texts bytes")
    texts = [[bytes(raw[i, j, _HEADER : _HEADER + n[i, j]]).decode("utf-8") for j in (0, 1)] for i in range(len(raw))]
    return [t[0] for t in texts], [t[1] for t in texts]


def text_segments(prompts: Sequence[str], completions: Sequence[str], true_scores: Sequence[float] | torch.Tensor,
                  width: int) -> Segments:
    """Completions as length-1 segments for the core's oracle, store and trainer.

    Returns:
        ``Segments`` with obs ``uint8 [B, 1, 2, width]`` (the texts), act
        [B, 1] (zeros) and true_reward [B, 1] = the task's score.

    Raises:
        ValueError: lengths differ, a text does not fit, or a score is NaN.
    """
    scores = torch.as_tensor(true_scores, dtype=torch.float32).reshape(-1)
    if len(scores) != len(completions):
        raise ValueError(f"{len(scores)} scores for {len(completions)} completions")
    if torch.isnan(scores).any():
        raise ValueError("true scores contain NaN")
    x = encode_texts(prompts, completions, width)
    return Segments(x.unsqueeze(1), torch.zeros(len(x), 1, dtype=torch.long), scores.unsqueeze(1))
