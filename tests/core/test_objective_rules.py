"""Objective rules pinned value by value: validation bounds, parsing, each term, the mean."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pickllm import Candidate, ConfigError, Feedback, Objective, PriceRange

CHEAP = Candidate(name="cheap", input_price=1.0, output_price=4.0)
DEAR = Candidate(name="dear", input_price=3.0, output_price=12.0)
PRICES = PriceRange.of([DEAR, CHEAP])


# ---------------------------------------------------------------------------- PriceRange
def test_price_range_takes_each_extreme_separately() -> None:
    mixed = Candidate(name="mixed", input_price=0.5, output_price=20.0)
    assert PriceRange.of([DEAR, CHEAP, mixed]) == PriceRange(0.5, 3.0, 4.0, 20.0)
    assert PriceRange.of([]) == PriceRange(0.0, 0.0, 0.0, 0.0)
    assert PriceRange.of(iter([CHEAP])) == PriceRange(1.0, 1.0, 4.0, 4.0)


def test_price_range_bounds_price_input_and_output_tokens() -> None:
    assert PRICES.bounds(2_000_000, 500_000) == (2.0 + 2.0, 6.0 + 6.0)
    assert PRICES.bounds(0, 1_000_000) == (4.0, 12.0)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("value", [True, "1", None])
def test_weights_must_be_numbers(value: Any) -> None:
    with pytest.raises(TypeError, match=f"weight cost must be a number, got {value!r}"):
        Objective(cost=value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, -0.001])
def test_weights_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(
        ConfigError, match=f"weight latency must be a finite number >= 0, got {value}"
    ):
        Objective(latency=value)


def test_any_single_weight_may_carry_the_objective() -> None:
    assert Objective(quality=0, cost=0, latency=1).latency == 1.0
    assert Objective(quality=0, cost=1e-9, latency=0).cost == 1e-9
    assert Objective(quality=2, cost=0, latency=0).quality == 2


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, "0.1"])
def test_cost_scale_must_be_a_positive_finite_number(value: Any) -> None:
    with pytest.raises(
        ConfigError, match=rf"cost_scale must be a positive number or None, got {value!r}"
    ):
        Objective(cost_scale=value)


def test_cost_scale_accepts_an_int() -> None:
    assert Objective(cost_scale=2).cost_penalty(Feedback(cost_usd=1.0)) == 0.5


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_t_scaling_must_be_positive_and_finite(value: float) -> None:
    with pytest.raises(ConfigError, match=rf"t_scaling must be a positive number, got {value}"):
        Objective(t_scaling=value)


@pytest.mark.parametrize(
    ("t_scaling", "latency_max_s"), [(1000.0, 0.001), (1.0, 1.0), (1000.0, math.inf)]
)
def test_latency_max_must_leave_a_range_above_one_scaled_unit(
    t_scaling: float, latency_max_s: float
) -> None:
    with pytest.raises(ConfigError, match=r"latency_max_s must be finite .*got latency_max_s="):
        Objective(t_scaling=t_scaling, latency_max_s=latency_max_s)


def test_latency_max_just_above_one_scaled_unit_is_accepted() -> None:
    assert Objective(t_scaling=1.0, latency_max_s=1.5).latency_max_s == 1.5


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan])
def test_missing_quality_must_be_a_score(value: float) -> None:
    with pytest.raises(
        ConfigError, match=f"missing_quality must be in \\[0, 1\\] or None, got {value}"
    ):
        Objective(missing_quality=value)


def test_missing_quality_bounds_are_scores() -> None:
    assert Objective(missing_quality=0.0).missing_quality == 0.0
    assert Objective(missing_quality=1.0).missing_quality == 1.0


# ---------------------------------------------------------------------------- presets, parse
def test_presets_and_their_overrides() -> None:
    assert Objective.cost_first() == Objective(quality=0.2, cost=0.6, latency=0.2)
    assert Objective.accuracy_first() == Objective(quality=0.6, cost=0.2, latency=0.2)
    assert Objective.cost_first(latency=0.0, cost_scale=0.1) == Objective(
        quality=0.2, cost=0.6, latency=0.0, cost_scale=0.1
    )
    assert Objective.accuracy_first(quality=1.0).quality == 1.0


def test_parse_leaves_unnamed_weights_at_zero_and_reads_every_setting() -> None:
    assert Objective.parse("quality=1") == Objective(quality=1.0, cost=0.0, latency=0.0)
    parsed = Objective.parse(
        " cost = 2 ,, latency=0.5, cost_scale=0.01, t_scaling=1, latency_max_s=30,"
    )
    assert parsed == Objective(
        quality=0.0, cost=2.0, latency=0.5, cost_scale=0.01, t_scaling=1.0, latency_max_s=30.0
    )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("quality", r"term 'quality' is not of the form NAME=NUMBER"),
        (
            "missing_quality=0.5",
            (
                r"NAME in \['cost', 'cost_scale', 'latency', 'latency_max_s', 'quality', "
                r"'reference_output_tokens', 't_scaling'\]"
            ),
        ),
        ("cost= cheap", r"objective term cost must be a number, got 'cheap'"),
        ("", "must not all be zero"),
    ],
)
def test_parse_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Objective.parse(spec)


# ---------------------------------------------------------------------------- terms
def test_cost_penalty_relative_to_the_pool() -> None:
    obj = Objective(reference_output_tokens=250_000)

    def call(cost: float) -> Feedback:  # 1M input tokens: lo 1.0, hi 3.0 + 0.25 * 12 = 6.0
        return Feedback(cost_usd=cost, input_tokens=1_000_000, output_tokens=0)

    assert obj.cost_penalty(call(2.25), PRICES) == pytest.approx(0.25)
    assert obj.cost_penalty(call(0.5), PRICES) == 0.0  # below lo
    assert obj.cost_penalty(call(9.0), PRICES) == 1.0  # above hi
    assert obj.cost_penalty(call(9.0)) == 0.0  # no pool, no scale
    free = PriceRange.of([Candidate(name="free")])
    assert obj.cost_penalty(call(9.0), free) == 0.0


def test_parse_reads_the_reference_output_tokens() -> None:
    assert Objective.parse("quality=1,reference_output_tokens=64").reference_output_tokens == 64
    with pytest.raises(
        ConfigError, match=r"reference_output_tokens must be a whole number, got '6\.5'"
    ):
        Objective.parse("quality=1,reference_output_tokens=6.5")


def test_cost_penalty_grows_with_the_answer_on_one_model() -> None:
    # The default scale: 1,000 prompt tokens, 256 reference output tokens.
    lo = 1_000 * 1.0 / 1e6
    hi = (1_000 * 3.0 + 256 * 12.0) / 1e6

    def answer(model: Candidate, output_tokens: int) -> Feedback:
        cost = model.price_of(1_000, output_tokens)
        return Feedback(cost_usd=cost, input_tokens=1_000, output_tokens=output_tokens)

    obj = Objective()
    short, long = (
        obj.cost_penalty(answer(DEAR, 10), PRICES),
        obj.cost_penalty(answer(DEAR, 200), PRICES),
    )
    assert short == pytest.approx((DEAR.price_of(1_000, 10) - lo) / (hi - lo))
    assert long == pytest.approx((DEAR.price_of(1_000, 200) - lo) / (hi - lo))
    assert short < long < 1.0
    assert obj.cost_penalty(answer(DEAR, 5_000), PRICES) == 1.0  # past the reference length
    assert obj.cost_penalty(answer(CHEAP, 200), PRICES) < long
    # A pool of one price still charges a long answer more than a short one.
    one = PriceRange.of([CHEAP])
    assert (
        0.0 < obj.cost_penalty(answer(CHEAP, 10), one) < obj.cost_penalty(answer(CHEAP, 400), one)
    )


@pytest.mark.parametrize("ref", [0, -5])
def test_reference_output_tokens_must_be_positive(ref: int) -> None:
    with pytest.raises(
        ConfigError, match=f"reference_output_tokens must be a positive int, got {ref}"
    ):
        Objective(reference_output_tokens=ref)


@pytest.mark.parametrize("ref", [True, 1.5, "500"])
def test_reference_output_tokens_must_be_an_int(ref: object) -> None:
    with pytest.raises(TypeError, match="reference_output_tokens must be a positive int"):
        Objective(reference_output_tokens=ref)  # type: ignore[arg-type]


def test_cost_penalty_with_a_scale() -> None:
    obj = Objective(cost_scale=0.5)
    assert obj.cost_penalty(Feedback(cost_usd=0.125), PRICES) == 0.25
    assert obj.cost_penalty(Feedback(cost_usd=0.5)) == 1.0
    assert obj.cost_penalty(Feedback(cost_usd=2.0)) == 1.0


def test_latency_penalty_is_log_scaled_between_the_bounds() -> None:
    obj = Objective(latency_max_s=10.0)  # t_scaling 1000: 1 ms to 10 s is 4 decades
    assert obj.latency_penalty(0.0) == 0.0
    assert obj.latency_penalty(0.001) == 0.0
    assert obj.latency_penalty(0.01) == pytest.approx(0.25)
    assert obj.latency_penalty(1.0) == pytest.approx(0.75)
    assert obj.latency_penalty(10.0) == pytest.approx(1.0)
    assert obj.latency_penalty(1000.0) == 1.0
    seconds = Objective(t_scaling=1.0, latency_max_s=100.0)
    assert seconds.latency_penalty(10.0) == pytest.approx(0.5)
    assert seconds.latency_penalty(0.5) == 0.0


# ---------------------------------------------------------------------------- reward
def test_reward_is_the_weighted_mean_of_the_three_terms() -> None:
    obj = Objective(quality=3.0, cost=2.0, latency=1.0, cost_scale=1.0, latency_max_s=10.0)
    fb = Feedback(quality=0.5, cost_usd=0.25, latency_s=0.01)
    expected = (3.0 * 0.5 + 2.0 * (1 - 0.25) + 1.0 * (1 - 0.25)) / 6.0
    assert obj.reward(fb) == pytest.approx(expected)
    assert obj.reward(fb, PRICES) == pytest.approx(expected)  # the scale wins over the pool


def test_reward_uses_the_pool_prices() -> None:
    obj = Objective(quality=0.0, cost=1.0, latency=0.0, reference_output_tokens=250_000)
    fb = Feedback(cost_usd=4.75, input_tokens=1_000_000)  # lo 1.0, hi 3.0 + 3.0
    assert obj.reward(fb, PRICES) == pytest.approx(0.25)
    assert obj.reward(fb) == 1.0


def test_reward_without_a_score_drops_the_quality_term() -> None:
    obj = Objective(quality=5.0, cost=1.0, latency=3.0, cost_scale=1.0, latency_max_s=10.0)
    fb = Feedback(cost_usd=0.5, latency_s=1.0)
    assert obj.reward(fb) == pytest.approx((1.0 * 0.5 + 3.0 * 0.25) / 4.0)
    imputed = Objective(
        quality=5.0, cost=1.0, latency=3.0, cost_scale=1.0, latency_max_s=10.0, missing_quality=0.8
    )
    assert imputed.reward(fb) == pytest.approx((5.0 * 0.8 + 1.0 * 0.5 + 3.0 * 0.25) / 9.0)
    # A given score wins over missing_quality, even a score of 0.
    assert imputed.reward(Feedback(quality=0.0, cost_usd=0.5, latency_s=1.0)) == pytest.approx(
        (1.0 * 0.5 + 3.0 * 0.25) / 9.0
    )


def test_reward_with_zero_weighted_terms_ignores_them() -> None:
    fb = Feedback(quality=0.2, cost_usd=100.0, latency_s=100.0)
    assert Objective(quality=2.0, cost=0.0, latency=0.0).reward(fb, PRICES) == pytest.approx(0.2)
    assert Objective(quality=0.0, cost=0.0, latency=1.0).reward(fb) == 0.0
    unscored = Feedback(latency_s=100.0)
    assert Objective(quality=0.0, cost=0.0, latency=1.0).reward(unscored) == 0.0
    assert Objective(quality=1.0, cost=0.0, latency=0.0).reward(unscored) == 0.5
    only_q = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.1)
    assert only_q.reward(unscored) == pytest.approx(0.1)


def test_a_failed_call_is_worth_nothing_whatever_the_terms() -> None:
    obj = Objective(quality=0.0, cost=1.0, latency=1.0, missing_quality=1.0)
    assert obj.reward(Feedback(error="X", latency_s=0.0, cost_usd=0.0)) == 0.0


def test_as_dict_lists_every_parameter_and_rebuilds_the_objective() -> None:
    obj = Objective(
        quality=0.7,
        cost=0.2,
        latency=0.1,
        cost_scale=0.05,
        reference_output_tokens=300,
        t_scaling=10.0,
        latency_max_s=20.0,
        missing_quality=0.4,
    )
    assert obj.as_dict() == {
        "quality": 0.7,
        "cost": 0.2,
        "latency": 0.1,
        "cost_scale": 0.05,
        "reference_output_tokens": 300,
        "t_scaling": 10.0,
        "latency_max_s": 20.0,
        "missing_quality": 0.4,
    }
    assert Objective(**obj.as_dict()) == obj  # type: ignore[arg-type]
