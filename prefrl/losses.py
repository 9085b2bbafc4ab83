"""The math of preference learning, as small pure functions.

Every function takes and returns tensors, asserts the shapes it relies on, and
carries its equation in the docstring. Nothing here holds state.

Conventions:
    ``R1, R2`` are predicted segment returns (sums of per-step rewards).
    ``mu`` is the label: the probability mass the labeler put on segment 1,
    one of {0, 0.5, 1} (0.5 = "equally good").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "bt_log_probs",
    "bt_probability",
    "bt_loss",
    "kwise_ranking_loss",
    "disagreement",
    "mean_entropy",
    "gap_upper_bound",
    "rune_reward",
    "temporal_consistency_loss",
    "temporal_contrastive_loss",
    "inverse_dynamics_loss",
    "pseudo_labels",
]


def _check_noise(eps: float) -> None:
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"noise eps must be in [0, 1), got {eps}")


def bt_log_probs(R1: torch.Tensor, R2: torch.Tensor, eps: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Log of the noise-aware Bradley-Terry probabilities, computed stably.

    P[s1 > s2]  = sigmoid(R1 - R2)
    P'[s1 > s2] = (1 - eps) * P + eps / 2

    (Christiano et al. 2017: a labeler answers uniformly at random with
    probability eps.)  Computed in log space with ``logaddexp`` so that large
    return gaps do not underflow.

    Args:
        R1: [...] predicted returns of segment 1.
        R2: [...] predicted returns of segment 2, same shape as ``R1``.
        eps: probability of a random answer, in [0, 1).

    Returns:
        (log P'[s1 > s2], log P'[s2 > s1]), each shaped like ``R1``.
    """
    assert R1.shape == R2.shape, f"R1 {tuple(R1.shape)} and R2 {tuple(R2.shape)} differ"
    _check_noise(eps)
    d = R1 - R2
    if eps == 0.0:
        return F.logsigmoid(d), F.logsigmoid(-d)
    log_keep = math.log1p(-eps)
    log_rand = torch.full_like(d, math.log(eps / 2))
    lp1 = torch.logaddexp(log_keep + F.logsigmoid(d), log_rand)
    lp2 = torch.logaddexp(log_keep + F.logsigmoid(-d), log_rand)
    return lp1, lp2


