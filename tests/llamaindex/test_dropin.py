"""PickLLM as a drop-in: prices resolved from the database, feedback from anywhere."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
from typing import Any

import pytest
from genai_prices import Usage as DbUsage
from genai_prices import calc_price
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_pickllm import PickLLM
from llamaindex_pickllm.translation import identity_of
from pickllm import Objective
from pickllm.errors import ConfigError, UnknownDecisionError
from tests.llamaindex.fakes import UsageLLM


class OpenAIFake(UsageLLM):
    """A fake whose class lives where LlamaIndex's OpenAI integration does."""


class AnthropicFake(UsageLLM):
    """A fake whose class lives where LlamaIndex's Anthropic integration does."""


# How PickLLM tells a provider: the integration package its LLM class comes from.
OpenAIFake.__module__ = "llama_index.llms.openai.base"
AnthropicFake.__module__ = "llama_index.llms.anthropic.base"


def _pool() -> list[UsageLLM]:
    return [
        OpenAIFake(name="gpt-4o-mini", input_tokens=1200, output_tokens=300),
        AnthropicFake(name="claude-3-5-haiku-latest", input_tokens=1100, output_tokens=250),
    ]


def _db_cost(provider: str, model: str, usage: dict[str, int]) -> float:
    calc = calc_price(
        DbUsage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
        model,
        provider_id=provider,
    )
    return float(calc.total_price)


# ====================================================================== prices
def test_identity_comes_from_the_integration_package_and_model_name() -> None:
    assert identity_of(OpenAIFake(name="gpt-4o-mini")) == {
        "provider": "openai",
        "model": "gpt-4o-mini",
    }
    assert identity_of(UsageLLM(name="gpt-4o")) == {"model": "gpt-4o"}


def test_no_prices_routes_and_records_the_database_costs() -> None:
    llm = PickLLM(models=_pool(), policy="random", seed=5)
    providers = {"gpt-4o-mini": "openai", "claude-3-5-haiku-latest": "anthropic"}
    seen = set()
    for _ in range(12):
        response = llm.complete("What is the capital of France?")
        routed = response.additional_kwargs["pickllm"]
        model = routed["model"]
        assert response.raw is not None
        expected = _db_cost(providers[model], model, response.raw["usage"])
        assert expected > 0
        assert routed["cost_usd"] == pytest.approx(expected, rel=1e-9)
        seen.add(model)
    assert seen == set(providers)


def test_user_prices_override_the_database() -> None:
    llm = PickLLM(models=_pool(), prices={"gpt-4o-mini": (50.0, 60.0)}, policy="cheapest")
    response = llm.complete("Hi")
    assert response.additional_kwargs["pickllm"]["model"] == "claude-3-5-haiku-latest"
    by_name = {c.name: c for c in llm.core_router.candidates}
    assert (by_name["gpt-4o-mini"].input_price, by_name["gpt-4o-mini"].output_price) == (
        50.0,
        60.0,
    )


def test_a_model_the_database_does_not_know_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['usage-llm'\]"):
        PickLLM(models=[*_pool(), UsageLLM()])


# ====================================================================== feedback
def _llm(**kwargs: Any) -> PickLLM:
    params: dict[str, Any] = {"models": _pool(), "policy": "thompson", "seed": 0, **kwargs}
    return PickLLM(**params)


def _state(llm: PickLLM) -> str:
    return json.dumps(llm.core_router.policy.state_dict(), sort_keys=True)


def test_feedback_by_the_response_metadata_with_the_defaults() -> None:
    llm = _llm()  # no evaluator, no await_feedback: calls wait for a score
    response = llm.complete("What is the capital of France?")
    assert llm.core_router.pending() == 1
    before = _state(llm)
    reward = llm.feedback(response.additional_kwargs["pickllm"]["decision_id"], 1.0)
    assert reward is not None
    assert _state(llm) != before
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content="Again?")])
    assert llm.feedback(chat, 0.5) is not None  # the response itself
    assert llm.core_router.pending() == 0


def test_track_scores_a_query_engine_s_calls() -> None:
    llm = _llm()
    engine = VectorStoreIndex.from_documents(
        [Document(text="Paris is in France.")]
    ).as_query_engine(llm=llm)
    llm.complete("outside the block")
    with llm.track() as tracked:
        engine.query("Where is Paris?")
        engine.query("Where is France?")
    assert len(tracked) >= 2
    assert llm.core_router.pending() == len(tracked) + 1
    before = _state(llm)
    assert tracked.feedback(0.8) is not None
    assert _state(llm) != before
    assert llm.core_router.pending() == 1
    with pytest.raises(UnknownDecisionError):
        llm.feedback(tracked, 0.8)  # the same block through the LLM: all scored already


async def test_async_track_sees_tasks_and_copied_contexts() -> None:
    llm = _llm()
    async with llm.track() as tracked:
        await asyncio.gather(llm.acomplete("x"), llm.acomplete("y"))
        context = contextvars.copy_context()
        await asyncio.to_thread(context.run, llm.complete, "z")
        chunks = await llm.astream_complete("w")
        assert [c async for c in chunks]
    await llm.acomplete("after the block")
    assert len(tracked) == 4
    assert tracked.feedback(1.0) is not None
    assert llm.core_router.pending() == 1


def test_an_evaluator_turns_waiting_off() -> None:
    llm = _llm(evaluator=lambda prompt, answer, **kw: 0.5)
    response = llm.complete("Hi")
    assert llm.core_router.pending() == 0
    with pytest.raises(UnknownDecisionError):
        llm.feedback(response, 1.0)


def test_a_call_never_scored_is_learned_from_when_it_expires() -> None:
    now = [0.0]
    objective = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.75)
    llm = _llm(objective=objective, pending_ttl_s=30.0, clock=lambda: now[0])
    first = llm.complete("first").additional_kwargs["pickllm"]
    assert math.isnan(llm.stats()[first["model"]].mean_reward)
    now[0] += 31.0
    llm.complete("second")
    assert llm.stats()[first["model"]].mean_reward == pytest.approx(0.75)  # missing_quality
    with pytest.raises(UnknownDecisionError) as info:
        llm.feedback(first["decision_id"], 1.0)
    assert info.value.reason == "expired"
