"""Thompson sampling with Beta posteriors over fractional rewards."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pickllm.errors import StateError
from pickllm.policies.base import (
    Choice,
    Policy,
    check_number,
    state_field,
    state_float,
    state_names,
)
from pickllm.types import Context, Decision, SeedLike

__all__ = ["ThompsonSampling"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Reported probabilities stay in [_MIN_PROBABILITY, 1]: a chosen candidate had a chance.
_MIN_PROBABILITY = 1e-9
# From this many candidates on, one vectorised draw beats a Python loop of scalar draws.
_VECTOR_FROM = 24


class ThompsonSampling(Policy):
    """Thompson sampling: draw a mean reward from each candidate's Beta posterior, take the best.

    Each candidate has a ``Beta(alpha, beta)`` posterior over its mean reward, starting at
    ``Beta(prior_alpha, prior_beta)``. A reward ``r`` in [0, 1] counts as a fractional
    success: ``alpha += r`` and ``beta += 1 - r`` (exact for 0/1 rewards, the usual
    extension otherwise). Each call draws one sample per offered candidate and picks the
    highest (ties go to the first offered).

    Reported probability: the exact chance that a candidate's draw is the highest is an
    integral over ``K`` Beta distributions, too slow to compute on every call. We report
    an approximation that costs ``O(K)`` closed-form steps: each posterior is replaced by
    the normal distribution with its mean and variance, the maximum of the other
    candidates' normals by one normal with the same first two moments (Clark, 1961,
    merging one candidate at a time), and the probability is then that the chosen
    candidate's normal exceeds it. For two candidates only the normal approximation
    remains. Against Monte-Carlo win rates it is within 0.05 on the posteriors of our
    tests (identical, skewed, nearly flat and mixed ones): identical posteriors give 0.248
    for 4 candidates (truth 0.25) and 0.061 for 16 (0.0625); the worst case we saw is a
    flat ``Beta(1, 1)`` among peaked ones, 0.143 against 0.188. Treat it as an estimate of
    the propensity, not an exact one. The decision's ``scores`` are the draws.

    Args:
        prior_alpha: the prior's ``alpha > 0`` (pseudo-successes).
        prior_beta: the prior's ``beta > 0`` (pseudo-failures).
        seed: seed of the random generator the posterior samples are drawn from.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> ctx = Context(candidates=(Candidate(name="small"), Candidate(name="large")))
        >>> policy = ThompsonSampling(seed=0)
        >>> for _ in range(50):
        ...     decision = policy.select(ctx)
        ...     policy.update(decision, 1.0 if decision.candidate.name == "large" else 0.0)
        >>> policy.posteriors
        {'large': (50.0, 1.0), 'small': (1.0, 2.0)}
        >>> decision = policy.select(ctx)
        >>> decision.candidate.name, round(decision.probability, 3)
        ('large', 0.997)
    """

    name = "thompson"

    def __init__(
        self, *, prior_alpha: float = 1.0, prior_beta: float = 1.0, seed: SeedLike = None
    ) -> None:
        super().__init__(seed=seed)
        owner = type(self).__name__
        self._a0 = check_number(owner, "prior_alpha", prior_alpha, low=0.0, low_open=True)
        self.prior_alpha = prior_alpha
        self._b0 = check_number(owner, "prior_beta", prior_beta, low=0.0, low_open=True)
        self.prior_beta = prior_beta
        self._post: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ read-only views
    @property
    def posteriors(self) -> dict[str, tuple[float, float]]:
        """``(alpha, beta)`` of every candidate rewarded so far (a copy)."""
        return {n: (ab[0], ab[1]) for n, ab in self._post.items()}

    # ------------------------------------------------------------------ hooks
    def _select(self, context: Context) -> Choice:
        cands = context.candidates
        post = self._post
        beta = self._rng.beta
        prior = (self._a0, self._b0)
        params = [post.get(c.name, prior) for c in cands]
        if len(params) <= _VECTOR_FROM:
            draws = [float(beta(a, b)) for a, b in params]
        else:
            alphas, betas = zip(*params, strict=True)
            draws = beta(np.array(alphas), np.array(betas)).tolist()
        best = 0
        top = draws[0]
        for i in range(1, len(draws)):
            if draws[i] > top:
                best, top = i, draws[i]
        return Choice(best, _probability_highest(params, best), draws)

    def _update(self, decision: Decision, reward: float) -> None:
        name = decision.candidate.name
        ab = self._post.get(name)
        if ab is None:
            ab = self._post[name] = [self._a0, self._b0]
        ab[0] += reward
        ab[1] += 1.0 - reward

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        return {
            "alpha": {n: ab[0] for n, ab in self._post.items()},
            "beta": {n: ab[1] for n, ab in self._post.items()},
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        pol = self.name
        raw_a = state_names(pol, "alpha", state_field(pol, state, "alpha"))
        raw_b = state_names(pol, "beta", state_field(pol, state, "beta"))
        if set(raw_a) != set(raw_b):
            msg = (
                f"state of policy {pol!r}: alpha and beta must name the same candidates, "
                f"got {sorted(raw_a)} and {sorted(raw_b)}"
            )
            raise StateError(msg)
        post: dict[str, list[float]] = {}
        for n in raw_a:
            a = state_float(pol, f"alpha[{n!r}]", raw_a[n], low=0.0)
            b = state_float(pol, f"beta[{n!r}]", raw_b[n], low=0.0)
            if a <= 0.0 or b <= 0.0:
                msg = f"state of policy {pol!r}: alpha and beta of {n!r} must be > 0, got {a}, {b}"
                raise StateError(msg)
            post[n] = [a, b]
        self._post = post


def _phi(z: float) -> float:
    """The standard normal CDF."""
    return 0.5 * math.erfc(-z / _SQRT2)


def _probability_highest(params: Sequence[Sequence[float]], i: int) -> float:
    """Approximate chance that candidate ``i``'s Beta draw is the highest (see the class)."""
    if len(params) == 1:
        return 1.0
    mean = 0.0
    var = 0.0
    first = True
    for j, (a, b) in enumerate(params):
        if j == i:
            continue
        s = a + b
        m_j = a / s
        v_j = a * b / (s * s * (s + 1.0))
        if first:
            mean, var, first = m_j, v_j, False
            continue
        # Clark's moments of max(X, Y) for independent normals X ~ (mean, var), Y ~ (m_j, v_j).
        theta = math.sqrt(var + v_j)
        alpha = (mean - m_j) / theta
        cdf = _phi(alpha)
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * alpha * alpha)
        m1 = mean * cdf + m_j * (1.0 - cdf) + theta * pdf
        m2 = (
            (mean * mean + var) * cdf + (m_j * m_j + v_j) * (1.0 - cdf) + (mean + m_j) * theta * pdf
        )
        mean, var = m1, max(m2 - m1 * m1, 0.0)
    a, b = params[i]
    s = a + b
    m_i = a / s
    v_i = a * b / (s * s * (s + 1.0))
    p = _phi((m_i - mean) / math.sqrt(v_i + var))
    return min(max(p, _MIN_PROBABILITY), 1.0)
