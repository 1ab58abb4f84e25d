"""Live cascade strategies: the protocol, escalation on wrong answers, the budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pickllm.cascade import CascadeSession, CascadeStrategy
from pickllm.cascade.factory import STRATEGIES, make_strategy
from pickllm.cascade.live import LiveCascade
from pickllm.errors import ConfigError
from pickllm.types import Candidate

CHEAP = Candidate(name="cheap", input_price=0.1, output_price=0.1)
MID = Candidate(name="mid", input_price=2.0, output_price=2.0)
STRONG = Candidate(name="strong", input_price=10.0, output_price=10.0)
POOL = (CHEAP, MID, STRONG)
TOKENS_IN, TOKENS_OUT = 500, 500


def _cost(c: Candidate) -> float:
    return c.price_of(TOKENS_IN, TOKENS_OUT)


def _simulate(name: str, budget: float, calls: int, seed: int) -> dict[str, float]:
    """A stationary stream: the cheap model is wrong on a random half of the queries
    and its evaluator score says so; mid is right 60% of the time, strong always."""
    rng = np.random.default_rng(seed)
    strategy = make_strategy(name, candidates=POOL, budget_usd=budget, seed=seed)
    costs: list[float] = []
    escalated_on_wrong: list[bool] = []
    stopped_on_right: list[bool] = []
    final_right: list[bool] = []
    for t in range(calls):
        cheap_right = bool(rng.random() < 0.5)
        mid_right = bool(rng.random() < 0.6)
        right = {"cheap": cheap_right, "mid": mid_right, "strong": True}
        session = strategy.start(f"query {t}", POOL, prompt_tokens=TOKENS_IN)
        while (model := session.next_model()) is not None:
            cand = next(c for c in POOL if c.name == model)
            session.observe(
                model,
                "A" if right[model] else "B",
                cost_usd=_cost(cand),
                latency_s=0.1,
                score=1.0 if right[model] else 0.0,
            )
        ran = [s.model for s in session.steps]
        if t >= calls // 5 and ran[0] == "cheap":
            (stopped_on_right if cheap_right else escalated_on_wrong).append(
                len(ran) == 1 if cheap_right else len(ran) > 1
            )
        final_right.append(right[session.final()])
        costs.append(sum(s.cost_usd for s in session.steps))
        strategy.settle(session)
    warm = calls // 5
    return {
        "cost": float(np.mean(costs[warm:])),
        "escalate": float(np.mean(escalated_on_wrong)),
        "stop": float(np.mean(stopped_on_right)),
        "right": float(np.mean(final_right[warm:])),
    }


def test_cascade_routing_escalates_when_the_cheap_answer_is_wrong_and_keeps_the_budget() -> None:
    # Escalating every wrong cheap answer to the strong model costs cheap + strong / 2.
    budget = 1.1 * (_cost(CHEAP) + 0.5 * _cost(STRONG))
    got = _simulate("cascade_routing", budget, calls=400, seed=1)
    assert got["escalate"] >= 0.9
    assert got["stop"] >= 0.9
    assert got["cost"] <= budget * 1.05
    assert got["right"] >= 0.9


@pytest.mark.parametrize("name", ["threshold_cascade", "optimal_cascade"])
def test_cascades_stay_within_the_budget(name: str) -> None:
    budget = 0.5 * (_cost(CHEAP) + _cost(MID) + _cost(STRONG))
    got = _simulate(name, budget, calls=300, seed=2)
    assert got["cost"] <= budget * 1.1
    assert got["right"] > 0.5


def test_a_tight_budget_runs_fewer_models() -> None:
    loose = _simulate("cascade_routing", 1.1 * (_cost(CHEAP) + 0.5 * _cost(STRONG)), 200, 3)
    tight = _simulate("cascade_routing", 1.2 * _cost(CHEAP), 200, 3)
    assert tight["cost"] < loose["cost"] / 3
    assert tight["right"] < loose["right"]


def test_sessions_follow_the_protocol() -> None:
    strategy = make_strategy("cascade_routing", candidates=POOL, budget_usd=0.01, seed=0)
    assert isinstance(strategy, CascadeStrategy)
    session = strategy.start("q", POOL, prompt_tokens=10)
    assert isinstance(session, CascadeSession)
    with pytest.raises(LookupError):
        session.final()
    first = session.next_model()
    assert first == "cheap"
    session.failed(first, error="TimeoutError", latency_s=1.0)
    second = session.next_model()
    assert second not in (None, "cheap")
    assert second is not None
    session.observe(second, "A", cost_usd=0.001, latency_s=0.2)
    assert session.final() == second
    assert [s.model for s in session.steps] == ["cheap", second]
    assert session.steps[0].error == "TimeoutError"
    assert session.steps[0].quality is None


def test_without_an_evaluator_agreement_decides() -> None:
    strategy = make_strategy("cascade_routing", candidates=POOL, budget_usd=None, seed=0)
    session = strategy.start("q", POOL, prompt_tokens=10)
    answers = {"cheap": "B", "mid": "A", "strong": "A"}
    while (model := session.next_model()) is not None:
        session.observe(model, answers[model], cost_usd=0.001, latency_s=0.1)
    assert len(session.steps) == 3
    assert session.final() in ("mid", "strong")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "cascade"}, "strategy must be one of"),
        ({"budget_usd": -1.0}, "budget_usd must be"),
        ({"budget_usd": float("nan")}, "budget_usd must be"),
        ({"estimator": object()}, "estimator must be"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"name": "cascade_routing", "budget_usd": 0.01, **kwargs}
    name = args.pop("name")
    with pytest.raises(ConfigError, match=match):
        make_strategy(name, candidates=POOL, **args)  # type: ignore[arg-type]
    assert set(STRATEGIES) == {"threshold_cascade", "optimal_cascade", "cascade_routing"}


def test_sessions_from_many_threads_are_all_settled_and_counted() -> None:
    """One strategy serves a wrapper's concurrent calls (batch): nothing is lost."""
    strategy = make_strategy("cascade_routing", candidates=POOL, budget_usd=1e-3, seed=0)
    assert isinstance(strategy, LiveCascade)
    calls_per_thread, threads = 50, 8
    paid: list[float] = []

    def serve(worker: int) -> None:
        for t in range(calls_per_thread):
            session = strategy.start(f"q{worker}-{t}", POOL, prompt_tokens=TOKENS_IN)
            while (model := session.next_model()) is not None:
                cand = next(c for c in POOL if c.name == model)
                session.observe(model, "A", cost_usd=_cost(cand), latency_s=0.1, score=1.0)
            paid.append(sum(s.cost_usd for s in session.steps))
            strategy.settle(session)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(serve, range(threads)))
    assert len(paid) == calls_per_thread * threads
    assert strategy.mean_cost == pytest.approx(sum(paid) / len(paid))
