"""The math of token-level PPO for language models, as small pure functions.

Shapes: B sequences (episodes), T completion tokens; ``mask`` [B, T] is 1 on
real completion tokens (through EOS) and 0 on padding after the episode
ended. Everything is masked so that padded positions contribute nothing.

The objective is InstructGPT's (Ouyang et al. 2022, eq. 2), from Ziegler et
al. (2019): maximise r(x, y) - beta * KL(pi || pi_ref), the KL taken per
token, optionally plus gamma * the pretraining log-likelihood (PPO-ptx).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "AdaptiveKLController",
    "kl_penalized_rewards",
    "lm_loss",
    "masked_mean",
    "masked_whiten",
    "ppo_clip_loss",
    "token_gae",
    "value_loss",
]


def _check(mask: torch.Tensor, *xs: torch.Tensor) -> None:
    assert mask.dim() == 2, f"mask must be [B, T], got {tuple(mask.shape)}"
    for x in xs:
        assert x.shape == mask.shape, f"expected {tuple(mask.shape)}, got {tuple(x.shape)}"


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * mask) / sum(mask) over all elements ([] tensor; 0 if the mask is empty)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a causal LM over the real tokens of a batch.

    L = -(1 / N) * sum_{b, t} m_{b,t} * m_{b,t+1} * log softmax(z_{b,t})[x_{b,t+1}],
    N = sum_{b, t} m_{b,t} * m_{b,t+1},

    i.e. the mean over every real next token of -log p(x_{t+1} | x_<=t), with
    z the logits, x the token ids and m the attention mask. A pair counts only
    when both the context token t and the target t+1 are real, so padding on
    either side (right or left) contributes nothing. The mean is over tokens,
    not per sequence: a long text weighs more than a short one (the
    pretraining objective of PPO-ptx and the SFT objective of InstructGPT).

    Args:
        logits: [B, T, V] logits; position t scores the token at t + 1 (the
            last position is unused). Computed in float32.
        input_ids: [B, T] token ids in [0, V).
        attention_mask: [B, T] 1 on real tokens, 0 on padding.

    Returns:
        [] loss in nats per token (0 when the batch has no real next token).
    """
    assert logits.dim() == 3, f"logits must be [B, T, V], got {tuple(logits.shape)}"
    assert input_ids.shape == logits.shape[:2], (
        f"input_ids must be {tuple(logits.shape[:2])}, got {tuple(input_ids.shape)}")
    _check(input_ids, attention_mask)
    z = logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="none")
    pair = attention_mask[:, :-1] * attention_mask[:, 1:]
    return masked_mean(nll.reshape(pair.shape), pair)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked elements; padded positions become 0."""
    m = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * m


def kl_penalized_rewards(
    logp: torch.Tensor, ref_logp: torch.Tensor, score: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards with the KL penalty to the reference model.

    r_t = -beta * (log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t))  for every token t,
    r_T += score                                                      on the last real token T.

    The sum over t of the penalty term is -beta times the sampled estimate
    of KL(pi || pi_ref) for the sequence.

    Args:
        logp: [B, T] log-probabilities of the sampled tokens under the policy.
        ref_logp: [B, T] the same under the frozen reference model.
        score: [B] sequence-level reward r(x, y) (true or learned).
        mask: [B, T] 1 on real completion tokens. Every row needs >= 1.
        beta: KL coefficient.

    Returns:
        (rewards [B, T], kl [B] = sum_t (logp - ref_logp) over real tokens).
    """
    _check(mask, logp, ref_logp)
    assert score.shape == mask.shape[:1], f"score must be [B], got {tuple(score.shape)}"
    m = mask.to(logp.dtype)
    lengths = mask.sum(1).long()
    if (lengths < 1).any():
        raise ValueError("every sequence needs at least one real token in mask")
    kl_t = (logp - ref_logp) * m
    rewards = -beta * kl_t
    last = lengths - 1
    rewards[torch.arange(len(score)), last] += score.to(rewards.dtype)
    return rewards, kl_t.sum(1)


def token_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the tokens of each completion.

    delta_t = r_t + gamma * V_{t+1} - V_t,  A_t = delta_t + gamma * lam * A_{t+1},
    with V and A zero after the last real token (the episode ends there).
    Returns R_t = A_t + V_t as value targets.

    Args:
        rewards: [B, T] per-token rewards (e.g. from ``kl_penalized_rewards``).
        values: [B, T] value estimates V(x, y_<t).
        mask: [B, T] 1 on real tokens; padding only after them.
        gamma: discount (1.0 for a finite completion, as in InstructGPT).
        lam: GAE lambda.

    Returns:
        (advantages [B, T], returns [B, T]), zero on padding.
    """
    _check(mask, rewards, values)
    m = mask.to(rewards.dtype)
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in range(T - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        a = (delta + gamma * lam * next_adv) * m[:, t]
        adv[:, t] = a
        next_value = values[:, t] * m[:, t]
        next_adv = a
    returns = (adv + values) * m
    return adv, returns


def ppo_clip_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate policy loss (Schulman et al. 2017), averaged over real tokens.

    rho_t = exp(logp_t - old_logp_t),
    L = -mean_t min(rho_t * A_t, clip(rho_t, 1 - clip, 1 + clip) * A_t).

    Returns:
        (loss [], {"clipfrac": share of tokens clipped, "approx_kl": mean of
        (rho - 1) - log rho, a non-negative estimate of KL(old || new)}).
    """
    _check(mask, logp, old_logp, advantages)
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip).float(), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """Clipped value loss: 0.5 * mean_t max((V - R)^2, (V_clipped - R)^2),

    V_clipped = old_V + clip(V - old_V, -clip, clip), averaged over real tokens.
    """
    _check(mask, values, old_values, returns)
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2), mask)


@dataclass
class AdaptiveKLController:
    """Ziegler et al.'s adaptive KL coefficient.

    e = clip(KL / target - 1, -0.2, 0.2);  beta <- max(floor, beta * (1 + e * n / horizon)),

    where KL is the mean per-sequence KL of the last batch and n the number
    of sequences in it. ``target=None`` keeps beta fixed.

    Attributes:
        value: current beta.
        target: KL (nats per sequence) to aim for, or None.
        horizon: sequences over which beta may change by ~e-fold.
        up_horizon, up_clip: an asymmetric controller rises faster than it falls (see the fields).
        floor: beta never goes below it (0 = no floor). While the policy has barely moved its KL stays under
            the target and beta only falls; without a floor it winds down (0.05 -> 0.010 in 35 updates of
            16 sequences at horizon 64) and cannot rise fast enough once the KL passes the target.
    """

    value: float = 0.05
    target: float | None = 4.0
    horizon: int = 10_000
    floor: float = 0.0
    up_horizon: int | None = None
    """Sequences over which beta rises ~e-fold while the KL is above the target (None: ``horizon``)."""
    up_clip: float = 0.2
    """Largest error e used while the KL is above the target (0.2: Ziegler's symmetric clip)."""

    def update(self, kl: float, n: int) -> float:
        """Adapts beta to the observed KL; returns the new beta."""
        if self.target is not None:
            e = kl / self.target - 1.0
            if e > 0:
                e, h = min(e, self.up_clip), self.up_horizon or self.horizon
            else:
                e, h = max(e, -0.2), self.horizon
            self.value = max(self.floor, self.value * (1.0 + e * n / h))
        return self.value
