"""Per-query cost-aware routing: the optimal one-model-per-query rule and its budget fit.

For predicted qualities ``q_hat`` and costs ``c_hat`` (both ``(n, k)``: ``n`` queries,
``k`` models), the routing that maximises expected quality subject to an average-cost
budget ``B`` is (cascade routing, Dekoninck et al., §3.2 of the algorithm notes):

* score every model by ``tau_k = q_hat_k - lam * c_hat_k`` and take the arg-max;
* at the critical ``lam`` where the average cost crosses ``B``, some queries tie between a
  cheaper and a dearer model; take the dearer one with probability ``gamma`` chosen so
  that the expected average cost is exactly ``B``.

:func:`fit_lambda` finds ``lam`` by doubling then bisection on the fitting data and returns
a :class:`LambdaFit`; :func:`apply` routes new queries with it (drawing the tie mixing
from an injected Generator), :func:`route_sides` gives both sides of the mix for exact
expected values, and :func:`lambda_sweep` fits a list of budgets. Query-aware learners
call these with their own predictions; every function takes plain arrays.

Examples:
    >>> import numpy as np
    >>> q = np.array([[0.6, 0.9], [0.2, 0.9]])
    >>> c = np.array([[1.0, 3.0], [1.0, 3.0]])
    >>> route_by_lambda(q, c, 0.0).tolist(), route_by_lambda(q, c, 1.0).tolist()
    ([1, 1], [0, 0])
    >>> fit = fit_lambda(q, c, budget=2.0)
    >>> round(fit.lam, 6), round(fit.gamma, 6), round(fit.cost, 6)
    (0.15, 0.0, 2.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from pickllm.errors import ConfigError
from pickllm.metrics import convex_hull

__all__ = [
    "LambdaFit",
    "apply",
    "evaluate_fit",
    "fit_lambda",
    "lambda_sweep",
    "pareto_budgets",
    "route_by_lambda",
    "route_sides",
]

# Scores equal to within this relative slack are ties: q - lam*c computed for two models
# that truly tie can differ in the last bits.
_TIE_RTOL = 1e-12
# Bisection stops when the bracket is this narrow (relative): the cost is piecewise
# constant in lam, so a bracket this tight holds a single breakpoint in practice.
_BRACKET_RTOL = 1e-12
_MAX_DOUBLINGS = 2100
_BUDGET_RTOL = 1e-12


def _arrays(q_hat: ArrayLike, c_hat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(q_hat, dtype=float)
    c = np.asarray(c_hat, dtype=float)
    if q.ndim != 2 or q.shape != c.shape or q.shape[1] == 0:
        msg = (
            "q_hat and c_hat must be (n, k) arrays of the same shape with k >= 1, "
            f"got {q.shape} and {c.shape}"
        )
        raise ConfigError(msg)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(c))):
        msg = "q_hat and c_hat must be finite"
        raise ConfigError(msg)
    return q, c


def _bounds(q: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Largest magnitudes of q and c, which set the scale of the tie tolerance."""
    if q.size == 0:
        return 0.0, 0.0
    return float(np.abs(q).max()), float(np.abs(c).max())


def _route(
    q: np.ndarray,
    c: np.ndarray,
    lam: float,
    prefer: Literal["cheapest", "expensive"],
    bounds: tuple[float, float],
) -> np.ndarray:
    score = q if lam == 0.0 else q - lam * c
    tol = _TIE_RTOL * max(1.0, bounds[0] + lam * bounds[1])
    tied = score >= score.max(axis=1, keepdims=True) - tol
    if prefer == "cheapest":
        return np.asarray(np.where(tied, c, np.inf).argmin(axis=1), dtype=np.intp)
    return np.asarray(np.where(tied, c, -np.inf).argmax(axis=1), dtype=np.intp)


