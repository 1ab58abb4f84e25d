"""Routing policies: one module per algorithm, all behind :class:`Policy`."""

from pickllm.policies.base import Choice, Policy, available_policies, make_policy

__all__ = [
    "Choice",
    "Policy",
    "available_policies",
    "make_policy",
]
