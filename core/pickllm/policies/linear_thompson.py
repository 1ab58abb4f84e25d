"""Linear Thompson sampling: per-model ridge heads over query features, a draw per model."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from pickllm.policies.base import Choice
from pickllm.policies.linear import LinearPolicy
from pickllm.types import Context, SeedLike

__all__ = ["LinearThompson", "probability_highest"]

# Reported probabilities stay in [_MIN_PROBABILITY, 1]: a chosen candidate had a chance.
_MIN_PROBABILITY = 1e-9
_NODES = 16
_CDF_RANGE = 8.0
_CDF_STEPS = 512  # grid points per unit of the standard normal CDF table


class LinearThompson(LinearPolicy):
    """Linear Thompson sampling: a reward drawn per candidate from its head's posterior.

    Each candidate has a ridge-regression head over the query's features (see
    :mod:`pickllm.policies.linear`: structural features of ``Context.query`` unless
    ``Context.features`` is given, rewards centred on the running mean reward). Each call
    draws, for every offered candidate, a reward from the normal posterior predictive
    ``N(mean(x), (exploration * sqrt(x^T A^-1 x))^2)`` and picks the highest. Drawing the
    prediction for this ``x`` rather than a whole weight vector has the same law per
    candidate and costs O(d^2) instead of a Cholesky factor per call.

    The decision's probability is the exact chance, under these independent normals, that
    the chosen candidate's draw is the highest, computed by Gauss-Hermite quadrature
    (16 nodes): the propensity that off-policy evaluation needs. The decision's scores are
    the draws.

    The default ``exploration`` (0.1) was chosen on the train rows of ``routerbench_subset``
    (``pickllm bench --stream train``, 6 orders; 0.1, 0.15, 0.2 and 0.25 tried), where the
    objective's rewards vary little between models; for 0/1 rewards, 0.25 or more avoids
    locking onto an early favourite. The default ``regularization`` (10: the prior is worth
    ten rewards per feature, so heads move from the centre only on real evidence) was
    chosen the same way, on the train rows alone (1, 3, 10 and 30 tried; 10 gained about
    0.01 over 1 on an 869-prompt stream of them, :mod:`benchmarks.tune_contextual`). The
    shared prior (``shared_prior=True``) gained nothing measurable there and costs a second
    rank-one update per call, so it is off by default.

    The other hyperparameters (prior, forgetting, change detection, price prior, key
    buckets, shared prior, pending bound) are documented once, on
    :class:`~pickllm.policies.linear.LinearPolicy`; the defaults are the same.

    Args:
        exploration: the posterior's scale (the reward noise's standard deviation), ``> 0``.
        regularization: ridge penalty ``> 0``, the prior's precision per feature.
        seed: seed of the generator the draws come from.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> pool = (Candidate(name="coder"), Candidate(name="writer"))
        >>> policy = LinearThompson(seed=0)
        >>> queries = {"coder": "def f(x): return x;", "writer": "Write a poem about the sea."}
        >>> for t in range(200):
        ...     best = ("coder", "writer")[t % 2]
        ...     decision = policy.select(Context(query=queries[best], candidates=pool))
        ...     policy.update(decision, 0.9 if decision.candidate.name == best else 0.2)
        >>> [policy.select(Context(query=q, candidates=pool)).candidate.name
        ...  for q in queries.values()]
        ['coder', 'writer']
    """

    name = "linear_thompson"

    def __init__(
        self,
        *,
        exploration: float = 0.1,
        regularization: float = 10.0,
        prior_mean: float | None = None,
        discount: float = 1.0,
        change_threshold: float | None = None,
        change_delta: float = 0.05,
        change_keep: float = 0.5,
        change_shift: bool = False,
        change_standardized: bool = False,
        change_two_sided: bool = False,
        price_prior: float = 0.0,
        key_buckets: int = 16,
        shared_prior: bool = False,
        max_pending: int = 10_000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            exploration=exploration,
            regularization=regularization,
            prior_mean=prior_mean,
            discount=discount,
            change_threshold=change_threshold,
            change_delta=change_delta,
            change_keep=change_keep,
            change_shift=change_shift,
            change_standardized=change_standardized,
            change_two_sided=change_two_sided,
            price_prior=price_prior,
            key_buckets=key_buckets,
            shared_prior=shared_prior,
            max_pending=max_pending,
            seed=seed,
        )

    def _choose(self, mean: np.ndarray, width: np.ndarray, context: Context) -> Choice:
        del context  # the draws decide; ties have probability 0
        draws = mean + width * self._rng.standard_normal(mean.shape[0])
        best = int(np.argmax(draws))
        return Choice(best, probability_highest(mean, width, best), draws.tolist())

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        # The checks reward 0 or 1 (noise sd about 0.5): a wider posterior suits them.
        return {"exploration": 0.25}


@functools.cache
def _hermite() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite.hermgauss(_NODES)
    return nodes * math.sqrt(2.0), weights / math.sqrt(math.pi)


@functools.cache
def _cdf_table() -> tuple[np.ndarray, np.ndarray]:
    """The standard normal CDF on a grid of step 1/512 over [-8, 8], for interpolation.

    Linear interpolation between grid points errs by at most ``h^2 / 8`` times the
    density's largest slope (0.242), 1.2e-7: as exact as the quadrature needs. One
    ``np.interp`` call costs a fraction of a polynomial approximation's two dozen array
    operations.
    """
    grid = np.linspace(-_CDF_RANGE, _CDF_RANGE, int(2 * _CDF_RANGE * _CDF_STEPS) + 1)
    cdf = np.array([0.5 * math.erfc(-z / math.sqrt(2.0)) for z in grid.tolist()])
    cdf[0], cdf[-1] = 0.0, 1.0  # off by 6e-16: a candidate 8 sd away is certain to lose
    return grid, cdf


def probability_highest(mean: np.ndarray, sd: np.ndarray, i: int) -> float:
    """The chance that a draw of ``N(mean[i], sd[i]^2)`` beats independent draws of the others.

    ``P = E_z[prod_{j != i} Phi((mean[i] + sd[i] z - mean[j]) / sd[j])]`` over a standard
    normal ``z``, by Gauss-Hermite quadrature (16 nodes).

    Examples:
        >>> round(probability_highest(np.zeros(4), np.ones(4), 0), 4)
        0.25
        >>> round(probability_highest(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1), 4)
        0.7602
    """
    if mean.shape[0] == 1:
        return 1.0
    nodes, weights = _hermite()
    grid, table = _cdf_table()
    z = float(mean[i]) + float(sd[i]) * nodes  # the chosen candidate's draw per node, (n,)
    # How far z is above each candidate's mean in its sd, (k, n); beyond the table's
    # range the CDF is 0 or 1 to double precision.
    gap = (z - mean[:, None]) / np.maximum(sd, 1e-12)[:, None]
    cdf = np.interp(gap, grid, table)
    cdf[i] = 1.0  # the chosen candidate does not compete with itself
    p = float(weights @ cdf.prod(axis=0))
    return min(max(p, _MIN_PROBABILITY), 1.0)
