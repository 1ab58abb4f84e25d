"""PickLLM on the core engine: tool loops, pins, feedback, defaults, ensembles."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool

from llamaindex_pickllm import PickLLM
from llamaindex_pickllm.translation import MODEL_TAG
from pickllm.engine import RoutingSettings
from pickllm.errors import ConfigError, ExecutionError, UnknownDecisionError
from tests.llamaindex.fakes import UsageLLM, add, adder
from tests.llamaindex.test_llm import PRICES, EnsembleOfAll, two_usage_llms

TOOL = FunctionTool.from_defaults(fn=add, name="add")


def tool_result(response: ChatResponse, llm: PickLLM) -> ChatMessage:
    call = llm.get_tool_calls_from_response(response)[0]
    return ChatMessage(
        role=MessageRole.TOOL, content="5", additional_kwargs={"tool_call_id": call.tool_id}
    )


def info(response: Any) -> dict[str, Any]:
    facts: dict[str, Any] = response.additional_kwargs["pickllm"]
    return facts


# ---------------------------------------------------------------------- tool loops
@pytest.mark.parametrize("seed", range(6))
def test_a_tool_loop_stays_on_the_model_that_started_it(seed: int) -> None:
    seen: list[Sequence[ChatMessage]] = []

    def spy(tag: str) -> Any:
        llm = adder(tag)
        respond = llm.response_generator

        def record(messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
            seen.append(list(messages))
            return respond(messages, **kwargs)

        llm.response_generator = record
        return llm

    llm = PickLLM(models={"a": spy("a"), "b": spy("b")}, cost=0.0, policy="random", seed=seed)
    user = ChatMessage(role=MessageRole.USER, content="What is 2 + 3?")
    first = llm.chat_with_tools([TOOL], chat_history=[user])
    model = info(first)["model"]
    assert first.message.additional_kwargs[MODEL_TAG] == model
    history = [user, first.message, tool_result(first, llm)]
    second = llm.chat_with_tools([TOOL], chat_history=history)
    assert info(second)["model"] == model
    assert info(second)["probability"] == 1.0
    assert second.message.content == f"[{model}] the sum is 5"
    # the tag stays on PickLLM's side: no model is sent it
    assert all(MODEL_TAG not in m.additional_kwargs for messages in seen for m in messages)
    assert MODEL_TAG in first.message.additional_kwargs  # the caller's history is untouched


def test_a_new_question_after_a_tool_loop_is_routed_again() -> None:
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy="random", seed=0)
    first = llm.chat_with_tools([TOOL], user_msg="What is 2 + 3?")
    history = [first.message, tool_result(first, llm)]
    models = {
        info(llm.chat_with_tools([TOOL], user_msg="again?", chat_history=history))["probability"]
        for _ in range(20)
    }
    assert models == {0.5}  # the random policy chose, the loop did not pin


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("seed", range(4))
async def test_function_agent_turns_stay_on_one_model(streaming: bool, seed: int) -> None:
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy="random", seed=seed)
    agent = FunctionAgent(tools=[TOOL], llm=llm, streaming=streaming)
    output: object = await agent.run(user_msg="What is 2 + 3?")
    assert isinstance(output, AgentOutput)
    served = [name for name, s in llm.stats().items() if s.calls]
    assert len(served) == 1
    assert llm.stats()[served[0]].calls == 2
    assert output.response.content == f"[{served[0]}] the sum is 5"


# ---------------------------------------------------------------------- pins
def test_a_call_can_name_its_model() -> None:
    llm = PickLLM(models=two_usage_llms(fail_times=5), prices=PRICES, policy="thompson", seed=0)
    response = llm.complete("hi", model="large")
    assert response.text == "large answer"
    assert (info(response)["model"], info(response)["probability"]) == ("large", 1.0)
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content="hi")], model="large")
    assert info(chat)["model"] == "large"
    streamed = list(llm.stream_complete("hi", model="large"))
    assert info(streamed[-1])["model"] == "large"
    assert llm.stats()["large"].calls == 3
    with pytest.raises(ConfigError, match="no candidate named 'huge'"):
        llm.complete("hi", model="huge")


def test_a_pinned_model_gets_no_fallback() -> None:
    llms = two_usage_llms(fail_times=5)
    llm = PickLLM(models=llms, prices=PRICES, policy="thompson", seed=0, sleep=lambda _: None)
    with pytest.raises(ExecutionError, match="small: ConnectionError") as failed:
        llm.complete("hi", model="small")
    assert {f.candidate for f in failed.value.attempts} == {"small"}
    assert llms["large"].calls == 0


# ---------------------------------------------------------------------- feedback
def test_feedback_by_the_decision_id_in_the_response_metadata() -> None:
    llm = PickLLM(
        models=two_usage_llms(), prices=PRICES, policy="ucb1", await_feedback=True, seed=0
    )
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content="q")])
    chunks = list(llm.stream_complete("q"))
    assert llm.core_router.pending() == 2
    assert llm.feedback(info(chat)["decision_id"], 1.0) is not None
    assert llm.feedback(info(chunks[-1])["decision_id"], 0.5) is not None
    assert llm.core_router.pending() == 0
    with pytest.raises(UnknownDecisionError):
        llm.feedback(info(chat)["decision_id"], 1.0)


async def test_feedback_through_track_covers_streams_and_async_calls() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES, policy="ucb1", await_feedback=True)
    with llm.track() as calls:
        await llm.acomplete("a")
        async for _ in await llm.astream_complete("b"):
            pass
        stream = llm.stream_complete("c")
        next(stream)
        stream.close()  # closed early: still recorded and tracked
    assert len(calls) == 3
    assert llm.core_router.pending() == 3
    assert llm.feedback(calls, 1.0) is not None
    assert llm.core_router.pending() == 0


# ---------------------------------------------------------------------- defaults and engine rules
def test_defaults_are_the_shared_routing_settings() -> None:
    llm = PickLLM(models=two_usage_llms(), prices=PRICES)
    for name, field in RoutingSettings.model_fields.items():
        if name not in {"prices", "clock", "sleep", "async_sleep"}:
            assert getattr(llm, name) == field.get_default(call_default_factory=True), name
    assert llm.evaluate_in_background is False


def test_context_key_sees_the_messages() -> None:
    keys: list[list[str]] = []

    def key(messages: list[ChatMessage]) -> str:
        keys.append([m.content or "" for m in messages])
        return "k"

    llm = PickLLM(models={"m": MockLLM()}, cost=0.0, context_key=key)
    llm.chat([ChatMessage(role=MessageRole.USER, content="hi")])
    llm.complete("prompt")
    assert keys == [["hi"], ["prompt"]]


def test_unscored_answers_are_learned_from_at_once() -> None:
    llm = PickLLM(models={"m": UsageLLM(name="m")}, cost=0.0, evaluator=lambda prompt, answer: None)
    llm.complete("q")
    assert llm.core_router.pending() == 0
    assert not math.isnan(llm.stats()["m"].mean_reward)


def test_ensemble_delayed_score_joins_only_the_returned_member() -> None:
    llms = {
        "small": UsageLLM(answer="short", name="small"),
        "large": UsageLLM(answer="a much longer answer", name="large"),
    }
    llm = PickLLM(
        models=llms, quality=1.0, cost=0.0, latency=0.0, policy=EnsembleOfAll(), await_feedback=True
    )
    response = llm.complete("q")
    assert info(response)["model"] == "large"
    # the other member was learned from at once, without a score (0.5 for quality only)
    assert llm.stats()["small"].mean_reward == 0.5
    assert math.isnan(llm.stats()["large"].mean_reward)
    assert llm.feedback(response, 1.0) == 1.0
    assert llm.stats()["large"].mean_reward == 1.0
    assert llm.stats()["small"].mean_reward == 0.5


def test_streaming_an_ensemble_emits_the_returned_answer_async() -> None:
    llm = PickLLM(
        models={
            "small": UsageLLM(answer="short", name="small"),
            "large": UsageLLM(answer="a much longer answer", name="large"),
        },
        cost=0.0,
        policy=EnsembleOfAll(),
    )

    async def collect() -> list[str | None]:
        return [c.delta async for c in await llm.astream_complete("q")]

    assert asyncio.run(collect()) == ["a much longer answer"]
