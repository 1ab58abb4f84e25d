"""The decision rules of cascade routing (Dekoninck et al.), as pure numpy functions.

Notation (algorithm notes §3): ``q_hat`` (``k``,) are the current quality estimates of the
``k`` models (post-hoc for the models already run, ex-ante for the others), ``sigma`` their
covariance (``k``, ``k``) or None, ``c_hat`` (``k``,) the cost estimates, ``lam`` the price
of one unit of cost in units of quality.

* :func:`normal_samples` draws the quasi-Monte-Carlo normal samples every expected maximum
  uses: a randomly shifted Halton sequence mapped through the normal quantile (scipy's
  scrambled Sobol is not a dependency here; both are low-discrepancy point sets and the
  paper's 100 samples are kept).
* :func:`expected_max` is ``E[max_{k in M} q_k]`` with ``q ~ N(q_hat, sigma)``: ``max q_hat``
  when ``sigma`` is None, ``q_hat`` itself for one model.
* :func:`search_supermodel` is the per-step decision: a breadth-first search over the
  supersets of the models already run (no duplicate orderings, a depth cap, the pruning
  lemma), the best ``q(M) - lam * c(M)``; among ties the cheapest with probability
  ``1 - gamma``, the dearest with probability ``gamma``. ``cascade=True`` restricts the
  supersets to prefixes of the cost order (the optimal cascade).

All supermodels of one decision share one set of joint samples ``q_hat + L z`` (``L`` the
Cholesky factor of ``sigma``). That is the same distribution as the paper's per-supermodel
factorisation, and it makes the estimate of ``E[max]`` exactly monotone with diminishing
returns in ``M``, the property the pruning lemma needs: pruning then never changes the
chosen supermodel.

Examples:
    >>> import numpy as np
    >>> z = normal_samples(100, 2, seed=0)
    >>> round(expected_max(np.array([0.5, 0.5]), np.full((2, 2), 0.01), samples=z), 4)
    0.5
    >>> round(expected_max(np.array([0.5, 0.5]), np.diag([0.01, 0.01]), samples=z), 2)
    0.56
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pickllm.errors import ConfigError
from pickllm.types import SeedLike

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_SAMPLES",
    "Choice",
    "expected_max",
    "joint_samples",
    "normal_samples",
    "search_supermodel",
]

DEFAULT_SAMPLES = 100
"""Quasi-Monte-Carlo samples per expected maximum (the paper's ``n_samples``)."""

DEFAULT_MAX_DEPTH = 5
"""Models run per query at most (the paper's RouterBench ``max_depth``)."""

_JITTER = 1e-12  # added to the diagonal before the Cholesky factorisation, as the paper
_DIGITS = 8  # tradeoffs equal to this many decimals are ties (the paper rounds to 6-8)
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73)


def _radical_inverse(index: np.ndarray, base: int) -> np.ndarray:
    out = np.zeros(index.shape)
    scale = 1.0 / base
    i = index.copy()
    while np.any(i > 0):
        out += (i % base) * scale
        i //= base
        scale /= base
    return out


