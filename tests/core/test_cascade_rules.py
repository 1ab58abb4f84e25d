"""The cascade-routing rules against hand-computed cases and exhaustive search."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from pickllm.cascade.estimators import NoisyOracle
from pickllm.cascade.offline import Strategy, lambda_grid, mix_for_budget, sweep
from pickllm.cascade.rules import (
    expected_max,
    joint_samples,
    normal_samples,
    search_supermodel,
)
from pickllm.errors import ConfigError

_N = NormalDist()


def _closed_form_max(mu1: float, mu2: float, s1: float, s2: float, rho: float) -> float:
    """E[max(X1, X2)] of a bivariate normal (Clark 1961)."""
    theta = math.sqrt(s1**2 + s2**2 - 2 * rho * s1 * s2)
    alpha = (mu1 - mu2) / theta
    return mu1 * _N.cdf(alpha) + mu2 * _N.cdf(-alpha) + theta * _N.pdf(alpha)


def test_perfectly_correlated_equal_means_give_the_mean() -> None:
    z = normal_samples(100, 2, seed=3)
    sigma = np.full((2, 2), 0.09)
    assert expected_max(np.array([0.4, 0.4]), sigma, samples=z) == pytest.approx(0.4, abs=1e-5)


@pytest.mark.parametrize(
    ("mu", "sd", "rho"),
    [((0.5, 0.5), (0.2, 0.2), 0.0), ((0.6, 0.4), (0.1, 0.3), 0.0), ((0.5, 0.7), (0.3, 0.2), 0.5)],
)
def test_expected_max_matches_the_closed_form(
    mu: tuple[float, float], sd: tuple[float, float], rho: float
) -> None:
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    z = normal_samples(100, 2, seed=1)
    got = expected_max(np.array(mu), cov, samples=z)
    want = _closed_form_max(mu[0], mu[1], sd[0], sd[1], rho)
    assert got == pytest.approx(want, abs=0.01)
    # far from the value that ignores the uncertainty, so the test can fail
    assert abs(max(mu) - want) > 0.03


def test_independent_case_scales_by_standard_deviations_not_variances() -> None:
    z = normal_samples(100, 2, seed=0)
    variances = np.array([0.04, 0.04])  # sd 0.2
    got = expected_max(np.array([0.5, 0.5]), variances, samples=z)
    assert got == pytest.approx(0.5 + 0.2 / math.sqrt(math.pi), abs=0.01)


def test_one_model_and_no_uncertainty() -> None:
    q = np.array([0.3, 0.8, 0.5])
    assert expected_max(q, np.eye(3), models=[2]) == 0.5
    assert expected_max(q, None) == 0.8
    assert expected_max(q, None, models=[0, 2]) == 0.5
    assert expected_max(q, np.eye(3), models=[]) == -math.inf


def test_normal_samples_are_seeded_and_validated() -> None:
    assert np.array_equal(normal_samples(10, 3, seed=4), normal_samples(10, 3, seed=4))
    assert not np.array_equal(normal_samples(10, 3, seed=4), normal_samples(10, 3, seed=5))
    with pytest.raises(ConfigError, match="n_samples"):
        normal_samples(0, 2)


def _exhaustive(
    draws: np.ndarray, c: np.ndarray, run: tuple[int, ...], lam: float, depth: int
) -> tuple[int, ...]:
    k = c.size
    rest = [j for j in range(k) if j not in run]
    best: tuple[float, float, tuple[int, ...]] | None = None
    for extra in range(depth - len(run) + 1):
        for add in itertools.combinations(rest, extra):
            members = tuple(sorted((*run, *add)))
            if not members:
                continue
            q = float(draws[:, list(members)].max(axis=1).mean())
            t = round(q - lam * float(c[list(members)].sum()), 8)
            key = (t, -float(c[list(members)].sum()), members)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    return best[2]


def test_pruning_never_changes_the_chosen_supermodel() -> None:
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(60):
        k = int(rng.integers(3, 8))
        q = rng.uniform(0.2, 0.9, k)
        c = np.sort(rng.uniform(0.1, 1.0, k))
        a = rng.normal(size=(k, k)) * 0.15
        draws = joint_samples(q, a @ a.T, normal_samples(100, k, seed=int(rng.integers(1000))))
        run = tuple(sorted(rng.choice(k, size=int(rng.integers(0, 3)), replace=False).tolist()))
        lam = float(rng.choice([0.0, 0.05, 0.2, 1.0]))
        depth = int(rng.integers(max(len(run), 1), k + 1))
        pruned = search_supermodel(q, c, run, lam, draws=draws, max_depth=depth, prune=True)
        full = search_supermodel(q, c, run, lam, draws=draws, max_depth=depth, prune=False)
        assert tuple(sorted(pruned.models)) == tuple(sorted(full.models))
        assert tuple(sorted(full.models)) == _exhaustive(draws, c, run, lam, depth)
        assert pruned.explored <= full.explored
        checked += 1
    assert checked == 60


def test_next_model_is_the_cheapest_unrun_and_stop_when_nothing_pays() -> None:
    q = np.array([0.5, 0.6, 0.9])
    c = np.array([1.0, 2.0, 3.0])
    sigma = np.diag([1e-6, 0.04, 0.04])
    draws = joint_samples(q, sigma, normal_samples(100, 3, seed=0))
    everything = search_supermodel(q, c, (0,), 0.0, draws=draws)
    assert everything.models == (0, 1, 2)
    assert everything.next_model == 1
    go = search_supermodel(q, c, (0,), 0.01, draws=draws)
    assert go.models == (0, 2)
    assert go.next_model == 2
    stop = search_supermodel(q, c, (0,), 10.0, draws=draws)
    assert stop.models == (0,)
    assert stop.next_model is None


def test_depth_cap_and_prefix_cascade() -> None:
    q = np.array([0.5, 0.6, 0.7, 0.8])
    c = np.array([1.0, 2.0, 3.0, 4.0])
    draws = joint_samples(q, np.eye(4) * 0.05, normal_samples(100, 4, seed=0))
    capped = search_supermodel(q, c, (), 0.0, draws=draws, max_depth=2)
    assert len(capped.models) == 2
    prefix = search_supermodel(q, c, (0,), 0.0, draws=draws, cascade=True)
    assert prefix.models == (0, 1, 2, 3)
    assert search_supermodel(q, c, (), 0.0, draws=draws, max_depth=1).models == (3,)


def test_ties_go_to_the_dearer_with_probability_gamma() -> None:
    q = np.array([0.5, 0.7])
    c = np.array([1.0, 3.0])  # lam 0.1: 0.5 - 0.1 = 0.7 - 0.3
    cheap = search_supermodel(q, c, (), 0.1, draws=None, gamma=0.3, u=0.5)
    dear = search_supermodel(q, c, (), 0.1, draws=None, gamma=0.3, u=0.2)
    assert cheap.models == (0,)
    assert dear.models == (1,)


def test_fitted_multipliers_meet_the_budget_on_training_data() -> None:
    rng = np.random.default_rng(5)
    n, k = 120, 4
    truth = (rng.random((n, k)) < np.array([0.5, 0.6, 0.7, 0.85])).astype(float)
    cost = np.tile([1.0, 2.0, 4.0, 8.0], (n, 1))
    est = NoisyOracle.fit(truth, cost, ante=0.6, post=0.3, fit_rows=np.arange(n), seed=0)
    rows = np.arange(n)
    for kind in ("threshold_cascade", "optimal_cascade", "cascade_routing"):
        strategy = Strategy(kind, order=np.arange(k), max_depth=3)
        grid = lambda_grid(kind, 1.0 / cost.mean(), points=10, depth=3)
        sw = sweep(strategy, est, rows, grid, quality=truth, cost=cost)
        lo, hi = float(np.nanmin(sw.cost)), float(np.nanmax(sw.cost))
        for budget in np.linspace(lo, hi, 5)[1:-1]:
            mix = mix_for_budget(sw.cost, sw.quality, float(budget))
            spent = (1 - mix.gamma) * sw.cost[mix.cheap] + mix.gamma * sw.cost[mix.dear]
            assert spent <= budget * (1 + 1e-9)
            if mix.quality < sw.quality.max():  # a better point costs more: spend it all
                assert spent == pytest.approx(budget, rel=1e-9)
            within = sw.quality[sw.cost <= budget + 1e-12]
            assert mix.quality >= within.max() - 1e-12
