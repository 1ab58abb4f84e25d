"""Bad constructor arguments and inputs: each is refused with a PickLLMError naming it.

A table of cases, one per way to get an argument wrong; every case must raise a
``PickLLMError`` subclass whose message names the parameter (no silent acceptance, no
raw ``TypeError`` from deep inside). A second table holds edge cases that must work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

from pickllm import (
    Candidate,
    Context,
    Decision,
    Feedback,
    Objective,
    Plan,
    PriceTable,
    Router,
    Usage,
    make_feedback,
)
from pickllm.engine.settings import RoutingSettings
from pickllm.errors import BudgetExceededError, ConfigError, PickLLMError, UnknownDecisionError

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=3.0, output_price=4.0)
NAN, INF = math.nan, math.inf


def router(**kwargs: Any) -> Router:
    return Router([A, B], "cheapest", **kwargs)


def routed(r: Router) -> Any:
    return r.route("q")


BAD: list[tuple[str, Callable[[], object], str]] = [
    # Candidate
    ("empty name", lambda: Candidate(name=""), "name"),
    ("int name", lambda: Candidate(name=1), "name"),  # type: ignore[arg-type]
    ("negative price", lambda: Candidate(name="a", input_price=-1), "input_price"),
    ("nan price", lambda: Candidate(name="a", output_price=NAN), "output_price"),
    ("inf price", lambda: Candidate(name="a", input_price=INF), "input_price"),
    ("str price", lambda: Candidate(name="a", input_price="1"), "input_price"),  # type: ignore[arg-type]
    ("bool price", lambda: Candidate(name="a", input_price=True), "input_price"),
    ("tool_calling 'no'", lambda: Candidate(name="a", tool_calling="no"), "tool_calling"),  # type: ignore[arg-type]
    ("structured 1", lambda: Candidate(name="a", structured_output=1), "structured_output"),  # type: ignore[arg-type]
    ("context 0", lambda: Candidate(name="a", max_context_tokens=0), "max_context_tokens"),
    ("context 1.5", lambda: Candidate(name="a", max_context_tokens=1.5), "max_context_tokens"),  # type: ignore[arg-type]
    ("context True", lambda: Candidate(name="a", max_context_tokens=True), "max_context_tokens"),
    # Router construction
    ("empty pool", lambda: Router([]), "candidates"),
    ("str pool", lambda: Router("ab"), "candidates"),  # type: ignore[arg-type]
    ("int pool", lambda: Router(123), "candidates"),  # type: ignore[arg-type]
    ("one Candidate", lambda: Router(A), "candidates"),  # type: ignore[arg-type]
    ("dicts in pool", lambda: Router([{"name": "a"}]), "candidates"),  # type: ignore[list-item]
    ("duplicate names", lambda: Router([A, A]), "unique"),
    ("unknown policy", lambda: Router([A], "nope"), "policy"),
    ("fixed by name", lambda: Router([A], "fixed"), "'model'"),
    ("per_context by name", lambda: Router([A], "per_context"), "'policy'"),
    ("int policy", lambda: Router([A], 3), "policy"),  # type: ignore[arg-type]
    ("str objective", lambda: Router([A], "cheapest", "x"), "objective"),  # type: ignore[arg-type]
    ("str seed", lambda: Router([A], seed="x"), "seed"),  # type: ignore[arg-type]
    ("negative max_pending", lambda: router(max_pending=-1), "max_pending"),
    ("bool max_pending", lambda: router(max_pending=True), "max_pending"),
    ("zero ttl", lambda: router(pending_ttl_s=0), "pending_ttl_s"),
    ("nan ttl", lambda: router(pending_ttl_s=NAN), "pending_ttl_s"),
    ("zero window", lambda: router(latency_window=0), "latency_window"),
    ("int clock", lambda: router(clock=3), "clock"),
    ("zero breaker", lambda: router(breaker_failures=0), "breaker_failures"),
    ("float breaker", lambda: router(breaker_failures=1.5), "breaker_failures"),
    ("negative cooldown", lambda: router(breaker_cooldown_s=-1), "breaker_cooldown_s"),
    ("inf cooldown", lambda: router(breaker_cooldown_s=INF), "breaker_cooldown_s"),
    ("negative budget", lambda: router(budget_usd=-1), "budget_usd"),
    ("nan budget", lambda: router(budget_usd=NAN), "budget_usd"),
    ("str budget", lambda: router(budget_usd="5"), "budget_usd"),
    ("negative key budget", lambda: router(budget_per_key_usd=-2), "budget_per_key_usd"),
    ("zero period", lambda: router(budget_period_s=0), "budget_period_s"),
    ("unknown on_budget", lambda: router(on_budget="maybe"), "on_budget"),
    # Router.route
    ("int query", lambda: router().route(123), "context"),  # type: ignore[arg-type]
    ("list query", lambda: router().route(["q"]), "context"),  # type: ignore[arg-type]
    ("int pin", lambda: router().route("q", pin=3), "pin"),  # type: ignore[arg-type]
    ("unknown pin", lambda: router().route("q", pin="zzz"), "pin"),
    ("int key", lambda: router().route("q", key=5), "key"),  # type: ignore[arg-type]
    ("str needs", lambda: router().route("q", needs_tool_calling="yes"), "needs_tool_calling"),  # type: ignore[arg-type]
    ("negative window", lambda: router().route("q", min_context_tokens=-1), "min_context_tokens"),
    # Router.record / feedback / spend
    ("str decision", lambda: router().record("d", Feedback()), "decision"),  # type: ignore[arg-type]
    ("str feedback", lambda: (r := router()).record(routed(r), "fb"), "feedback"),  # type: ignore[arg-type]
    (
        "str await_score",
        lambda: (r := router()).record(routed(r), Feedback(), await_score="yes"),  # type: ignore[arg-type]
        "await_score",
    ),
    ("foreign decision", lambda: router().record(routed(router()), Feedback()), "router"),
    (
        "unknown model",
        lambda: (r := router()).record(routed(r), Feedback(candidate="ghost")),
        "feedback.candidate",
    ),
    ("score 2", lambda: (r := router()).feedback(routed(r).decision_id, 2.0), "score"),
    ("score nan", lambda: (r := router()).feedback(routed(r).decision_id, NAN), "score"),
    ("int decision id", lambda: router().feedback(123, 0.5), "decision_id"),  # type: ignore[arg-type]
    ("unknown decision id", lambda: router().feedback("nope", 0.5), "'nope'"),
    ("int spend key", lambda: router().spend(3), "key"),  # type: ignore[arg-type]
    # Feedback
    ("negative latency", lambda: Feedback(latency_s=-1), "latency_s"),
    ("nan latency", lambda: Feedback(latency_s=NAN), "latency_s"),
    ("inf latency", lambda: Feedback(latency_s=INF), "latency_s"),
    ("str latency", lambda: Feedback(latency_s="1"), "latency_s"),  # type: ignore[arg-type]
    ("fractional tokens", lambda: Feedback(input_tokens=1.5), "input_tokens"),  # type: ignore[arg-type]
    ("nan tokens", lambda: Feedback(output_tokens=NAN), "output_tokens"),  # type: ignore[arg-type]
    ("negative tokens", lambda: Feedback(output_tokens=-1), "output_tokens"),
    ("huge tokens", lambda: Feedback(input_tokens=2**60), "input_tokens"),
    ("bool tokens", lambda: Feedback(input_tokens=True), "input_tokens"),
    ("inf cost", lambda: Feedback(cost_usd=INF), "cost_usd"),
    ("nan cost", lambda: Feedback(cost_usd=NAN), "cost_usd"),
    ("negative cost", lambda: Feedback(cost_usd=-0.1), "cost_usd"),
    ("quality 1.5", lambda: Feedback(quality=1.5), "quality"),
    ("nan quality", lambda: Feedback(quality=NAN), "quality"),
    ("int error", lambda: Feedback(error=3), "error"),  # type: ignore[arg-type]
    ("str estimated", lambda: Feedback(tokens_estimated="no"), "tokens_estimated"),  # type: ignore[arg-type]
    ("nan ttft", lambda: Feedback(time_to_first_token_s=NAN), "time_to_first_token_s"),
    ("int candidate", lambda: Feedback(candidate=3), "candidate"),  # type: ignore[arg-type]
    ("nan extra", lambda: Feedback(extra=(("x", NAN),)), "extra"),
    ("list extra", lambda: Feedback(extra=[("x", 1.0)]), "extra"),  # type: ignore[arg-type]
    # Usage
    ("fractional usage", lambda: Usage(input_tokens=1.5), "input_tokens"),  # type: ignore[arg-type]
    ("negative usage", lambda: Usage(output_tokens=-3), "output_tokens"),
    ("str usage cost", lambda: Usage(cost_usd="1"), "cost_usd"),  # type: ignore[arg-type]
    ("negative usage cost", lambda: Usage(cost_usd=-1.0), "cost_usd"),
    # Objective
    ("nan weight", lambda: Objective(quality=NAN), "quality"),
    ("negative weight", lambda: Objective(cost=-1), "cost"),
    ("str weight", lambda: Objective(latency="1"), "latency"),  # type: ignore[arg-type]
    ("zero weights", lambda: Objective(quality=0, cost=0, latency=0), "weights"),
    ("huge weights", lambda: Objective(quality=1e308, cost=1e308), "weights"),
    ("huge scaling", lambda: Objective(t_scaling=3e184, latency_max_s=3e184), "t_scaling"),
    ("inf scaling", lambda: Objective(t_scaling=INF), "t_scaling"),
    ("zero cost_scale", lambda: Objective(cost_scale=0), "cost_scale"),
    ("missing_quality 2", lambda: Objective(missing_quality=2), "missing_quality"),
    # Values
    ("int query", lambda: Context(query=3), "query"),  # type: ignore[arg-type]
    ("list candidates", lambda: Context(candidates=[A]), "candidates"),  # type: ignore[arg-type]
    ("negative input tokens", lambda: Context(input_tokens=-1), "input_tokens"),
    ("unknown plan", lambda: Plan(kind="x"), "kind"),  # type: ignore[arg-type]
    ("list members", lambda: Plan(members=[A]), "members"),  # type: ignore[arg-type]
    (
        "nan probability",
        lambda: Decision(decision_id="d", candidate=A, ranking=(A,), probability=NAN, policy="p"),
        "probability",
    ),
    (
        "empty decision id",
        lambda: Decision(decision_id="", candidate=A, ranking=(A,), probability=1.0, policy="p"),
        "decision_id",
    ),
    # Prices and wrapper settings
    ("str prices", lambda: PriceTable("x"), "prices"),  # type: ignore[arg-type]
    ("negative prices", lambda: PriceTable({"a": (-1.0, 1.0)}), "prices"),
    (
        "price for a model not in the pool",
        lambda: RoutingSettings(prices={"a": (1.0, 1.0), "z": (1.0, 1.0)}).build_engine(["a"], {}),
        "prices",
    ),
    (
        "budget with a router",
        lambda: RoutingSettings(router=router(), budget_usd=1.0).build_engine(["a", "b"], {}),
        "budget_usd",
    ),
    (
        "bad budget setting",
        lambda: RoutingSettings(budget_usd=-1.0, cost=0.0).build_engine(["a"], {}),
        "budget_usd",
    ),
]


@pytest.mark.parametrize(("case", "make", "word"), BAD, ids=[case for case, _, _ in BAD])
def test_bad_input_raises_a_pickllm_error_naming_it(
    case: str, make: Callable[[], object], word: str
) -> None:
    with pytest.raises(PickLLMError) as info:
        make()
    assert word in str(info.value), f"{case}: {info.value}"


GOOD: list[tuple[str, Callable[[], object]]] = [
    ("unknown capabilities", lambda: Candidate(name="a", tool_calling=None)),
    ("zero prices", lambda: Candidate(name="a")),
    ("int prices", lambda: Candidate(name="a", input_price=1, output_price=2)),
    ("bool capabilities", lambda: Candidate(name="a", tool_calling=False)),
    ("an iterator pool", lambda: Router(iter([A, B]))),
    ("no breaker", lambda: router(breaker_failures=None)),
    ("lifetime budget", lambda: router(budget_usd=0.0, budget_period_s=None)),
    ("no ttl limit", lambda: router(pending_ttl_s=INF)),
    ("None query", lambda: router().route(None)),
    ("quality bounds", lambda: (Feedback(quality=0), Feedback(quality=1))),
    ("max tokens", lambda: Feedback(input_tokens=2**53)),
    ("large finite objective", lambda: Objective(t_scaling=1e150, latency_max_s=1e150)),
    ("nan usage cost is kept", lambda: Usage(cost_usd=NAN)),
]


@pytest.mark.parametrize(("case", "make"), GOOD, ids=[case for case, _ in GOOD])
def test_edge_cases_that_must_work(case: str, make: Callable[[], object]) -> None:
    assert make() is not None, case


def test_a_zero_budget_refuses_calls_by_default() -> None:
    with pytest.raises(BudgetExceededError, match=r"budget of 0\.0 USD"):
        router(budget_usd=0.0).route("q")


def test_a_non_finite_reported_cost_is_priced_with_a_warning_without_the_texts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for cost in (NAN, INF):
        with caplog.at_level(logging.WARNING, logger="pickllm"):
            fb = make_feedback(
                A,
                Usage(input_tokens=1_000_000, output_tokens=0, cost_usd=cost),
                latency_s=0.1,
                prompt_text="SECRET PROMPT",
                completion_text="SECRET ANSWER",
            )
        assert fb.cost_usd == 1.0  # 1M input tokens at 1 USD per 1M
    assert len(caplog.records) == 2
    assert all("'a'" in r.getMessage() for r in caplog.records)
    assert not any("SECRET" in r.getMessage() for r in caplog.records)


def test_refused_feedback_leaves_no_trace() -> None:
    r = router()
    d = r.route("q")
    with pytest.raises(PickLLMError):
        r.record(d, Feedback(candidate="ghost"))
    with pytest.raises(UnknownDecisionError) as info:
        r.record(router().route("q"), Feedback())
    assert info.value.reason == "foreign"
    assert "ghost" not in r.stats()
    assert sum(s.calls for s in r.stats().values()) == 0


def test_the_wrappers_refuse_an_empty_conversation() -> None:
    from langchain_pickllm import ChatPickLLM, FakeToolChatModel
    from llamaindex_pickllm import PickLLM
    from tests.llamaindex.fakes import UsageLLM

    chat = ChatPickLLM(models=[FakeToolChatModel(model_name="a")], cost=0)
    with pytest.raises(ConfigError, match="messages must hold at least one message"):
        chat.invoke([])
    llm = PickLLM(models={"a": UsageLLM(name="a")}, cost=0)
    with pytest.raises(ConfigError, match="messages must hold at least one message"):
        llm.chat([])
