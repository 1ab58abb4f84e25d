"""The translation between LlamaIndex and the core engine, one call at a time.

* messages: the query (last user message), PickLLM's tag of a tool call's model
  (:data:`MODEL_TAG`), read back to keep a tool loop on one model and removed before the
  messages reach a model;
* usage: what a response reports in ``raw`` (as LlamaIndex's token counter reads it), and
  ``raw["usage"]`` completed with what the cost was computed from;
* models: naming the LLMs and reading their capabilities;
* :class:`LlamaIndexCalls`: the engine's :class:`~pickllm.engine.Calls` for one call.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
)
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM

from pickllm.engine import Answer
from pickllm.errors import ConfigError
from pickllm.pricing import Usage
from pickllm.types import Candidate

__all__ = [
    "MODEL_TAG",
    "LlamaIndexCalls",
    "can_call_tools",
    "detected_capabilities",
    "identity_of",
    "message_text",
    "name_models",
    "query_of",
    "reported_usage",
    "response_text",
    "stream_text",
    "tool_loop_model",
    "untagged",
    "with_usage",
]

MODEL_TAG = "pickllm_model"
"""Key, in a tool call's ``message.additional_kwargs``, of the model that made it."""

R = TypeVar("R", ChatResponse, CompletionResponse)


# ---------------------------------------------------------------------- messages
def message_text(message: ChatMessage) -> str:
    """The text of a message ("" for none)."""
    return message.content or ""


def query_of(messages: Sequence[ChatMessage]) -> str:
    """The last user message (the question), else the last message."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


def tool_loop_model(messages: Sequence[ChatMessage]) -> str | None:
    """The model whose tool call the trailing tool results answer, if PickLLM tagged it."""
    i = len(messages)
    while i and messages[i - 1].role == MessageRole.TOOL:
        i -= 1
    if i == len(messages) or i == 0 or messages[i - 1].role != MessageRole.ASSISTANT:
        return None
    tag = messages[i - 1].additional_kwargs.get(MODEL_TAG)
    return tag if isinstance(tag, str) else None


def untagged(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The messages without PickLLM's tag, which some providers would send to the model."""
    return [
        m.model_copy(
            update={
                "additional_kwargs": {
                    k: v for k, v in m.additional_kwargs.items() if k != MODEL_TAG
                }
            }
        )
        if MODEL_TAG in m.additional_kwargs
        else m
        for m in messages
    ]


# ---------------------------------------------------------------------- text and usage
def response_text(response: ChatResponse | CompletionResponse) -> str:
    """The text of a response."""
    if isinstance(response, ChatResponse):
        return response.message.content or ""
    return response.text or ""


def stream_text(chunks: Sequence[ChatResponse | CompletionResponse]) -> str:
    """The text of a stream: its deltas, else the last chunk's text."""
    deltas = [c.delta for c in chunks if c.delta]
    if deltas:
        return "".join(deltas)
    return response_text(chunks[-1]) if chunks else ""


_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count")
_COST_KEYS = ("cost_usd", "cost")


