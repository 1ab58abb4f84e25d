"""ChatPickLLM with the real cascade strategies, by name, end to end (nothing patched).

The cheap model adds wrongly when the first number is odd (half of a seeded stream of
queries); the evaluator knows the right sum. Costs (10 input and 4 output tokens per
call): small 2.6e-6 USD, large 6.5e-5 USD; running small and escalating exactly its
wrong answers costs 2.6e-6 + 6.5e-5 / 2 = 3.51e-5 per call on average.

Thresholds were measured over seeds 0-9 of this stream (200 calls, the first 40 a
warm-up; ``cascade_routing``, ``optimal_cascade`` and ``threshold_cascade`` alike):

* budget 4.5e-5 (room for the ideal cascade): escalation on wrong cheap answers and
  stops on right ones 1.000 on every seed; mean cost 0.67-0.86 of the budget;
* budget 3e-5 (binding: below the ideal 3.51e-5): ``cascade_routing`` escalates 0.73-1.00
  of the wrong cheap answers, stops on 1.000 of the right ones, and its mean cost is
  1.04-1.13 of the budget. The 20% tolerance covers the stream's own noise (the share
  of wrong cheap answers over 160 calls has a standard deviation of 4 points, 9% of the
  budget in cost) and the dual ascent's lag after its high initial price of cost.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import BaseMessage

from langchain_pickllm import ChatPickLLM
from tests.cascade_stream import WARM_UP, Tally, Ticker, stream_of
from tests.langchain.test_cascade import PRICES, Adder, right_sum


def make_llm(strategy: str, budget: float, seed: int) -> ChatPickLLM:
    return ChatPickLLM(
        models={
            "small": Adder(model_name="small", sloppy=True),
            "large": Adder(model_name="large"),
        },
        prices=PRICES,
        strategy=strategy,
        budget_per_call_usd=budget,
        evaluator=right_sum,
        seed=seed,
        clock=Ticker(),
        sleep=lambda _s: None,
    )


def _text(message: BaseMessage) -> str:
    return str(message.content)


def test_cascade_routing_escalates_wrong_cheap_answers_within_the_budget() -> None:
    budget = 4.5e-5
    llm = make_llm("cascade_routing", budget, seed=0)
    tally = Tally()
    queries = stream_of(200, seed=0)
    for i, (a, b) in enumerate(queries):
        message = llm.invoke(f"What is {a} + {b}?")
        tally.check(i, a, b, _text(message), message.response_metadata["pickllm"])
        assert message.response_metadata["pickllm"]["strategy"] == "cascade_routing"
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    assert len(tally.escalated) + len(tally.stopped) >= 0.9 * (len(queries) - WARM_UP)
    assert cost <= budget
    stats = llm.stats()
    assert {m: stats[m].calls for m in ("small", "large")} == dict(tally.steps)
    assert stats["large"].mean_reward > stats["small"].mean_reward


def test_a_binding_budget_is_kept_by_escalating_less() -> None:
    budget = 3e-5
    llm = make_llm("cascade_routing", budget, seed=0)
    tally = Tally()
    for i, (a, b) in enumerate(stream_of(200, seed=0)):
        message = llm.invoke(f"What is {a} + {b}?")
        tally.check(i, a, b, _text(message), message.response_metadata["pickllm"])
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.6
    assert stop >= 0.95
    assert cost <= 1.2 * budget


def test_streaming_and_async_yield_exactly_the_final_answer() -> None:
    llm = make_llm("cascade_routing", 4.5e-5, seed=1)
    tally = Tally()
    queries = stream_of(120, seed=1)

    async def run_async(start: int) -> None:
        batch = queries[start : start + 10]
        messages = await asyncio.gather(*(llm.ainvoke(f"What is {a} + {b}?") for a, b in batch))
        for j, ((a, b), message) in enumerate(zip(batch, messages, strict=True)):
            tally.check(start + j, a, b, _text(message), message.response_metadata["pickllm"])
        for j, (a, b) in enumerate(queries[start + 10 : start + 20]):
            chunks = [c async for c in llm.astream(f"What is {a} + {b}?")]
            routed = next(c.response_metadata["pickllm"] for c in chunks if c.response_metadata)
            tally.check(start + 10 + j, a, b, "".join(_text(c) for c in chunks), routed)

    for start in range(0, len(queries), 40):
        for j, (a, b) in enumerate(queries[start : start + 20]):
            chunks = list(llm.stream(f"What is {a} + {b}?"))
            (routed,) = [c.response_metadata["pickllm"] for c in chunks if c.response_metadata]
            assert routed["time_to_first_token_s"] >= routed["latency_s"]
            tally.check(start + j, a, b, "".join(_text(c) for c in chunks), routed)
        asyncio.run(run_async(start + 20))
    escalate, stop, _ = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    stats = llm.stats()
    assert {m: stats[m].calls for m in ("small", "large")} == dict(tally.steps)


@pytest.mark.parametrize("strategy", ["threshold_cascade", "optimal_cascade"])
def test_the_other_strategies_run_end_to_end(strategy: str) -> None:
    budget = 4.5e-5
    llm = make_llm(strategy, budget, seed=2)
    tally = Tally()
    for i, (a, b) in enumerate(stream_of(120, seed=2)):
        if i % 2:
            chunks = list(llm.stream(f"What is {a} + {b}?"))
            (routed,) = [c.response_metadata["pickllm"] for c in chunks if c.response_metadata]
            tally.check(i, a, b, "".join(_text(c) for c in chunks), routed)
        else:
            message = llm.invoke(f"What is {a} + {b}?")
            routed = message.response_metadata["pickllm"]
            tally.check(i, a, b, _text(message), routed)
        assert routed["strategy"] == strategy
    escalate, stop, cost = tally.rates()
    assert escalate >= 0.95
    assert stop >= 0.95
    assert cost <= budget
    stats = llm.stats()
    assert {m: stats[m].calls for m in ("small", "large")} == dict(tally.steps)
