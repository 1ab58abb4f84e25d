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
    cap = k if max_depth is None else max_depth
    values = (
        np.broadcast_to(q, (1, k)) if draws is None else np.asarray(draws, dtype=float)
    )  # (n, k): the max over a set is taken per row, then averaged
    n_rows = values.shape[0]

    base_mask = np.zeros(k, dtype=bool)
    base_mask[run_idx] = True
    base_size = int(run_idx.size)
    if base_size:
        base_max = values[:, run_idx].max(axis=1)
        base_q = float(base_max.mean()) if draws is not None else float(q[run_idx].max())
    else:
        base_max = np.full(n_rows, -np.inf)
        base_q = -math.inf
    base_c = float(c[run_idx].sum()) if base_size else 0.0

    # Frontier: one row per supermodel.
    masks = base_mask[None, :]
    last = np.array([-1 if not cascade else (int(rank[run_idx].max()) if base_size else -1)])
    maxes = base_max[None, :]
    quals = np.array([base_q])
    costs = np.array([base_c])
    size = base_size

    best_t = round(base_q - lam * base_c, _DIGITS) if base_size else -math.inf
    tied: list[tuple[float, tuple[int, ...], float]] = (
        [(base_c, tuple(sorted(run_idx.tolist(), key=lambda j: rank[j])), base_q)]
        if base_size
        else []
    )
    explored = 1
    cand_by_rank = order[ok[order]]  # allowed models in cost order
    while masks.shape[0] and size < cap and cand_by_rank.size:
        cand_rank = rank[cand_by_rank]
        if cascade:
            # Prefix sets: the only child adds the next allowed model in cost order.
            valid = cand_rank[None, :] > last[:, None]
            first = valid.argmax(axis=1)
            has = valid.any(axis=1)
            valid = np.zeros_like(valid)
            valid[np.flatnonzero(has), first[has]] = True
        else:
            valid = (cand_rank[None, :] > last[:, None]) & ~masks[:, cand_by_rank]
        parent, col = np.nonzero(valid)
        if parent.size == 0:
            break
        added = cand_by_rank[col]
        new_max = np.maximum(maxes[parent], values[:, added].T)
        new_q = new_max.mean(axis=1)
        new_c = costs[parent] + c[added]
        keep = np.ones(parent.size, dtype=bool)
        if prune and not cascade and size + 1 > 1:
            keep = new_q - quals[parent] - lam * c[added] >= 0.0
        explored += int(parent.size)
        size += 1
        if not keep.any():
            break
        parent, added = parent[keep], added[keep]
        new_mask = masks[parent].copy()
        new_mask[np.arange(parent.size), added] = True
        masks, maxes, quals, costs = new_mask, new_max[keep], new_q[keep], new_c[keep]
        last = rank[added]
        t = np.round(quals - lam * costs, _DIGITS)
        top = float(t.max())
        if top > best_t:
            best_t, tied = top, []
        if top >= best_t:
            for r in np.flatnonzero(t == best_t).tolist():
                members = tuple(sorted(np.flatnonzero(masks[r]).tolist(), key=lambda j: rank[j]))
                tied.append((float(costs[r]), members, float(quals[r])))
    if not tied:
        return Choice(models=(), next_model=None, quality=-math.inf, cost=0.0, explored=explored)
    tied.sort(key=lambda item: (item[0], item[1]))
    cost, members, quality = tied[-1] if (gamma > 0.0 and u < gamma) else tied[0]
    unrun = [j for j in members if not base_mask[j]]
    return Choice(
        models=members,
        next_model=unrun[0] if unrun else None,
        quality=quality,
        cost=cost,
        explored=explored,
    )
