"""ChatPickLLM inside LangChain agents: create_agent sync, async, streamed."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_pickllm import ChatPickLLM, FakeToolChatModel, ReplayChatModel
from pickllm import make_policy
from pickllm.replay import ReplayStore
from tests.langchain.unit_tests.conftest import FakeClock

QUESTION: Any = {"messages": [("user", "What is 3 + 3?")]}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Sum(BaseModel):
    """The result of an addition."""

    total: int


def routed(policy: Any = "random") -> ChatPickLLM:
    return ChatPickLLM(
        models={
            "small": FakeToolChatModel(model="small-fake", answer="The sum is 6."),
            "large": FakeToolChatModel(model="large-fake", answer="3 + 3 = 6."),
            # cannot call tools: never offered an agent step, which always binds tools
            "replay": ReplayChatModel(model="gpt-4-1106-preview", store=ReplayStore.load()),
        },
        prices={"small": (0.1, 0.4), "large": (2.5, 10.0), "replay": (10.0, 30.0)},
        policy=policy,
        seed=0,
        clock=FakeClock(),
    )


def _ai_steps(result: dict[str, Any]) -> list[AIMessage]:
    return [m for m in result["messages"] if isinstance(m, AIMessage)]


def test_agent_calls_the_tool_and_answers_through_the_router() -> None:
    llm = routed()
    agent = create_agent(llm, tools=[add])
    with get_usage_metadata_callback() as cb:
        result = agent.invoke(QUESTION)
    messages = result["messages"]
    assert isinstance(messages[2], ToolMessage)
    assert messages[2].content == "6"
    steps = _ai_steps(result)
    assert steps[0].tool_calls[0]["name"] == "add"
    assert steps[-1].content == "The tool said: 6"
    served = [s.response_metadata["pickllm"]["model"] for s in steps]
    assert set(served) <= {"small", "large"}
    # Each model call counted once, under the serving model's name.
    expected: dict[str, dict[str, int]] = {}
    for step in steps:
        name = step.response_metadata["model_name"]
        usage = step.usage_metadata
        assert usage is not None
        totals = expected.setdefault(
            name, {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        )
        for key in totals:
            totals[key] += int(usage[key])  # type: ignore[literal-required]
    assert cb.usage_metadata == expected
    assert sum(s.calls for s in llm.stats().values()) == 2
    assert llm.stats()["replay"].calls == 0


async def test_agent_runs_async() -> None:
    llm = routed(policy=make_policy("fixed", model="large"))
    agent = create_agent(llm, tools=[add])
    result = await agent.ainvoke(QUESTION)
    steps = _ai_steps(result)
    assert [s.response_metadata["pickllm"]["model"] for s in steps] == ["large", "large"]
    assert steps[-1].content == "The tool said: 6"
    assert llm.stats()["large"].calls == 2


def test_agent_stream_messages_has_no_duplicate_tokens() -> None:
    llm = routed(policy=make_policy("fixed", model="small"))
    agent = create_agent(llm, tools=[add])
    stream: Any = agent.stream(QUESTION, stream_mode="messages")
    tokens = [
        chunk.text
        for chunk, meta in stream
        if meta["langgraph_node"] == "model" and isinstance(chunk, AIMessageChunk)
    ]
    # The first model step is a tool call (no text); the second streams word by word.
    assert "".join(tokens) == "The tool said: 6"
    assert [t for t in tokens if t] == ["The ", "tool ", "said: ", "6"]


async def test_agent_astream_messages_has_no_duplicate_tokens() -> None:
    llm = routed(policy=make_policy("fixed", model="small"))
    agent = create_agent(llm, tools=[add])
    stream: Any = agent.astream(QUESTION, stream_mode="messages")
    tokens = [
        chunk.text
        async for chunk, meta in stream
        if meta["langgraph_node"] == "model" and isinstance(chunk, AIMessageChunk)
    ]
    assert [t for t in tokens if t] == ["The ", "tool ", "said: ", "6"]


def test_agent_with_a_structured_response() -> None:
    llm = routed()
    agent = create_agent(llm, tools=[add], response_format=Sum)
    result = agent.invoke(QUESTION)
    assert result["structured_response"] == Sum(total=3)
