"""Cascade strategies replayed on recorded outcomes, and their fit to a budget.

Three strategies over an :class:`~pickllm.cascade.estimators.OfflineEstimator`:

* ``threshold_cascade``: models in cost order; after model ``j`` (step ``s``) continue iff
  its post-hoc estimate is below ``1 - lam_s``; the answer is the last model run.
* ``optimal_cascade``: the same order, but each step routes over the prefix supermodels
  ``{1..j}, ..., {1..D}`` by ``E[max] - lam_s * cost`` (stop = keep the current prefix).
* ``cascade_routing``: each step searches every supermodel containing the models run
  (:func:`~pickllm.cascade.rules.search_supermodel`, with pruning) and runs the cheapest
  unrun model of the best one; it stops when the best is the set already run.

The two supermodel strategies answer with the run model of highest post-hoc estimate.
Every strategy stops at ``max_depth`` models (the paper's RouterBench cap: 5).

Fitting to a budget (the paper fits on a held-out half of the training data, algorithm
notes §3.5): :func:`sweep` replays a strategy on the fitting rows for a grid of
multiplier vectors (constant ``lam`` over a log grid, times optional per-step
profiles ``lam_s = lam * ratio**s``), giving one (mean cost, mean quality) point each.
:func:`mix_for_budget` then takes the best mixture of two grid points whose expected
cost is the budget: the upper convex hull of the points, cut at the budget, with
``gamma`` the probability of the dearer point. This plays the role of the paper's
bisection on ``lam`` plus its tie mixing ``gamma`` (both end at "two policies, mixed to
spend exactly the budget"), keeps the paper's selection rule (the best training quality
whose training cost is within the budget), and needs each grid point replayed only once
for every budget.

The paper's defaults and ours (algorithm notes §3.5):

======================  ===========================================  ==========================
setting                 paper (RouterBench scripts)                  here
======================  ===========================================  ==========================
max depth               5                                            5
E[max] samples          100 scrambled Sobol                          100 shifted Halton,
                                                                     antithetic
lam search              doubling from 10000, 30 bisections;          log grid of ``points``
                        TPE over per-step lam (2 x 200 trials)       values (12 in the bench)
                                                                     x per-step ``ratios``
selection               best training quality within the budget      same (upper hull)
gamma                   mixes the tie sides at the critical lam      mixes two grid points
threshold lam range     [0, 1]                                       [0, 1]
fitting rows            5% of RouterBench (half of train elsewhere)  half of train
======================  ===========================================  ==========================

Examples:
    >>> import numpy as np
    >>> from pickllm.cascade.estimators import NoisyOracle
    >>> truth = np.array([[1.0, 1.0], [0.0, 1.0]] * 10)
    >>> cost = np.tile([1.0, 10.0], (20, 1))
    >>> est = NoisyOracle.fit(truth, cost, ante=0.0, post=0.0, fit_rows=np.arange(20))
    >>> rule = Strategy("cascade_routing", order=np.array([0, 1]))
    >>> rule.run(est, 0, [0.01, 0.01]).run, rule.run(est, 1, [0.01, 0.01]).run
    ((0,), (1,))
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pickllm.cascade.estimators import OfflineEstimator
from pickllm.cascade.rules import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_SAMPLES,
    joint_samples,
    normal_samples,
    search_supermodel,
)
from pickllm.errors import ConfigError
from pickllm.metrics import convex_hull

__all__ = [
    "STRATEGY_KINDS",
    "Mix",
    "Outcome",
    "Strategy",
    "Sweep",
    "lambda_grid",
    "mix_for_budget",
    "sweep",
]

STRATEGY_KINDS = ("threshold_cascade", "optimal_cascade", "cascade_routing")
"""The cascade strategies, by name."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a strategy did on one query: the models run, in order, and the answer's model."""

    run: tuple[int, ...]
    answer: int


