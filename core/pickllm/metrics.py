"""Evaluation metrics for routers: quality-cost curves, APGR/CPT, regret and settling.

Offline routers are judged by their *operating points*: one ``(mean cost, mean quality)``
pair per setting of their cost knob. All curve metrics here read those points as one
piecewise-linear curve, built the same way as the cascade-routing paper's
``area_under_curve``:

* points are sorted by cost (then quality) and exact duplicates dropped;
* if the cheapest point costs more than ``c_min``, the curve starts at ``(c_min, q_floor)``
  (``q_floor``: the lowest single-model quality);
* past its last point the curve stays flat.

Functions take plain arrays; ``c_min`` and ``c_max`` are the cheapest and the most expensive
single models' mean costs on the same test set, and are the same for every method compared.

Examples:
    >>> quality_cost_auc([1.0, 3.0], [0.5, 0.9], c_min=1.0, c_max=3.0, q_floor=0.5)
    0.7
    >>> cost_to_reach([1.0, 3.0], [0.5, 0.9], 0.8, c_min=1.0, q_floor=0.5)
    2.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from pickllm.errors import ConfigError

__all__ = [
    "REACH_TOLERANCE",
    "Settle",
    "apgr",
    "best_fixed_arm",
    "convex_hull",
    "cost_to_reach",
    "cpt",
    "cumulative_regret",
    "quality_cost_auc",
    "settle_step",
]

REACH_TOLERANCE = 1e-9
"""Slack when comparing a quality with a target: means of the same 0/1 outcomes summed in a
different order may differ in the last bits."""


def _points(costs: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(costs, dtype=float).ravel()
    y = np.asarray(qualities, dtype=float).ravel()
    if x.shape != y.shape:
        msg = f"costs and qualities must have the same length, got {x.size} and {y.size}"
        raise ConfigError(msg)
    if x.size == 0:
        msg = "a curve needs at least one (cost, quality) point, got none"
        raise ConfigError(msg)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        msg = "costs and qualities must be finite numbers"
        raise ConfigError(msg)
    return x, y


def _curve(
    costs: ArrayLike, qualities: ArrayLike, c_min: float, q_floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted, de-duplicated polyline, starting at (c_min, q_floor) if it starts later."""
    x, y = _points(costs, qualities)
    pts = np.unique(np.column_stack([x, y]), axis=0)  # sorted by cost, then quality
    xs, ys = pts[:, 0], pts[:, 1]
    if xs[0] > c_min:
        xs = np.concatenate([[c_min], xs])
        ys = np.concatenate([[q_floor], ys])
    return xs, ys


def convex_hull(costs: ArrayLike, qualities: ArrayLike) -> np.ndarray:
    """Indices of the points on the upper convex Pareto front, cheapest first.

    This is the "linear" baseline of RouterBench and the cascade-routing paper: mixing two
    single models at random reaches every point of the segment between them, so the best
    a non-routing mixture can do is the concave upper hull, from the cheapest model up to
    the best one. Dominated points (costlier and no better) and points on or below a hull
    segment are dropped.

    Examples:
        >>> convex_hull([1, 2, 3, 4], [0.5, 0.55, 0.9, 0.8]).tolist()
        [0, 2]
    """
    x, y = _points(costs, qualities)
    order = np.lexsort((-y, x))  # by cost, the better first among equal costs
    front: list[int] = []
    for i in order.tolist():
        if front and y[i] <= y[front[-1]]:
            continue  # costs at least as much as a point that is at least as good
        front.append(i)
    hull: list[int] = []
    for i in front:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or below the segment a -> i: it adds nothing a mixture cannot.
            left = (x[b] - x[a]) * (y[i] - y[a])
            right = (y[b] - y[a]) * (x[i] - x[a])
            # Collinear up to rounding counts as "on": mixing a and i reaches b anyway.
            if left - right >= -1e-12 * (abs(left) + abs(right)):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull, dtype=np.intp)


def quality_cost_auc(
    costs: ArrayLike,
    qualities: ArrayLike,
    *,
    c_min: float,
    c_max: float,
    q_floor: float,
) -> float:
    """Mean quality of the operating-point curve over ``[c_min, c_max]`` (cascade routing §3.8).

    The integral of the curve over the cost range divided by its width, so 1.0 means
    perfect quality at every budget. Callers report it x100. With ``c_max == c_min`` the
    range is a single budget and the result is the curve's quality there.

    Args:
        costs: mean cost of each operating point.
        qualities: mean quality of each operating point.
        c_min: the cheapest single model's mean cost.
        c_max: the most expensive single model's mean cost.
        q_floor: the lowest single-model quality (where a curve starting late begins).

    Examples:
        >>> quality_cost_auc([2.0], [1.0], c_min=1.0, c_max=3.0, q_floor=0.0)
        0.75
    """
    if not (math.isfinite(c_min) and math.isfinite(c_max) and c_max >= c_min):
        msg = f"need finite c_min <= c_max, got c_min={c_min!r}, c_max={c_max!r}"
        raise ConfigError(msg)
    xs, ys = _curve(costs, qualities, c_min, q_floor)
    if c_max == c_min:
        return _value_at(xs, ys, c_min)
    if xs[-1] < c_max:
        xs = np.concatenate([xs, [c_max]])
        ys = np.concatenate([ys, [ys[-1]]])
    area = 0.0
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:], strict=True):
        lo, hi = max(x0, c_min), min(x1, c_max)
        if hi <= lo:
            continue  # outside the range, or a vertical step
        slope = (y1 - y0) / (x1 - x0)
        area += (hi - lo) * (y0 + slope * ((lo + hi) / 2 - x0))
    return float(area / (c_max - c_min))