def route_by_lambda(
    q_hat: ArrayLike,
    c_hat: ArrayLike,
    lam: float,
    *,
    prefer: Literal["cheapest", "expensive"] = "cheapest",
) -> np.ndarray:
    """Model index per query: the arg-max of ``q_hat - lam * c_hat``.

    Args:
        q_hat: ``(n, k)`` predicted quality.
        c_hat: ``(n, k)`` predicted cost.
        lam: the price of one unit of cost in units of quality, ``>= 0``.
        prefer: which model wins a tie: the ``"cheapest"`` or the most ``"expensive"``
            (then the first in column order).

    Returns:
        ``(n,)`` int array of model indices.
    """
    q, c = _arrays(q_hat, c_hat)
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        msg = f"lam must be a finite number >= 0, got {lam!r}"
        raise ConfigError(msg)
    if prefer not in ("cheapest", "expensive"):
        msg = f"prefer must be 'cheapest' or 'expensive', got {prefer!r}"
        raise ConfigError(msg)
    return _route(q, c, float(lam), prefer, _bounds(q, c))


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaFit:
    """A cost-aware routing rule fitted to a budget.

    Route with ``lam`` (cheapest on ties); on the queries where routing with the slightly
    smaller ``lam_expensive`` picks another (dearer) model, take that one with
    probability ``gamma``. Both lambdas bracket the critical value within a relative
    1e-12, so those queries are exactly the ties at the critical lambda.

    Args:
        lam: the critical lambda (cheap side of the mix); 0 when the budget does not bind.
        lam_expensive: the other end of the final bracket (expensive side).
        gamma: probability of the expensive side on the queries where the sides differ.
        budget: the average cost asked for.
        cost: expected average predicted cost on the fitting data.
        quality: expected average predicted quality on the fitting data.
        feasible: whether ``cost <= budget``; False when even the cheapest model of
            every query costs more than the budget (then every query gets its cheapest).

    Examples:
        >>> import numpy as np
        >>> q = np.array([[0.5, 1.0], [0.5, 1.0]])
        >>> c = np.array([[1.0, 2.0], [1.0, 2.0]])
        >>> fit = fit_lambda(q, c, budget=1.25)
        >>> round(fit.lam, 6), round(fit.gamma, 6), round(fit.cost, 6), round(fit.quality, 6)
        (0.5, 0.25, 1.25, 0.625)
        >>> apply(fit, q, c, np.random.default_rng(0)).tolist()
        [0, 0]
    """

    lam: float
    lam_expensive: float
    gamma: float
    budget: float
    cost: float
    quality: float
    feasible: bool = True


@dataclass(frozen=True, slots=True)
class _Distinct:
    """The distinct rows of (q, c) with their weights.

    Routing depends only on the row, and predictors such as per-task averages repeat a
    handful of rows thousands of times.
    """

    q: np.ndarray
    c: np.ndarray
    weight: np.ndarray
    bounds: tuple[float, float]

    @classmethod
    def of(cls, q: np.ndarray, c: np.ndarray) -> _Distinct:
        k = q.shape[1]
        rows, counts = np.unique(np.hstack([q, c]), axis=0, return_counts=True)
        return cls(rows[:, :k], rows[:, k:], counts / counts.sum(), _bounds(q, c))

    def means(self, lam: float) -> tuple[float, float]:
        """Mean quality and cost of routing with ``lam`` (cheapest on ties)."""
        idx = _route(self.q, self.c, lam, "cheapest", self.bounds)
        rows = np.arange(idx.shape[0])
        return float(self.weight @ self.q[rows, idx]), float(self.weight @ self.c[rows, idx])


def _check_fit_args(q: np.ndarray, budget: float, max_iterations: int) -> None:
    if q.shape[0] == 0:
        msg = "fit_lambda needs at least one query, got q_hat with 0 rows"
        raise ConfigError(msg)
    if not (isinstance(budget, int | float) and math.isfinite(budget) and budget >= 0):
        msg = f"budget must be a finite number >= 0, got {budget!r}"
        raise ConfigError(msg)
    if not (isinstance(max_iterations, int) and max_iterations >= 1):
        msg = f"max_iterations must be an int >= 1, got {max_iterations!r}"
        raise ConfigError(msg)


