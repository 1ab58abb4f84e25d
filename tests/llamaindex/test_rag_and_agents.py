"""PickLLM inside LlamaIndex pipelines: a RAG query engine and agents, offline with mocks."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from llamaindex_pickllm import PickLLM
from tests.llamaindex.fakes import EventCounter, add, adder

# llama-index-workflows 2.26 builds agents with inspect.getmembers over a pydantic model,
# which reads every deprecated pydantic attribute (``__fields__``, ``model_computed_fields``
# on the instance, ...): their deprecation warnings, not ours.
workflow_warning = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecationWarning"
)

ANSWERS = {"text text text", "text text text text text text text text"}


def index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        [
            Document(text="Paris is the capital of France. " * 5),
            Document(text="Berlin is the capital of Germany. " * 5),
        ]
    )


def rag_llm() -> PickLLM:
    return PickLLM(
        models={"short": MockLLM(max_tokens=3), "long": MockLLM(max_tokens=8)},
        prices={"short": (0.1, 0.2), "long": (3.0, 15.0)},
        policy="random",
        seed=0,
    )


def calls(llm: PickLLM) -> int:
    return sum(s.calls for s in llm.stats().values())


def test_query_engine_answers_through_pickllm(events: EventCounter) -> None:
    llm = rag_llm()
    engine = index().as_query_engine(llm=llm)
    for _ in range(4):
        assert str(engine.query("What is the capital of France?")) in ANSWERS
    assert calls(llm) >= 4
    # each LLM call of the pipeline was routed once and produced one LLM event
    assert events.counts["PickLLMRouteEvent"] == calls(llm) == events.llm_starts()
    assert {n for n, s in llm.stats().items() if s.calls} == {"short", "long"}


def test_streaming_query_engine() -> None:
    llm = rag_llm()
    engine = index().as_query_engine(llm=llm, streaming=True)
    response = engine.query("What is the capital of Germany?")
    assert isinstance(response, StreamingResponse)
    text = "".join(response.response_gen)
    assert text in ANSWERS
    assert calls(llm) == 1


async def test_async_query_engine() -> None:
    llm = rag_llm()
    engine = index().as_query_engine(llm=llm)
    response = await engine.aquery("What is the capital of France?")
    assert str(response) in ANSWERS
    assert calls(llm) >= 1


def test_settings_llm_and_token_counting_count_each_call_once() -> None:
    counter = TokenCountingHandler()
    Settings.callback_manager = CallbackManager([counter])
    llm = rag_llm()
    Settings.llm = llm
    engine = index().as_query_engine()
    engine.query("What is the capital of France?")
    engine.query("What is the capital of Germany?")
    assert calls(llm) >= 2
    assert len(counter.llm_token_counts) == calls(llm)


@workflow_warning
@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_calls_a_tool_through_pickllm(streaming: bool) -> None:
    llm = PickLLM(models={"a": adder("a"), "b": adder("b")}, cost=0.0, policy="random", seed=0)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm, streaming=streaming)
    output: object = await agent.run(user_msg="What is 2 + 3?")
    assert isinstance(output, AgentOutput)
    assert output.response.content is not None
    assert output.response.content.endswith("the sum is 5")
    # AgentOutput declares ToolSelection items; FunctionAgent puts its ToolCallResults there.
    results: list[object] = list(output.tool_calls)
    assert all(isinstance(t, ToolCallResult) for t in results)
    assert [
        (t.tool_name, t.tool_kwargs, str(t.tool_output))
        for t in results
        if isinstance(t, ToolCallResult)
    ] == [("add", {"a": 2, "b": 3}, "5")]
    assert calls(llm) == 2  # the turn that calls the tool, and the answer


@workflow_warning
async def test_function_agent_refuses_a_pool_that_cannot_call_tools() -> None:
    llm = PickLLM(models={"mock": MockLLM(), "fc": adder("fc")}, cost=0.0)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm)
    with pytest.raises(ValueError, match="FunctionCallingLLM"):
        await agent.run(user_msg="What is 2 + 3?")


def react_script(messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
    # The ReAct system prompt mentions "Observation:" too; only later turns count.
    if any("Observation:" in (m.content or "") for m in messages if m.role != MessageRole.SYSTEM):
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content="Thought: I can answer without using any more tools.\nAnswer: 5",
        )
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content='Thought: I need the add tool.\nAction: add\nAction Input: {"a": 2, "b": 3}',
    )


@workflow_warning
# ReActAgent 0.14.25 asks Context.is_running inside its own step, which workflows deprecates.
@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
async def test_react_agent_through_pickllm() -> None:
    llm = PickLLM(
        models={
            "a": MockFunctionCallingLLM(response_generator=react_script, is_chat_model=True),
            "b": MockFunctionCallingLLM(response_generator=react_script, is_chat_model=True),
        },
        cost=0.0,
        policy="random",
        seed=0,
    )
    handler = ReActAgent(tools=[FunctionTool.from_defaults(add)], llm=llm).run(
        user_msg="What is 2 + 3?"
    )
    results = [
        (ev.tool_name, str(ev.tool_output))
        async for ev in handler.stream_events()
        if isinstance(ev, ToolCallResult)
    ]
    output: object = await handler
    assert isinstance(output, AgentOutput)
    assert results == [("add", "5")]
    assert output.response.content == "5"
    assert calls(llm) == 2
