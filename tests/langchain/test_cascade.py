"""ChatPickLLM with a cascade strategy, end to end with offline models.

The cheap model adds wrongly when the first number is odd (half the queries); the
evaluator knows the right sum. The cascade must stop at the cheap model on the others and
escalate on those, stream exactly the answer it returns, and record every step.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool

from langchain_pickllm import ChatPickLLM, FakeToolChatModel
from pickllm import ConfigError
from pickllm.cascade import factory
from tests.core.cascade_fakes import PriceOrderCascade

PRICES = {"small": (0.1, 0.4), "large": (2.5, 10.0)}
QUERIES = [f"What is {a} + {10 * a + 3}?" for a in range(1, 9)]


def _numbers(text: str) -> tuple[int, int]:
    a, b = (int(n) for n in re.findall(r"\d+", text)[:2])
    return a, b


def right_sum(prompt: str, answer: str, **kwargs: Any) -> float:
    """The evaluator: 1.0 when the answer is the sum of the prompt's two numbers."""
    del kwargs
    a, b = _numbers(prompt)
    return 1.0 if answer.strip() == f"The sum is {a + b}." else 0.0


class Adder(BaseChatModel):
    """Adds the two numbers of the last message; ``sloppy`` adds 1 when the first is odd."""

    model_name: str
    sloppy: bool = False

    @property
    def _llm_type(self) -> str:
        return "adder"

    def _text(self, messages: list[BaseMessage]) -> str:
        a, b = _numbers(messages[-1].text)
        total = a + b + (1 if self.sloppy and a % 2 else 0)
        return f"The sum is {total}."

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self._text(messages)
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": 10, "output_tokens": 4, "total_tokens": 14},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in re.findall(r"\S+\s*", self._text(messages)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))


def make_llm(strategy: PriceOrderCascade, **kwargs: Any) -> ChatPickLLM:
    return ChatPickLLM(
        models={
            "small": Adder(model_name="small", sloppy=True),
            "large": Adder(model_name="large"),
        },
        prices=PRICES,
        strategy=strategy,
        evaluator=right_sum,
        seed=0,
        sleep=lambda _s: None,
        **kwargs,
    )


def _expected(query: str) -> tuple[str, list[str]]:
    a, b = _numbers(query)
    return f"The sum is {a + b}.", (["small", "large"] if a % 2 else ["small"])


def test_the_cascade_escalates_exactly_when_the_cheap_answer_is_wrong() -> None:
    strategy = PriceOrderCascade()
    llm = make_llm(strategy, cost=0.0, latency=0.0)
    for query in QUERIES:
        message = llm.invoke(query)
        text, models = _expected(query)
        assert message.content == text
        routed = message.response_metadata["pickllm"]
        assert [s["model"] for s in routed["steps"]] == models
        assert routed["model"] == models[-1]
        assert routed["plan"] == "cascade"
        assert routed["strategy"] == "price_order"
        assert [s["estimate"] for s in routed["steps"]] == [0.0, 1.0][-len(models) :]
        assert all(s["error"] is None and s["cost_usd"] > 0 for s in routed["steps"])
        assert routed["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in routed["steps"]))
        # The usage is every step's (both paid for).
        assert message.usage_metadata is not None
        assert message.usage_metadata["output_tokens"] == 4 * len(models)
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (8, 4)
    # Each step was learned from with the evaluator's score as its quality (the reward
    # weighs quality only here): the cheap model was right on half the queries.
    assert stats["small"].mean_reward == pytest.approx(0.5)
    assert stats["large"].mean_reward == pytest.approx(1.0)
    assert len(strategy.settled) == 8
    assert llm._identifying_params["strategy"] == "price_order"


def test_streaming_yields_exactly_the_returned_answer() -> None:
    strategy = PriceOrderCascade()
    llm = make_llm(strategy)
    for query in QUERIES[:4]:
        chunks = list(llm.stream(query))
        text, models = _expected(query)
        assert "".join(str(c.content) for c in chunks) == text
        (routed,) = [c.response_metadata["pickllm"] for c in chunks if c.response_metadata]
        assert [s["model"] for s in routed["steps"]] == models
        assert routed["time_to_first_token_s"] >= routed["latency_s"]
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (4, 2)


async def test_async_invoke_and_stream_cascade_the_same_way() -> None:
    strategy = PriceOrderCascade()
    llm = make_llm(strategy)
    messages = await asyncio.gather(*(llm.ainvoke(q) for q in QUERIES[:4]))
    for query, message in zip(QUERIES[:4], messages, strict=True):
        text, models = _expected(query)
        assert message.content == text
        assert [s["model"] for s in message.response_metadata["pickllm"]["steps"]] == models
    for query in QUERIES[4:]:
        chunks = [c async for c in llm.astream(query)]
        text, models = _expected(query)
        assert "".join(str(c.content) for c in chunks) == text
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        assert [s["model"] for s in merged.response_metadata["pickllm"]["steps"]] == models
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (8, 4)
    assert len(strategy.settled) == 8


def test_a_named_strategy_is_built_with_the_cascade_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    def fake_make_strategy(name: str, **kwargs: Any) -> PriceOrderCascade:
        made.append({"name": name, **kwargs})
        return PriceOrderCascade()

    monkeypatch.setattr(factory, "make_strategy", fake_make_strategy)
    llm = ChatPickLLM(
        models={"small": Adder(model_name="small"), "large": Adder(model_name="large")},
        prices=PRICES,
        strategy="cascade_routing",
        budget_per_call_usd=0.001,
    )
    assert llm.engine.strategy is not None
    assert (made[0]["name"], made[0]["budget_usd"]) == ("cascade_routing", 0.001)
    assert [c.name for c in made[0]["candidates"]] == ["small", "large"]
    with pytest.raises(ConfigError, match="strategy must be one of"):
        ChatPickLLM(models={"small": Adder(model_name="small")}, cost=0.0, strategy="cascade")
    with pytest.raises(ConfigError, match=r"budget_per_call_usd=0\.5 applies to a cascade"):
        ChatPickLLM(models={"small": Adder(model_name="small")}, cost=0.0, budget_per_call_usd=0.5)


def test_tool_turns_are_routed_and_the_final_answer_turn_is_cascaded() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    strategy = PriceOrderCascade()
    llm = ChatPickLLM(
        models={
            "small": FakeToolChatModel(model="small", answer="Five."),
            "large": FakeToolChatModel(model="large", answer="Five!"),
        },
        prices=PRICES,
        strategy=strategy,
        policy="cheapest",
    )
    call = llm.bind_tools([add]).invoke("What is 2 + 3?")
    assert call.tool_calls
    assert call.response_metadata["pickllm"]["plan"] == "single"
    assert strategy.sessions == []
    # The turn answering the tool call stays on the model that made it (no cascade).
    history = [
        HumanMessage("What is 2 + 3?"),
        call,
        ToolMessage("5", tool_call_id=call.tool_calls[0]["id"]),
    ]
    answer = llm.bind_tools([add]).invoke(history)
    assert answer.response_metadata["pickllm"]["plan"] == "single"
    assert strategy.sessions == []
    # Without tools the turn is cascaded.
    final = llm.invoke("What is 2 + 3?")
    assert [s["model"] for s in final.response_metadata["pickllm"]["steps"]] == ["small"]
    assert len(strategy.sessions) == 1