def bt_probability(R1: torch.Tensor, R2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """P'[s1 > s2] = (1 - eps) * sigmoid(R1 - R2) + eps / 2.

    Args:
        R1: [...] predicted returns of segment 1.
        R2: [...] same shape as ``R1``.
        eps: random-answer probability; 0 gives the plain Bradley-Terry P.

    Returns:
        [...] probability that segment 1 is preferred.
    """
    assert R1.shape == R2.shape, f"R1 {tuple(R1.shape)} and R2 {tuple(R2.shape)} differ"
    _check_noise(eps)
    return (1.0 - eps) * torch.sigmoid(R1 - R2) + eps / 2


def bt_loss(
    R1: torch.Tensor,
    R2: torch.Tensor,
    mu: torch.Tensor,
    eps: float = 0.1,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy between the label and the noise-aware Bradley-Terry model.

    loss = -[ mu * log P'[s1 > s2] + (1 - mu) * log P'[s2 > s1] ]

    with P' = (1 - eps) * sigmoid(R1 - R2) + eps / 2. For R1 == R2 the loss
    is log 2 whatever mu is.

    Args:
        R1: [..., N] predicted returns of segment 1 (leading dims, e.g. the
            ensemble's E, broadcast against ``mu``).
        R2: [..., N] same shape as ``R1``.
        mu: [N] or [..., N] labels in {0, 0.5, 1} (any value in [0, 1] is
            accepted by the math).
        eps: random-answer probability of the likelihood, in [0, 1).
        reduction: "mean" over the last dim, or "none".

    Returns:
        [...] mean loss over N (or [..., N] with reduction="none").
    """
    lp1, lp2 = bt_log_probs(R1, R2, eps)
    mu = mu.to(lp1.dtype)
    assert mu.shape[-1] == R1.shape[-1], f"mu {tuple(mu.shape)} vs returns {tuple(R1.shape)}"
    loss = -(mu * lp1 + (1.0 - mu) * lp2)
    if reduction == "none":
        return loss
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return loss.mean(dim=-1)


def kwise_ranking_loss(rewards: torch.Tensor, ranks: torch.Tensor | None = None) -> torch.Tensor:
    """InstructGPT's K-wise ranking loss over K ranked completions of a prompt.

    loss = -1 / C(K, 2) * sum_{(w, l): w ranked above l} log sigmoid(r_w - r_l)

    Ties (equal ranks) contribute no pair. For K = 2 this equals ``bt_loss``
    with eps = 0 and mu = 1 for the better completion.

    Args:
        rewards: [B, K] scalar rewards r(x, y_k) of K completions per prompt.
        ranks: [B, K] rank of each completion, 0 = best. ``None`` means the
            completions are already ordered best first.

    Returns:
        [] the loss averaged over the B prompts.
    """
    assert rewards.dim() == 2, f"rewards must be [B, K], got {tuple(rewards.shape)}"
    B, K = rewards.shape
    if K < 2:
        raise ValueError(f"K-wise ranking needs K >= 2 completions per prompt, got K={K}")
    if ranks is None:
        ranks = torch.arange(K, device=rewards.device).expand(B, K)
    assert ranks.shape == rewards.shape, f"ranks {tuple(ranks.shape)} vs rewards {tuple(rewards.shape)}"
    # better[b, i, j] = completion i ranked strictly above completion j.
    better = ranks.unsqueeze(2) < ranks.unsqueeze(1)
    diff = rewards.unsqueeze(2) - rewards.unsqueeze(1)  # [B, K, K]: r_i - r_j
    pair_losses = -F.logsigmoid(diff) * better
    n_pairs = K * (K - 1) / 2
    return (pair_losses.sum(dim=(1, 2)) / n_pairs).mean()


def disagreement(p: torch.Tensor) -> torch.Tensor:
    """Ensemble disagreement: variance over members of P[s1 > s2].

    d = (1/E) * sum_e (P_e - mean_e P_e)^2

    Args:
        p: [E, N] each member's preference probability for N pairs.

    Returns:
        [N] population variance across the E members.
    """
    assert p.dim() == 2, f"p must be [E, N], got {tuple(p.shape)}"
    return p.var(dim=0, unbiased=False)


def mean_entropy(p: torch.Tensor) -> torch.Tensor:
    """Binary entropy of the ensemble-mean preference probability.

    H = -(p log p + (1 - p) log(1 - p)),   p = mean_e P_e

    Args:
        p: [E, N] member probabilities (or [N] already averaged).

    Returns:
        [N] entropy in nats, in [0, log 2].
    """
    if p.dim() == 2:
        p = p.mean(dim=0)
    assert p.dim() == 1, f"p must be [E, N] or [N], got {tuple(p.shape)}"
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def gap_upper_bound(delta: torch.Tensor) -> torch.Tensor:
    """How much two segments may differ: the ensemble's mean return gap plus its spread.

    u = |mean_e D_e| + std_e D_e,   D_e = R_e(s1) - R_e(s2)

    A pair scores high when the members agree it differs (a label that teaches which way) or disagree
    about it (a label that settles them). Unlike disagreement of P[s1 > s2], it keeps looking for rare
    pairs that differ once the model has seen a few, where most candidate pairs are equal (ties).

    Args:
        delta: [E, N] each member's return difference for N pairs.

    Returns:
        [N] upper bound on the absolute gap (population std over the E members).
    """
    assert delta.dim() == 2, f"delta must be [E, N], got {tuple(delta.shape)}"
    return delta.mean(dim=0).abs() + delta.std(dim=0, unbiased=False)


def rune_reward(r: torch.Tensor, beta0: float, decay: float, t: int) -> torch.Tensor:
    """Learned reward plus RUNE's exploration bonus (Liang et al. 2022): the ensemble's spread, decaying.

    r_total = mean_e r_e + beta_t * std_e r_e,   beta_t = beta0 * (1 - decay)^t

    The spread is largest where the members, fit on the same labels, disagree: behaviour the labels have not
    yet settled. Paying for it early sends the policy (and so the next queries) there.

    Args:
        r: [E, B] each member's reward for B samples (E >= 2).
        beta0: bonus weight at t = 0 (>= 0).
        decay: rho in [0, 1), the weight's decay per step.
        t: steps taken so far (environment steps; completions for text).

    Returns:
        [B] the ensemble mean plus the weighted spread (population std over the E members).
    """
    assert r.dim() == 2 and r.shape[0] >= 2, f"r must be [E, B] with E >= 2, got {tuple(r.shape)}"
    assert beta0 >= 0 and 0 <= decay < 1 and t >= 0, f"need beta0 >= 0, decay in [0, 1), t >= 0: {beta0} {decay} {t}"
    return r.mean(dim=0) + beta0 * (1.0 - decay) ** t * r.std(dim=0, unbiased=False)


def temporal_consistency_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Self-supervised next-latent loss (REED, Metcalf et al.; SimSiam-style): 1 - cosine similarity.

    loss_e = 1/B * sum_b [1 - <p_eb, sg(z'_eb)> / (|p_eb| |z'_eb|)]

    where p = predictor(z_t, a_t) is each member's prediction of the next
    step's latent and z' = z_{t+1} its actual latent, with the gradient
    stopped (``sg``): the target is not pulled towards the prediction, which
    with the predictor keeps the latents from collapsing to a constant.

    Args:
        pred: [E, B, D] predicted next latents.
        target: [E, B, D] latents of the next steps (detached here).

    Returns:
        [E] mean loss of each member, in [0, 2].
    """
    assert pred.dim() == 3 and pred.shape == target.shape, f"pred {tuple(pred.shape)} vs target {tuple(target.shape)}"
    return (1.0 - F.cosine_similarity(pred, target.detach(), dim=-1, eps=1e-8)).mean(dim=-1)


def temporal_contrastive_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Contrastive next-latent loss (InfoNCE, as in CPC/ATC): each prediction must pick its own next latent
    among the batch's.

    s_eij = <p_ei, sg(z'_ej)> / (|p_ei| |z'_ej| tau),   loss_e = -1/B * sum_i log softmax_j(s_eij)[j = i]

    Unlike :func:`temporal_consistency_loss` it cannot be met by latents that barely change from one
    step to the next (consecutive Atari frames) or that all point one way (post-ReLU features): the
    other transitions of the batch are the negatives.

    Args:
        pred: [E, B, D] predicted next latents.
        target: [E, B, D] latents of the next steps (detached here).
        temperature: tau > 0.

    Returns:
        [E] mean loss of each member (log B for a model that cannot tell the transitions apart).
    """
    assert pred.dim() == 3 and pred.shape == target.shape, f"pred {tuple(pred.shape)} vs target {tuple(target.shape)}"
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = F.normalize(pred, dim=-1, eps=1e-8)
    z = F.normalize(target.detach(), dim=-1, eps=1e-8)
    logits = torch.bmm(p, z.transpose(1, 2)) / temperature  # [E, B, B]
    E, B = logits.shape[:2]
    labels = torch.arange(B, device=pred.device).expand(E, B)
    return F.cross_entropy(logits.reshape(E * B, B), labels.reshape(-1), reduction="none").reshape(E, B).mean(-1)


def inverse_dynamics_loss(pred: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Inverse-dynamics loss: which action led from o_t to o_{t+1}, predicted from their two latents.

    discrete:    loss_e = -1/B * sum_b log softmax(pred_eb)[a_eb]
    continuous:  loss_e =  1/B * sum_b |pred_eb - a_eb|^2

    Args:
        pred: [E, B, A] action logits (discrete) or predicted actions (continuous).
        act: [E, B] integer action ids (discrete) or [E, B, A] actions (continuous).

    Returns:
        [E] mean loss of each member.
    """
    assert pred.dim() == 3, f"pred must be [E, B, A], got {tuple(pred.shape)}"
    E, B, A = pred.shape
    if act.dim() == 2 and not act.is_floating_point():
        assert act.shape == (E, B), f"act {tuple(act.shape)} vs pred {tuple(pred.shape)}"
        return F.cross_entropy(pred.reshape(E * B, A), act.reshape(-1).long(), reduction="none").reshape(E, B).mean(-1)
    act = act.reshape(E, B, -1).to(pred.dtype)
    assert act.shape == pred.shape, f"act {tuple(act.shape)} vs pred {tuple(pred.shape)}"
    return (pred - act).pow(2).sum(-1).mean(-1)


def pseudo_labels(p: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SURF's pseudo-labels (Park et al. 2022): confident predictions on unlabeled pairs become hard labels.

    mu_hat = 1[P > 0.5],   keep = max(P, 1 - P) >= threshold

    Args:
        p: [..., N] predicted P[s1 > s2] (no gradient is taken through it).
        threshold: confidence in (0.5, 1] a prediction needs to become a label.

    Returns:
        (mu_hat [..., N] in {0, 1}, keep [..., N] bool).
    """
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"the pseudo-label threshold must be in (0.5, 1], got {threshold}")
    p = p.detach()
    return (p > 0.5).to(p.dtype), torch.maximum(p, 1.0 - p) >= threshold
