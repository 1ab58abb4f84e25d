"""``ReplayChatModel``: a chat model that answers benchmark prompts as a real LLM did.

It looks the last user message up in a recorded data set (:class:`pickllm.replay.ReplayStore`,
by default the bundled RouterBench subset) and answers with the response the named model
really gave, reporting the recorded cost. Examples and tests thus show real model
behaviour (right and wrong answers, real price differences) offline.

Tools are not supported: the recorded calls had none, so ``bind_tools`` is not
implemented and :class:`~langchain_pickllm.ChatPickLLM` never routes tool calls to a
replayed model.
"""

# The hooks keep LangChain's signatures, whose run_manager and kwargs these models ignore.
# ruff: noqa: ARG002

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, InstanceOf, PrivateAttr, ValidationError

from pickllm.errors import PickLLMError
from pickllm.replay import ReplayRecord, ReplayStore

__all__ = ["ReplayChatModel"]

_WORDS = re.compile(r"\S+\s*|\s+")


class ReplayChatModel(BaseChatModel):
    """Answers a recorded benchmark prompt with the named model's real response and cost.

    The prompt is the text of the last user message, looked up verbatim (surrounding
    whitespace ignored). The answer carries:

    * ``usage_metadata``: token counts *estimated* from the texts (RouterBench has none);
    * ``response_metadata``: ``model_name``, ``cost_usd`` (the recorded cost of the real
      call), ``tokens_estimated=True``, and the recorded ``quality`` (correctness),
      ``prompt_id`` and ``task``.

    ``ChatPickLLM`` takes a model's ``response_metadata["cost_usd"]`` as the call's cost,
    so routing over replayed models learns from the real recorded costs.

    Args:
        model_name: a model of the data set (alias ``model``), e.g. ``"gpt-4-1106-preview"``.
        dataset: a bundled data set with responses (``"routerbench_subset"``) or a path.
        store: a ready :class:`pickllm.replay.ReplayStore` (overrides ``dataset``).

    Raises:
        ConfigError: the model is not in the data set (the message lists its models).
        UnknownPromptError: on a call, the prompt is not in the data set.

    Examples:
        >>> from pickllm.replay import ReplayStore
        >>> gpt4 = ReplayChatModel(model="gpt-4-1106-preview")
        >>> prompt = ReplayStore.load().prompt_text("arc-challenge.test.1108")
        >>> answer = gpt4.invoke(prompt)
        >>> answer.content, answer.response_metadata["cost_usd"]
        ('D', 0.00533)
        >>> answer.response_metadata["quality"], answer.usage_metadata["output_tokens"]
        (1.0, 1)
        >>> gpt4.invoke("Hello")
        Traceback (most recent call last):
        ...
        pickllm.replay.UnknownPromptError: prompt 'Hello' is not in data set ...
    """

    model_config = ConfigDict(populate_by_name=True)

    model_name: str = Field(alias="model")
    """The replayed model."""
    dataset: str = "routerbench_subset"
    """The recorded data set."""
    store: InstanceOf[ReplayStore] | None = Field(default=None, exclude=True)
    """A ready store; overrides ``dataset``."""

    _store: ReplayStore = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, PickLLMError):
                    raise cause from None
            raise

    def model_post_init(self, context: Any, /) -> None:
        """Load the data set and check the model."""
        super().model_post_init(context)
        self._store = self.store if self.store is not None else ReplayStore.load(self.dataset)
        self._store.check_model(self.model_name)

    @property
    def _llm_type(self) -> str:
        return "pickllm-replay"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "dataset": self.dataset}

    def record(self, messages: list[BaseMessage]) -> ReplayRecord:
        """The recorded call answering ``messages`` (its last user message)."""
        prompt = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        return self._store.lookup(prompt, self.model_name)

    def _answer(
        self, messages: list[BaseMessage], stop: list[str] | None
    ) -> tuple[str, dict[str, Any], UsageMetadata]:
        rec = self.record(messages)
        text = rec.response
        for s in stop or ():
            if s and s in text:
                text = text[: text.index(s)]
        metadata: dict[str, Any] = {
            "model_name": self.model_name,
            "cost_usd": rec.cost_usd,
            "tokens_estimated": rec.tokens_estimated,
            "quality": rec.quality,
            "prompt_id": rec.prompt_id,
            "task": rec.task,
        }
        usage = UsageMetadata(
            input_tokens=rec.input_tokens,
            output_tokens=rec.output_tokens,
            total_tokens=rec.input_tokens + rec.output_tokens,
        )
        return text, metadata, usage

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text, metadata, usage = self._answer(messages, stop)
        message = AIMessage(content=text, response_metadata=metadata, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None
    ) -> Iterator[ChatGenerationChunk]:
        text, metadata, usage = self._answer(messages, stop)
        for word in _WORDS.findall(text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                response_metadata=metadata,
                usage_metadata=usage,
                chunk_position="last",
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages, stop)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop):
            yield chunk
