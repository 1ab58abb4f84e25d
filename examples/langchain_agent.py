"""An agent with tools whose every model call is routed by ChatPickLLM.

Runs offline with ``FakeToolChatModel`` s (scripted models that call tools). The agent is
LangChain's ``create_agent``; ``ChatPickLLM`` takes the place of its chat model. A third
candidate, a ``ReplayChatModel``, cannot call tools, so the router never offers it a call
that binds tools. The example runs the agent synchronously, streams its tokens with
``stream_mode="messages"`` and runs it asynchronously, then prints which model served each
step and the token usage, counted once per call.

Run: ``python examples/langchain_agent.py``
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_pickllm import ChatPickLLM, FakeToolChatModel, ReplayChatModel


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def build_agent(seed: int = 0) -> tuple[ChatPickLLM, Any]:
    """The routed model and an agent using it."""
    llm = ChatPickLLM(
        models=[
            FakeToolChatModel(model="fast-model", answer="Done."),
            FakeToolChatModel(model="smart-model", answer="All done."),
            ReplayChatModel(model="gpt-4-1106-preview"),
        ],
        prices={
            "fast-model": (0.15, 0.6),
            "smart-model": (2.5, 10.0),
            "gpt-4-1106-preview": (10.0, 30.0),
        },
        policy="epsilon_greedy_q",
        seed=seed,
    )
    return llm, create_agent(llm, tools=[add])


def main(seed: int = 0) -> dict[str, Any]:
    """Run the agent three ways and print who served what."""
    llm, agent = build_agent(seed)
    question = {"messages": [("user", "What is 3 + 3?")]}

    with get_usage_metadata_callback() as usage:
        result = agent.invoke(question)
    steps = []
    for message in result["messages"]:
        if isinstance(message, AIMessage):
            routed = message.response_metadata["pickllm"]
            what = f"calls {message.tool_calls[0]['name']}" if message.tool_calls else "answers"
            steps.append(f"{routed['model']} {what}")
            print(f"step: {routed['model']:<12} {what:<10} {message.content!r}")
    print(f"final answer: {result['messages'][-1].content!r}")
    print(f"usage by model (each call once): {usage.usage_metadata}")

    tokens = [
        chunk.content
        for chunk, meta in agent.stream(question, stream_mode="messages")
        if meta["langgraph_node"] == "model" and chunk.content
    ]
    print(f"streamed tokens: {tokens}")

    async_result = asyncio.run(agent.ainvoke(question))
    print(f"async final answer: {async_result['messages'][-1].content!r}")
    calls = {name: s.calls for name, s in llm.stats().items()}
    print(f"calls per model: {calls}")
    return {
        "steps": steps,
        "answer": result["messages"][-1].content,
        "usage": usage.usage_metadata,
        "tokens": tokens,
        "async_answer": async_result["messages"][-1].content,
        "calls": calls,
    }


if __name__ == "__main__":
    main()
