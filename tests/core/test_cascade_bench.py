"""The cascade bench on a small synthetic table: rows, noise table, timings, no test fitting."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from pickllm.bench.cascade import cascade_bench, split_halves
from pickllm.bench.report import Kind, MethodResult
from pickllm.bench.run import run_bench
from pickllm.costaware import pareto_budgets
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError


def _table(n: int = 60, seed: int = 0) -> OutcomeTable:
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < [0.5, 0.7, 0.9]).astype(float)
    responses = tuple(
        tuple("A" if t else "BCD"[int(rng.integers(3))] for t in row) for row in truth
    )
    return OutcomeTable(
        name="toy",
        prompt_ids=tuple(f"p{i}" for i in range(n)),
        prompts=tuple(f"question {i}" for i in range(n)),
        tasks=("arc",) * n,
        splits=tuple("test" if i % 3 == 0 else "train" for i in range(n)),
        folds=np.zeros(n, dtype=int),
        models=("small", "medium", "large"),
        quality=truth,
        cost=np.tile([1e-4, 5e-4, 3e-3], (n, 1)),
        cost_estimated=False,
        input_tokens=np.full(n, 100),
        latency=None,
        responses=responses,
    )


def _result(
    name: str,
    kind: Kind,
    *,
    accuracy: float,
    mean_cost: float,
    mean_latency: float | None,
    mean_reward: float | None,
    points: Sequence[tuple[float, float]],
    detail: str = "",
) -> MethodResult:
    return MethodResult(
        name=name,
        kind=kind,
        accuracy=accuracy,
        mean_cost=mean_cost,
        mean_latency=mean_latency,
        mean_reward=mean_reward,
        points=tuple(points),
        detail=detail,
    )


def test_cascade_rows_and_noise_table() -> None:
    table = _table()
    train, test = table.rows(split="train"), table.rows(split="test")
    assert table.cost is not None
    c_k, q_k = table.cost[test].mean(axis=0), table.quality[test].mean(axis=0)
    budgets = pareto_budgets(c_k, q_k, per_segment=3)
    ante = np.tile(table.quality[train].mean(axis=0), (table.n_prompts, 1))
    ticks = itertools.count()
    tick = 2.0**-13  # seconds, exact in binary: every difference of two readings is exact
    out = cascade_bench(
        table,
        train,
        test,
        budgets=budgets,
        result=_result,
        noise=True,
        points=3,
        ante=ante,
        clock=lambda: next(ticks) * tick,
    )
    assert set(out.rows) == {"threshold_cascade", "optimal_cascade", "cascade_routing"}
    for row in out.rows.values():
        points = row.points
        assert len(points) == budgets.size
        costs = [p[0] for p in points]
        # a cascade costs at least its cheapest model and at most all of them
        assert min(costs) >= c_k.min() - 1e-12
        assert max(costs) <= c_k.sum() + 1e-12
    assert set(out.noise) == {"low", "medium", "high"}
    assert set(out.noise_cost95) == set(out.noise)
    for aucs in out.noise.values():
        assert set(aucs) == {
            "linear",
            "routing",
            "threshold_cascade",
            "optimal_cascade",
            "cascade_routing",
        }
    # the injected clock advances one tick per reading: every timed step lasts one tick
    median, p99, steps = out.decision_ms["cascade_routing, learned estimators, 11 models"]
    assert steps > 0
    assert median == p99
    assert median == 1e3 * tick
    text = "\n".join(out.lines())
    assert "noisy-oracle protocol" in text
    assert "decision time per step" in text


def test_test_rows_do_not_change_what_is_fitted() -> None:
    table = _table(seed=3)
    train, test = table.rows(split="train"), table.rows(split="test")
    a, b = split_halves(train, 0)
    assert set(a).isdisjoint(b)
    assert set(a) | set(b) == set(train)
    flipped = OutcomeTable(
        name="toy",
        prompt_ids=table.prompt_ids,
        prompts=table.prompts,
        tasks=table.tasks,
        splits=table.splits,
        folds=table.folds,
        models=table.models,
        quality=np.where(
            np.isin(np.arange(table.n_prompts), test)[:, None], 1 - table.quality, table.quality
        ),
        cost=table.cost,
        cost_estimated=False,
        input_tokens=table.input_tokens,
        latency=None,
        responses=table.responses,
    )
    budgets = np.array([2e-4, 1e-3])
    ante = np.tile(table.quality[train].mean(axis=0), (table.n_prompts, 1))
    runs = []
    for t in (table, flipped):
        out = cascade_bench(t, train, test, budgets=budgets, result=_result, points=2, ante=ante)
        runs.append([p[0] for row in out.rows.values() for p in row.points])
    # costs depend on the fitted multipliers and the test answers, which are unchanged
    # except through the flipped test labels, which nothing fitted may read
    assert runs[0] == runs[1]


def test_run_bench_adds_the_noise_table_as_notes() -> None:
    table = _table(n=30)
    report = run_bench(table, policies=[], noise=True, budgets_per_segment=2)
    assert any("noisy-oracle protocol" in note for note in report.notes)
    assert "cascade_routing" not in report.results


def test_cascade_bench_needs_costs() -> None:
    table = _table()
    no_cost = OutcomeTable(
        name="toy",
        prompt_ids=table.prompt_ids,
        prompts=table.prompts,
        tasks=table.tasks,
        splits=table.splits,
        folds=table.folds,
        models=table.models,
        quality=table.quality,
        cost=None,
        cost_estimated=False,
        input_tokens=table.input_tokens,
        latency=None,
        responses=table.responses,
    )
    with pytest.raises(ConfigError, match="needs costs"):
        cascade_bench(
            no_cost, np.arange(10), np.arange(10, 20), budgets=np.array([1.0]), result=_result
        )