def _bisect(
    cost_at: Callable[[float], float], budget: float, lo: float, hi: float, iterations: int
) -> tuple[float, float]:
    """Narrow ``[lo, hi]`` (cost above the budget at lo, within it at hi) to one breakpoint."""
    for _ in range(iterations):
        if hi - lo <= _BRACKET_RTOL * hi:
            break
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if cost_at(mid) > budget:
            lo = mid
        else:
            hi = mid
    return lo, hi


def fit_lambda(
    q_hat: ArrayLike,
    c_hat: ArrayLike,
    budget: float,
    *,
    max_iterations: int = 200,
) -> LambdaFit:
    """Fit the routing rule so its expected average cost on this data equals ``budget``.

    If routing for quality alone (``lam = 0``) already costs at most the budget, the fit
    is ``lam = 0`` and the budget does not bind. Otherwise ``lam`` is doubled from 1 until
    the cost falls to the budget, bisected down to the critical value, and ``gamma`` mixes
    the two sides of that breakpoint: ``(1 - gamma) * cost_cheap + gamma * cost_expensive
    = budget``.

    Args:
        q_hat: ``(n, k)`` predicted quality, ``n >= 1``.
        c_hat: ``(n, k)`` predicted cost.
        budget: average cost per query to spend, ``>= 0``.
        max_iterations: bisection steps at most.

    Raises:
        ConfigError: bad shapes or values.
    """
    q, c = _arrays(q_hat, c_hat)
    _check_fit_args(q, budget, max_iterations)

    data = _Distinct.of(q, c)
    # Costs summed in another order may differ from the budget in the last bits.
    within = budget * (1.0 + _BUDGET_RTOL)

    def cost_at(lam: float) -> float:
        return data.means(lam)[1]

    def single(lam: float, *, feasible: bool = True) -> LambdaFit:
        quality, cost = data.means(lam)
        return LambdaFit(
            lam=lam,
            lam_expensive=lam,
            gamma=0.0,
            budget=float(budget),
            cost=cost,
            quality=quality,
            feasible=feasible,
        )

    if cost_at(0.0) <= within:
        return single(0.0)
    floor = float(data.weight @ data.c.min(axis=1))
    lo, hi = 0.0, 1.0
    for _ in range(_MAX_DOUBLINGS):
        cost = cost_at(hi)
        if cost <= within or cost <= floor:
            break
        lo, hi = hi, hi * 2.0
    if cost_at(hi) > within:
        return single(hi, feasible=False)
    lo, hi = _bisect(cost_at, within, lo, hi, max_iterations)
    q_cheap, c_cheap = data.means(hi)
    q_exp, c_exp = data.means(lo)
    gamma = 0.0 if c_exp <= c_cheap else min(max((budget - c_cheap) / (c_exp - c_cheap), 0.0), 1.0)
    return LambdaFit(
        lam=hi,
        lam_expensive=lo,
        gamma=gamma,
        budget=float(budget),
        cost=(1.0 - gamma) * c_cheap + gamma * c_exp,
        quality=(1.0 - gamma) * q_cheap + gamma * q_exp,
    )


