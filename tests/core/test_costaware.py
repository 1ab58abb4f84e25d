"""Cost-aware routing: the lambda rule, its budget fit with tie mixing, and the sweep."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pickllm import ConfigError
from pickllm.costaware import (
    LambdaFit,
    apply,
    evaluate_fit,
    fit_lambda,
    lambda_sweep,
    pareto_budgets,
    route_by_lambda,
    route_sides,
)

# Two models, one cheap and weak, one dear and strong, on identical queries: every query
# ties at the same lambda, so the budget can only be met by mixing.
Q_TIE = np.array([[0.5, 1.0]] * 4)
C_TIE = np.array([[1.0, 2.0]] * 4)


# ---------------------------------------------------------------- route_by_lambda
def test_lambda_zero_routes_for_quality_and_large_lambda_for_cost() -> None:
    q = np.array([[0.2, 0.9, 0.5], [0.8, 0.7, 0.1]])
    c = np.array([[1.0, 5.0, 2.0], [3.0, 1.0, 2.0]])
    assert route_by_lambda(q, c, 0.0).tolist() == [1, 0]
    assert route_by_lambda(q, c, 1e6).tolist() == [0, 1]
    # lam = 0.1: scores row 0: 0.1, 0.4, 0.3; row 1: 0.5, 0.6, -0.1.
    assert route_by_lambda(q, c, 0.1).tolist() == [1, 1]


def test_ties_go_to_the_cheapest_or_the_most_expensive() -> None:
    # At lam = 0.5 both models score 0.
    assert route_by_lambda(Q_TIE, C_TIE, 0.5).tolist() == [0] * 4
    assert route_by_lambda(Q_TIE, C_TIE, 0.5, prefer="expensive").tolist() == [1] * 4
    # Equal quality at lam = 0: the cheaper one, whatever the column order.
    q = np.array([[1.0, 1.0]])
    assert route_by_lambda(q, np.array([[3.0, 2.0]]), 0.0).tolist() == [1]


def test_route_by_lambda_validates_its_inputs() -> None:
    with pytest.raises(ConfigError, match="lam must be"):
        route_by_lambda(Q_TIE, C_TIE, -1.0)
    with pytest.raises(ConfigError, match="same shape"):
        route_by_lambda(Q_TIE, C_TIE[:, :1], 0.0)
    with pytest.raises(ConfigError, match="finite"):
        route_by_lambda(np.array([[np.nan]]), np.array([[1.0]]), 0.0)
    with pytest.raises(ConfigError, match="prefer"):
        route_by_lambda(Q_TIE, C_TIE, 0.0, prefer="middle")  # type: ignore[arg-type]


# ---------------------------------------------------------------- fit_lambda
def test_a_budget_that_does_not_bind_gives_lambda_zero() -> None:
    fit = fit_lambda(Q_TIE, C_TIE, 5.0)
    assert (fit.lam, fit.gamma, fit.cost, fit.quality, fit.feasible) == (0.0, 0.0, 2.0, 1.0, True)


def test_tie_mixing_meets_the_budget_exactly() -> None:
    fit = fit_lambda(Q_TIE, C_TIE, 1.25)
    assert fit.lam == pytest.approx(0.5)
    assert fit.lam_expensive < fit.lam
    assert fit.gamma == pytest.approx(0.25)
    assert fit.cost == pytest.approx(1.25, abs=1e-12)
    assert fit.quality == pytest.approx(0.625)
    cheap, dear = route_sides(fit, Q_TIE, C_TIE)
    assert cheap.tolist() == [0] * 4
    assert dear.tolist() == [1] * 4


def test_an_infeasible_budget_routes_every_query_to_its_cheapest_model() -> None:
    fit = fit_lambda(Q_TIE, C_TIE, 0.5)
    assert not fit.feasible
    assert fit.cost == 1.0
    assert route_by_lambda(Q_TIE, C_TIE, fit.lam).tolist() == [0] * 4


def test_fit_on_rows_with_different_breakpoints() -> None:
    q = np.array([[0.6, 0.9], [0.2, 0.9]])
    c = np.array([[1.0, 3.0], [1.0, 3.0]])
    # Breakpoints at 0.15 (row 0) and 0.35 (row 1); budget 2 sits between them.
    fit = fit_lambda(q, c, 2.0)
    assert fit.lam == pytest.approx(0.15)
    assert fit.gamma == 0.0
    assert fit.cost == pytest.approx(2.0)
    assert fit.quality == pytest.approx((0.6 + 0.9) / 2)
    # Budget 2.5: row 0 mixes at lam 0.15 with probability 1/2.
    fit = fit_lambda(q, c, 2.5)
    assert fit.lam == pytest.approx(0.15)
    assert fit.gamma == pytest.approx(0.5)
    assert fit.quality == pytest.approx((0.75 + 0.9) / 2)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_fitted_cost_equals_any_feasible_budget(seed: int, where: float) -> None:
    rng = np.random.default_rng(seed)
    q = rng.random((30, 4))
    c = rng.random((30, 4)) * np.array([1.0, 2.0, 4.0, 8.0])
    lo = c.min(axis=1).mean()
    hi = c[np.arange(30), route_by_lambda(q, c, 0.0)].mean()
    budget = float(lo + where * (hi - lo))
    fit = fit_lambda(q, c, budget)
    assert fit.feasible
    assert fit.cost == pytest.approx(budget, rel=1e-9, abs=1e-12)
    assert evaluate_fit(fit, q, c, q, c) == pytest.approx((fit.quality, fit.cost))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_fit_beats_every_deterministic_routing_within_the_budget(seed: int) -> None:
    # The fitted rule solves max E[q] s.t. E[c] <= B over randomised routings, so no
    # deterministic assignment that respects the budget may beat it.
    rng = np.random.default_rng(seed)
    n, k = 4, 3
    q = rng.random((n, k))
    c = rng.random((n, k))
    budget = float(rng.uniform(c.min(axis=1).mean(), c.max(axis=1).mean()))
    fit = fit_lambda(q, c, budget)
    rows = np.arange(n)
    best = max(
        q[rows, list(choice)].mean()
        for choice in itertools.product(range(k), repeat=n)
        if c[rows, list(choice)].mean() <= budget
    )
    assert fit.quality >= best - 1e-9


def test_quality_grows_with_the_budget_along_a_sweep() -> None:
    rng = np.random.default_rng(0)
    q = rng.random((50, 5))
    c = rng.random((50, 5))
    budgets = np.linspace(c.min(axis=1).mean(), c.max(axis=1).mean(), 12)
    fits = lambda_sweep(q, c, budgets)
    assert [f.budget for f in fits] == pytest.approx(budgets.tolist())
    qualities = [f.quality for f in fits]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(qualities))
    lams = [f.lam for f in fits]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lams))


def test_fit_lambda_validates_its_inputs() -> None:
    with pytest.raises(ConfigError, match="budget must be"):
        fit_lambda(Q_TIE, C_TIE, -1.0)
    with pytest.raises(ConfigError, match="at least one query"):
        fit_lambda(np.zeros((0, 2)), np.zeros((0, 2)), 1.0)
    with pytest.raises(ConfigError, match="max_iterations"):
        fit_lambda(Q_TIE, C_TIE, 1.0, max_iterations=0)


# ---------------------------------------------------------------- apply / evaluate
def test_apply_mixes_with_the_fitted_probability() -> None:
    q = np.tile([0.5, 1.0], (20_000, 1))
    c = np.tile([1.0, 2.0], (20_000, 1))
    fit = fit_lambda(q, c, 1.25)
    picks = apply(fit, q, c, np.random.default_rng(0))
    assert abs(picks.mean() - 0.25) < 0.01
    assert c[np.arange(20_000), picks].mean() == pytest.approx(1.25, abs=0.01)


def test_apply_is_reproducible_and_consumes_one_draw_per_query() -> None:
    fit = fit_lambda(Q_TIE, C_TIE, 1.5)
    a = apply(fit, Q_TIE, C_TIE, np.random.default_rng(7))
    b = apply(fit, Q_TIE, C_TIE, np.random.default_rng(7))
    assert a.tolist() == b.tolist()
    rng = np.random.default_rng(7)
    apply(fit_lambda(Q_TIE, C_TIE, 9.0), Q_TIE, C_TIE, rng)  # no mixing, still 4 draws
    fresh = np.random.default_rng(7)
    fresh.random(4)
    assert rng.random() == fresh.random()


def test_evaluate_fit_reads_true_outcomes_of_predicted_routes() -> None:
    fit = fit_lambda(Q_TIE, C_TIE, 1.25)
    true_q = np.array([[1.0, 0.0]] * 4)
    true_c = np.array([[0.1, 0.3]] * 4)
    quality, cost = evaluate_fit(fit, Q_TIE, C_TIE, true_q, true_c)
    assert quality == pytest.approx(0.75)
    assert cost == pytest.approx(0.15)
    with pytest.raises(ConfigError, match="rows"):
        evaluate_fit(fit, Q_TIE, C_TIE, true_q[:2], true_c[:2])


def test_lambda_fit_is_a_frozen_value() -> None:
    fit = LambdaFit(lam=0.1, lam_expensive=0.1, gamma=0.0, budget=1.0, cost=1.0, quality=0.5)
    with pytest.raises(AttributeError):
        fit.lam = 0.2  # type: ignore[misc]


# ---------------------------------------------------------------- budgets
def test_pareto_budgets_span_the_hull_between_cheapest_and_best() -> None:
    costs = [1.0, 2.0, 4.0, 3.0]
    quals = [0.5, 0.6, 0.9, 0.4]  # model 3 is dominated
    budgets = pareto_budgets(costs, quals, per_segment=3)
    assert budgets.tolist() == [1.0, 2.5, 4.0]
    assert pareto_budgets(costs, quals).size == 10


def test_pareto_budgets_reach_the_most_expensive_model() -> None:
    budgets = pareto_budgets([1.0, 2.0, 9.0], [0.5, 0.9, 0.8], per_segment=2)
    assert budgets.tolist() == [1.0, 2.0, 9.0]
    with pytest.raises(ConfigError, match="per_segment"):
        pareto_budgets([1.0], [0.5], per_segment=1)
