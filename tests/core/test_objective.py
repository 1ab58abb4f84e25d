"""Objective: PickLLM's weighted reward, its normalisation and its validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm import Candidate, ConfigError, Feedback, Objective, PriceRange

POOL = PriceRange.of(
    [
        Candidate(name="cheap", input_price=0.5, output_price=1.5),
        Candidate(name="dear", input_price=10.0, output_price=30.0),
    ]
)


def test_quality_only_reward_is_the_score() -> None:
    obj = Objective(quality=1.0, cost=0.0, latency=0.0)
    assert obj.reward(Feedback(quality=0.25)) == 0.25


def test_cost_term_spans_the_pool_prices_up_to_the_reference_answer() -> None:
    obj = Objective(quality=0.0, cost=1.0, latency=0.0, reference_output_tokens=100)
    cheapest = 1_000 * 0.5 / 1e6  # the prompt read at the lowest price, nothing written
    dearest = (1_000 * 10.0 + 100 * 30.0) / 1e6  # the dearest model writing 100 tokens
    mid = (cheapest + dearest) / 2
    for cost, expected in ((cheapest, 1.0), (dearest, 0.0), (mid, 0.5), (2 * dearest, 0.0)):
        fb = Feedback(cost_usd=cost, input_tokens=1_000, output_tokens=100)
        assert obj.reward(fb, POOL) == pytest.approx(expected)


def test_cost_scale_overrides_the_pool() -> None:
    obj = Objective(quality=0.0, cost=1.0, latency=0.0, cost_scale=0.01)
    assert obj.reward(Feedback(cost_usd=0.0025), POOL) == pytest.approx(0.75)
    assert obj.reward(Feedback(cost_usd=5.0), POOL) == 0.0


def test_latency_is_log_scaled_in_milliseconds() -> None:
    obj = Objective(quality=0.0, cost=0.0, latency=1.0, latency_max_s=10.0)
    assert obj.reward(Feedback(latency_s=0.001)) == pytest.approx(1.0)
    # 100 ms is log10(100)/log10(10_000) = half of the penalty range.
    assert obj.reward(Feedback(latency_s=0.1)) == pytest.approx(0.5)
    assert obj.reward(Feedback(latency_s=60.0)) == 0.0


def test_weighted_mean_of_terms() -> None:
    obj = Objective(quality=1.0, cost=0.5, latency=0.5, cost_scale=1.0, latency_max_s=10.0)
    fb = Feedback(quality=1.0, cost_usd=0.5, latency_s=0.1)
    assert obj.reward(fb) == pytest.approx((1.0 * 1.0 + 0.5 * 0.5 + 0.5 * 0.5) / 2.0)


def test_failed_call_gets_worst_reward() -> None:
    assert Objective().reward(Feedback(quality=1.0, error="TimeoutError")) == 0.0


def test_missing_quality_drops_the_term_or_imputes() -> None:
    fb = Feedback(latency_s=0.001)
    assert Objective(quality=1.0, cost=0.0, latency=1.0).reward(fb) == pytest.approx(1.0)
    imputed = Objective(quality=1.0, cost=0.0, latency=1.0, missing_quality=0.0)
    assert imputed.reward(fb) == pytest.approx(0.5)
    assert Objective(quality=1.0, cost=0.0, latency=0.0).reward(fb) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality": -1.0}, "quality must be a finite number >= 0, got -1.0"),
        ({"cost": math.nan}, "cost must be a finite number >= 0, got nan"),
        ({"quality": 0, "cost": 0, "latency": 0}, "must not all be zero"),
        ({"cost_scale": 0.0}, r"cost_scale must be a positive number or None, got 0\.0"),
        ({"missing_quality": 2.0}, r"missing_quality must be in \[0, 1\] or None, got 2\.0"),
        # Not just "t_scaling": the latency_max_s message names t_scaling too.
        ({"t_scaling": -5.0}, r"t_scaling must be a positive number, got -5\.0"),
    ],
)
def test_bad_objectives_name_the_value(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Objective(**kwargs)


def test_parse() -> None:
    assert Objective.parse("quality=1, cost=0.5,latency=0.1") == Objective(
        quality=1.0, cost=0.5, latency=0.1
    )
    with pytest.raises(ConfigError, match="speed"):
        Objective.parse("speed=1")
    with pytest.raises(ConfigError, match="must be a number"):
        Objective.parse("cost=cheap")


def test_presets() -> None:
    assert Objective.cost_first().cost == 0.6
    assert Objective.accuracy_first().quality == 0.6


@given(
    q=st.floats(0, 1),
    cost=st.floats(0, 10),
    latency=st.floats(0, 1e4),
    tokens=st.integers(0, 10**6),
    w=st.tuples(st.floats(0, 5), st.floats(0, 5), st.floats(0.01, 5)),
)
def test_reward_is_always_in_unit_interval(
    q: float, cost: float, latency: float, tokens: int, w: tuple[float, float, float]
) -> None:
    obj = Objective(quality=w[0], cost=w[1], latency=w[2])
    fb = Feedback(quality=q, cost_usd=cost, latency_s=latency, input_tokens=tokens)
    assert 0.0 <= obj.reward(fb, POOL) <= 1.0


def test_feedback_and_candidate_validation() -> None:
    with pytest.raises(ConfigError, match="quality must be in"):
        Feedback(quality=1.2)
    with pytest.raises(ConfigError, match="latency_s"):
        Feedback(latency_s=-1.0)
    with pytest.raises(ConfigError, match="input_price"):
        Candidate(name="x", input_price=-1.0)
    with pytest.raises(ConfigError, match="non-empty"):
        Candidate(name="")
    with pytest.raises(ConfigError, match="max_context_tokens"):
        Candidate(name="x", max_context_tokens=0)