def route_sides(
    fit: LambdaFit, q_hat: ArrayLike, c_hat: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of the fitted mix: ``(cheap, expensive)`` model index per query.

    A query is routed to ``expensive[i]`` with probability ``fit.gamma`` and to
    ``cheap[i]`` otherwise; they differ only on the queries that tie at ``fit.lam``.
    """
    q, c = _arrays(q_hat, c_hat)
    bounds = _bounds(q, c)
    cheap = _route(q, c, fit.lam, "cheapest", bounds)
    if fit.gamma == 0.0 or fit.lam_expensive == fit.lam:
        return cheap, cheap
    return cheap, _route(q, c, fit.lam_expensive, "cheapest", bounds)


def apply(
    fit: LambdaFit,
    q_hat: ArrayLike,
    c_hat: ArrayLike,
    rng: np.random.Generator,
) -> np.ndarray:
    """Route each query with a fitted rule, drawing the tie mixing from ``rng``.

    One uniform number is drawn per query whatever the data, so the stream of ``rng``
    does not depend on where ties fall.

    Returns:
        ``(n,)`` int array of model indices.
    """
    cheap, expensive = route_sides(fit, q_hat, c_hat)
    draws = rng.random(cheap.shape[0])
    return np.where(draws < fit.gamma, expensive, cheap)


def evaluate_fit(
    fit: LambdaFit,
    q_hat: ArrayLike,
    c_hat: ArrayLike,
    quality: ArrayLike,
    cost: ArrayLike,
) -> tuple[float, float]:
    """Expected mean ``(quality, cost)`` of routing with ``fit`` given the true outcomes.

    Routing uses the predictions ``q_hat``/``c_hat``; the outcome is read from the true
    ``(n, k)`` ``quality`` and ``cost``. The tie mixing is taken in expectation, so the
    result has no sampling noise.
    """
    q_true, c_true = _arrays(quality, cost)
    cheap, expensive = route_sides(fit, q_hat, c_hat)
    if cheap.shape[0] != q_true.shape[0]:
        msg = f"predictions have {cheap.shape[0]} rows but the outcomes {q_true.shape[0]}"
        raise ConfigError(msg)
    rows = np.arange(cheap.shape[0])
    g = fit.gamma
    q_mix = (1.0 - g) * q_true[rows, cheap] + g * q_true[rows, expensive]
    c_mix = (1.0 - g) * c_true[rows, cheap] + g * c_true[rows, expensive]
    return float(q_mix.mean()), float(c_mix.mean())


def pareto_budgets(
    costs: ArrayLike,
    qualities: ArrayLike,
    *,
    per_segment: int = 10,
) -> np.ndarray:
    """Budgets to sweep, the cascade-routing paper's grid.

    ``per_segment`` evenly spaced budgets between consecutive models of the convex Pareto
    front, from the cheapest model's mean cost to the best model's, plus the most
    expensive model's.

    Args:
        costs: mean cost of each single model.
        qualities: mean quality of each single model.
        per_segment: budgets per segment (including both ends), ``>= 2``.

    Examples:
        >>> pareto_budgets([1.0, 2.0, 4.0], [0.5, 0.6, 0.9], per_segment=3).tolist()
        [1.0, 2.5, 4.0]
    """
    if not (isinstance(per_segment, int) and per_segment >= 2):
        msg = f"per_segment must be an int >= 2, got {per_segment!r}"
        raise ConfigError(msg)
    x = np.asarray(costs, dtype=float)
    hull = convex_hull(x, qualities)
    front = x[hull]
    parts = [np.linspace(a, b, per_segment) for a, b in itertools.pairwise(front)]
    return np.unique(np.concatenate([front, [x.max()], *parts]))


def lambda_sweep(
    q_hat: ArrayLike,
    c_hat: ArrayLike,
    budgets: Sequence[float] | np.ndarray,
    *,
    max_iterations: int = 200,
) -> list[LambdaFit]:
    """Fit the routing rule for each budget (in the given order): the operating points.

    Examples:
        >>> import numpy as np
        >>> q = np.array([[0.5, 1.0], [0.5, 1.0]])
        >>> c = np.array([[1.0, 2.0], [1.0, 2.0]])
        >>> [(round(f.cost, 3), round(f.quality, 3)) for f in lambda_sweep(q, c, [1, 1.5, 2])]
        [(1.0, 0.5), (1.5, 0.75), (2.0, 1.0)]
    """
    q, c = _arrays(q_hat, c_hat)
    return [fit_lambda(q, c, float(b), max_iterations=max_iterations) for b in budgets]