@dataclass(slots=True)
class Strategy:
    """One cascade strategy over a fixed cost order of the models.

    Args:
        kind: one of :data:`STRATEGY_KINDS`.
        order: model indices from cheapest to dearest.
        max_depth: models run per query at most.
        n_samples: quasi-Monte-Carlo samples per expected maximum.
        use_sigma: use the estimators' covariance (False: ``E[max] = max q_hat``).
        prune: the pruning lemma (cascade routing).
        seed: seeds the quasi-Monte-Carlo shift.
        clip: clip the quality draws to [0, 1] (a quality cannot exceed 1; the paper's
            code does not clip).
        clock: timer of the per-step decision times (``time.perf_counter``).
    """

    kind: str
    order: np.ndarray
    max_depth: int = DEFAULT_MAX_DEPTH
    n_samples: int = DEFAULT_SAMPLES
    use_sigma: bool = True
    prune: bool = True
    seed: int = 0
    clip: bool = True
    clock: Callable[[], float] = time.perf_counter
    decision_times: list[float] = field(default_factory=list)
    _samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in STRATEGY_KINDS:
            msg = f"kind must be one of {', '.join(STRATEGY_KINDS)}, got {self.kind!r}"
            raise ConfigError(msg)
        if not (isinstance(self.max_depth, int) and self.max_depth >= 1):
            msg = f"max_depth must be an int >= 1, got {self.max_depth!r}"
            raise ConfigError(msg)
        self.order = np.asarray(self.order, dtype=np.intp)
        self._samples = normal_samples(self.n_samples, self.order.size, seed=self.seed)

    def run(
        self,
        estimator: OfflineEstimator,
        row: int,
        lams: Sequence[float | None],
        *,
        gamma: float = 0.0,
        u: float = 1.0,
        timed: bool = False,
    ) -> Outcome:
        """Replay the strategy on ``row`` with per-step multipliers ``lams``.

        A step ``s`` with ``s >= len(lams)`` or ``lams[s] is None`` stops the cascade.
        """
        if self.kind == "threshold_cascade":
            return self._threshold(estimator, row, lams)
        run: tuple[int, ...] = ()
        cascade = self.kind == "optimal_cascade"
        while True:
            step = len(run)
            if step >= self.max_depth or step >= len(lams) or lams[step] is None:
                break
            lam = float(lams[step])  # type: ignore[arg-type]
            start = self.clock() if timed else 0.0
            est = estimator.estimate(row, run)
            draws = (
                joint_samples(est.q_hat, est.sigma, self._samples)  # type: ignore[arg-type]
                if self.use_sigma and est.sigma is not None
                else None
            )
            if draws is not None and self.clip:
                draws = np.clip(draws, 0.0, 1.0)
            choice = search_supermodel(
                est.q_hat,
                est.c_hat,
                run,
                lam,
                draws=draws,
                max_depth=self.max_depth,
                gamma=gamma,
                u=u,
                cascade=cascade,
                prune=self.prune,
                order=self.order,
            )
            if timed:
                self.decision_times.append(self.clock() - start)
            if choice.next_model is None:
                break
            run = (*run, choice.next_model)
        if not run:
            run = (int(self.order[0]),)
        final = estimator.estimate(row, run).q_hat
        answer = max(run, key=lambda j: (final[j], -j))
        return Outcome(run=run, answer=int(answer))

    def _threshold(
        self, estimator: OfflineEstimator, row: int, lams: Sequence[float | None]
    ) -> Outcome:
        run: tuple[int, ...] = (int(self.order[0]),)
        for step in range(1, min(self.max_depth, self.order.size)):
            lam = lams[step - 1] if step - 1 < len(lams) else None
            if lam is None:
                break
            post = estimator.estimate(row, run).q_hat[run[-1]]
            if post >= 1.0 - float(lam):
                break
            run = (*run, int(self.order[step]))
        return Outcome(run=run, answer=run[-1])


