"""Offline LLMs and handlers shared by the LlamaIndex tests."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM


class UsageLLM(CustomLLM):
    """Answers with a fixed text and reports its usage in ``raw`` like a provider SDK.

    It fails its first ``fail_times`` calls with ``error``, to exercise retries/fallback.
    """

    answer: str = "ok"
    input_tokens: int = 10
    output_tokens: int = 5
    fail_times: int = 0
    error: type[Exception] = ConnectionError
    window: int = 4096
    name: str = "usage-llm"
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.window, num_output=64, model_name=self.name)

    def _count(self) -> None:
        with self._lock:
            self._calls += 1
            failing = self._calls <= self.fail_times
        if failing:
            msg = f"{self.name} is down"
            raise self.error(msg)

    def _usage(self) -> dict[str, Any]:
        return {
            "usage": {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            }
        }

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._count()
        return CompletionResponse(text=self.answer, raw=self._usage())

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self._count()
        words = self.answer.split(" ")

        def gen() -> CompletionResponseGen:
            text = ""
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                text += delta
                last = i == len(words) - 1
                yield CompletionResponse(
                    text=text, delta=delta, raw=self._usage() if last else None
                )

        return gen()


def adder(tag: str) -> MockFunctionCallingLLM:
    """A tool-calling mock that calls ``add(a=2, b=3)`` and then reports the result."""
    counter = iter(range(1_000_000))

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        results = [m for m in messages if m.role == MessageRole.TOOL]
        if results:
            return ChatMessage(
                role=MessageRole.ASSISTANT, content=f"[{tag}] the sum is {results[-1].content}"
            )
        if kwargs.get("tools"):
            block = ToolCallBlock(
                tool_call_id=f"call-{tag}-{next(counter)}",
                tool_name="add",
                tool_kwargs={"a": 2, "b": 3},
            )
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[block])
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"[{tag}] {messages[-1].content}")

    return MockFunctionCallingLLM(response_generator=respond, is_chat_model=True)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class EventCounter(BaseEventHandler):
    """Counts instrumentation events by class name."""

    counts: Counter[str] = Field(default_factory=Counter)
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventCounter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.counts[event.class_name()] += 1
        self.events.append(event)

    def llm_starts(self) -> int:
        return sum(
            n
            for name, n in self.counts.items()
            if name in {"LLMChatStartEvent", "LLMCompletionStartEvent"}
        )
