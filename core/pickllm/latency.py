"""Simulated per-call latency for outcome tables that recorded none.

None of the bundled data sets recorded wall-clock times, yet PickLLM's objective weighs
latency. :class:`LatencyModel` fills the gap with a simple, documented, seeded model:

* each model ``k`` gets a median latency that grows with how expensive it is, since price
  tracks model size and size tracks time per token::

      median_k = base_s * (cost_k / cost_ref) ** exponent

  where ``cost_k`` is the model's mean cost per call in the table and ``cost_ref`` the
  lowest positive one (so the cheapest model's median is ``base_s``); without any cost
  every model's median is ``base_s``;
* each call draws ``median_k * exp(sigma * z)`` with ``z ~ N(0, 1)`` (a lognormal, the usual
  shape of service latencies: a floor-free body and a long right tail).

With the defaults, on ``routerbench_subset`` Mistral-7B gets a median of 0.6 s, Mixtral about
0.8 s and GPT-4 about 2 s. These numbers are illustrative, not measured; every report that
uses them labels latency as simulated. A table with a real ``latency`` is used as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.types import SeedLike

__all__ = ["LatencyModel", "latency_matrix"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyModel:
    """Lognormal per-model latency whose median grows with the model's cost.

    Args:
        base_s: median latency in seconds of the cheapest model.
        exponent: how fast the median grows with the cost ratio (0: all equal).
        sigma: standard deviation of ``log(latency)`` around the median.

    Examples:
        >>> import numpy as np
        >>> from pickllm.data import OutcomeTable
        >>> t = OutcomeTable(
        ...     name="toy", prompt_ids=("p1", "p2"), prompts=("a", "b"), tasks=("x", "x"),
        ...     splits=("test", "test"), folds=np.array([0, 0]), models=("small", "large"),
        ...     quality=np.ones((2, 2)), cost=np.array([[1.0, 16.0], [1.0, 16.0]]),
        ...     cost_estimated=False, input_tokens=np.array([3, 3]), latency=None,
        ...     responses=None)
        >>> LatencyModel(base_s=0.5, exponent=0.25).medians(t).tolist()
        [0.5, 1.0]
        >>> LatencyModel().simulate(t, seed=0).round(3).tolist()
        [[0.631, 1.307], [0.775, 1.438]]
    """

    base_s: float = 0.6
    exponent: float = 0.3
    sigma: float = 0.4

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base_s) and self.base_s > 0):
            msg = f"LatencyModel base_s must be a positive number of seconds, got {self.base_s!r}"
            raise ConfigError(msg)
        if not (math.isfinite(self.exponent) and self.exponent >= 0):
            msg = f"LatencyModel exponent must be a finite number >= 0, got {self.exponent!r}"
            raise ConfigError(msg)
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            msg = f"LatencyModel sigma must be a finite number >= 0, got {self.sigma!r}"
            raise ConfigError(msg)

    def medians(self, table: OutcomeTable) -> np.ndarray:
        """Median latency per model, shape ``(k,)``."""
        k = table.n_models
        if table.cost is None or table.n_prompts == 0:
            return np.full(k, self.base_s)
        mean_cost = table.cost.mean(axis=0)
        positive = mean_cost[mean_cost > 0]
        if positive.size == 0:
            return np.full(k, self.base_s)
        ratio = np.maximum(mean_cost / positive.min(), 1.0)
        return np.asarray(self.base_s * ratio**self.exponent, dtype=float)

    def simulate(self, table: OutcomeTable, *, seed: SeedLike = None) -> np.ndarray:
        """One latency per (prompt, model), shape ``(n, k)``, drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((table.n_prompts, table.n_models))
        return np.asarray(self.medians(table)[None, :] * np.exp(self.sigma * z), dtype=float)


def latency_matrix(
    table: OutcomeTable,
    *,
    model: LatencyModel | None = None,
    seed: SeedLike = None,
) -> tuple[np.ndarray, bool]:
    """The table's latency, simulated if it has none.

    Returns:
        ``(latency (n, k), simulated)``.
    """
    if table.latency is not None:
        return table.latency, False
    return (model or LatencyModel()).simulate(table, seed=seed), True
