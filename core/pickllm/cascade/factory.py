"""Live cascade strategies by name, for ``strategy=`` in both framework wrappers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from pickllm.cascade.protocol import CascadeStrategy
from pickllm.types import Candidate

__all__ = ["STRATEGIES", "make_strategy"]

StrategyName = Literal["threshold_cascade", "optimal_cascade", "cascade_routing"]
STRATEGIES: tuple[str, ...] = ("threshold_cascade", "optimal_cascade", "cascade_routing")


def make_strategy(
    name: str,
    *,
    candidates: Sequence[Candidate],
    budget_usd: float | None,
    estimator: object | None = None,
    seed: np.random.Generator | int | None = None,
) -> CascadeStrategy:
    """The live strategy called ``name`` over ``candidates``.

    Args:
        name: one of :data:`STRATEGIES`.
        candidates: the pool (with prices), for cost estimates.
        budget_usd: target average cost per call in USD; None: no budget (quality first).
        estimator: a trained ex-ante/post-hoc estimator (``pickllm train`` output) or None
            (priors, learned online from the steps' post-hoc estimates).
        seed: the generator of the tie mixing.

    Raises:
        ConfigError: unknown name or bad budget, naming the value and what is allowed.
    """
    raise NotImplementedError("filled in by the cascade issue (#11)")