def _value_at(xs: np.ndarray, ys: np.ndarray, c: float) -> float:
    """The curve's quality at cost ``c`` (the upper value at a vertical step)."""
    if c <= xs[0]:
        return float(ys[xs == xs[0]].max())
    if c >= xs[-1]:
        return float(ys[-1])
    at = ys[xs == c]
    if at.size:
        return float(at.max())
    j = int(np.searchsorted(xs, c))
    return float(ys[j - 1] + (ys[j] - ys[j - 1]) * (c - xs[j - 1]) / (xs[j] - xs[j - 1]))


def cost_to_reach(
    costs: ArrayLike,
    qualities: ArrayLike,
    target: float,
    *,
    c_min: float,
    q_floor: float,
) -> float | None:
    """The lowest cost at which the curve reaches quality ``target``, or None if never.

    Read along the piecewise-linear curve (mixing two operating points at random reaches
    every point between them), with a slack of :data:`REACH_TOLERANCE`.

    Examples:
        >>> cost_to_reach([1.0, 3.0], [0.5, 0.9], 0.95, c_min=1.0, q_floor=0.5) is None
        True
    """
    xs, ys = _curve(costs, qualities, c_min, q_floor)
    goal = target - REACH_TOLERANCE
    if ys[0] >= goal:
        return float(xs[0])
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:], strict=True):
        if y1 >= goal:
            if y1 == y0 or x1 == x0:
                return float(x1)
            return float(x0 + (x1 - x0) * min(max((target - y0) / (y1 - y0), 0.0), 1.0))
    return None


def _gap(q_weak: float, q_strong: float) -> float | None:
    gap = q_strong - q_weak
    return gap if gap > 0 else None


def apgr(
    costs: ArrayLike,
    qualities: ArrayLike,
    *,
    c_min: float,
    c_max: float,
    q_weak: float,
    q_strong: float,
    q_floor: float,
) -> float:
    """Average performance gap recovered (RouteLLM), generalised to many models.

    RouteLLM's x-axis, the share of calls to the strong model, becomes the normalised cost
    ``(C - c_min) / (c_max - c_min)``; weak and strong become the cheapest and the best
    single model. APGR is then ``(AUC - q_weak) / (q_strong - q_weak)`` with the AUC of
    :func:`quality_cost_auc`: 0 is no better than the cheapest model, 1 recovers the whole
    gap at every budget. NaN when ``q_strong <= q_weak`` (no gap to recover).

    Examples:
        >>> apgr([0.0, 1.0], [0.5, 1.0], c_min=0.0, c_max=1.0, q_weak=0.5, q_strong=1.0,
        ...      q_floor=0.5)
        0.5
    """
    gap = _gap(q_weak, q_strong)
    if gap is None:
        return math.nan
    auc = quality_cost_auc(costs, qualities, c_min=c_min, c_max=c_max, q_floor=q_floor)
    return (auc - q_weak) / gap


def cpt(
    costs: ArrayLike,
    qualities: ArrayLike,
    pgr: float,
    *,
    c_min: float,
    c_max: float,
    q_weak: float,
    q_strong: float,
    q_floor: float,
) -> float | None:
    """Cost to reach a performance gap recovered (RouteLLM's CPT), as a share of the cost range.

    The normalised cost ``(C - c_min) / (c_max - c_min)`` at which the curve first reaches
    ``q_weak + pgr * (q_strong - q_weak)``; RouteLLM's "% strong calls" when there are two
    models. None if never reached, NaN when there is no gap.

    Args:
        costs: mean cost of each operating point.
        qualities: mean quality of each operating point.
        pgr: the share of the gap to recover, in [0, 1] (0.5 for CPT(50%)).
        c_min: the cheapest single model's mean cost.
        c_max: the most expensive single model's mean cost.
        q_weak: the cheapest single model's quality.
        q_strong: the best single model's quality.
        q_floor: the lowest single-model quality.

    Examples:
        >>> cpt([0.0, 1.0], [0.5, 1.0], 0.5, c_min=0.0, c_max=1.0, q_weak=0.5,
        ...     q_strong=1.0, q_floor=0.5)
        0.5
    """
    if not (0.0 <= pgr <= 1.0):
        msg = f"pgr must be in [0, 1], got {pgr!r}"
        raise ConfigError(msg)
    gap = _gap(q_weak, q_strong)
    if gap is None or c_max <= c_min:
        return math.nan
    reached = cost_to_reach(costs, qualities, q_weak + pgr * gap, c_min=c_min, q_floor=q_floor)
    if reached is None:
        return None
    return (reached - c_min) / (c_max - c_min)