def normal_samples(n_samples: int, k: int, *, seed: SeedLike = None) -> np.ndarray:
    """``(n_samples, k)`` quasi-random standard normal samples.

    A Halton sequence (one prime base per column; columns past the 21st prime are
    random permutations of earlier ones) with a random Cranley-Patterson shift from
    ``seed``, mapped through the normal quantile; half the rows are the negatives of the
    other half (antithetic pairs), so the samples have mean exactly 0 and a
    perfectly correlated pair of equal means has ``E[max]`` equal to the mean.

    Raises:
        ConfigError: ``n_samples < 1`` or ``k < 1``.

    Examples:
        >>> z = normal_samples(100, 3, seed=0)
        >>> z.shape, bool(abs(z.mean()) < 0.05)
        ((100, 3), True)
    """
    if not (isinstance(n_samples, int) and n_samples >= 1):
        msg = f"n_samples must be an int >= 1, got {n_samples!r}"
        raise ConfigError(msg)
    if not (isinstance(k, int) and k >= 1):
        msg = f"k must be an int >= 1, got {k!r}"
        raise ConfigError(msg)
    rng = np.random.default_rng(seed)
    half = (n_samples + 1) // 2
    index = np.arange(1, half + 1)
    columns = []
    for j in range(k):
        base = _PRIMES[j % len(_PRIMES)]
        u = _radical_inverse(index, base)
        if j >= len(_PRIMES):
            u = u[rng.permutation(half)]
        columns.append(u)
    u = (np.stack(columns, axis=1) + rng.random(k)) % 1.0
    u = np.clip(u, 1e-10, 1.0 - 1e-10)
    inv = NormalDist().inv_cdf
    z = np.vectorize(inv)(u)
    both: np.ndarray = np.concatenate([z, -z])[:n_samples]
    return both


def joint_samples(q_hat: np.ndarray, sigma: np.ndarray | None, samples: np.ndarray) -> np.ndarray:
    """``(n_samples, k)`` draws of ``q ~ N(q_hat, sigma)`` from standard normal ``samples``.

    A diagonal ``sigma`` scales by the standard deviations (the paper's code scales by the
    variances, a quirk not copied); None gives ``q_hat`` in every row.
    """
    q = np.asarray(q_hat, dtype=float)
    z = np.asarray(samples, dtype=float)[:, : q.shape[0]]
    out: np.ndarray
    if sigma is None:
        out = np.broadcast_to(q, (z.shape[0], q.shape[0]))
        return out
    s = np.asarray(sigma, dtype=float)
    if s.ndim == 1:
        out = q + z * np.sqrt(np.maximum(s, 0.0))
    elif np.count_nonzero(s - np.diag(np.diagonal(s))) == 0:
        out = q + z * np.sqrt(np.maximum(np.diagonal(s), 0.0))
    else:
        chol = np.linalg.cholesky(s + _JITTER * np.eye(s.shape[0]))
        out = q + z @ chol.T
    return out


