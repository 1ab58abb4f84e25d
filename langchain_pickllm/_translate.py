"""LangChain <-> engine translation for ``ChatPickLLM``: requests, forwarding, answers.

* :class:`Child`: what ``ChatPickLLM`` knows of one pool model (read once, at construction).
* :class:`LangChainCalls`: the engine's ``Calls`` for one call; it forwards *inline* to the
  chosen child's own ``_generate``/``_agenerate``/``_stream``/``_astream`` with the
  keyword arguments the child's own ``bind_tools`` produced.
* :func:`query_and_prompt`, :func:`tool_loop_model`: the request's texts and tool loop.
* :func:`tag`: the routing facts on the answer's message.
"""

# Inline forwarding calls the children's documented subclass hooks (_generate, _stream,
# ...), which are private by name only.
# ruff: noqa: SLF001

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableBinding

from pickllm.engine import Answer
from pickllm.pricing import Usage
from pickllm.types import Candidate

__all__ = [
    "Child",
    "LangChainCalls",
    "capabilities_of",
    "detected_of",
    "identity_of",
    "model_name_of",
    "query_and_prompt",
    "run_key",
    "tag",
    "tool_loop_model",
]

_RUN_PREFIX = "lc_run--"


# ---------------------------------------------------------------------- the pool
def model_name_of(model: BaseChatModel) -> str | None:
    """The model's own name (``model_name``, ``model`` or ``model_id``), if it has one."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def capabilities_of(model: BaseChatModel) -> dict[str, Any]:
    """What a chat model says it can do: its ``profile``, and whether it binds tools."""
    profile: Mapping[str, Any] = model.profile or {}
    can_bind = type(model).bind_tools is not BaseChatModel.bind_tools
    return {
        "tool_calling": profile.get("tool_calling") if can_bind else False,
        "structured_output": profile.get("structured_output") if can_bind else False,
        "max_context_tokens": profile.get("max_input_tokens"),
    }


def identity_of(model: BaseChatModel) -> dict[str, str]:
    """The model's provider and model name, by which its price is looked up.

    From LangSmith's ``_get_ls_params()`` (``ls_provider``, ``ls_model_name``), falling
    back to the ``model_name``/``model``/``model_id`` attribute for the name.
    """
    try:
        params: Mapping[str, Any] = model._get_ls_params()
    except Exception:  # noqa: BLE001 - a model's tracing facts are optional
        params = {}
    identity: dict[str, str] = {}
    provider = params.get("ls_provider")
    if isinstance(provider, str) and provider:
        identity["provider"] = provider
    name = params.get("ls_model_name")
    if not isinstance(name, str) or not name:
        name = model_name_of(model)
    if name:
        identity["model"] = name
    return identity


def detected_of(model: BaseChatModel) -> dict[str, Any]:
    """What ``ChatPickLLM`` tells the core of a model: capabilities and identity."""
    return {**capabilities_of(model), **identity_of(model)}


@dataclass(frozen=True, slots=True)
class Child:
    """One pool model and what forwarding to it needs.

    Args:
        name: its name in the pool.
        model: the chat model.
        model_name: the name its answers carry when it does not set ``model_name``.
        takes_run_manager: its ``_generate`` accepts ``run_manager``.
        ls_params: its LangSmith ``ls_provider``/``ls_model_name``.
    """

    name: str
    model: BaseChatModel
    model_name: str
    takes_run_manager: bool
    ls_params: Mapping[str, str]

    @classmethod
    def of(cls, name: str, model: BaseChatModel) -> Child:
        """Read ``model`` once."""
        try:
            takes = "run_manager" in inspect.signature(model._generate).parameters
        except (TypeError, ValueError):
            takes = False
        try:
            params: Mapping[str, Any] = model._get_ls_params()
        except Exception:  # noqa: BLE001 - tracing facts are optional
            params = {}
        ls = {k: v for k in ("ls_provider", "ls_model_name") if isinstance(v := params.get(k), str)}
        return cls(name, model, model_name_of(model) or name, takes, ls)


# ---------------------------------------------------------------------- requests
def _text(message: BaseMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else str(message.text)


def query_and_prompt(messages: Sequence[BaseMessage]) -> tuple[str, str]:
    """The last user message's text (what is routed and judged) and the whole prompt's."""
    if len(messages) == 1:
        text = _text(messages[0])
        return text, text
    texts = [_text(m) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if isinstance(m, HumanMessage)]
    query = users[-1] if users else (texts[-1] if texts else "")
    return query, "\n".join(texts)


def tool_loop_model(messages: Sequence[BaseMessage]) -> str | None:
    """The pool model whose tool call the trailing tool results answer, if any."""
    i = len(messages) - 1
    if i < 0 or not isinstance(messages[i], ToolMessage):
        return None
    while i >= 0 and isinstance(messages[i], ToolMessage):
        i -= 1
    if i < 0 or not isinstance(messages[i], AIMessage):
        return None
    routed = messages[i].response_metadata.get("pickllm")
    model = routed.get("model") if isinstance(routed, Mapping) else None
    return model if isinstance(model, str) else None


def run_key(id_: str | uuid.UUID) -> str:
    """The run id in a LangChain run id, UUID or message id (``lc_run--<uuid>[-i]``)."""
    if isinstance(id_, uuid.UUID):
        return str(id_)
    if id_.startswith(_RUN_PREFIX):
        return id_[len(_RUN_PREFIX) : len(_RUN_PREFIX) + 36]
    return id_


# ---------------------------------------------------------------------- answers
def _reported_cost(metadata: Mapping[str, Any]) -> float | None:
    cost = metadata.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return float(cost)
    return None


def _usage(usage: UsageMetadata | None, cost: float | None) -> Usage:
    if not usage:
        return Usage(cost_usd=cost)
    return Usage(
        input_tokens=int(usage["input_tokens"]),
        output_tokens=int(usage["output_tokens"]),
        cost_usd=cost,
    )


def _message_text(message: BaseMessage) -> str:
    text = _text(message)
    calls = getattr(message, "tool_calls", None)
    if calls:
        # Tool-call arguments are output tokens too (estimated when not reported).
        text += "".join(json.dumps(c.get("args", {})) for c in calls)
    return text


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    generation = result.generations[0]
    chunk = AIMessageChunk(**generation.message.model_dump(exclude={"type", "chunk_position"}))
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


def _summed_usage(results: Sequence[ChatResult]) -> UsageMetadata | None:
    total: UsageMetadata | None = None
    for result in results:
        usage = getattr(result.generations[0].message, "usage_metadata", None)
        if usage:
            total = usage if total is None else add_usage(total, usage)
    return total


def tag(message: BaseMessage, answer: Answer[Any], child: Child, *, named: bool) -> None:
    """Put the routing facts on the answer's message (built for this call, so in place).

    ``named``: the answer already carries its ``model_name``. A multi-model plan's
    answer carries the usage of every member that ran.
    """
    metadata = message.response_metadata
    if not named:
        metadata["model_name"] = child.model_name
    for key, value in child.ls_params.items():
        metadata.setdefault(key, value)
    metadata["pickllm"] = answer.info()
    values = answer.result.values
    if len(values) > 1 and isinstance(message, AIMessage):
        total = _summed_usage(values)
        if total is not None:
            message.usage_metadata = total


def has_model_name(chunks: Sequence[ChatGenerationChunk]) -> bool:
    """Whether a stream's chunks name their model already."""
    return any(
        "model_name" in c.message.response_metadata or "model_name" in (c.generation_info or {})
        for c in chunks
    )


