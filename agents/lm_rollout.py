"""What a batch of sampled completions holds (:class:`Rollout`) and the model inputs it gives (:func:`model_inputs`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Rollout", "model_inputs"]


@dataclass
class Rollout:
    """B completions sampled from the policy.

    Attributes:
        query_ids: [B, P] prompt ids, LEFT-padded.
        query_mask: [B, P] 1 on real prompt tokens.
        response_ids: [B, N] sampled ids (pad after the episode ended).
        response_mask: [B, N] 1 on real completion tokens (through EOS).
        logprobs: [B, N] log-probabilities at sampling time (KV-cached pass).
        prompts: B decoded prompts; completions: B decoded completions.
        true_scores: [B] the env's true score of each completion.
        gen_seconds: wall time of the sampling loop; gen_tokens: B x steps.
    """

    query_ids: torch.Tensor
    query_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    logprobs: torch.Tensor
    prompts: list[str]
    completions: list[str]
    true_scores: torch.Tensor
    gen_seconds: float = 0.0
    gen_tokens: int = 0


def model_inputs(ro: Rollout, idx: torch.Tensor | None, device: torch.device | str
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model inputs of rows ``idx`` (None: all) of a rollout, prompt + completion in one sequence.

    Returns:
        ids [b, P + N], attention mask [b, P + N] (0 on the prompts' left padding), position ids [b, P + N]
        (counted from each prompt's first real token) and the completion ids [b, N].
    """
    sel = slice(None) if idx is None else idx
    q, qm = ro.query_ids[sel].to(device), ro.query_mask[sel].to(device)
    r = ro.response_ids[sel].to(device)
    attn = torch.cat([qm, torch.ones_like(r)], dim=1)
    return torch.cat([q, r], dim=1), attn, (attn.cumsum(1) - 1).clamp_min(0), r
