"""Curve metrics (AUC, convex hull, APGR, CPT, cost to reach), regret and settling, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pickllm import ConfigError
from pickllm.metrics import (
    Settle,
    apgr,
    best_fixed_arm,
    convex_hull,
    cost_to_reach,
    cpt,
    cumulative_regret,
    quality_cost_auc,
    settle_step,
)


# ---------------------------------------------------------------- AUC
def test_auc_of_a_line_between_the_range_ends_is_its_mean_height() -> None:
    # Trapezoid from (1, 0.5) to (3, 0.9): mean height 0.7.
    assert quality_cost_auc([1, 3], [0.5, 0.9], c_min=1, c_max=3, q_floor=0.5) == pytest.approx(0.7)


def test_auc_prepends_the_floor_and_holds_the_last_point_flat() -> None:
    # (1, 0) -> (2, 1): area 0.5; then flat at 1 up to 3: area 1. Over a width of 2.
    assert quality_cost_auc([2], [1.0], c_min=1, c_max=3, q_floor=0.0) == pytest.approx(0.75)


def test_auc_interpolates_a_curve_that_overhangs_the_range() -> None:
    # y = 0.2 + 0.2 x on [0, 4]; integral over [1, 3] is 1.2, mean 0.6.
    assert quality_cost_auc([0, 4], [0.2, 1.0], c_min=1, c_max=3, q_floor=0.0) == pytest.approx(0.6)


def test_auc_ignores_point_order_and_duplicates() -> None:
    a = quality_cost_auc([3, 1, 2], [0.9, 0.5, 0.8], c_min=1, c_max=3, q_floor=0.5)
    b = quality_cost_auc([1, 2, 2, 3, 1], [0.5, 0.8, 0.8, 0.9, 0.5], c_min=1, c_max=3, q_floor=0.5)
    # (1,0.5)-(2,0.8): 0.65; (2,0.8)-(3,0.9): 0.85; mean 0.75.
    assert a == pytest.approx(0.75)
    assert b == pytest.approx(0.75)


def test_auc_with_a_vertical_step_uses_both_sides() -> None:
    # Flat 0.5 on [1, 2], a jump at 2, flat 0.9 on [2, 3].
    auc = quality_cost_auc([2, 2], [0.5, 0.9], c_min=1, c_max=3, q_floor=0.5)
    assert auc == pytest.approx(0.7)


def test_auc_of_a_zero_width_range_is_the_quality_there() -> None:
    assert quality_cost_auc([1, 1], [0.4, 0.6], c_min=1, c_max=1, q_floor=0.0) == 0.6
    assert quality_cost_auc([0, 2], [0.2, 0.6], c_min=1, c_max=1, q_floor=0.0) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("costs", "quals", "c_min", "c_max", "message"),
    [
        ([], [], 0, 1, "at least one"),
        ([1, 2], [0.5], 0, 1, "same length"),
        ([math.nan], [0.5], 0, 1, "finite"),
        ([1], [0.5], 2, 1, "c_min <= c_max"),
    ],
)
def test_auc_rejects_bad_input(
    costs: list[float], quals: list[float], c_min: float, c_max: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        quality_cost_auc(costs, quals, c_min=c_min, c_max=c_max, q_floor=0.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 10), st.floats(0, 1)),
        min_size=1,
        max_size=8,
    )
)
def test_auc_lies_between_the_lowest_and_highest_quality(points: list[tuple[float, float]]) -> None:
    costs = [p[0] for p in points]
    quals = [p[1] for p in points]
    auc = quality_cost_auc(costs, quals, c_min=2.0, c_max=8.0, q_floor=0.0)
    assert -1e-12 <= auc <= max(quals) + 1e-12


# ---------------------------------------------------------------- convex hull
def test_hull_keeps_the_concave_pareto_front() -> None:
    costs = [1.0, 2.0, 3.0, 4.0, 5.0, 2.5]
    quals = [0.5, 0.55, 0.9, 0.8, 0.95, 0.3]
    # 2.0 is under the segment 1 -> 3; 4.0 and 2.5 are dominated.
    assert convex_hull(costs, quals).tolist() == [0, 2, 4]


def test_hull_drops_collinear_points_and_keeps_the_better_of_equal_costs() -> None:
    assert convex_hull([1, 2, 3], [0.1, 0.2, 0.3]).tolist() == [0, 2]
    assert convex_hull([1, 1, 2], [0.2, 0.4, 0.5]).tolist() == [1, 2]


def test_hull_of_one_model_is_that_model() -> None:
    assert convex_hull([0.3], [0.7]).tolist() == [0]


def test_hull_auc_is_the_linear_baseline() -> None:
    costs, quals = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.55, 0.9])
    hull = convex_hull(costs, quals)
    auc = quality_cost_auc(costs[hull], quals[hull], c_min=1, c_max=3, q_floor=0.5)
    assert auc == pytest.approx(0.7)


# ---------------------------------------------------------------- cost to reach, APGR, CPT
def test_cost_to_reach_interpolates_along_the_curve() -> None:
    assert cost_to_reach([1, 3], [0.5, 0.9], 0.8, c_min=1, q_floor=0.5) == pytest.approx(2.5)
    assert cost_to_reach([1, 3], [0.5, 0.9], 0.5, c_min=1, q_floor=0.5) == 1.0
    assert cost_to_reach([1, 3], [0.5, 0.9], 0.9, c_min=1, q_floor=0.5) == 3.0
    assert cost_to_reach([1, 3], [0.5, 0.9], 0.91, c_min=1, q_floor=0.5) is None


def test_cost_to_reach_starts_from_the_floor_when_the_curve_starts_late() -> None:
    # (0, 0.2) -> (2, 0.6): 0.4 is reached at cost 1.
    assert cost_to_reach([2], [0.6], 0.4, c_min=0, q_floor=0.2) == pytest.approx(1.0)


def test_cost_to_reach_tolerates_rounding_of_the_target() -> None:
    assert cost_to_reach([1, 3], [0.5, 0.9], 0.9 + 1e-12, c_min=1, q_floor=0.5) == 3.0


def test_apgr_two_model_case_matches_routellm() -> None:
    # Weak 0.5 at cost 0, strong 1.0 at cost 1 (share of strong calls = normalised cost).
    band = {"c_min": 0.0, "c_max": 1.0, "q_weak": 0.5, "q_strong": 1.0, "q_floor": 0.5}
    random_router = apgr([0, 1], [0.5, 1.0], **band)
    perfect_router = apgr([0, 1], [1.0, 1.0], **band)
    useless_router = apgr([0, 1], [0.5, 0.5], **band)
    assert random_router == pytest.approx(0.5)
    assert perfect_router == pytest.approx(1.0)
    assert useless_router == pytest.approx(0.0)
    # A router that recovers 80% of the gap with 40% strong calls, then all of it:
    # (0, .5) -> (.4, .9) -> (1, 1): area .4*.7 + .6*.95 = .85; APGR (.85 - .5) / .5 = .7.
    assert apgr([0, 0.4, 1], [0.5, 0.9, 1.0], **band) == pytest.approx(0.7)


def test_apgr_is_nan_without_a_gap() -> None:
    band = {"c_min": 0.0, "c_max": 1.0, "q_weak": 0.8, "q_strong": 0.8, "q_floor": 0.5}
    assert math.isnan(apgr([0, 1], [0.8, 0.8], **band))


def test_cpt_is_the_cost_share_that_recovers_the_gap() -> None:
    band = {"c_min": 0.0, "c_max": 1.0, "q_weak": 0.5, "q_strong": 1.0, "q_floor": 0.5}
    assert cpt([0, 1], [0.5, 1.0], 0.5, **band) == pytest.approx(0.5)
    assert cpt([0, 1], [0.5, 1.0], 0.8, **band) == pytest.approx(0.8)
    # (0, .5) -> (.4, .9): PGR 50% (q .75) at .25, PGR 80% (q .9) at .4.
    assert cpt([0, 0.4, 1], [0.5, 0.9, 1.0], 0.5, **band) == pytest.approx(0.25)
    assert cpt([0, 0.4, 1], [0.5, 0.9, 1.0], 0.8, **band) == pytest.approx(0.4)


def test_cpt_uses_normalised_cost_between_the_cheapest_and_dearest_model() -> None:
    band = {"c_min": 2.0, "c_max": 6.0, "q_weak": 0.5, "q_strong": 1.0, "q_floor": 0.5}
    assert cpt([2, 4], [0.5, 1.0], 0.5, **band) == pytest.approx(0.25)


def test_cpt_none_when_never_reached_nan_without_gap_and_checks_pgr() -> None:
    band = {"c_min": 0.0, "c_max": 1.0, "q_weak": 0.5, "q_strong": 1.0, "q_floor": 0.5}
    assert cpt([0, 1], [0.5, 0.6], 0.5, **band) is None
    no_gap = {**band, "q_strong": 0.5}
    result = cpt([0, 1], [0.5, 0.6], 0.5, **no_gap)
    assert result is not None
    assert math.isnan(result)
    with pytest.raises(ConfigError, match="pgr must be in"):
        cpt([0, 1], [0.5, 1.0], 50, **band)


# ---------------------------------------------------------------- regret
REWARDS = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [1.0, 0.0, 0.5]]


def test_best_fixed_arm_has_the_highest_total() -> None:
    assert best_fixed_arm(REWARDS) == 0
    assert best_fixed_arm([[0.5, 0.5]]) == 0  # first among equals


def test_regret_against_the_best_fixed_arm() -> None:
    chosen = [0.5, 1.0, 1.0, 0.0]
    # Best fixed arm 0 earns 1, 0, 1, 1.
    assert cumulative_regret(chosen, REWARDS).tolist() == [0.5, -0.5, -0.5, 0.5]


def test_regret_against_the_per_query_oracle() -> None:
    chosen = [0.5, 1.0, 1.0, 0.0]
    assert cumulative_regret(chosen, REWARDS, against="oracle").tolist() == [0.5, 0.5, 0.5, 1.5]


def test_oracle_regret_is_never_below_best_fixed_regret() -> None:
    rng = np.random.default_rng(3)
    rewards = rng.random((200, 4))
    chosen = rewards[np.arange(200), rng.integers(0, 4, 200)]
    fixed = cumulative_regret(chosen, rewards)
    oracle = cumulative_regret(chosen, rewards, against="oracle")
    assert np.all(oracle >= fixed - 1e-12)
    assert np.all(np.diff(oracle) >= -1e-12)


def test_regret_rejects_bad_shapes_and_modes() -> None:
    with pytest.raises(ConfigError, match="shape"):
        cumulative_regret([1.0], REWARDS)
    with pytest.raises(ConfigError, match="against"):
        cumulative_regret([0.0] * 4, REWARDS, against="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rewards must be"):
        best_fixed_arm([1.0, 2.0])


# ---------------------------------------------------------------- settling
def test_settle_step_is_where_every_later_window_is_dominated_by_one_arm() -> None:
    arms = [0, 1, 0, 1, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2]
    # Windows of 4 starting at 0..3 hold at most two 2s; from 4 on at least three.
    assert settle_step(arms, window=4, share=0.75) == Settle(step=4, arm=2)


def test_a_fixed_choice_settles_at_once_and_alternation_never() -> None:
    assert settle_step([3] * 60) == Settle(step=0, arm=3)
    assert not settle_step([0, 1] * 60).settled
    assert settle_step([0] * 10, window=50) == Settle(None, None)


def test_exploration_below_the_share_does_not_prevent_settling() -> None:
    arms = [0] * 200
    arms[10::10] = [1] * 19  # 10% exploration
    result = settle_step(arms, window=50, share=0.8)
    assert result.settled
    assert result.arm == 0


def test_a_late_switch_moves_the_settle_step() -> None:
    arms = [0] * 100 + [1] * 100
    result = settle_step(arms, window=50, share=0.8)
    assert result.arm == 1
    assert result.step is not None
    assert 60 <= result.step <= 100


def test_settle_step_validates_its_arguments() -> None:
    with pytest.raises(ConfigError, match="window"):
        settle_step([0], window=0)
    with pytest.raises(ConfigError, match="share"):
        settle_step([0], share=0.0)
