"""Cascade routing (Dekoninck et al.): estimators, strategies, and the live protocol."""

from pickllm.cascade.protocol import CascadeSession, CascadeStep, CascadeStrategy

__all__ = ["CascadeSession", "CascadeStep", "CascadeStrategy"]
