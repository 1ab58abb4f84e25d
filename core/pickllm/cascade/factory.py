"""Live cascade strategies by name, for ``strategy=`` in both framework wrappers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from pickllm.cascade.live import LiveCascade, LiveEstimator
from pickllm.cascade.protocol import CascadeStrategy
from pickllm.errors import ConfigError
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

    Examples:
        >>> from pickllm.types import Candidate
        >>> pool = [Candidate(name="a", input_price=1.0, output_price=1.0)]
        >>> make_strategy("cascade_routing", candidates=pool, budget_usd=0.01).name
        'cascade_routing'
        >>> make_strategy("cascade", candidates=pool, budget_usd=0.01)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pickllm.errors.ConfigError: strategy must be one of ..., got 'cascade'
    """
    if name not in STRATEGIES:
        msg = f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}"
        raise ConfigError(msg)
    if estimator is not None and not isinstance(estimator, LiveEstimator):
        msg = (
            "estimator must be a trained cascade estimator (pickllm.cascade.load_estimator) "
            f"or None, got {type(estimator).__name__}"
        )
        raise ConfigError(msg)
    return LiveCascade(
        name,
        candidates=tuple(candidates),
        budget_usd=budget_usd,
        estimator=estimator,
        seed=seed,
    )
