"""Cascade strategies on recorded outcomes: learned estimators and the noisy-oracle protocol.

:func:`cascade_bench` adds, for ``pickllm bench --cascade``, one row per cascade strategy
(``threshold_cascade``, ``optimal_cascade``, ``cascade_routing``) beside the routing rows,
and with ``--noise`` the paper's noisy-estimator table (algorithm notes §3.6/§3.9).

Nothing is fitted or selected on the test rows. The train rows are split in two seeded
halves, as the paper does: half A fits the estimators, half B the multipliers (``lam``
per step, mixed to the budget, :func:`pickllm.cascade.offline.mix_for_budget`).

Learned estimators (``--cascade``):

* ex-ante quality: a query scorer (Zooter, ``tag_beta=0``, the library's best routing
  row) cross-fitted over the halves (trained on A it predicts B and vice versa; trained on
  all train rows it predicts the test rows), with the per-task covariance of its residuals
  on A as the paper's Sigma;
* post-hoc quality: :class:`~pickllm.cascade.estimators.PostHocModel` fitted on A
  (ex-ante estimate, answer features, agreement with the answers already seen); the
  unrun models' estimates are conditioned on it after every step;
* ex-ante cost: :class:`~pickllm.cascade.estimators.TokenCostModel` fitted on A; a run
  model's cost is its recorded cost.

A cascade's test cost is the sum of the recorded costs of the models it ran, its quality
the recorded quality of the answer it returned. Each budget of the grid gives one test
point (the mixture of two fitted multiplier vectors, in expectation).

Noisy-oracle protocol (``--noise``): per noise level (low, medium, high: sigma ex-ante
0.6/1.6/2.4, post-hoc half of it; cost noise as the paper), the estimators of
:class:`~pickllm.cascade.estimators.NoisyOracle` calibrated on A; routing (the optimal
rule on the ex-ante estimates, ``lam`` fitted on B) and the three cascades, AUC x100.

Per-step decision time (estimate refresh plus search) is measured for cascade routing
on the test rows at the middle budget of the grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pickllm import metrics
from pickllm.bench.report import MethodResult
from pickllm.cascade.estimators import (
    COST_NOISE_LEVELS,
    NOISE_LEVELS,
    LearnedEstimator,
    NoisyOracle,
    OfflineEstimator,
)
from pickllm.cascade.offline import (
    STRATEGY_KINDS,
    Mix,
    Strategy,
    lambda_grid,
    mix_for_budget,
    sweep,
)
from pickllm.cascade.trained import fit_learned_estimator
from pickllm.costaware import evaluate_fit, lambda_sweep
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError

__all__ = ["CascadeBench", "cascade_bench", "split_halves"]

ResultFn = Callable[..., MethodResult]
Progress = Callable[[str], None]


def split_halves(train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded halves of the train rows: (estimators, multipliers)."""
    perm = np.random.default_rng([seed, 11]).permutation(np.asarray(train, dtype=np.intp))
    half = perm.size // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


