"""Cascade routing (Dekoninck et al.): estimators, strategies, and the live protocol.

* :mod:`~pickllm.cascade.rules`: expected maximum under the estimates' covariance and the
  supermodel search (pruning, depth cap, tie mixing).
* :mod:`~pickllm.cascade.estimators`: ex-ante and post-hoc quality, cost estimators.
* :mod:`~pickllm.cascade.offline`: the strategies replayed on recorded outcomes, fitted
  to a budget.
* :mod:`~pickllm.cascade.live` and :func:`make_strategy`: the strategies for live calls.
* :mod:`~pickllm.cascade.trained`: trained estimators saved with ``pickllm train --cascade``
  (``load_estimator``).
"""

from pickllm.cascade.factory import STRATEGIES, make_strategy
from pickllm.cascade.live import LiveCascade, LiveEstimator, LiveSession
from pickllm.cascade.protocol import CascadeSession, CascadeStep, CascadeStrategy
from pickllm.cascade.rules import expected_max, search_supermodel

__all__ = [
    "STRATEGIES",
    "CascadeSession",
    "CascadeStep",
    "CascadeStrategy",
    "LiveCascade",
    "LiveEstimator",
    "LiveSession",
    "expected_max",
    "make_strategy",
    "search_supermodel",
]