def best_fixed_arm(rewards: ArrayLike) -> int:
    """The arm with the highest total reward in hindsight (the first among equals).

    Examples:
        >>> best_fixed_arm([[0.1, 0.9], [0.8, 0.3]])
        1
    """
    r = np.asarray(rewards, dtype=float)
    if r.ndim != 2 or r.shape[1] == 0:
        msg = f"rewards must be a (T, k) matrix with k >= 1, got shape {r.shape}"
        raise ConfigError(msg)
    return int(np.argmax(r.sum(axis=0)))


def cumulative_regret(
    chosen: ArrayLike,
    rewards: ArrayLike,
    *,
    against: Literal["best_fixed", "oracle"] = "best_fixed",
) -> np.ndarray:
    """Cumulative regret after each step: ``sum_{s <= t} r(a*_s) - r(a_s)``.

    Args:
        chosen: ``(T,)`` reward the policy obtained at each step.
        rewards: ``(T, k)`` reward every arm would have obtained at each step.
        against: ``"best_fixed"`` (``a*`` is the arm with the best total in hindsight) or
            ``"oracle"`` (``a*_s`` is the best arm of step ``s``).

    Examples:
        >>> r = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
        >>> cumulative_regret([0.0, 1.0, 1.0], r).tolist()
        [1.0, 0.0, 0.0]
        >>> cumulative_regret([0.0, 1.0, 1.0], r, against="oracle").tolist()
        [1.0, 1.0, 1.0]
    """
    got = np.asarray(chosen, dtype=float)
    r = np.asarray(rewards, dtype=float)
    if r.ndim != 2 or got.shape != (r.shape[0],):
        msg = f"chosen must have shape (T,) and rewards (T, k), got {got.shape} and {r.shape}"
        raise ConfigError(msg)
    if against == "best_fixed":
        best = r[:, best_fixed_arm(r)] if r.shape[0] else np.zeros(0)
    elif against == "oracle":
        best = r.max(axis=1) if r.shape[0] else np.zeros(0)
    else:
        msg = f"against must be 'best_fixed' or 'oracle', got {against!r}"
        raise ConfigError(msg)
    return np.cumsum(best - got)


@dataclass(frozen=True, slots=True)
class Settle:
    """Whether and when a stream of choices settled on one arm.

    Args:
        step: 0-based index of the first query of the settled phase, or None.
        arm: the arm settled on, or None.
    """

    step: int | None
    arm: int | None

    @property
    def settled(self) -> bool:
        """Whether the stream settled."""
        return self.step is not None


def settle_step(
    arms: Sequence[int] | np.ndarray, *, window: int = 50, share: float = 0.8
) -> Settle:
    """When a learner committed: from then on, every window of choices mostly picks one arm.

    The arm is the most chosen one in the last ``window`` choices; the stream settled at
    the smallest step ``t`` such that every window of ``window`` consecutive choices
    starting at ``t`` or later picks that arm at least ``share`` of the time. Judged from
    the choices alone, so it applies to every policy; exploration below ``1 - share``
    (for example epsilon-greedy's epsilon = 0.1) does not prevent settling.

    Args:
        arms: the arm chosen at each step.
        window: the window length (a stream shorter than it never settles).
        share: the fraction of a window the arm must take, in (0, 1].

    Examples:
        >>> settle_step([0, 1, 0, 1] + [1] * 8, window=4, share=0.75)
        Settle(step=1, arm=1)
        >>> settle_step([0, 1] * 6, window=4).settled
        False
    """
    if not (isinstance(window, int) and window >= 1):
        msg = f"window must be an int >= 1, got {window!r}"
        raise ConfigError(msg)
    if not (0.0 < share <= 1.0):
        msg = f"share must be in (0, 1], got {share!r}"
        raise ConfigError(msg)
    a = np.asarray(arms, dtype=int)
    if a.size < window:
        return Settle(None, None)
    arm = int(np.argmax(np.bincount(a[-window:])))
    hits = np.concatenate([[0], np.cumsum(a == arm)])
    counts = hits[window:] - hits[:-window]  # counts[t]: picks of arm in [t, t + window)
    needed = share * window - 1e-9
    failing = np.flatnonzero(counts < needed)
    if failing.size and failing[-1] == counts.size - 1:
        return Settle(None, None)
    step = 0 if failing.size == 0 else int(failing[-1]) + 1
    return Settle(step, arm)