# ---------------------------------------------------------------------- forwarding
class LangChainCalls:
    """The engine's ``Calls`` for one LangChain call: inline forwarding to the pool.

    Args:
        children: the pool.
        messages: the call's messages.
        stop: its stop sequences.
        run_manager: its LLM run's manager (None in LangChain's stream paths).
        tools: the tools bound to the call, bound again on the chosen child.
        tool_choice: the call's tool choice.
        kwargs: the call's other keyword arguments, passed on.
    """

    __slots__ = ("children", "kwargs", "messages", "run_manager", "stop", "tool_choice", "tools")

    def __init__(  # noqa: PLR0917 - built in one place
        self,
        children: Mapping[str, Child],
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: Any,
        tools: list[Any] | None,
        tool_choice: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self.children = children
        self.messages = messages
        self.stop = stop
        self.run_manager = run_manager
        self.tools = tools
        self.tool_choice = tool_choice
        self.kwargs = kwargs

    def _bind(self, candidate: Candidate) -> tuple[BaseChatModel, dict[str, Any]]:
        """The child and its keyword arguments for this call (tools bound its own way)."""
        child = self.children[candidate.name].model
        if not self.tools:
            return child, dict(self.kwargs)
        extra = {} if self.tool_choice is None else {"tool_choice": self.tool_choice}
        runnable: Any = child.bind_tools(self.tools, **extra)
        bound: dict[str, Any] = {}
        while isinstance(runnable, RunnableBinding):
            bound = {**runnable.kwargs, **bound}
            runnable = runnable.bound
        if runnable is not child:
            msg = (
                f"{candidate.name}: bind_tools must return a binding of the model itself "
                f"(self.bind(tools=...)), got {type(runnable).__name__}"
            )
            raise TypeError(msg)
        return child, {**bound, **self.kwargs}

    def _call_kwargs(self, candidate: Candidate) -> tuple[BaseChatModel, dict[str, Any]]:
        child, kw = self._bind(candidate)
        if self.run_manager is not None and self.children[candidate.name].takes_run_manager:
            kw["run_manager"] = self.run_manager
        return child, kw

    def call(self, candidate: Candidate) -> ChatResult:
        """The child's answer."""
        child, kw = self._call_kwargs(candidate)
        if child.rate_limiter is not None:
            child.rate_limiter.acquire(blocking=True)
        return child._generate(self.messages, stop=self.stop, **kw)

    async def acall(self, candidate: Candidate) -> ChatResult:
        """The child's answer, awaited."""
        child, kw = self._call_kwargs(candidate)
        if child.rate_limiter is not None:
            await child.rate_limiter.aacquire(blocking=True)
        return await child._agenerate(self.messages, stop=self.stop, **kw)

    def stream(self, candidate: Candidate) -> Iterator[ChatGenerationChunk]:
        """The child's chunks (one, if it cannot stream)."""
        child, kw = self._bind(candidate)
        if child.rate_limiter is not None:
            child.rate_limiter.acquire(blocking=True)
        if type(child)._stream is BaseChatModel._stream:
            yield _as_chunk(child._generate(self.messages, stop=self.stop, **kw))
            return
        # run_manager=None: this model's run reports the tokens, once.
        yield from child._stream(self.messages, stop=self.stop, run_manager=None, **kw)

    async def astream(self, candidate: Candidate) -> AsyncIterator[ChatGenerationChunk]:
        """The child's chunks, async (one, if it cannot stream)."""
        child, kw = self._bind(candidate)
        if child.rate_limiter is not None:
            await child.rate_limiter.aacquire(blocking=True)
        cls = type(child)
        if cls._stream is BaseChatModel._stream and cls._astream is BaseChatModel._astream:
            yield _as_chunk(await child._agenerate(self.messages, stop=self.stop, **kw))
            return
        async for chunk in child._astream(self.messages, stop=self.stop, run_manager=None, **kw):
            yield chunk

    def usage(self, candidate: Candidate, answer: Any) -> Usage:  # noqa: ARG002 - protocol
        """The usage the child reported (and its cost, as ``response_metadata["cost_usd"]``)."""
        message = answer.generations[0].message
        return _usage(
            getattr(message, "usage_metadata", None), _reported_cost(message.response_metadata)
        )

    def text(self, answer: Any) -> str:
        """The answer's text, tool-call arguments included."""
        return _message_text(answer.generations[0].message)

    def chunks_usage(self, candidate: Candidate, chunks: list[ChatGenerationChunk]) -> Usage:  # noqa: ARG002 - protocol
        """The usage the chunks reported, summed."""
        total: UsageMetadata | None = None
        cost: float | None = None
        for chunk in chunks:
            message = chunk.message
            usage = getattr(message, "usage_metadata", None)
            if usage:
                total = usage if total is None else add_usage(total, usage)
            reported = _reported_cost(message.response_metadata)
            if reported is not None:
                cost = reported if cost is None else cost + reported
        return _usage(total, cost)

    def chunks_text(self, chunks: list[ChatGenerationChunk]) -> str:
        """The chunks' text, tool-call argument fragments included."""
        text = "".join(c.message.text for c in chunks)
        args = "".join(
            str(tc.get("args") or "")
            for c in chunks
            for tc in getattr(c.message, "tool_call_chunks", None) or ()
        )
        return text + args

    def as_chunks(self, answer: Any) -> list[ChatGenerationChunk]:
        """A whole answer as one chunk."""
        return [_as_chunk(answer)]