def lambda_grid(
    kind: str,
    unit: float,
    *,
    points: int = 16,
    ratios: Sequence[float] = (1.0,),
    depth: int = DEFAULT_MAX_DEPTH,
) -> list[tuple[float, ...]]:
    """Multiplier vectors to sweep.

    For the threshold cascade ``lam`` runs over ``[0, 1]`` (thresholds ``1 - lam``); for
    the supermodel strategies over ``unit * logspace(-2, 2.5)`` plus 0, ``unit`` being
    one over the typical cost of a call (quality per dollar). Each ``ratio`` gives the
    per-step profile ``lam_s = lam * ratio**s``.
    """
    if not (isinstance(points, int) and points >= 2):
        msg = f"points must be an int >= 2, got {points!r}"
        raise ConfigError(msg)
    if kind == "threshold_cascade":
        base = np.linspace(0.0, 1.0, points)
    else:
        base = np.concatenate([[0.0], unit * np.logspace(-2.0, 2.5, points - 1)])
    out: list[tuple[float, ...]] = []
    for ratio in ratios:
        for lam in base.tolist():
            vec = tuple(
                min(lam * ratio**s, 1.0) if kind == "threshold_cascade" else lam * ratio**s
                for s in range(depth)
            )
            if vec not in out:
                out.append(vec)
    return out


@dataclass(frozen=True, slots=True)
class Sweep:
    """Mean quality and cost of each multiplier vector on some rows."""

    lams: tuple[tuple[float, ...], ...]
    quality: np.ndarray
    cost: np.ndarray


def sweep(
    strategy: Strategy,
    estimator: OfflineEstimator,
    rows: np.ndarray,
    lams: Sequence[tuple[float, ...]],
    *,
    quality: np.ndarray,
    cost: np.ndarray,
    only: Sequence[int] | None = None,
) -> Sweep:
    """Replay ``strategy`` on ``rows`` for each vector of ``lams`` (or those in ``only``).

    Quality is the true quality of the answer's model, cost the sum of the true costs of
    the models run. Vectors left out by ``only`` get NaN.
    """
    g = len(lams)
    q_out = np.full(g, np.nan)
    c_out = np.full(g, np.nan)
    picks = range(g) if only is None else only
    for gi in picks:
        qs = 0.0
        cs = 0.0
        for i in np.asarray(rows, dtype=np.intp).tolist():
            out = strategy.run(estimator, i, lams[gi])
            qs += float(quality[i, out.answer])
            cs += float(cost[i, list(out.run)].sum())
        n = max(len(rows), 1)
        q_out[gi], c_out[gi] = qs / n, cs / n
    return Sweep(lams=tuple(lams), quality=q_out, cost=c_out)


@dataclass(frozen=True, slots=True)
class Mix:
    """Two grid points mixed to spend a budget: the dearer with probability ``gamma``."""

    cheap: int
    dear: int
    gamma: float
    cost: float
    quality: float
    feasible: bool


def mix_for_budget(costs: np.ndarray, qualities: np.ndarray, budget: float) -> Mix:
    """The best mixture of two points whose expected cost is at most ``budget``.

    Points on the upper convex hull; the budget cuts a hull segment and ``gamma`` puts
    the expected cost exactly on the budget. Below the cheapest point the cheapest is
    taken (``feasible=False``); past the dearest hull point the dearest is.

    Examples:
        >>> m = mix_for_budget(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.8, 0.85]), 1.5)
        >>> m.cheap, m.dear, m.gamma, round(m.quality, 3)
        (0, 1, 0.5, 0.65)
    """
    x = np.asarray(costs, dtype=float)
    y = np.asarray(qualities, dtype=float)
    if not math.isfinite(budget):
        msg = f"budget must be finite, got {budget!r}"
        raise ConfigError(msg)
    hull = convex_hull(x, y).tolist()
    first = hull[0]
    if budget <= x[first]:
        return Mix(first, first, 0.0, float(x[first]), float(y[first]), feasible=budget >= x[first])
    for a, b in itertools.pairwise(hull):
        if x[a] <= budget <= x[b]:
            gamma = (budget - x[a]) / (x[b] - x[a]) if x[b] > x[a] else 0.0
            q = (1 - gamma) * y[a] + gamma * y[b]
            return Mix(a, b, float(gamma), float(budget), float(q), feasible=True)
    last = hull[-1]
    return Mix(last, last, 0.0, float(x[last]), float(y[last]), feasible=True)
