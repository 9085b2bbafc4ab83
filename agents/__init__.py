"""Agents that train on the learned reward: PPO and A2C, on the GPU when present.

Both are stable-baselines3's: they share one rollout and GAE path
(``OnPolicyAlgorithm.collect_rollouts`` and ``RolloutBuffer``) and differ only
in the update (clipped surrogate with several epochs vs one policy-gradient
step). Hyper-parameters per environment family live in ``agents.defaults``.
"""

from agents.factory import AGENTS, make_agent, resolve_device

__all__ = ["AGENTS", "make_agent", "resolve_device"]
