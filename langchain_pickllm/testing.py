"""An offline chat model that answers text and calls tools, for tests, examples and demos.

LangChain ships no fake chat model that can bind tools, so a router over fakes could never
serve an agent. :class:`FakeToolChatModel` answers deterministically from its settings and
the messages: with tools bound and a user message last, it calls a tool with arguments
made up from the tool's JSON schema; otherwise it answers text. It reports token usage
(estimated, 4 characters per token) and its ``model_name``, streams word by word, has
native async methods, and can be told to raise errors first (to exercise retries and
fallbacks).
"""

# The hooks keep LangChain's signatures, whose run_manager and kwargs these models ignore.
# ruff: noqa: ARG002

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["FakeToolChatModel"]

# One lock for every fake: they are not hot, and a lock attribute would make the models
# impossible to deep-copy.
_LOCK = threading.Lock()
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_WORDS = re.compile(r"\S+\s*|\s+")


def _tokens(text: str) -> int:
    return max(1, -(-len(text) // 4)) if text else 0


def _value_for(schema: dict[str, Any], quoted: str | None) -> Any:
    """A made-up value that satisfies a JSON-schema property."""
    if schema.get("enum"):
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        typed = [o for o in options if o.get("type") != "null"] or options
        return _value_for(typed[0], quoted)
    kind = schema.get("type")
    values: dict[str, Any] = {
        "integer": 3,
        "number": 3.0,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }
    if kind in values:
        return values[kind]
    return quoted if quoted is not None else "pirate"


class FakeToolChatModel(BaseChatModel):
    """A deterministic, offline chat model that can call tools.

    Behaviour per call:

    * errors queued in ``errors`` are raised first, one per call;
    * tools bound and the last message from the user: one tool call, to the tool named
      by ``tool_choice`` (or the first tool), with arguments made up from its schema
      (integer 3, number 3.0, boolean True, string: the first quoted text of the last
      user message, else ``"pirate"``; only required arguments);
    * tools bound, a tool call forced (``tool_choice`` "any", "required" or a name) and a
      tool result last: a call to the first tool not called yet in the conversation (how
      an agent gets its structured response);
    * last message a tool result: ``"The tool said: <result>"``;
    * otherwise ``answer``.

    Usage is reported (estimated at 4 characters per token) unless ``report_usage`` is
    False, and ``response_metadata["model_name"]`` is ``model_name``.

    Args:
        model_name: the model's name (alias ``model``).
        answer: the text answer.
        report_usage: report ``usage_metadata``.
        errors: exceptions to raise, one per call, before answering.

    Examples:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> fake = FakeToolChatModel(model="fake-small", answer="Hi there!")
        >>> fake.invoke("Hello").content
        'Hi there!'
        >>> fake.bind_tools([add]).invoke("What is 3 + 3?").tool_calls[0]["args"]
        {'a': 3, 'b': 3}
        >>> [c.content for c in fake.stream("Hello")]
        ['Hi ', 'there!', '']
    """

    model_config = ConfigDict(populate_by_name=True)

    model_name: str = Field(default="fake-tool-model", alias="model")
    """The model's name, reported in ``response_metadata["model_name"]``."""
    answer: str = "Hello! How can I help?"
    """The text answer."""
    report_usage: bool = True
    """Whether answers carry ``usage_metadata``."""
    errors: list[Exception] = Field(default_factory=list, exclude=True)
    """Exceptions to raise, one per call, before answering."""

    _ids: Iterator[int] = PrivateAttr(default_factory=lambda: itertools.count(1))

    @property
    def _llm_type(self) -> str:
        return "fake-tool-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (converted to OpenAI tool schemas) for the next calls."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # ------------------------------------------------------------------ the answer
    def _raise_queued(self) -> None:
        with _LOCK:
            error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error

    def _tool_call(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ToolCall | None:
        tools = kwargs.get("tools")
        if not tools or not messages:
            return None
        choice = kwargs.get("tool_choice")
        if isinstance(choice, dict):
            choice = choice.get("function", {}).get("name") or choice.get("name")
        functions = [t.get("function", t) for t in tools]
        last = messages[-1]
        if isinstance(last, ToolMessage) and choice not in (None, "auto", "none"):
            # A forced tool call after a tool result (an agent's structured response):
            # call a tool the conversation has not called yet.
            called = {c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
            fresh = [f for f in functions if f.get("name") not in called]
            chosen = (fresh or functions)[0]
        elif isinstance(last, HumanMessage):
            chosen = next((f for f in functions if f.get("name") == choice), functions[0])
        else:
            return None
        quoted = None
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                match = _QUOTED.search(message.text)
                quoted = None if match is None else (match.group(1) or match.group(2))
                break
        params = chosen.get("parameters") or {}
        props = params.get("properties") or {}
        args = {
            name: _value_for(props[name], quoted)
            for name in params.get("required", [])
            if name in props
        }
        with _LOCK:
            number = next(self._ids)
        return ToolCall(
            name=chosen["name"], args=args, id=f"call_{self.model_name}_{number}", type="tool_call"
        )

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None) -> str:
        if messages and isinstance(messages[-1], ToolMessage):
            text = f"The tool said: {messages[-1].text}"
        else:
            text = self.answer
        for s in stop or ():
            if s and s in text:
                text = text[: text.index(s)]
        return text

    def _usage(self, messages: list[BaseMessage], output: str) -> UsageMetadata | None:
        if not self.report_usage:
            return None
        prompt = "\n".join(m.text for m in messages)
        i, o = _tokens(prompt), _tokens(output)
        return UsageMetadata(input_tokens=i, output_tokens=o, total_tokens=i + o)

    def _message(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        self._raise_queued()
        call = self._tool_call(messages, kwargs)
        if call is not None:
            output = json.dumps(call["args"])
            return AIMessage(
                content="",
                tool_calls=[call],
                usage_metadata=self._usage(messages, output),
                response_metadata={"model_name": self.model_name},
            )
        text = self._reply(messages, stop)
        return AIMessage(
            content=text,
            usage_metadata=self._usage(messages, text),
            response_metadata={"model_name": self.model_name},
        )

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        message = self._message(messages, stop, kwargs)
        text = message.text
        words = _WORDS.findall(text) if text else []
        for word in words:
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        tool_chunks = [
            ToolCallChunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(message.tool_calls)
        ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=tool_chunks,
                usage_metadata=message.usage_metadata,
                response_metadata={"model_name": self.model_name},
                chunk_position="last",
            )
        )

    # ------------------------------------------------------------------ BaseChatModel
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._message(messages, stop, kwargs))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._message(messages, stop, kwargs))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages, stop, kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs):
            yield chunk
