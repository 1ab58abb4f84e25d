"""``ReplayLLM``: a LlamaIndex LLM that answers benchmark prompts as a real model did.

A thin wrapper over :class:`pickllm.replay.ReplayStore`: given the text of a prompt of a
bundled data set (``routerbench_subset`` by default), it returns the answer a named model
recorded for it, and reports the recorded cost. It lets examples and tests show real model
behaviour (right and wrong answers, real price differences) offline.

The prompt is the ``complete`` prompt, or the last user message of a ``chat``, sent
verbatim; any other text raises :class:`pickllm.replay.UnknownPromptError` naming a few
prompts that exist. The response's ``raw["usage"]`` carries the recorded ``cost_usd`` and
no token counts (RouterBench has none: PickLLM estimates them and says so), and
``raw["replay"]`` the record's prompt id, task, recorded quality and reference answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from pickllm.replay import ReplayRecord, ReplayStore

__all__ = ["ReplayLLM"]


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            return message.content or ""
    return (messages[-1].content or "") if messages else ""


class ReplayLLM(CustomLLM):
    r"""Answers a bundled benchmark prompt with a real model's recorded response.

    Args:
        model: the recorded model, e.g. ``"gpt-4-1106-preview"`` (see
            ``ReplayStore.load(dataset).models``).
        dataset: the bundled data set with responses.
        context_window: what ``metadata.context_window`` reports.

    Raises:
        ConfigError: the data set does not have ``model`` (the message lists its models).

    Examples:
        >>> from pickllm.replay import ReplayStore
        >>> prompt = ReplayStore.load().prompt_text("winogrande.dev.949")
        >>> llm = ReplayLLM(model="mistralai/mixtral-8x7b-chat")
        >>> response = llm.complete(prompt)
        >>> response.text, response.raw["replay"]["quality"], response.raw["replay"]["reference"]
        ('B\n', 1.0, 'B')
    """

    model: str = Field(description="The recorded model whose answers are replayed.")
    dataset: str = Field(default="routerbench_subset", description="Bundled data set.")
    context_window: int = Field(default=128_000, description="Reported context window.")
    _store: ReplayStore = PrivateAttr()

    def __init__(
        self,
        *,
        model: str,
        dataset: str = "routerbench_subset",
        context_window: int = 128_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=model, dataset=dataset, context_window=context_window, **kwargs)
        self._store = ReplayStore.load(dataset)
        self._store.check_model(model)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name of this class."""
        return "ReplayLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """A chat model named after the replayed model."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=4096,
            is_chat_model=True,
            model_name=self.model,
        )

    def record(self, prompt: str) -> ReplayRecord:
        """The recorded call of this model for ``prompt``.

        Raises:
            UnknownPromptError: the data set has no such prompt.
        """
        return self._store.lookup(prompt, self.model)

    def _raw(self, rec: ReplayRecord) -> dict[str, Any]:
        return {
            "usage": {"cost_usd": rec.cost_usd},
            "replay": {
                "prompt_id": rec.prompt_id,
                "task": rec.task,
                "model": rec.model,
                "quality": rec.quality,
                "reference": rec.reference,
            },
        }

    def _completion(self, prompt: str) -> CompletionResponse:
        rec = self.record(prompt)
        return CompletionResponse(text=rec.response, raw=self._raw(rec))

    def _chat(self, messages: Sequence[ChatMessage]) -> ChatResponse:
        rec = self.record(_last_user_text(messages))
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=rec.response),
            raw=self._raw(rec),
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The recorded answer to ``prompt``."""
        del formatted, kwargs  # a recorded answer does not depend on them
        return self._completion(prompt)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """The recorded answer in one chunk."""
        del formatted, kwargs  # a recorded answer does not depend on them
        response = self._completion(prompt)
        response.delta = response.text

        def gen() -> CompletionResponseGen:
            yield response

        return gen()

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete` (a lookup: nothing to await)."""
        del formatted, kwargs  # a recorded answer does not depend on them
        return self._completion(prompt)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        del formatted, kwargs  # a recorded answer does not depend on them
        response = self._completion(prompt)
        response.delta = response.text

        async def gen() -> CompletionResponseAsyncGen:
            yield response

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """The recorded answer to the last user message."""
        del kwargs  # a recorded answer does not depend on them
        return self._chat(messages)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """The recorded answer to the last user message, in one chunk."""
        del kwargs  # a recorded answer does not depend on them
        response = self._chat(messages)
        response.delta = response.message.content

        def gen() -> ChatResponseGen:
            yield response

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        del kwargs  # a recorded answer does not depend on them
        return self._chat(messages)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        del kwargs  # a recorded answer does not depend on them
        response = self._chat(messages)
        response.delta = response.message.content

        async def gen() -> ChatResponseAsyncGen:
            yield response

        return gen()
