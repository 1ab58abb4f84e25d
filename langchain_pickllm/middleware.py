"""``PickLLMMiddleware``: route each model call of a LangChain v1 agent (``create_agent``).

LangChain v1 agents choose their model per call with middleware: ``wrap_model_call``
returns ``handler(request.override(model=...))`` (LangChain's own
``ModelFallbackMiddleware`` and ``ModelRouterMiddleware`` work this way). This middleware
does the same with PickLLM's :class:`~pickllm.engine.Engine`: every model call of the
agent loop is routed by the router's policy, run through the engine (retries, fallbacks
along the policy's ranking, failures recorded), timed, costed from the answer's
``usage_metadata`` and learned from (an evaluator's score, ``feedback()``, or at once
without a quality score).

The tool-loop rule: a model call whose messages end with tool results answering an
``AIMessage`` this middleware routed is served by the model that made those tool calls
(pinned: probability 1, no fallback, still recorded and learned from). So the model that
starts a tool-calling turn keeps it until it answers without tool calls (the final
answer of that agent step); the next call after a new user message is routed afresh.

A LangGraph interrupt raised inside the model call (by a middleware listed after this
one) passes through at once: no retry, no other model, nothing recorded or learned.

Unlike :class:`~langchain_pickllm.ChatPickLLM` (one chat model that forwards inline, one
LLM run per call), the middleware calls the chosen model through the agent's own model
node: each call is the chosen model's own LLM run, with its own ``ls_provider`` and
``ls_model_name`` in LangSmith, and the routing decision in that run's metadata
(``pickllm_*`` keys, set with ``langsmith.tracing_context``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ModelRequest,
    ModelResponse,
)
from langchain.agents.structured_output import ProviderStrategy
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.errors import GraphBubbleUp
from langsmith.run_helpers import get_tracing_context, tracing_context
from pydantic import ValidationError

from langchain_pickllm._translate import (
    _message_text,
    _reported_cost,
    _usage,
    capabilities_of,
    model_name_of,
    query_and_prompt,
    tool_loop_model,
)
from langchain_pickllm.tracing import decision_metadata
from pickllm.beliefs import Belief, Explanation
from pickllm.engine import Answer, Engine, Request, RoutingSettings
from pickllm.errors import ConfigError
from pickllm.pricing import Usage
from pickllm.router import CandidateStats
from pickllm.types import Candidate, Decision

__all__ = ["PickLLMMiddleware"]


class _Interrupted(BaseException):
    """Carries a LangGraph interrupt (``GraphBubbleUp``) through the engine unrecorded.

    The engine records every ``Exception`` an attempt raises as a failure of the model
    (and may retry or fall back); an interrupt is control flow, not a failure, so it
    crosses the engine as a ``BaseException`` and is raised again as itself.
    """

    def __init__(self, interrupt: GraphBubbleUp) -> None:
        super().__init__()
        self.interrupt = interrupt


def _named(models: Mapping[str, BaseChatModel] | Sequence[BaseChatModel]) -> dict[str, Any]:
    """``models`` as a mapping name -> chat model (a list is named by ``model_name``)."""
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, BaseChatModel) or not isinstance(models, Sequence):
        msg = (
            "models must be a mapping name -> chat model or a list of chat models, "
            f"got {type(models).__name__}"
        )
        raise ConfigError(msg)
    else:
        named = {}
        for model in models:
            name = model_name_of(model) if isinstance(model, BaseChatModel) else None
            if name is None:
                msg = (
                    f"models must be LangChain chat models with a model_name, got "
                    f"{type(model).__name__}; pass a mapping name -> chat model to name them"
                )
                raise ConfigError(msg)
            if name in named:
                msg = (
                    f"two models are named {name!r}; pass models as a mapping "
                    "name -> chat model to give them distinct names"
                )
                raise ConfigError(msg)
            named[name] = model
    for name, model in named.items():
        if not isinstance(model, BaseChatModel):
            msg = f"models[{name!r}] must be a LangChain chat model, got {type(model).__name__}"
            raise ConfigError(msg)
    return named


def _ai_message(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


class _AgentCalls:
    """The engine's ``Calls`` for one agent model call: the agent's own model handler."""

    __slots__ = ("decision", "handler", "models", "request")

    def __init__(
        self,
        models: Mapping[str, BaseChatModel],
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Any],
    ) -> None:
        self.models = models
        self.request = request
        self.handler = handler
        self.decision: Decision | None = None

    def routed(self, decision: Decision) -> None:
        """Remember the decision (the engine's ``on_route``), for the traces."""
        self.decision = decision

    def _traced(self, candidate: Candidate) -> Any:
        """The chosen model's run gets the decision in its metadata (LangSmith)."""
        if self.decision is None:  # pragma: no cover - the engine routes first
            return contextlib.nullcontext()
        # The current context carried over (LangSmith's own idiom), the metadata extended:
        # a caller's project, tags and metadata still apply to the model's run.
        current = get_tracing_context()
        metadata = {
            **(current.get("metadata") or {}),
            **decision_metadata(self.decision, candidate.name),
        }
        return tracing_context(**{**current, "metadata": metadata})

    def call(self, candidate: Candidate) -> ModelResponse[Any]:
        try:
            with self._traced(candidate):
                return cast(
                    "ModelResponse[Any]",
                    self.handler(self.request.override(model=self.models[candidate.name])),
                )
        except GraphBubbleUp as exc:
            raise _Interrupted(exc) from exc

    async def acall(self, candidate: Candidate) -> ModelResponse[Any]:
        try:
            with self._traced(candidate):
                return cast(
                    "ModelResponse[Any]",
                    await self.handler(self.request.override(model=self.models[candidate.name])),
                )
        except GraphBubbleUp as exc:
            raise _Interrupted(exc) from exc

    # The engine streams only for stream()/astream() of a wrapper; an agent's model call
    # is one whole answer (tokens reach LangGraph's "messages" stream by callbacks).
    def stream(self, candidate: Candidate) -> Iterator[Any]:  # pragma: no cover - never used
        msg = f"the agent middleware does not stream ({candidate.name})"
        raise NotImplementedError(msg)

    def astream(self, candidate: Candidate) -> Any:  # pragma: no cover - never used
        msg = f"the agent middleware does not stream ({candidate.name})"
        raise NotImplementedError(msg)

    def usage(self, candidate: Candidate, answer: Any) -> Usage:  # noqa: ARG002 - protocol
        message = _ai_message(answer)
        if message is None:
            return Usage()
        return _usage(message.usage_metadata, _reported_cost(message.response_metadata))

    def text(self, answer: Any) -> str:
        message = _ai_message(answer)
        return "" if message is None else _message_text(message)

    def chunks_usage(self, candidate: Candidate, chunks: list[Any]) -> Usage:  # pragma: no cover
        msg = f"the agent middleware does not stream ({candidate.name}, {len(chunks)} chunks)"
        raise NotImplementedError(msg)

    def chunks_text(self, chunks: list[Any]) -> str:  # pragma: no cover - never used
        msg = f"the agent middleware does not stream ({len(chunks)} chunks)"
        raise NotImplementedError(msg)

    def as_chunks(self, answer: ModelResponse[Any]) -> list[Any]:  # pragma: no cover
        return [answer]


class PickLLMMiddleware(AgentMiddleware):
    """Agent middleware that routes each model call of ``create_agent`` and learns.

    Setup:
        ``pip install "pickllm[langchain]"`` (the middleware needs ``langchain``, the
        agents package, besides ``langchain-core``). The agent's own ``model`` is only a
        placeholder: every call is served by one of ``models``.

    Routing:
        Each model call of the agent loop is one routed call of the middleware's
        :class:`~pickllm.engine.Engine` (the router's policy picks; retries and
        fallbacks along its ranking; time, cost from ``usage_metadata`` and errors
        recorded; a quality score from ``evaluator`` or ``feedback()``). Calls that bind
        tools go only to models that can call tools; a ``ProviderStrategy`` response
        format only to models with native structured output.

    Tool loops:
        A call whose messages end with tool results answering a call this middleware
        routed is served by the model that made those tool calls (pinned, probability
        1), so one model keeps a tool-calling turn until its final answer.

    The answer's ``AIMessage`` carries ``response_metadata["pickllm"]`` (as
    ``ChatPickLLM``'s: ``decision_id``, ``model``, ``probability``, ``policy``,
    ``cost_usd``, ``latency_s``, ...).

    Args:
        models: the candidates, as a mapping name -> chat model or a list named by each
            model's ``model_name`` (or ``model``).
        **settings: the routing settings of :class:`pickllm.engine.RoutingSettings`, the
            same as ``ChatPickLLM``'s (``prices``, ``policy``, ``quality``, ``cost``,
            ``latency``, ``objective``, ``evaluator``, ``evaluate_in_background``,
            ``await_feedback``, ``seed``, ``retry``, ``timeout``, ``deadline``,
            ``router``, ``capabilities``, ``context_key`` (of the messages), ``clock``,
            ``sleep``, ``async_sleep``, breaker and budget settings).

    Raises:
        ConfigError: a setting is not allowed (a missing price, an unknown setting, a
            router whose candidates are not the models).

    Examples:
        >>> from langchain.agents import create_agent
        >>> from langchain_core.tools import tool
        >>> from langchain_pickllm import FakeToolChatModel, PickLLMMiddleware
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> small = FakeToolChatModel(model="small", answer="6")
        >>> large = FakeToolChatModel(model="large", answer="Six.")
        >>> router = PickLLMMiddleware(models=[small, large], policy="cheapest",
        ...                            prices={"small": (0.1, 0.4), "large": (2.5, 10.0)})
        >>> agent = create_agent(model=small, tools=[add], middleware=[router])
        >>> out = agent.invoke({"messages": [("user", "What is 3 + 3?")]})
        >>> [m.response_metadata["pickllm"]["model"] for m in out["messages"]
        ...  if m.type == "ai"]
        ['small', 'small']
        >>> router.stats()["small"].calls
        2
    """

    def __init__(
        self,
        *,
        models: Mapping[str, BaseChatModel] | Sequence[BaseChatModel],
        **settings: Any,
    ) -> None:
        super().__init__()
        self.models: dict[str, BaseChatModel] = _named(models)
        unknown = sorted(set(settings) - set(RoutingSettings.model_fields))
        if unknown:
            msg = (
                f"PickLLMMiddleware got unknown setting(s) {unknown}; allowed: models and "
                f"{sorted(RoutingSettings.model_fields)}"
            )
            raise ConfigError(msg)
        try:
            routing = RoutingSettings(**settings)
        except ValidationError as exc:
            raise ConfigError.from_validation("PickLLMMiddleware", exc) from exc
        self.settings = routing
        detected = {name: capabilities_of(model) for name, model in self.models.items()}
        self.engine: Engine = routing.build_engine(list(self.models), detected)

    def __repr__(self) -> str:
        return f"PickLLMMiddleware(models={list(self.models)}, router={self.engine.router!r})"

    # ------------------------------------------------------------------ public API
    def stats(self) -> dict[str, CandidateStats]:
        """Per candidate: calls, errors, mean reward, cost and latency."""
        return self.engine.router.stats()

    def feedback(self, decision_id: str, score: float) -> float | None:
        """Join a delayed score to a routed call (``response_metadata["pickllm"]``'s id).

        Raises:
            UnknownDecisionError: the call is not waiting for a score.
        """
        return self.engine.feedback(decision_id, score)

    def beliefs(self) -> dict[str, Belief]:
        """Each model's current estimate under the policy (``Router.beliefs``)."""
        return self.engine.router.beliefs()

    def explain(self, query: str, **kwargs: Any) -> Explanation:
        """Why ``query`` would go where it goes, without routing it (``Router.explain``).

        ``kwargs``: ``key``, ``needs_tool_calling``, ``needs_structured_output``, ``draws``.
        """
        return self.engine.router.explain(query, **kwargs)

    # ------------------------------------------------------------------ translation
    def _request(self, request: ModelRequest[Any]) -> Request:
        messages: list[BaseMessage] = list(request.messages)
        if not messages:
            msg = "the agent's model call has no messages"
            raise ConfigError(msg)
        query, prompt = query_and_prompt(messages)
        system = request.system_message
        if system is not None:
            prompt = f"{system.text}\n{prompt}"
        response_format = request.response_format
        context_key = self.settings.context_key
        return Request(
            query=query,
            prompt=prompt,
            key=None if context_key is None else context_key(messages),
            # A ToolStrategy (or an AutoStrategy falling back to one) answers by a tool call.
            needs_tool_calling=bool(request.tools)
            or (response_format is not None and not isinstance(response_format, ProviderStrategy)),
            needs_structured_output=isinstance(response_format, ProviderStrategy),
            tool_loop_model=tool_loop_model(messages),
            evaluator_kwargs={"messages": messages},
        )

    @staticmethod
    def _tagged(answer: Answer[ModelResponse[Any]]) -> ModelResponse[Any]:
        """The response, its ``AIMessage`` a copy carrying the routing facts."""
        response = answer.value
        info = answer.info()
        result = [
            m.model_copy(update={"response_metadata": {**m.response_metadata, "pickllm": info}})
            if isinstance(m, AIMessage)
            else m
            for m in response.result
        ]
        return ModelResponse(result=result, structured_response=response.structured_response)

    # ------------------------------------------------------------------ hooks
    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Route the model call, run it on the chosen model, record and learn."""
        calls = _AgentCalls(self.models, request, handler)
        try:
            answer = self.engine.run(self._request(request), calls, on_route=calls.routed)
        except _Interrupted as stop:
            self._release(calls)
            raise stop.interrupt from None
        return self._tagged(answer)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        calls = _AgentCalls(self.models, request, handler)
        try:
            answer = await self.engine.arun(self._request(request), calls, on_route=calls.routed)
        except _Interrupted as stop:
            self._release(calls)
            raise stop.interrupt from None
        return self._tagged(answer)

    def _release(self, calls: _AgentCalls) -> None:
        """An interrupted call is not learned from: its decision is closed unrecorded."""
        if calls.decision is not None:
            self.engine.router.release(calls.decision.decision_id)
