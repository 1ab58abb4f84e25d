"""Properties (hypothesis) of the objective, the feedback and the router's saved state.

* every objective that constructs gives every feedback that constructs a finite reward in
  [0, 1]; everything else is refused with a PickLLMError at construction;
* ``save()``/``load()`` round-trips any state a sequence of routes, records, scores,
  releases and pool changes can reach, and ``save()`` never fails on it.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pickllm import Candidate, Feedback, Objective, PriceRange, Router
from pickllm.errors import PickLLMError, UnknownDecisionError

# Any float, the awkward ones included.
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
NUMBERS = st.one_of(ANY_FLOAT, st.integers(min_value=-(2**70), max_value=2**70))
PRICES = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
TOKENS = st.integers(min_value=0, max_value=2**53)
SECONDS = st.floats(min_value=0.0, max_value=1e308, allow_nan=False, allow_infinity=False)
USD = st.floats(min_value=0.0, max_value=1e308, allow_nan=False, allow_infinity=False)
SCORES = st.none() | st.floats(min_value=0.0, max_value=1.0)


WEIGHT = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False),
)
EXPONENT = st.floats(min_value=-300.0, max_value=300.0)


@st.composite
def objectives(draw: st.DrawFn) -> Objective:
    """Any valid objective, extreme ones included (drawn valid: no filtering)."""
    weights = [draw(WEIGHT) for _ in range(3)]
    if sum(weights) == 0.0:
        weights[draw(st.integers(0, 2))] = draw(st.floats(min_value=1e-300, max_value=1e300))
    # t_scaling * latency_max_s must be finite and > 1: both drawn on a log scale.
    a = draw(EXPONENT)
    b = draw(st.floats(min_value=max(-300.0, 1e-3 - a), max_value=min(300.0, 300.0 - a)))
    cost_scale = draw(st.none() | st.floats(min_value=1e-300, max_value=1e300))
    return Objective(
        quality=weights[0],
        cost=weights[1],
        latency=weights[2],
        cost_scale=cost_scale,
        t_scaling=10.0**a,
        latency_max_s=10.0**b,
        missing_quality=draw(SCORES),
    )


@settings(max_examples=100)
@given(
    quality=NUMBERS,
    cost=NUMBERS,
    t_scaling=NUMBERS,
    latency_max_s=NUMBERS,
    missing_quality=st.none() | NUMBERS,
)
def test_objective_settings_are_valid_or_refused_by_name(
    quality: float, cost: float, t_scaling: float, latency_max_s: float, missing_quality: Any
) -> None:
    kwargs = {
        "quality": quality,
        "cost": cost,
        "t_scaling": t_scaling,
        "latency_max_s": latency_max_s,
        "missing_quality": missing_quality,
    }
    try:
        objective = Objective(**kwargs)
    except PickLLMError as exc:
        assert any(name in str(exc) for name in (*kwargs, "weights"))  # noqa: PT017
        return
    reward = objective.reward(Feedback(latency_s=1e308, cost_usd=1e308, quality=0.5))
    assert math.isfinite(reward)
    assert 0.0 <= reward <= 1.0


@st.composite
def feedbacks(draw: st.DrawFn) -> Feedback:
    return Feedback(
        latency_s=draw(SECONDS),
        input_tokens=draw(TOKENS),
        output_tokens=draw(TOKENS),
        cost_usd=draw(USD),
        quality=draw(SCORES),
        error=draw(st.none() | st.just("RateLimitError")),
    )


@settings(max_examples=100)
@given(
    objective=objectives(),
    feedback=feedbacks(),
    prices=st.lists(st.tuples(PRICES, PRICES), min_size=1, max_size=4),
)
def test_rewards_are_finite_and_in_the_unit_interval(
    objective: Objective, feedback: Feedback, prices: list[tuple[float, float]]
) -> None:
    pool = [
        Candidate(name=f"m{i}", input_price=i_, output_price=o) for i, (i_, o) in enumerate(prices)
    ]
    for price_range in (PriceRange.of(pool), None):
        reward = objective.reward(feedback, price_range)
        assert math.isfinite(reward)
        assert 0.0 <= reward <= 1.0


@settings(max_examples=100)
@given(
    latency_s=NUMBERS,
    input_tokens=NUMBERS,
    output_tokens=NUMBERS,
    cost_usd=NUMBERS,
    quality=st.none() | NUMBERS,
)
def test_feedback_holds_only_finite_valid_numbers(
    latency_s: float, input_tokens: Any, output_tokens: Any, cost_usd: float, quality: Any
) -> None:
    try:
        fb = Feedback(
            latency_s=latency_s,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            quality=quality,
        )
    except PickLLMError as exc:
        # Refused, naming a field.
        fields = ("latency_s", "input_tokens", "output_tokens", "cost_usd", "quality")
        assert any(name in str(exc) for name in fields)  # noqa: PT017 - a property, not a case
        return
    for value in (fb.latency_s, fb.cost_usd, fb.input_tokens, fb.output_tokens):
        assert math.isfinite(value)
        assert value >= 0
    assert isinstance(fb.input_tokens, int)
    assert isinstance(fb.output_tokens, int)
    assert fb.quality is None or 0.0 <= fb.quality <= 1.0


# ---------------------------------------------------------------------------- state
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from([None, "k1", "k2"]), feedbacks(), st.booleans()),
        st.tuples(st.just("score"), SCORES.filter(lambda s: s is not None)),
        st.tuples(st.just("release")),
        st.tuples(st.just("route")),
        st.tuples(st.just("remove")),
        st.tuples(st.just("add")),
    ),
    max_size=25,
)

POLICIES = ["thompson", "epsilon_greedy_q", "ucb1", "learning_automaton", "cheapest"]


def text_of(router: Router) -> str:
    # NaN compares unequal to itself: the JSON text is what must round-trip.
    return json.dumps(router.state_dict(), sort_keys=True)


@settings(max_examples=30)
@given(policy=st.sampled_from(POLICIES), ops=OPS, seed=st.integers(0, 2**32 - 1))
def test_save_and_load_round_trip_every_reachable_state(
    policy: str, ops: list[tuple[Any, ...]], seed: int
) -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    pool = [
        Candidate(name="a", input_price=0.1, output_price=0.2),
        Candidate(name="b", input_price=3.0, output_price=15.0, max_context_tokens=8_000),
    ]
    spare = Candidate(name="c", input_price=1.0, output_price=1.0)
    router = Router(
        pool, policy, seed=seed, clock=clock, max_pending=4, pending_ttl_s=50.0, latency_window=5
    )
    last = None
    for op in ops:
        now[0] += 7.0
        kind = op[0]
        if kind == "call":
            _, key, fb, wait = op
            last = router.route("q", key=key)
            router.record(last, fb, await_score=wait)
        elif kind == "score" and last is not None:
            # A refusal (failed, scored, learned, expired) is defined behaviour.
            with contextlib.suppress(UnknownDecisionError):
                router.feedback(last.decision_id, op[1])
        elif kind == "release" and last is not None:
            router.release(last.decision_id)
        elif kind == "route":
            last = router.route("q")
        elif kind == "remove" and len(router.candidates) > 1:
            router.remove_candidate(router.candidates[-1].name)
        elif kind == "add" and spare.name not in router.names:
            router.add_candidate(spare)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "router.json"
        router.save(path)
        loaded = Router.load(path, clock=clock)
        assert text_of(loaded) == text_of(router)
        loaded.save(path)
        assert text_of(Router.load(path, clock=clock)) == text_of(router)
        assert [p.name for p in Path(folder).iterdir()] == ["router.json"]
    # The loaded router routes and learns like any other.
    d = loaded.route("q")
    assert 0.0 <= loaded.record(d, Feedback(quality=1.0)) <= 1.0  # type: ignore[operator]