@dataclass(frozen=True, slots=True)
class CascadeBench:
    """What the cascade part of a bench measured.

    Args:
        rows: one result per strategy (learned estimators), for the main table.
        noise: AUC x100 per noise level and method (routing and the three cascades).
        noise_cost95: per noise level and method, the cost per query (USD) to reach 95% of
            the best single model's test accuracy (None: never reached).
        decision_ms: per-step decision time (median, p99) in ms, per setting.
        notes: how the figures were obtained.
    """

    rows: dict[str, MethodResult] = field(default_factory=dict)
    noise: dict[str, dict[str, float]] = field(default_factory=dict)
    noise_cost95: dict[str, dict[str, float | None]] = field(default_factory=dict)
    decision_ms: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The noise table and the decision times as text lines."""
        out: list[str] = []
        if self.noise:
            methods = ["linear", "routing", *STRATEGY_KINDS]
            out.append("noisy-oracle protocol, AUC x100 (sigma ex-ante/post-hoc):")
            out.append("  " + " | ".join(["noise", *methods]))
            for level, aucs in self.noise.items():
                a, p = NOISE_LEVELS[level]
                cells = [f"{level} ({a:g}/{p:g})"] + [f"{aucs[m]:.2f}" for m in methods]
                out.append("  " + " | ".join(cells))
            out.append("noisy-oracle protocol, $ per query to reach 95% of the best model:")
            out.append("  " + " | ".join(["noise", *methods]))
            for level, costs in self.noise_cost95.items():
                a, p = NOISE_LEVELS[level]
                cells = [f"{level} ({a:g}/{p:g})"] + [
                    "-" if costs[m] is None else f"{costs[m]:.6f}" for m in methods
                ]
                out.append("  " + " | ".join(cells))
        for label, (median, p99, n) in self.decision_ms.items():
            out.append(
                f"decision time per step, {label}: median {median:.3f} ms, p99 {p99:.3f} ms "
                f"({n} steps)"
            )
        return out


@dataclass(frozen=True, slots=True)
class _Ref:
    c_min: float
    c_max: float
    q_floor: float

    def cost_to_95(self, points: Sequence[tuple[float, float]], q_best: float) -> float | None:
        pts = sorted(points)
        return metrics.cost_to_reach(
            [p[0] for p in pts],
            [p[1] for p in pts],
            0.95 * q_best,
            c_min=self.c_min,
            q_floor=self.q_floor,
        )

    def auc(self, points: Sequence[tuple[float, float]]) -> float:
        pts = sorted(points)
        return 100.0 * metrics.quality_cost_auc(
            [p[0] for p in pts],
            [p[1] for p in pts],
            c_min=self.c_min,
            c_max=self.c_max,
            q_floor=self.q_floor,
        )


def _zooter_ante(table: OutcomeTable, a: np.ndarray, b: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Zooter's quality predictions, out of fold on the train halves."""
    from pickllm.learn.offline import table_fit_args
    from pickllm.learn.zooter import Zooter

    ante = np.zeros(table.quality.shape)

    def fit_predict(fit_rows: np.ndarray, rows: np.ndarray) -> None:
        args = table_fit_args(table, fit_rows)
        scorer = Zooter(tag_beta=0.0, seed=0).fit(
            args.pop("texts"), args.pop("quality"), args.pop("models"), **args
        )
        pred = table_fit_args(table, rows)
        ante[rows] = scorer.predict(
            pred["texts"], tags=pred["tags"], input_tokens=pred["input_tokens"]
        ).quality

    fit_predict(a, b)
    fit_predict(b, a)
    fit_predict(np.sort(np.concatenate([a, b])), test)
    return np.clip(ante, 0.0, 1.0)


def _curve(
    kind: str,
    estimator: OfflineEstimator,
    *,
    order: np.ndarray,
    fit_rows: np.ndarray,
    test: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    budgets: np.ndarray,
    points: int,
    unit: float,
    seed: int,
    ratios: Sequence[float] = (1.0,),
) -> tuple[list[tuple[float, float]], list[tuple[float, ...]], list[Mix]]:
    strategy = Strategy(kind, order=order, seed=seed)
    grid = lambda_grid(kind, unit, points=points, ratios=ratios)
    fitted = sweep(strategy, estimator, fit_rows, grid, quality=quality, cost=cost)
    mixes = [mix_for_budget(fitted.cost, fitted.quality, float(b)) for b in budgets]
    need = sorted({m.cheap for m in mixes} | {m.dear for m in mixes})
    tested = sweep(strategy, estimator, test, grid, quality=quality, cost=cost, only=need)
    out = []
    for m in mixes:
        g = m.gamma
        out.append(
            (
                float((1 - g) * tested.cost[m.cheap] + g * tested.cost[m.dear]),
                float((1 - g) * tested.quality[m.cheap] + g * tested.quality[m.dear]),
            )
        )
    return out, grid, mixes


def _decision_times(
    estimator: OfflineEstimator,
    order: np.ndarray,
    test: np.ndarray,
    lams: tuple[float, ...],
    clock: Callable[[], float],
) -> tuple[float, float, int]:
    strategy = Strategy("cascade_routing", order=order, clock=clock)
    for i in np.asarray(test, dtype=np.intp).tolist():
        strategy.run(estimator, i, lams, timed=True)
    times = 1e3 * np.asarray(strategy.decision_times)
    return float(np.median(times)), float(np.quantile(times, 0.99)), int(times.size)


