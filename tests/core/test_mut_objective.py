"""Objective details pinned down for mutation testing (see [tool.mutmut] in pyproject.toml)."""

from __future__ import annotations

import math

import pytest

from pickllm import ConfigError, Objective
from pickllm.errors import ConfigTypeError


def test_parse_splits_a_term_at_its_first_equals_sign() -> None:
    # "quality=1=2" is the term quality with the value "1=2", which is not a number.
    with pytest.raises(ConfigError) as info:
        Objective.parse("quality=1=2")
    assert str(info.value) == "objective term quality must be a number, got '1=2'"


def test_latency_penalty_starts_above_one_scaled_unit() -> None:
    # log10(t_scaling * latency) / log10(t_scaling * latency_max_s), zero up to 1 ms.
    objective = Objective()  # t_scaling 1000, latency_max_s 60
    assert objective.latency_penalty(0.001) == 0.0
    assert objective.latency_penalty(0.0015) == pytest.approx(
        math.log10(1.5) / math.log10(60_000), rel=1e-12
    )
    assert objective.latency_penalty(60.0) == pytest.approx(1.0, rel=1e-12)
    assert objective.latency_penalty(600.0) == 1.0


def test_weight_sum_errors_name_every_weight() -> None:
    with pytest.raises(ConfigError) as info:
        Objective(quality=0, cost=0.0, latency=0.0)
    assert str(info.value) == (
        "Objective weights must not all be zero, got quality=0, cost=0.0, latency=0.0"
    )
    with pytest.raises(ConfigError) as info:
        Objective(quality=1e308, cost=1e308, latency=0.0)
    assert str(info.value) == (
        "Objective weights must have a finite sum, got quality=1e+308, cost=1e+308, latency=0.0"
    )


def test_one_reference_output_token_is_allowed() -> None:
    assert Objective(reference_output_tokens=1).reference_output_tokens == 1
    with pytest.raises(ConfigError, match="reference_output_tokens must be a positive int"):
        Objective(reference_output_tokens=0)


@pytest.mark.parametrize("value", ["60", True, None])
def test_latency_max_s_must_be_a_number(value: object) -> None:
    with pytest.raises(ConfigTypeError) as info:
        Objective(latency_max_s=value)  # type: ignore[arg-type]
    assert str(info.value) == f"Objective latency_max_s must be a number, got {value!r}"


def test_latency_max_s_must_leave_a_span_above_one() -> None:
    # 1000 * 0.001 = 1: the log's denominator would be 0.
    with pytest.raises(ConfigError) as info:
        Objective(latency_max_s=0.001)
    assert str(info.value) == (
        "Objective latency_max_s must be finite with t_scaling * latency_max_s finite and > 1, "
        "got latency_max_s=0.001 (t_scaling=1000.0)"
    )


def test_missing_quality_is_checked_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        Objective(missing_quality=1.5)
    assert str(info.value) == "Objective missing_quality must be in [0, 1] or None, got 1.5"
    with pytest.raises(ConfigTypeError) as wrong:
        Objective(missing_quality="x")  # type: ignore[arg-type]
    assert str(wrong.value) == "Objective missing_quality must be a number or None, got 'x'"
