"""Token-level PPO for causal language models on a batch of ``TextGen-v0`` envs.

The loop (InstructGPT's RL stage, Ouyang et al. 2022; Ziegler et al. 2019):

1. :meth:`LMPPO.rollout` resets B ``TextGenEnv`` s, left-pads their prompts
   into one batch and samples one token per env per forward pass, keeping the
   KV cache across steps; each sampled token is an env ``step``, so the env
   decides when an episode ends and scores the completion (its true score).
2. :meth:`LMPPO.update` takes a score per completion (the true score or a
   learned reward), recomputes log-probabilities and values in one forward
   pass over prompt + completion, adds the per-token KL penalty to the frozen
   reference model, runs GAE over tokens and a few epochs of clipped PPO on
   the policy and a value head, optionally mixing in the pretraining loss
   (PPO-ptx), then adapts the KL coefficient.

The math lives in :mod:`agents.lm_losses`. On a CPU, training only the top
``train_layers`` transformer blocks (plus the final norm and value head)
makes an update several times cheaper; ``train_layers=None`` trains all.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from agents.factory import resolve_device
from agents.lm_layers import ptx_batch_from_texts, set_trainable  # noqa: F401  (ptx_batch_from_texts: importable here as before)
from agents.lm_losses import (
    AdaptiveKLController,
    kl_penalized_rewards,
    lm_loss,
    masked_whiten,
    ppo_clip_loss,
    token_gae,
    value_loss,
)
from agents.lm_rollout import Rollout, model_inputs
from agents.lm_trunk import cut_below_trained

__all__ = ["LMPPO", "LMPPOConfig", "Rollout", "ptx_batch_from_texts"]


@dataclass
class LMPPOConfig:
    """Hyper-parameters of token-level PPO (defaults sized for a 135M model on a CPU)."""

    lr: float = 2e-5
    """Adam learning rate of the trainable LM blocks and the value head."""
    ppo_epochs: int = 2
    """Passes over each rollout batch."""
    minibatch_size: int = 8
    """Sequences per gradient step."""
    clip: float = 0.2
    """PPO ratio clip epsilon."""
    vf_coef: float = 0.1
    """Weight of the value loss (TRL's default)."""
    vf_clip: float = 0.2
    """Clip range of the value loss."""
    gamma: float = 1.0
    """Discount over tokens (1: the completion is one finite episode)."""
    lam: float = 0.95
    """GAE lambda over tokens."""
    init_kl_coef: float = 0.05
    """Starting beta of the per-token KL penalty to the reference model."""
    target_kl: float | None = 4.0
    """KL per sequence (nats) the adaptive controller aims for; None keeps beta fixed."""
    kl_horizon: int = 64
    """Sequences over which the adaptive beta changes by ~e-fold. Ziegler et al.'s 10,000 was a small share of
    runs of ~10^6 episodes; a CPU run here has ~1,300 sequences, over which beta could then move by at most 3%,
    and the KL ran to 24.6 nats against a target of 4 (keyword task). 64 lets beta move up to 5% per update of
    16 sequences."""
    kl_coef_floor: float = 0.0
    """Lowest beta the adaptive controller may set (0 = none; see ``AdaptiveKLController.floor``)."""
    ptx_coef: float = 0.0
    """gamma of PPO-ptx: weight of the pretraining LM loss (0 = plain PPO)."""
    whiten_advantages: bool = True
    """Normalise advantages over each batch."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    train_layers: int | None = 4
    """Train only the top N transformer blocks (+ final norm, value head); None = all."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (1 samples the policy being optimised)."""
    share_trunk: bool = True
    """With ``train_layers``, compute the frozen blocks' output once per rollout and run only the top blocks for
    the policy's and the reference's scoring passes and every PPO minibatch (:mod:`agents.lm_trunk`; the same
    math, ~2x faster updates on a CPU). False runs the whole model each time, as before."""
    seed: int = 0
    """Seeds sampling."""


class LMPPO:
    """A causal LM trained with token-level PPO against a sequence-level score.

    Args:
        model: a transformers causal LM (``logits`` ``[B, T, V]``); trained in place.
        tokenizer: its tokenizer (``pad_token_id`` or ``eos_token_id`` pads).
        config: see :class:`LMPPOConfig`.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        ref_model: the frozen reference; default a copy of ``model`` as given.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, config: LMPPOConfig | None = None,
                 device: str = "auto", ref_model: nn.Module | None = None):
        self.config = cfg = config or LMPPOConfig()
        self.device = torch.device(resolve_device(device))
        self.tokenizer = tokenizer
        self.vocab_size = int(len(tokenizer))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad)
        self.model = model.to(self.device)
        # transformers 5.2x renamed the forward's `past_key_values` to `cache` (the old name warns and goes in 5.40)
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.ref_model = (ref_model or copy.deepcopy(model)).to(self.device).eval()
        for p in self.ref_model.parameters():
            p.requires_grad_(False)
        hidden = int(model.config.hidden_size)
        self.value_head = nn.Linear(hidden, 1).to(self.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        policy_params = set_trainable(self.model, cfg.train_layers)
        self._cut, self._ref_shares = cut_below_trained(self.model, self.ref_model, cfg.train_layers) \
            if cfg.share_trunk else (None, False)
        self.trainable = policy_params + list(self.value_head.parameters())
        self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.lr)
        self.kl_ctl = AdaptiveKLController(cfg.init_kl_coef, cfg.target_kl, cfg.kl_horizon, cfg.kl_coef_floor)
        self._gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self._perm_gen = torch.Generator().manual_seed(cfg.seed + 1)

    # ------------------------------------------------------------ rollouts

    @torch.no_grad()
    def rollout(self, envs: Sequence[Any], seeds: Sequence[int | None], temperature: float | None = None) -> Rollout:
        """Samples one episode in each env, batched, with the KV cache kept across steps.

        Args:
            envs: B ``TextGenEnv`` instances (the same ``max_new_tokens``).
            seeds: B reset seeds (equal seeds give equal prompts: use them
                for several completions of one prompt).
            temperature: sampling temperature of this rollout only (default the
                config's). Its ``logp`` are then at that temperature: such a
                rollout is for candidates or evaluation, not for :meth:`update`.

        Returns:
            A :class:`Rollout`.
        """
        if len(envs) != len(seeds) or not envs:
            raise ValueError(f"need one seed per env and >= 1 env, got {len(envs)} envs, {len(seeds)} seeds")
        temp = self.config.temperature if temperature is None else float(temperature)
        if not (math.isfinite(temp) and temp > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        B = len(envs)
        prompt_ids, prompts = [], []
        for env, s in zip(envs, seeds):
            obs, info = env.reset(seed=s)
            prompt_ids.append(torch.as_tensor(obs["input_ids"][: int(obs["length"])]))
            prompts.append(info["prompt"])
        P = max(len(p) for p in prompt_ids)
        query = torch.full((B, P), self.pad_id, dtype=torch.long)
        qmask = torch.zeros(B, P, dtype=torch.long)
        for i, p in enumerate(prompt_ids):
            query[i, P - len(p) :] = p
            qmask[i, P - len(p) :] = 1
        query, qmask = query.to(self.device), qmask.to(self.device)
        N = max(int(env.max_new_tokens) for env in envs)
        resp = torch.full((B, N), self.pad_id, dtype=torch.long, device=self.device)
        rmask = torch.zeros(B, N, dtype=torch.long, device=self.device)
        logps = torch.zeros(B, N, device=self.device)
        done = [False] * B
        scores = torch.zeros(B)
        completions = [""] * B

        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        attn = qmask
        pos = (qmask.cumsum(1) - 1).clamp_min(0)
        inp, past, steps = query, None, 0
        for t in range(N):
            out = self.model(input_ids=inp, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1,
                             **{self._cache_kwarg: past})
            past = out["cache"] if "cache" in out else out.past_key_values
            logits = out.logits[:, -1, : self.vocab_size].float() / temp
            logp_all = torch.log_softmax(logits, dim=-1)
            tok = torch.multinomial(logp_all.exp(), 1, generator=self._gen).squeeze(1)
            live = torch.tensor([not d for d in done], device=self.device)
            tok = torch.where(live, tok, torch.full_like(tok, self.pad_id))
            resp[:, t] = tok
            rmask[:, t] = live.long()
            logps[:, t] = logp_all.gather(1, tok.unsqueeze(1)).squeeze(1) * live
            steps += 1
            toks = tok.tolist()
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                _, reward, terminated, truncated, info = env.step(toks[i])
                if terminated or truncated:
                    done[i] = True
                    scores[i] = float(reward)
                    completions[i] = info["completion"]
            if all(done):
                break
            inp = tok.unsqueeze(1)
            attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype, device=self.device)], dim=1)
            pos = pos[:, -1:] + 1
        self.model.train(was_training)
        if not all(done):  # only an env that does not truncate at its own max_new_tokens gets here
            raise RuntimeError(f"{done.count(False)} env(s) did not end within {N} steps (their max_new_tokens)")
        return Rollout(query.cpu(), qmask.cpu(), resp[:, :steps].cpu(), rmask[:, :steps].cpu(),
                       logps[:, :steps].cpu(), prompts, completions, scores,
                       gen_seconds=time.perf_counter() - t0, gen_tokens=B * steps)

    # ------------------------------------------------------------ scoring

    def _forward(self, model: nn.Module, ro: Rollout, idx: torch.Tensor | None, values: bool,
                 trunk: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs [b, N] of the sampled tokens (and values [b, N]) in one pass over prompt + completion.

        With ``trunk`` (:meth:`agents.lm_trunk.TrunkCut.trunk` of the whole rollout) only the top blocks run.
        """
        ids, attn, pos, r = model_inputs(ro, idx, self.device)
        N = r.shape[1]
        if trunk is not None:
            logits, h = self._cut.top(model, trunk, idx, N + 1)
        else:
            out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=N + 1,
                        output_hidden_states=values, use_cache=False)
            logits, h = out.logits, (out.hidden_states[-1][:, -(N + 1):] if values else None)
        logits = logits[:, :-1, : self.vocab_size].float() / self.config.temperature  # predicts r_0..r_{N-1}
        logp = torch.log_softmax(logits, dim=-1).gather(2, r.unsqueeze(2)).squeeze(2)
        v = None
        if values:
            v = self.value_head(h[:, :-1].float()).squeeze(-1)  # state before each response token
        return logp, v

    @torch.no_grad()
    def _score(self, ro: Rollout) -> tuple[dict[str, torch.Tensor], dict | None]:
        """:meth:`score_rollout` and the rollout's trunk (None without ``share_trunk``), for the PPO epochs."""
        was = self.model.training
        self.model.eval()
        trunk = None
        if self._cut is not None:
            ids, attn, pos, _ = model_inputs(ro, None, self.device)
            trunk = self._cut.trunk(self.model, ids, attn, pos)
        logp, v = self._forward(self.model, ro, None, values=True, trunk=trunk)
        ref_logp, _ = self._forward(self.ref_model, ro, None, values=False, trunk=trunk if self._ref_shares else None)
        self.model.train(was)
        return {"logp": logp.cpu(), "values": v.cpu(), "ref_logp": ref_logp.cpu()}, trunk

    def score_rollout(self, ro: Rollout) -> dict[str, torch.Tensor]:
        """Old log-probs, values and reference log-probs of a rollout (no grad)."""
        return self._score(ro)[0]

    # ------------------------------------------------------------ update

    def update(self, ro: Rollout, scores: torch.Tensor,
               ptx_batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
        """One PPO update on a rollout, given a score per completion.

        Args:
            ro: the rollout.
            scores: [B] sequence rewards (true score or learned reward).
            ptx_batch: (input_ids [b, T], attention_mask [b, T]) of
                pretraining text for PPO-ptx; used when ``ptx_coef > 0``.

        Returns:
            Metrics: ``ppo/policy_loss``, ``ppo/value_loss``, ``ppo/ptx_loss``,
            ``ppo/clipfrac``, ``ppo/approx_kl``, ``kl/mean`` (per sequence,
            nats, before the update), ``kl/beta``, ``ppo/seconds``,
            ``ppo/tokens_per_second`` (completion tokens trained per second).
        """
        cfg = self.config
        scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1)
        B = len(ro.prompts)
        if scores.shape != (B,):
            raise ValueError(f"need one score per completion ({B}), got {tuple(scores.shape)}")
        if not torch.isfinite(scores).all():
            raise ValueError("scores contain NaN or inf")
        if cfg.ptx_coef > 0 and ptx_batch is None:
            raise ValueError("ptx_coef > 0 needs a ptx_batch of pretraining text")
        t0 = time.perf_counter()
        old, trunk = self._score(ro)
        mask = ro.response_mask
        beta = self.kl_ctl.value
        rewards, kl = kl_penalized_rewards(old["logp"], old["ref_logp"], scores, mask, beta)
        adv, returns = token_gae(rewards, old["values"], mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            adv = masked_whiten(adv, mask)
        self.model.train()
        stats: dict[str, list[float]] = {k: [] for k in ("policy", "value", "ptx", "clipfrac", "approx_kl")}
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(B, generator=self._perm_gen).split(cfg.minibatch_size):
                m = mask[idx].to(self.device)
                logp, v = self._forward(self.model, ro, idx, values=True, trunk=trunk)
                pl, info = ppo_clip_loss(logp, old["logp"][idx].to(self.device), adv[idx].to(self.device), m, cfg.clip)
                vl = value_loss(v, old["values"][idx].to(self.device), returns[idx].to(self.device), m, cfg.vf_clip)
                loss = pl + cfg.vf_coef * vl
                ptx = torch.zeros(())
                if cfg.ptx_coef > 0:
                    ptx = self.pretraining_loss(*ptx_batch)
                    loss = loss + cfg.ptx_coef * ptx
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
                self.optimizer.step()
                for k, val in (("policy", pl), ("value", vl), ("ptx", ptx), ("clipfrac", info["clipfrac"]),
                               ("approx_kl", info["approx_kl"])):
                    stats[k].append(float(val.detach()) if torch.is_tensor(val) else float(val))
        self.model.eval()
        kl_mean = float(kl.mean())
        self.kl_ctl.update(kl_mean, B)
        seconds = time.perf_counter() - t0
        mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
        return {
            "ppo/policy_loss": mean(stats["policy"]),
            "ppo/value_loss": mean(stats["value"]),
            "ppo/ptx_loss": mean(stats["ptx"]),
            "ppo/clipfrac": mean(stats["clipfrac"]),
            "ppo/approx_kl": mean(stats["approx_kl"]),
            "kl/mean": kl_mean,
            "kl/beta": beta,
            "ppo/mean_score": float(scores.mean()),
            "ppo/seconds": seconds,
            "ppo/tokens_per_second": float(mask.sum()) * cfg.ppo_epochs / max(seconds, 1e-9),
            "ppo/response_length": float(mask.sum(1).float().mean()),
        }

    def pretraining_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of the policy on pretraining text (PPO-ptx), see ``lm_loss``.

        Args:
            input_ids: [b, T] right-padded ids (``ptx_batch_from_texts``).
            attention_mask: [b, T] 1 on real tokens.
        """
        ids, am = input_ids.to(self.device), attention_mask.to(self.device)
        return lm_loss(self.model(input_ids=ids, attention_mask=am).logits[..., : self.vocab_size], ids, am)

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """What a resumed run needs: the trained parameters (by name), value head, optimizer, beta and RNGs.

        Frozen parameters are left out (they equal the model the run started from), so a
        checkpoint of SmolLM2 with 4 trained blocks holds ~1/5 of its weights.
        """
        trained = {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        return {"policy": trained, "value_head": self.value_head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "beta": self.kl_ctl.value,
                "sample_rng": self._gen.get_state(), "perm_rng": self._perm_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict` into a freshly built LMPPO with the same model and config.

        Raises:
            ValueError: the checkpoint trained other parameters than this config trains.
        """
        params = dict(self.model.named_parameters())
        mine = {n for n, p in params.items() if p.requires_grad}
        if set(state["policy"]) != mine:
            raise ValueError(f"checkpoint trained {len(state['policy'])} parameter tensors, this LMPPO trains "
                             f"{len(mine)}: resume with the same model and --train-layers")
        with torch.no_grad():
            for n, t in state["policy"].items():
                params[n].copy_(t.to(params[n].device))
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_ctl.value = float(state["beta"])
        self._gen.set_state(state["sample_rng"])
        self._perm_gen.set_state(state["perm_rng"])

    def reseed_sampling(self, seed: int) -> None:
        """Restarts the token-sampling stream at ``seed`` (e.g. to sample several settings from the same stream)."""
        self._gen.manual_seed(seed)

    @torch.no_grad()
    def generate_baseline(self, ro: Rollout) -> tuple[float, int]:
        """Times ``model.generate`` on the rollout's prompts with the same sampling and length.

        Returns:
            (seconds, generated tokens counted as B x steps, as for ``Rollout.gen_tokens``).
        """
        q, qm = ro.query_ids.to(self.device), ro.query_mask.to(self.device)
        N = ro.response_ids.shape[1]
        t0 = time.perf_counter()
        out = self.model.generate(input_ids=q, attention_mask=qm, max_new_tokens=N, do_sample=True, top_k=0,
                                  top_p=1.0, temperature=self.config.temperature, pad_token_id=self.pad_id)
        return time.perf_counter() - t0, int(q.shape[0] * (out.shape[1] - q.shape[1]))