def expected_max(
    q_hat: np.ndarray,
    sigma: np.ndarray | None,
    *,
    samples: np.ndarray | None = None,
    models: np.ndarray | list[int] | None = None,
) -> float:
    """``E[max_{k in models} q_k]`` for ``q ~ N(q_hat, sigma)``.

    Args:
        q_hat: ``(k,)`` estimates.
        sigma: ``(k, k)`` covariance, ``(k,)`` variances, or None (no uncertainty: the max).
        samples: standard normal samples with at least ``k`` columns (default: 100 from
            :func:`normal_samples` with seed 0).
        models: the supermodel's columns (default: all).

    Examples:
        >>> import numpy as np
        >>> expected_max(np.array([0.2, 0.7]), None)
        0.7
        >>> expected_max(np.array([0.2, 0.7]), np.eye(2), models=[0])
        0.2
    """
    q = np.asarray(q_hat, dtype=float)
    cols = np.arange(q.shape[0]) if models is None else np.asarray(models, dtype=np.intp)
    if cols.size == 0:
        return -math.inf
    if sigma is None:
        return float(q[cols].max())
    if cols.size == 1:
        return float(q[cols[0]])
    z = normal_samples(DEFAULT_SAMPLES, q.shape[0], seed=0) if samples is None else samples
    draws = joint_samples(q, sigma, z)
    return float(draws[:, cols].max(axis=1).mean())


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of one supermodel search.

    Args:
        models: the chosen supermodel (model indices, ascending cost order).
        next_model: the model to run next (the cheapest unrun one of ``models``), or None
            to stop (the chosen supermodel is the set already run).
        quality: ``E[max]`` of the chosen supermodel.
        cost: its estimated cost.
        explored: supermodels evaluated (a measure of the search's work).
    """

    models: tuple[int, ...]
    next_model: int | None
    quality: float
    cost: float
    explored: int


def search_supermodel(
    q_hat: np.ndarray,
    c_hat: np.ndarray,
    run: tuple[int, ...] | list[int],
    lam: float,
    *,
    draws: np.ndarray | None,
    max_depth: int | None = DEFAULT_MAX_DEPTH,
    allowed: np.ndarray | None = None,
    gamma: float = 0.0,
    u: float = 1.0,
    cascade: bool = False,
    prune: bool = True,
    order: np.ndarray | None = None,
) -> Choice:
    """The best supermodel containing ``run``, and the model to run next.

    Breadth-first over supersets ``M = run + A``: children add a model of higher cost rank
    than the last added one (each set is reached once); sets larger than ``max_depth`` are
    skipped; with ``prune`` a set whose last model does not pay for itself (``q(M) -
    q(parent) < lam * c_last``) is dropped with all its descendants (the pruning lemma;
    only for sets of two or more models). The tradeoff is ``q(M) - lam * c(M)`` rounded
    to 8 decimals; among tied best sets the cheapest wins when ``u >= gamma`` and the
    dearest otherwise (``u`` a uniform draw: the dearest with probability ``gamma``).

    Args:
        q_hat: ``(k,)`` current estimates (used when ``draws`` is None).
        c_hat: ``(k,)`` cost estimates; the cost rank orders the models.
        run: models already run.
        lam: cost multiplier, ``>= 0``.
        draws: ``(n_samples, k)`` joint draws of the qualities (:func:`joint_samples`),
            or None for no uncertainty (``q(M) = max q_hat``).
        max_depth: models per supermodel at most (None: no cap).
        allowed: ``(k,)`` bool, models that may be added (default: all).
        gamma: tie mixing probability.
        u: a uniform draw in [0, 1) deciding the tie (default 1: cheapest).
        cascade: only prefixes of the cost order (the optimal cascade; no pruning).
        prune: apply the pruning lemma (cascade routing only).
        order: the models from cheapest to dearest (default: by ``c_hat``); a cascade
            keeps one order for all its steps.

    Examples:
        >>> import numpy as np
        >>> q, c = np.array([0.6, 0.9]), np.array([1.0, 10.0])
        >>> search_supermodel(q, c, [], 0.01, draws=None).models
        (1,)
        >>> search_supermodel(q, c, [], 0.1, draws=None).next_model
        0
    """
    q = np.asarray(q_hat, dtype=float)
    c = np.asarray(c_hat, dtype=float)
    k = q.shape[0]
    if order is None:
        order = np.argsort(c, kind="stable")
    rank = np.empty(k, dtype=np.intp)
    rank[order] = np.arange(k)
    ok = np.ones(k, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
    run_idx = np.asarray(list(run), dtype=np.intp)
    ok[run_idx] = False
    # (n, k): the max over a set is taken per row, then averaged
    values = np.broadcast_to(q, (1, k)) if draws is None else np.asarray(draws, dtype=float)
    level = _Level.base(values, c, run_idx, rank, cascade=cascade)
    ranked = _Ranked(rank, tuple(sorted(run_idx.tolist(), key=lambda j: rank[j])))
    tied = ranked.ties(level, lam, [])
    explored = 1
    cand = order[ok[order]]  # the models that may be added, in cost order
    cap = k if max_depth is None else max_depth
    while level.masks.shape[0] and level.size < cap and cand.size:
        step = level.expand(values, c, rank, cand, lam, cascade=cascade, prune=prune)
        explored += step[1]
        if step[0] is None:
            break
        level = step[0]
        tied = ranked.ties(level, lam, tied)
    if not tied:
        return Choice(models=(), next_model=None, quality=-math.inf, cost=0.0, explored=explored)
    best = max(t[0] for t in tied)
    tied = sorted((t for t in tied if t[0] == best), key=lambda item: (item[1], item[2]))
    _, cost, members, quality = tied[-1] if (gamma > 0.0 and u < gamma) else tied[0]
    unrun = [j for j in members if j not in set(run_idx.tolist())]
    return Choice(
        models=members,
        next_model=unrun[0] if unrun else None,
        quality=quality,
        cost=cost,
        explored=explored,
    )


_Tie = tuple[float, float, tuple[int, ...], float]  # (tradeoff, cost, members, quality)


@dataclass(frozen=True, slots=True)
class _Ranked:
    rank: np.ndarray
    run: tuple[int, ...]

    def ties(self, level: _Level, lam: float, tied: list[_Tie]) -> list[_Tie]:
        """``tied`` plus the sets of ``level`` whose tradeoff is at least the best so far."""
        if level.size == 0:
            return tied
        t = np.round(level.quals - lam * level.costs, _DIGITS)
        best = max([float(t.max()), *(x[0] for x in tied)])
        keep = [x for x in tied if x[0] == best]
        for r in np.flatnonzero(t == best).tolist():
            members = tuple(
                sorted(np.flatnonzero(level.masks[r]).tolist(), key=lambda j: self.rank[j])
            )
            keep.append((best, float(level.costs[r]), members, float(level.quals[r])))
        return keep


@dataclass(frozen=True, slots=True)
class _Level:
    """The supermodels of one size reached so far: one row each."""

    masks: np.ndarray  # (m, k) bool
    last: np.ndarray  # (m,) cost rank of the last model added
    maxes: np.ndarray  # (m, n) per-draw max over the set
    quals: np.ndarray  # (m,) E[max]
    costs: np.ndarray  # (m,)
    size: int

    @classmethod
    def base(
        cls, values: np.ndarray, c: np.ndarray, run: np.ndarray, rank: np.ndarray, *, cascade: bool
    ) -> _Level:
        k = c.shape[0]
        mask = np.zeros(k, dtype=bool)
        mask[run] = True
        if run.size:
            top = values[:, run].max(axis=1)
            quality = float(top.mean())
        else:
            top = np.full(values.shape[0], -np.inf)
            quality = -math.inf
        last = int(rank[run].max()) if (cascade and run.size) else -1
        return cls(
            masks=mask[None, :],
            last=np.array([last]),
            maxes=top[None, :],
            quals=np.array([quality]),
            costs=np.array([float(c[run].sum())]),
            size=int(run.size),
        )

    def expand(
        self,
        values: np.ndarray,
        c: np.ndarray,
        rank: np.ndarray,
        cand: np.ndarray,
        lam: float,
        *,
        cascade: bool,
        prune: bool,
    ) -> tuple[_Level | None, int]:
        """The next level (None if empty) and the number of sets evaluated."""
        cand_rank = rank[cand]
        valid = cand_rank[None, :] > self.last[:, None]
        if cascade:
            # Prefix sets: the only child adds the next allowed model in cost order.
            first = valid.argmax(axis=1)
            has = valid.any(axis=1)
            valid = np.zeros_like(valid)
            valid[np.flatnonzero(has), first[has]] = True
        else:
            valid &= ~self.masks[:, cand]
        parent, col = np.nonzero(valid)
        if parent.size == 0:
            return None, 0
        added = cand[col]
        new_max = np.maximum(self.maxes[parent], values[:, added].T)
        new_q = new_max.mean(axis=1)
        new_c = self.costs[parent] + c[added]
        if prune and not cascade and self.size >= 1:
            # Lemma 1: a model that does not pay for itself here never will in a superset.
            keep = new_q - self.quals[parent] - lam * c[added] >= 0.0
        else:
            keep = np.ones(parent.size, dtype=bool)
        if not keep.any():
            return None, int(parent.size)
        parent, added = parent[keep], added[keep]
        masks = self.masks[parent].copy()
        masks[np.arange(parent.size), added] = True
        level = _Level(
            masks=masks,
            last=rank[added],
            maxes=new_max[keep],
            quals=new_q[keep],
            costs=new_c[keep],
            size=self.size + 1,
        )
        return level, int(parent.size)
