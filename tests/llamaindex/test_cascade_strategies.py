"""PickLLM (LlamaIndex) with the real cascade strategies, by name, end to end.

Nothing is patched. The cheap LLM adds wrongly when the first number is odd (half of a
seeded stream of queries); the evaluator knows the right sum. Costs (10 input and 4
output tokens per call): small 2.6e-6 USD, large 6.5e-5 USD; running small and
escalating exactly its wrong answers costs 3.51e-5 per call on average.

The thresholds are those of ``tests/langchain/test_cascade_strategies.py`` (the same
engine, strategies and stream; measured there over seeds 0-9, 200 calls, 40 of warm-up):
with a budget of 4.5e-5 every strategy escalated all wrong cheap answers, stopped on all
right ones and spent 0.67-0.86 of the budget; with a binding 3e-5 ``cascade_routing``
escalated 0.73-1.00 of the wrong ones and spent 1.04-1.13 of the budget (the stream's own
noise, 9% of the budget in cost, plus the dual ascent's lag: hence 20% of tolerance).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llamaindex_pickllm import PickLLM
from tests.cascade_stream import WARM_UP, Tally, Ticker, stream_of
from tests.llamaindex.test_cascade import PRICES, AdderLLM, right_sum


def make_llm(strategy: str, budget: float, seed: int) -> PickLLM:
    return PickLLM(
        models={"small": AdderLLM(name="small", sloppy=True), "large": AdderLLM(name="large")},
        prices=PRICES,
        strategy=strategy,
        budget_per_call_usd=budget,
        evaluator=right_sum,
        seed=seed,
        clock=Ticker(),
        sleep=lambda _s: None,
    )


def ask(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def test_cascade_routing_escalates_wrong_cheap_answers_within_the_budget() -> None:
    budget = 4.5e-5
    llm = make_llm("cascade_routing", budget, seed=0)
    tally = Tally()
    queries = stream_of(200, seed=0)
    for i, (a, b) in enumerate(queries):
        if i % 2:
            response: Any = llm.chat([ChatMessage(role="user", content=ask(a, b))])
            text = str(response.message.content)
        else:
            response = llm.complete(ask(a, b))
            text = response.text
        routed = response.additional_kwargs["pickllm"]
        assert routed["strategy"] == "cascade_routing"
        tally.check(i, a, b, text, routed)
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    assert len(tally.escalated) + len(tally.stopped) >= 0.9 * (len(queries) - WARM_UP)
    assert cost <= budget
    assert tally.counted(llm.stats())
    stats = llm.stats()
    assert stats["large"].mean_reward > stats["small"].mean_reward


def test_a_binding_budget_is_kept_by_escalating_less() -> None:
    budget = 3e-5
    llm = make_llm("cascade_routing", budget, seed=0)
    tally = Tally()
    for i, (a, b) in enumerate(stream_of(200, seed=0)):
        response = llm.complete(ask(a, b))
        tally.check(i, a, b, response.text, response.additional_kwargs["pickllm"])
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.6
    assert stop >= 0.95
    assert cost <= 1.2 * budget


async def test_streaming_and_async_yield_exactly_the_final_answer() -> None:
    llm = make_llm("cascade_routing", 4.5e-5, seed=1)
    tally = Tally()
    queries = stream_of(120, seed=1)
    for start in range(0, len(queries), 40):
        for j, (a, b) in enumerate(queries[start : start + 10]):
            chunks = list(llm.stream_complete(ask(a, b)))
            routed = chunks[-1].additional_kwargs["pickllm"]
            assert routed["time_to_first_token_s"] >= routed["latency_s"]
            tally.check(start + j, a, b, "".join(c.delta or "" for c in chunks), routed)
        for j, (a, b) in enumerate(queries[start + 10 : start + 20]):
            chat = list(llm.stream_chat([ChatMessage(role="user", content=ask(a, b))]))
            routed = chat[-1].additional_kwargs["pickllm"]
            tally.check(start + 10 + j, a, b, "".join(c.delta or "" for c in chat), routed)
        batch = queries[start + 20 : start + 30]
        responses = await asyncio.gather(*(llm.acomplete(ask(a, b)) for a, b in batch))
        for j, ((a, b), response) in enumerate(zip(batch, responses, strict=True)):
            routed = response.additional_kwargs["pickllm"]
            tally.check(start + 20 + j, a, b, response.text, routed)
        for j, (a, b) in enumerate(queries[start + 30 : start + 40]):
            gen = await llm.astream_complete(ask(a, b))
            achunks = [c async for c in gen]
            routed = achunks[-1].additional_kwargs["pickllm"]
            tally.check(start + 30 + j, a, b, "".join(c.delta or "" for c in achunks), routed)
    escalate, stop, _ = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    assert tally.counted(llm.stats())


@pytest.mark.parametrize("strategy", ["threshold_cascade", "optimal_cascade"])
def test_the_other_strategies_run_end_to_end(strategy: str) -> None:
    budget = 4.5e-5
    llm = make_llm(strategy, budget, seed=2)
    tally = Tally()
    for i, (a, b) in enumerate(stream_of(120, seed=2)):
        if i % 2:
            chunks = list(llm.stream_complete(ask(a, b)))
            routed = chunks[-1].additional_kwargs["pickllm"]
            tally.check(i, a, b, "".join(c.delta or "" for c in chunks), routed)
        else:
            response = llm.complete(ask(a, b))
            routed = response.additional_kwargs["pickllm"]
            tally.check(i, a, b, response.text, routed)
        assert routed["strategy"] == strategy
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    assert cost <= budget
    assert tally.counted(llm.stats())
