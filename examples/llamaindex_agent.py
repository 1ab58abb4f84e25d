"""A LlamaIndex agent whose LLM turns are routed by PickLLM, offline.

Run it: ``python examples/llamaindex_agent.py``. The candidates are two scripted
``MockFunctionCallingLLM``s standing in for a cheap and a premium tool-calling model: they
call the tool the question needs, then answer with its result (tagged with their name, so
you can see who answered). Nothing touches the network.

What it shows:

* ``FunctionAgent`` (streaming and not) calling tools through PickLLM: each question is
  routed, and the turns that answer a tool call stay on the model that made it (which
  also parses it);
* ``predict_and_call`` on PickLLM directly;
* a pool with a model that cannot call tools: ``metadata.is_function_calling_model`` is
  then False (FunctionAgent needs True), yet direct tool calls still work, routed only to
  the models that can call tools.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from llamaindex_pickllm import PickLLM


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]


def scripted(name: str) -> MockFunctionCallingLLM:
    """A stand-in tool-calling model: picks the tool from the question's words."""

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        del kwargs  # the tools offered; the script knows them
        results = [m for m in messages if m.role == MessageRole.TOOL]
        if results:
            return ChatMessage(
                role=MessageRole.ASSISTANT, content=f"[{name}] The result is {results[-1].content}."
            )
        question = next(
            (m.content or "" for m in reversed(messages) if m.role == MessageRole.USER), ""
        )
        a, b = (int(x) for x in re.findall(r"\d+", question)[:2])
        tool = "multiply" if "times" in question or "product" in question else "add"
        call = ToolCallBlock(
            tool_call_id=f"{name}-{a}-{b}", tool_name=tool, tool_kwargs={"a": a, "b": b}
        )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])

    return MockFunctionCallingLLM(response_generator=respond, is_chat_model=True)


async def ask_agent(llm: PickLLM, question: str, *, streaming: bool) -> str:
    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=streaming)
    output: object = await agent.run(user_msg=question)
    assert isinstance(output, AgentOutput)
    return output.response.content or ""


def main() -> dict[str, object]:
    llm = PickLLM(
        models={"cheap": scripted("cheap"), "premium": scripted("premium")},
        prices={"cheap": (0.15, 0.6), "premium": (3.0, 15.0)},
        policy="ucb1",
        seed=0,
    )
    answers = [
        asyncio.run(ask_agent(llm, "What is 2 plus 3?", streaming=False)),
        asyncio.run(ask_agent(llm, "What is 6 times 7?", streaming=True)),
    ]
    direct = llm.predict_and_call(TOOLS, user_msg="What is 10 plus 32?").response
    for answer in answers:
        print("agent:", answer)
    print("predict_and_call:", direct)

    mixed = PickLLM(
        models={"chat-only": MockLLM(), "tools": scripted("tools")},
        cost=0.0,
        policy="random",
        seed=0,
    )
    served = [
        mixed.chat_with_tools(TOOLS, user_msg="What is 4 times 5?").additional_kwargs["pickllm"][
            "model"
        ]
        for _ in range(5)
    ]
    print("function-calling pool:", mixed.metadata.is_function_calling_model, "| served by", served)
    print({name: s.calls for name, s in llm.stats().items()})
    return {
        "answers": answers,
        "predict_and_call": direct,
        "calls": {name: s.calls for name, s in llm.stats().items()},
        "mixed_served_by": served,
        "mixed_is_function_calling": mixed.metadata.is_function_calling_model,
    }


if __name__ == "__main__":
    main()
