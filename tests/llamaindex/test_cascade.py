"""PickLLM (LlamaIndex) with a cascade strategy, end to end with offline LLMs.

The cheap LLM adds wrongly when the first number is odd (half the queries); the evaluator
knows the right sum. The cascade must stop at the cheap LLM on the others and escalate on
those, stream exactly the answer it returns, and record every step.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

from llamaindex_pickllm import PickLLM
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


class AdderLLM(CustomLLM):
    """Adds the two numbers of the prompt; ``sloppy`` adds 1 when the first is odd."""

    name: str = "adder"
    sloppy: bool = False

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=64, model_name=self.name)

    def _text(self, prompt: str) -> str:
        a, b = _numbers(prompt)
        return f"The sum is {a + b + (1 if self.sloppy and a % 2 else 0)}."

    @staticmethod
    def _raw() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}}

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._text(prompt), raw=self._raw())

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        words = re.findall(r"\S+\s*", self._text(prompt))

        def gen() -> CompletionResponseGen:
            text = ""
            for word in words:
                text += word
                yield CompletionResponse(text=text, delta=word, raw=self._raw())

        return gen()


def make_llm(strategy: PriceOrderCascade, **kwargs: Any) -> PickLLM:
    return PickLLM(
        models={"small": AdderLLM(name="small", sloppy=True), "large": AdderLLM(name="large")},
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
    for i, query in enumerate(QUERIES):
        text, models = _expected(query)
        if i % 2:
            response: Any = llm.chat([ChatMessage(role="user", content=query)])
            assert response.message.content == text
        else:
            response = llm.complete(query)
            assert response.text == text
        routed = response.additional_kwargs["pickllm"]
        assert [s["model"] for s in routed["steps"]] == models
        assert (routed["model"], routed["plan"], routed["strategy"]) == (
            models[-1],
            "cascade",
            "price_order",
        )
        assert [s["estimate"] for s in routed["steps"]] == [0.0, 1.0][-len(models) :]
        assert all(s["error"] is None and s["cost_usd"] > 0 for s in routed["steps"])
        assert routed["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in routed["steps"]))
        # The usage is every step's (both paid for).
        assert response.raw["usage"]["completion_tokens"] == 4 * len(models)
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (8, 4)
    # Each step was learned from with the evaluator's score as its quality (the reward
    # weighs quality only here): the cheap model was right on half the queries.
    assert stats["small"].mean_reward == pytest.approx(0.5)
    assert stats["large"].mean_reward == pytest.approx(1.0)
    assert len(strategy.settled) == 8


def test_streaming_yields_exactly_the_returned_answer() -> None:
    strategy = PriceOrderCascade()
    llm = make_llm(strategy)
    for query in QUERIES[:4]:
        text, models = _expected(query)
        chunks = list(llm.stream_complete(query))
        assert "".join(c.delta or "" for c in chunks) == text
        routed = chunks[-1].additional_kwargs["pickllm"]
        assert [s["model"] for s in routed["steps"]] == models
        assert routed["time_to_first_token_s"] >= routed["latency_s"]
    chat_chunks = list(llm.stream_chat([ChatMessage(role="user", content=QUERIES[4])]))
    text, models = _expected(QUERIES[4])
    assert "".join(c.delta or "" for c in chat_chunks) == text
    assert [s["model"] for s in chat_chunks[-1].additional_kwargs["pickllm"]["steps"]] == models
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (5, 3)


async def test_async_calls_and_streams_cascade_the_same_way() -> None:
    strategy = PriceOrderCascade()
    llm = make_llm(strategy)
    responses = await asyncio.gather(*(llm.acomplete(q) for q in QUERIES[:4]))
    for query, response in zip(QUERIES[:4], responses, strict=True):
        text, models = _expected(query)
        assert response.text == text
        assert [s["model"] for s in response.additional_kwargs["pickllm"]["steps"]] == models
    for query in QUERIES[4:]:
        text, models = _expected(query)
        gen = await llm.astream_chat([ChatMessage(role="user", content=query)])
        chunks = [c async for c in gen]
        assert "".join(c.delta or "" for c in chunks) == text
        steps = chunks[-1].additional_kwargs["pickllm"]["steps"]
        assert [s["model"] for s in steps] == models
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
    PickLLM(
        models={"small": AdderLLM(name="small"), "large": AdderLLM(name="large")},
        prices=PRICES,
        strategy="threshold_cascade",
        budget_per_call_usd=0.001,
    )
    assert (made[0]["name"], made[0]["budget_usd"]) == ("threshold_cascade", 0.001)
    assert [c.name for c in made[0]["candidates"]] == ["small", "large"]
    with pytest.raises(ConfigError, match="strategy must be one of"):
        PickLLM(models={"small": AdderLLM(name="small")}, cost=0.0, strategy="cascade")
