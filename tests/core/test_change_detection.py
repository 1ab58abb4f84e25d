"""The linear policies' standardized and two-sided change tests, on seeded reward streams.

Rewards are 0/1 draws (like a graded answer), the hard case for a change test on raw
residuals: a failure of a model that usually succeeds is a large residual, and a few in
a row look like a drop.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pickllm import StateError
from pickllm.policies import LinearThompson, LinUCB
from pickllm.types import Candidate, Context

POOL = (
    Candidate(name="cheap", input_price=1.0, output_price=1.0),
    Candidate(name="middle", input_price=2.0, output_price=2.0),
    Candidate(name="dear", input_price=3.0, output_price=3.0),
)
SUCCESS = {"cheap": 0.55, "middle": 0.8, "dear": 0.6}  # 'middle' is the best model
STANDARDIZED: dict[str, Any] = {
    "change_standardized": True,
    "change_threshold": 16.0,
    "change_delta": 0.25,
    "change_keep": 1.0,
}


def stream(
    policy: LinUCB | LinearThompson,
    steps: int,
    seed: int,
    *,
    change_at: int | None = None,
    factor: float = 0.5,
) -> tuple[list[str], list[int]]:
    """0/1 rewards; from ``change_at`` on, 'middle' succeeds ``factor`` times as often.

    Returns the model chosen at each step and the steps whose update detected a change.
    """
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    detected: list[int] = []
    for t in range(steps):
        f = rng.random(2)
        decision = policy.select(Context(features=tuple(f.tolist()), candidates=POOL))
        name = decision.candidate.name
        p = SUCCESS[name] + 0.2 * (f[0] - 0.5)
        if change_at is not None and t >= change_at and name == "middle":
            p *= factor
        changes = policy.changes
        policy.update(decision, float(rng.random() < min(p, 1.0)))
        chosen.append(name)
        if policy.changes > changes:
            detected.append(t)
    return chosen, detected


def test_the_standardized_test_raises_no_alarm_where_the_raw_one_raises_many() -> None:
    alarms = {"standardized": 0, "raw": 0}
    for seed in range(3):
        std = LinUCB(**STANDARDIZED, seed=seed)
        raw = LinUCB(change_threshold=3.0, change_delta=0.05, change_keep=1.0, seed=seed)
        stream(std, 3000, seed)
        stream(raw, 3000, seed)
        alarms["standardized"] += std.changes
        alarms["raw"] += raw.changes
        # The test's unit: the residuals' pooled standard deviation, near a 0/1 draw's.
        assert 0.3 < std.residual_sd < 0.5
    assert alarms["standardized"] <= 1  # in 9,000 stationary calls
    assert alarms["raw"] > 50


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_whose_rewards_drop_is_detected_and_stops_being_chosen(
    cls: type[LinUCB | LinearThompson], seed: int
) -> None:
    policy = cls(**STANDARDIZED, seed=seed)
    chosen, detected = stream(policy, 1200, seed, change_at=600)
    names = np.array(chosen)
    assert (names[400:600] == "middle").mean() > 0.8  # the best model before the change
    assert detected, "the drop went unnoticed"
    first = detected[0]
    assert first >= 600  # no false alarm before the change
    # Detected within 60 of the dropped model's own updates after the change ...
    assert (names[600 : first + 1] == "middle").sum() <= 60
    # ... it restarted from its prior, and it is chosen far less from then on (it is
    # still tried: degraded, it earns 0.4 against the others' 0.55 and 0.6).
    assert (names[first + 1 :] == "middle").mean() < 0.25


def test_the_standardized_statistic_follows_its_formula() -> None:
    # Without shared prior or key, on one feature: the documented recursion, by hand.
    delta = 0.25
    policy = LinUCB(
        change_standardized=True,
        change_threshold=1e9,
        change_delta=delta,
        change_two_sided=True,
        key_buckets=0,
        prior_mean=0.5,
        seed=0,
    )
    rng = np.random.default_rng(3)
    down = up = res_sum = res_n = sq = sq_n = 0.0
    for _ in range(50):
        ctx = Context(features=(float(rng.random()),), candidates=POOL[:1])
        predicted = policy.predict(ctx)["cheap"][0]
        reward = float(rng.random() < 0.6)
        residual = predicted - reward
        centred = residual - res_sum / (res_n + 10.0)
        sd = np.sqrt((sq + 10.0 / 12.0) / (sq_n + 10.0))
        z = centred / sd
        down = max(0.0, down + z - delta)
        up = max(0.0, up - z - delta)
        res_sum, res_n, sq, sq_n = res_sum + residual, res_n + 1, sq + centred**2, sq_n + 1
        policy.update(policy.select(ctx), reward)
        state = policy.state_dict()["state"]
        assert state["page_hinkley"][0] == pytest.approx(down, abs=1e-9)
        assert state["page_hinkley_up"][0] == pytest.approx(up, abs=1e-9)
        assert state["residual_sum"][0] == pytest.approx(res_sum, abs=1e-9)
        assert policy.residual_sd == pytest.approx(np.sqrt((sq + 10 / 12) / (sq_n + 10)))
    assert policy.changes == 0


@pytest.mark.parametrize("two_sided", [False, True])
def test_a_rise_is_detected_only_by_the_two_sided_test_and_shifts_the_model_up(
    two_sided: bool,
) -> None:
    policy = LinUCB(
        change_standardized=True,
        change_threshold=16.0,
        change_two_sided=two_sided,
        change_shift=True,
        change_keep=1.0,
        key_buckets=0,
        seed=0,
    )
    ctx = Context(features=(0.5,), candidates=POOL[:1])
    rng = np.random.default_rng(1)
    detected_at = None
    for t in range(400):
        p = 0.3 if t < 200 else 0.9
        before = policy.predict(ctx)["cheap"][0]
        policy.update(policy.select(ctx), float(rng.random() < p))
        if policy.changes and detected_at is None:
            detected_at = t
            # Marked up at once by the rise measured (the head keeps its evidence).
            assert policy.predict(ctx)["cheap"][0] > before + 0.1
            assert policy.counts["cheap"] == t + 1
    if two_sided:
        assert detected_at is not None
        assert 200 <= detected_at < 240
    else:
        assert detected_at is None


def test_the_change_tests_state_round_trips_and_older_states_load() -> None:
    policy = LinUCB(**STANDARDIZED, change_two_sided=True, seed=0)
    stream(policy, 300, 0)
    state = json.loads(json.dumps(policy.state_dict()))
    inner = state["state"]
    assert sum(inner["residual_n"]) == 300
    fresh = LinUCB(**STANDARDIZED, change_two_sided=True, seed=0)
    fresh.load_state_dict(state)
    assert fresh.state_dict()["state"] == policy.state_dict()["state"]
    assert fresh.residual_sd == policy.residual_sd
    # A state saved before the standardized test existed: its statistics start afresh.
    old = json.loads(json.dumps(state))
    for field in (
        "page_hinkley_up",
        "up_sum",
        "up_n",
        "residual_sum",
        "residual_n",
        "residual_sq",
        "residual_sq_n",
        "shared_s_model",
    ):
        del old["state"][field]
    fresh.load_state_dict(old)
    loaded = fresh.state_dict()["state"]
    assert loaded["residual_n"] == [0.0, 0.0, 0.0]
    assert loaded["residual_sq_n"] == 0.0
    assert fresh.residual_sd == pytest.approx(np.sqrt(1 / 12))
    assert loaded["A"] == inner["A"]
    bad = json.loads(json.dumps(state))
    bad["state"]["residual_n"] = [-1.0, 0.0, 0.0]
    with pytest.raises(StateError, match="counts must be >= 0"):
        fresh.load_state_dict(bad)


@pytest.mark.parametrize("flag", ["change_standardized", "change_two_sided"])
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_the_flags_must_be_bools(cls: type[LinUCB | LinearThompson], flag: str) -> None:
    bad: dict[str, Any] = {flag: 1}
    with pytest.raises(TypeError) as info:
        cls(**bad)
    assert str(info.value) == f"{cls.__name__} {flag} must be a bool, got 1"