def _usage_dict(raw: Any) -> dict[str, Any] | None:
    """The usage a provider reported in ``raw``, read as LlamaIndex's token counter does."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        try:
            raw = dict(raw)
        except (TypeError, ValueError):
            return None
    usage = raw.get("usage", raw.get("usage_metadata"))
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        if not callable(dump):
            return None
        usage = dump()
    return dict(usage)


def _count(usage: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _cost(usage: Mapping[str, Any]) -> float | None:
    for key in _COST_KEYS:
        value = usage.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and value >= 0:
            return float(value)
    return None


def reported_usage(response: ChatResponse | CompletionResponse) -> Usage:
    """The usage (and cost) a response reports in ``raw``; None where it reports none."""
    usage = _usage_dict(response.raw)
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=_count(usage, _INPUT_KEYS),
        output_tokens=_count(usage, _OUTPUT_KEYS),
        cost_usd=_cost(usage),
    )


def with_usage(raw: Any, input_tokens: int, output_tokens: int, *, force: bool) -> Any:
    """``raw`` with the call's token counts in ``raw["usage"]``.

    Counts the model reported are kept; missing ones (or, with ``force``, all of them: a
    plan's usage is the sum over its members) are set to what the cost was computed from.
    A ``raw`` that is neither None nor a dict is a provider's object: left as it is.
    """
    if raw is not None and not isinstance(raw, dict):
        return raw
    reported = _usage_dict(raw) or {}
    complete = (
        _count(reported, _INPUT_KEYS) is not None and _count(reported, _OUTPUT_KEYS) is not None
    )
    if complete and not force:
        return raw
    usage = {
        **reported,
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    return {**(raw or {}), "usage": usage}


# ---------------------------------------------------------------------- models
def name_models(models: Mapping[str, LLM] | Sequence[LLM]) -> dict[str, LLM]:
    """The models by name: a mapping as given, a list named by ``metadata.model_name``."""
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, Sequence) and not isinstance(models, str):
        named = {}
        for llm in models:
            name = llm.metadata.model_name if isinstance(llm, LLM) else None
            if name in named:
                msg = (
                    f"two models are both named {name!r} by metadata.model_name; "
                    "pass models as a mapping name -> LLM instead"
                )
                raise ConfigError(msg)
            named[str(name)] = llm
    else:
        msg = f"models must be a mapping name -> LLM or a list of LLMs, got {type(models).__name__}"
        raise TypeError(msg)
    for name, llm in named.items():
        if not isinstance(name, str) or not name:
            msg = f"model names must be non-empty strings, got {name!r}"
            raise ConfigError(msg)
        if not isinstance(llm, LLM):
            msg = f"model {name!r} must be a LlamaIndex LLM, got {type(llm).__name__}"
            raise TypeError(msg)
    return named


def can_call_tools(llm: LLM) -> bool:
    """Whether an LLM can serve tool calls."""
    return isinstance(llm, FunctionCallingLLM) and bool(llm.metadata.is_function_calling_model)


_PROVIDER_PACKAGE = "llama_index.llms."
"""Provider integrations live in ``llama_index.llms.<provider>`` (``openai``,
``anthropic``, ``google_genai``, ``mistralai``, ...)."""


def identity_of(llm: LLM) -> dict[str, str]:
    """The LLM's provider (from its integration package) and model name.

    The model name is ``metadata.model_name``; the provider is the ``<provider>`` of the
    ``llama_index.llms.<provider>`` package its class comes from, when it does.
    """
    identity: dict[str, str] = {}
    module = type(llm).__module__
    if module.startswith(_PROVIDER_PACKAGE):
        identity["provider"] = module[len(_PROVIDER_PACKAGE) :].split(".", 1)[0]
    name = llm.metadata.model_name
    if isinstance(name, str) and name:
        identity["model"] = name
    return identity


def detected_capabilities(models: Mapping[str, LLM]) -> dict[str, dict[str, Any]]:
    """What each LLM can do (the core's capability names) and who it is.

    Its identity (``provider``, ``model``) is how its price is looked up when not given.
    """
    detected: dict[str, dict[str, Any]] = {}
    for name, llm in models.items():
        window = llm.metadata.context_window
        detected[name] = {
            "tool_calling": can_call_tools(llm),
            "max_context_tokens": window if isinstance(window, int) and window > 0 else None,
            **identity_of(llm),
        }
    return detected


# ---------------------------------------------------------------------- one call
class LlamaIndexCalls(Generic[R]):
    """The engine's :class:`~pickllm.engine.Calls` for one LlamaIndex call.

    Args:
        child: the LLM of a model, by name.
        report: called with a stream's answer once the engine has recorded it.
        verb: which LLM methods to call (see below).
        args: their positional arguments.
        kwargs: their keyword arguments.

    ``verb`` names the LLM methods: ``chat`` calls ``chat``/``achat``/``stream_chat``/
    ``astream_chat`` of the candidate's LLM, likewise ``complete`` and ``chat_with_tools``.
    """

    def __init__(
        self,
        child: Callable[[str], LLM],
        report: Callable[[Answer[Any]], None],
        verb: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.child = child
        self.report = report
        self.verb = verb
        self.args = args
        self.kwargs = kwargs
        self.tools = verb == "chat_with_tools"
        self.serving = ""
        self.answers: list[Answer[list[R]]] = []

    def _method(self, candidate: Candidate, prefix: str) -> Any:
        self.serving = candidate.name
        return getattr(self.child(candidate.name), prefix + self.verb)

    def call(self, candidate: Candidate) -> R:
        """The answer of the candidate's LLM."""
        response: R = self._method(candidate, "")(*self.args, **self.kwargs)
        return response

    async def acall(self, candidate: Candidate) -> R:
        """The answer of the candidate's LLM, awaited."""
        response: R = await self._method(candidate, "a")(*self.args, **self.kwargs)
        return response

    def stream(self, candidate: Candidate) -> Iterator[R]:
        """The candidate's LLM's stream of chunks."""
        chunks: Iterator[R] = self._method(candidate, "stream_")(*self.args, **self.kwargs)
        return chunks

    async def astream(self, candidate: Candidate) -> AsyncIterator[R]:
        """The candidate's LLM's async stream of chunks."""
        chunks: AsyncIterator[R] = await self._method(candidate, "astream_")(
            *self.args, **self.kwargs
        )
        async for chunk in chunks:
            yield chunk

    def usage(self, candidate: Candidate, answer: Any) -> Usage:
        """The usage an answer reports."""
        del candidate
        return reported_usage(answer)

    def text(self, answer: Any) -> str:
        """The text of an answer."""
        return response_text(answer)

    def chunks_usage(self, candidate: Candidate, chunks: list[R]) -> Usage:
        """The usage a stream reports (on one chunk, usually the last)."""
        del candidate
        for chunk in reversed(chunks):
            usage = reported_usage(chunk)
            if usage != Usage():
                return usage
        return Usage()

    def chunks_text(self, chunks: list[R]) -> str:
        """The text of a stream's chunks."""
        return stream_text(chunks)

    def as_chunks(self, answer: Any) -> list[R]:
        """A whole answer as one chunk (its delta is its text)."""
        if answer.delta is None:
            answer.delta = response_text(answer)
        return [answer]

    def finish(self, answer: Answer[list[R]]) -> None:
        """The engine's ``on_finish`` of a stream: keep the answer, report the call."""
        self.answers.append(answer)
        self.report(answer)