def cascade_bench(
    table: OutcomeTable,
    train: np.ndarray,
    test: np.ndarray,
    *,
    budgets: np.ndarray,
    result: ResultFn,
    learned: bool = True,
    noise: bool = False,
    points: int = 12,
    seed: int = 0,
    ante: np.ndarray | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Progress | None = None,
) -> CascadeBench:
    """Cascade rows (learned estimators) and the noisy-oracle table.

    Args:
        table: the outcomes (costs required; responses for ``learned``).
        train: train rows (split in halves: estimators, multipliers).
        test: test rows.
        budgets: the budgets of the test curve.
        result: builds a :class:`~pickllm.bench.report.MethodResult` from a curve (the
            bench's own, so the AUC reference is shared with the routing rows).
        learned: add the rows with learned estimators.
        noise: run the noisy-oracle protocol.
        points: multiplier grid points per strategy.
        seed: the halves, the noise and the quasi-Monte-Carlo shift.
        ante: ``(n, k)`` ex-ante predictions to use instead of the cross-fitted Zooter.
        clock: the decision timer.
        progress: called with a label after each unit of work.

    Raises:
        ConfigError: the table has no costs (or no responses with ``learned``).
    """
    if table.cost is None:
        msg = f"{table.name}: the cascade bench needs costs"
        raise ConfigError(msg)
    if not (isinstance(points, int) and points >= 2):
        msg = f"points must be an int >= 2, got {points!r}"
        raise ConfigError(msg)
    tell = progress or (lambda _label: None)
    quality, cost = np.asarray(table.quality), np.asarray(table.cost)
    a, b = split_halves(train, seed)
    c_k, q_k = cost[test].mean(axis=0), quality[test].mean(axis=0)
    ctx = _Context(
        order=np.argsort(cost[train].mean(axis=0), kind="stable"),
        fit_rows=b,
        test=np.asarray(test, dtype=np.intp),
        quality=quality,
        cost=cost,
        budgets=np.asarray(budgets, dtype=float),
        points=points,
        unit=1.0 / float(cost[train].mean()),
        seed=seed,
        ref=_Ref(c_min=float(c_k.min()), c_max=float(c_k.max()), q_floor=float(q_k.min())),
        clock=clock,
    )
    out = CascadeBench()
    if learned:
        if ante is None:
            ante = _zooter_ante(table, a, b, test)
            tell("cascade: ex-ante (zooter, cross-fitted)")
        out = _learned_rows(ctx, fit_learned_estimator(table, ante, a, seed=seed), result, tell)
    if noise:
        noisy = _noise_table(ctx, a, tell)
        out = CascadeBench(
            rows=out.rows,
            noise=noisy.noise,
            noise_cost95=noisy.noise_cost95,
            decision_ms={**out.decision_ms, **noisy.decision_ms},
            notes=(*out.notes, *noisy.notes),
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    order: np.ndarray
    fit_rows: np.ndarray
    test: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    budgets: np.ndarray
    points: int
    unit: float
    seed: int
    ref: _Ref
    clock: Callable[[], float]

    def curve(
        self, kind: str, estimator: OfflineEstimator, ratios: Sequence[float] = (1.0,)
    ) -> tuple[list[tuple[float, float]], list[tuple[float, ...]], list[Mix]]:
        return _curve(
            kind,
            estimator,
            order=self.order,
            fit_rows=self.fit_rows,
            test=self.test,
            quality=self.quality,
            cost=self.cost,
            budgets=self.budgets,
            points=self.points,
            unit=self.unit,
            seed=self.seed,
            ratios=ratios,
        )

    def train_auc(self, kind: str, estimator: OfflineEstimator, rows: np.ndarray) -> float:
        """AUC of the fitted (training) curve on ``rows``: for choices made on train."""
        strategy = Strategy(kind, order=self.order, seed=self.seed)
        grid = lambda_grid(kind, self.unit, points=self.points)
        fitted = sweep(strategy, estimator, rows, grid, quality=self.quality, cost=self.cost)
        c_k, q_k = self.cost[rows].mean(axis=0), self.quality[rows].mean(axis=0)
        ref = _Ref(c_min=float(c_k.min()), c_max=float(c_k.max()), q_floor=float(q_k.min()))
        mixes = [mix_for_budget(fitted.cost, fitted.quality, float(x)) for x in self.budgets]
        return ref.auc([(m.cost, m.quality) for m in mixes])


SIGMA_SCALES = (0.3, 0.1, 0.03, 0.01, 0.0)
"""Shrink factors of the learned covariance tried on the training half B (see notes)."""

STEP_RATIOS = (0.5, 1.0, 2.0)
"""Per-step multiplier profiles ``lam_s = lam * ratio**s`` of the learned rows' fit."""


def _learned_rows(
    ctx: _Context, estimator: LearnedEstimator, result: ResultFn, tell: Progress
) -> CascadeBench:
    # The covariance is of (ex-ante - post-hoc with all 11 answers seen), more spread than
    # what a cascade of a few models ever learns; its scale is chosen on training rows.
    pick = np.random.default_rng([ctx.seed, 13]).permutation(ctx.fit_rows)[:400]
    scores = {}
    for scale in SIGMA_SCALES:
        scaled = replace(
            estimator, covariance={t: scale * c for t, c in estimator.covariance.items()}
        )
        scores[scale] = ctx.train_auc("cascade_routing", scaled, np.sort(pick))
        tell(f"cascade: sigma scale {scale:g} on train: AUC {scores[scale]:.2f}")
    best = max(SIGMA_SCALES, key=lambda x: scores[x])
    estimator = replace(
        estimator, covariance={t: best * c for t, c in estimator.covariance.items()}
    )
    rows: dict[str, MethodResult] = {}
    decision: dict[str, tuple[float, float, int]] = {}
    for kind in STRATEGY_KINDS:
        curve, grid, mixes = ctx.curve(kind, estimator, STEP_RATIOS)
        top = max(curve, key=lambda p: (p[1], -p[0]))
        rows[kind] = result(
            kind,
            "offline",
            accuracy=top[1],
            mean_cost=top[0],
            mean_latency=None,
            mean_reward=None,
            points=curve,
            detail=f"{len(curve)} budgets; estimators fit on half of train, lam on the other",
        )
        if kind == "cascade_routing":
            mid = mixes[len(mixes) // 2]
            decision["cascade_routing, learned estimators, 11 models"] = _decision_times(
                estimator, ctx.order, ctx.test, grid[mid.cheap], ctx.clock
            )
        tell(f"cascade: {kind}")
    picked = ", ".join(f"{x:g}: {scores[x]:.2f}" for x in SIGMA_SCALES)
    notes = (
        (
            "cascade rows: ex-ante = zooter cross-fitted over two train halves; post-hoc = "
            "logistic regression on answer agreement/features fitted on half A; lam per "
            "budget fitted on half B (log grid x per-step profiles lam*r^step, r in 0.5, 1, "
            "2); max depth 5, 100 QMC samples"
        ),
        (
            f"cascade rows: sigma scale {best:g} chosen on 400 rows of train half B "
            f"(train AUC by scale: {picked})"
        ),
    )
    return CascadeBench(rows=rows, decision_ms=decision, notes=notes)


def _noise_table(ctx: _Context, a: np.ndarray, tell: Progress) -> CascadeBench:
    quality, cost, test, b = ctx.quality, ctx.cost, ctx.test, ctx.fit_rows
    c_k, q_k = cost[test].mean(axis=0), quality[test].mean(axis=0)
    linear = metrics.convex_hull(c_k, q_k).tolist()
    linear_points = [(float(c_k[j]), float(q_k[j])) for j in linear]
    linear_auc = ctx.ref.auc(linear_points)
    q_best = float(q_k.max())
    table: dict[str, dict[str, float]] = {}
    to95: dict[str, dict[str, float | None]] = {}
    decision: dict[str, tuple[float, float, int]] = {}
    for level, (s_ante, s_post) in NOISE_LEVELS.items():
        oracle = NoisyOracle.fit(
            quality,
            cost,
            ante=s_ante,
            post=s_post,
            fit_rows=a,
            cost_noise=COST_NOISE_LEVELS[level],
            seed=np.random.default_rng([ctx.seed, 5, int(10 * s_ante)]),
        )
        aucs = {"linear": linear_auc}
        reach: dict[str, float | None] = {"linear": ctx.ref.cost_to_95(linear_points, q_best)}
        fits = lambda_sweep(oracle.ante[b], oracle.cost_ante[b], ctx.budgets)
        routed = [
            evaluate_fit(f, oracle.ante[test], oracle.cost_ante[test], quality[test], cost[test])
            for f in fits
        ]
        aucs["routing"] = ctx.ref.auc([(c, q) for q, c in routed])
        reach["routing"] = ctx.ref.cost_to_95([(c, q) for q, c in routed], q_best)
        for kind in STRATEGY_KINDS:
            curve, grid, mixes = ctx.curve(kind, oracle)
            aucs[kind] = ctx.ref.auc(curve)
            reach[kind] = ctx.ref.cost_to_95(curve, q_best)
            if kind == "cascade_routing" and level == "low":
                mid = mixes[len(mixes) // 2]
                decision["cascade_routing, noisy oracle (low), 11 models"] = _decision_times(
                    oracle, ctx.order, test, grid[mid.cheap], ctx.clock
                )
            tell(f"cascade noise {level}: {kind}")
        table[level] = aucs
        to95[level] = reach
    notes = (
        (
            "noisy-oracle protocol: calibration and uncertainty fitted on train half A, lam "
            "on half B; AUC on the test rows"
        ),
    )
    return CascadeBench(noise=table, noise_cost95=to95, decision_ms=decision, notes=notes)
