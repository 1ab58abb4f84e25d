"""``PickLLM``: a LlamaIndex LLM that routes every call to one of your LLMs and learns.

Set ``Settings.llm = PickLLM(models=...)`` or pass it to a query engine, chat engine or
agent. Each call is one :meth:`pickllm.engine.Engine.run` (or ``arun``/``stream``/
``astream``): the engine routes it, runs the decision's plan (retries, fallback, ensemble,
cascade), evaluates the answer and records the reward. This module only translates:
LlamaIndex messages and prompts into a :class:`~pickllm.engine.Request`, a candidate into
the LLM to call (a :class:`~pickllm.engine.Calls` built per call), and the
:class:`~pickllm.engine.Answer` back into the LLM's response.

Pass-through, on purpose: these methods carry no ``llm_*_callback`` decorator, so the
chosen LLM's own call is the single LLM event of each call (instrumentation events and
legacy callbacks such as ``TokenCountingHandler``); LlamaIndex still wraps them in a span,
so the chosen LLM's span nests under PickLLM's. The router's callback manager is handed to
a candidate that has no handlers of its own, which is how ``Settings.callback_manager``
reaches the LLM that answers.

Where the routing facts are: every response carries ``response.additional_kwargs["pickllm"]``,
the engine's :meth:`~pickllm.engine.Answer.info` (``decision_id`` for :meth:`PickLLM.feedback`,
``model``, ``chosen``, ``policy``, ``probability``, ``plan``, ``cost_usd``,
``cost_estimated``, ``latency_s``, ``attempts``, ``members`` for a multi-model plan, and
for a cascade ``strategy`` and ``steps``: one dict per model run, ``model``, ``cost_usd``,
``latency_s``, ``estimate`` (post-hoc, None if it failed), ``ex_ante``, ``error``).
In a stream the chunks carry ``{"model": ...}`` and the last chunk the whole info. The token
usage is in ``response.raw["usage"]`` (``prompt_tokens``, ``completion_tokens``,
``total_tokens``): the model's own report when it gave one, otherwise the estimate the cost
was computed from. A raw response that is not a dict (a provider SDK object) is left as it
is. A ``rate_limiter`` given to PickLLM is acquired once per routed call.

Cascades: with ``strategy=`` (a name of ``pickllm.cascade.factory.STRATEGIES`` or a
:class:`pickllm.cascade.CascadeStrategy`), ``budget_per_call_usd=`` and
``cascade_estimator=`` (the same names and defaults as LangChain's ``ChatPickLLM``), a call
that binds no tools may run several LLMs in turn; the evaluator scores every step inline,
the response is the step with the best post-hoc estimate, its ``raw["usage"]`` and
``cost_usd`` are every step's, and a stream yields only that response (as one chunk, once
the steps are done). Tool calls and tool-loop turns are routed by ``policy``.

Tools: ``chat_with_tools`` and its variants go through ``chat``/``stream_chat``/... (the
``FunctionCallingLLM`` template), which hand the whole tool call to the chosen LLM, so that
LLM formats the tools itself. The assistant message of a tool call is tagged with
``additional_kwargs["pickllm_model"]``; when the chat history ends with tool results
answering such a message, that model serves the turn (a tool loop stays on one model). The
tag is removed from the messages PickLLM sends to its LLMs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

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
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.callbacks import CallbackManager
from llama_index.core.evaluation import BaseEvaluator
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from llamaindex_pickllm.evaluators import LlamaIndexEvaluator
from llamaindex_pickllm.translation import (
    MODEL_TAG,
    LlamaIndexCalls,
    can_call_tools,
    detected_capabilities,
    message_text,
    name_models,
    query_of,
    tool_loop_model,
    untagged,
    with_usage,
)
from pickllm.beliefs import Belief, Explanation
from pickllm.engine import Answer, Engine, Request, RoutingSettings
from pickllm.engine.tracking import Tracker, Tracking
from pickllm.errors import ConfigError
from pickllm.evaluation import EvaluationRunner
from pickllm.router import CandidateStats, Router

__all__ = ["PickLLM", "PickLLMRouteEvent", "TrackedCalls"]

dispatcher = get_dispatcher(__name__)

INFO_KEY = "pickllm"
"""Key of the routing facts in ``response.additional_kwargs``."""

_TOOLS_KWARG = "pickllm_tools"
"""Carries the tools from ``_prepare_chat_with_tools`` to the ``chat`` it prepares."""

R = TypeVar("R", ChatResponse, CompletionResponse)


class PickLLMRouteEvent(BaseEvent):
    """Instrumentation event fired once per routed call, when its answer is recorded.

    Args:
        model: the model whose answer is returned.
        decision_id: the decision's id.
        policy: the policy's name.
        probability: the probability with which the policy chose its model.
        kind: ``single``, ``ensemble`` or ``cascade``.

    Examples:
        >>> PickLLMRouteEvent(model="small", decision_id="d-1", policy="fixed",
        ...                   probability=1.0, kind="single").class_name()
        'PickLLMRouteEvent'
    """

    model: str
    decision_id: str
    policy: str
    probability: float
    kind: str

    @classmethod
    def class_name(cls) -> str:
        """The event's name."""
        return "PickLLMRouteEvent"


TrackedCalls = Tracker
"""The decisions of a ``with llm.track()`` block (:class:`pickllm.engine.tracking.Tracker`)."""


# ---------------------------------------------------------------------- the LLM
class PickLLM(FunctionCallingLLM, RoutingSettings):
    """A LlamaIndex LLM that routes each call to one of several LLMs and learns from it.

    Each call is routed on its own (the query is the last user message or the prompt),
    run with retries and fallback, and recorded with its latency and token cost; an
    evaluator's score, or a later :meth:`feedback`, adds the quality part of the reward.
    See the module docstring for where the routing facts, usage and cost are reported.

    ``metadata`` promises only what every model can do: the smallest context window and
    output size, a chat model only if all are, a function-calling model only if all are.
    Tool calls are routed only to models that can call tools, and prompts only to models
    whose context window holds them (estimated tokens).

    Args:
        models: the LLMs to route between, as a mapping name -> LLM, or a list named by
            each LLM's ``metadata.model_name``.
        model_name: the name reported in ``metadata.model_name``.
        **kwargs: the routing settings shared with LangChain's ``ChatPickLLM``
            (:class:`pickllm.engine.RoutingSettings`: ``prices``, ``policy``,
            ``quality``, ``cost``, ``latency``, ``objective``, ``evaluator`` (also a
            LlamaIndex ``BaseEvaluator``, see :mod:`llamaindex_pickllm.evaluators`),
            ``evaluate_in_background``, ``await_feedback``, ``seed``, ``retry``,
            ``router``, ``capabilities``, ``context_key`` (a function of the call's
            messages; ``complete`` passes its prompt as one user message), ``clock``,
            ``sleep``, ``async_sleep``, ``max_tracked_runs``, ``max_pending``,
            ``pending_ttl_s``, ``strategy``, ``budget_per_call_usd``,
            ``cascade_estimator``) and other ``LLM`` fields (``callback_manager``,
            ``system_prompt``, ...). ``prices`` may leave models out: their prices come
            from the ``genai-prices`` database (offline), by ``metadata.model_name`` and
            the provider of the ``llama_index.llms.<provider>`` package of their class.

    Feedback: without an evaluator each call waits for a score (``await_feedback``
    defaults to ``"auto"``); give it with :meth:`feedback` (the decision id in
    ``additional_kwargs["pickllm"]``, or the response) or for a whole query with
    :meth:`track`. A call never scored is learned from without a score when it expires
    (``pending_ttl_s``, ``max_pending``).

    A call names a model of the pool with ``model=`` (``llm.chat(messages, model="small")``):
    that model serves it, with no fallback, and the call is learned from.

    Examples:
        >>> from llama_index.core.llms import MockLLM
        >>> from pickllm.policies.fixed import Fixed
        >>> llm = PickLLM(models={"short": MockLLM(max_tokens=2), "long": MockLLM(max_tokens=5)},
        ...               prices={"short": (0.1, 0.2), "long": (2.0, 8.0)},
        ...               policy=Fixed(model="short"))
        >>> response = llm.complete("Say something")
        >>> response.text, response.additional_kwargs["pickllm"]["model"]
        ('text text', 'short')
        >>> response.raw["usage"]
        {'prompt_tokens': 4, 'completion_tokens': 3, 'total_tokens': 7}
        >>> llm.stats()["short"].calls
        1
    """

    models: dict[str, SerializeAsAny[LLM]] = Field(description="The LLMs routed between.")
    model_name: str = Field(default="pickllm", description="Name in metadata.model_name.")

    _engine: Engine = PrivateAttr()
    _handed: dict[str, CallbackManager] = PrivateAttr(default_factory=dict)

    def __init__(self, *, models: Mapping[str, LLM] | Sequence[LLM], **kwargs: Any) -> None:
        super().__init__(models=name_models(models), **kwargs)
        settings: RoutingSettings = self
        if isinstance(self.evaluator, BaseEvaluator):
            settings = self.model_copy(update={"evaluator": LlamaIndexEvaluator(self.evaluator)})
        self._engine = settings.build_engine(list(self.models), detected_capabilities(self.models))

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name of this class."""
        return "PickLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """What every model can do (see the class docstring)."""
        children = list(self.models.values())
        metas = [c.metadata for c in children]
        roles = {m.system_role for m in metas}
        return LLMMetadata(
            context_window=min(m.context_window for m in metas),
            num_output=min(m.num_output for m in metas),
            is_chat_model=all(m.is_chat_model for m in metas),
            is_function_calling_model=all(can_call_tools(c) for c in children),
            model_name=self.model_name,
            system_role=roles.pop() if len(roles) == 1 else MessageRole.SYSTEM,
        )

    # ------------------------------------------------------------------ core access
    @property
    def engine(self) -> Engine:
        """The core engine (routing, plans, evaluation, recording)."""
        return self._engine

    @property
    def core_router(self) -> Router:
        """The core router (policy, objective, statistics, learned state)."""
        return self._engine.router

    @property
    def evaluation(self) -> EvaluationRunner | None:
        """The evaluation runner (``join()``/``ajoin()`` wait for background scores), or None."""
        return self._engine.evaluation

    def feedback(
        self, target: str | ChatResponse | CompletionResponse | Tracker, score: float
    ) -> float | None:
        """Give the quality score of an answer; the policy learns from it.

        Args:
            target: the decision id (``additional_kwargs["pickllm"]["decision_id"]``); or
                the response that carries it; or the :class:`TrackedCalls` of a
                :meth:`track` block, whose every call still waiting for a score gets it
                (a query engine may call the LLM more than once per query).
            score: quality in [0, 1].

        Returns:
            The reward learned from (of the last call for ``TrackedCalls``).

        Raises:
            UnknownDecisionError: no decision it names is waiting for a score: unknown,
                already scored, expired, or the LLM was built with an evaluator or
                ``await_feedback=False`` (then each call is learned from when it
                returns).
        """
        if isinstance(target, Tracker):
            return target.feedback(score)
        if isinstance(target, ChatResponse | CompletionResponse):
            info = target.additional_kwargs.get(INFO_KEY)
            if not isinstance(info, dict) or "decision_id" not in info:
                msg = "the response was not routed by a PickLLM (no additional_kwargs['pickllm'])"
                raise ConfigError(msg)
            target = str(info["decision_id"])
        return self._engine.feedback(target, score)

    def track(self) -> Tracking:
        """Collect the decisions this PickLLM makes inside a ``with`` (or ``async with``) block.

        A query engine or agent hides the LLM's responses; this is how to score what a
        query cost, later::

            with llm.track() as calls:
                response = query_engine.query("...")
            calls.feedback(1.0)  # e.g. the user's thumbs-up; or llm.feedback(calls, 1.0)

        Blocks are per thread and per asyncio task (and nest); calls made in tasks
        started inside the block are collected too (:mod:`pickllm.engine.tracking`).
        """
        return self._engine.track()

    def stats(self) -> dict[str, CandidateStats]:
        """Per model: calls, errors, mean reward, cost, latency (``Router.stats``)."""
        return self.core_router.stats()

    def beliefs(self) -> dict[str, Belief]:
        """Each model's current estimate under the policy (``Router.beliefs``)."""
        return self.core_router.beliefs()

    def explain(self, query: str, **kwargs: Any) -> Explanation:
        """Why ``query`` would go where it goes, without routing it (``Router.explain``).

        ``kwargs``: ``key``, ``needs_tool_calling``, ``needs_structured_output``, ``draws``.
        """
        return self.core_router.explain(query, **kwargs)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the learned state (the core router's JSON, written atomically)."""
        self.core_router.save(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        models: Mapping[str, LLM] | Sequence[LLM],
        **kwargs: Any,
    ) -> PickLLM:
        """A PickLLM over ``models`` that continues from a state saved with :meth:`save`.

        Raises:
            StateError: the file is missing, corrupted or not a router state.
            ConfigError: the saved models are not the names of ``models``.
        """
        return cls(models=models, router=Router.load(path), **kwargs)

    # ------------------------------------------------------------------ translation
    def _child(self, name: str) -> LLM:
        child = self.models[name]
        mine = self.callback_manager
        theirs = child.callback_manager
        # Settings.llm gives Settings.callback_manager to PickLLM only; hand it down so that
        # handlers see the answering LLM's event. A child with handlers of its own keeps them.
        if theirs is not mine and (not theirs.handlers or self._handed.get(name) is theirs):
            child.callback_manager = mine
            self._handed[name] = mine
        return child

    def _request(
        self, messages: Sequence[ChatMessage], pin: Any, *, tools: bool, prompt: str | None
    ) -> Request:
        if not messages:
            msg = "messages must hold at least one message, got none"
            raise ConfigError(msg)
        return Request(
            query=query_of(messages),
            prompt=prompt if prompt is not None else "\n".join(map(message_text, messages)),
            key=None if self.context_key is None else self.context_key(list(messages)),
            needs_tool_calling=tools,
            pin=pin if isinstance(pin, str) else None,
            tool_loop_model=tool_loop_model(messages),
            evaluator_kwargs={} if prompt is not None else {"messages": list(messages)},
        )

    def _chat_call(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[Request, LlamaIndexCalls[ChatResponse]]:
        pin = kwargs.pop("model", None)
        tools = kwargs.pop(_TOOLS_KWARG, None)
        request = self._request(messages, pin, tools=tools is not None, prompt=None)
        if tools is None:
            return request, LlamaIndexCalls(
                self._child, self._routed, "chat", (untagged(messages),), kwargs
            )
        kwargs["chat_history"] = untagged(messages)
        return request, LlamaIndexCalls(
            self._child, self._routed, "chat_with_tools", (tools,), kwargs
        )

    def _complete_call(
        self, prompt: str, formatted: bool, kwargs: dict[str, Any]
    ) -> tuple[Request, LlamaIndexCalls[CompletionResponse]]:
        pin = kwargs.pop("model", None)
        message = ChatMessage(role=MessageRole.USER, content=prompt)
        request = self._request([message], pin, tools=False, prompt=prompt)
        return request, LlamaIndexCalls(
            self._child, self._routed, "complete", (prompt,), {"formatted": formatted, **kwargs}
        )

    def _routed(self, answer: Answer[Any]) -> None:
        """Report a recorded call as an event (``track()`` blocks are the engine's)."""
        decision = answer.decision
        dispatcher.event(
            PickLLMRouteEvent(
                model=answer.model,
                decision_id=decision.decision_id,
                policy=decision.policy,
                probability=decision.probability,
                kind=decision.kind,
            )
        )

    @staticmethod
    def _tag(response: R, info: dict[str, Any], model: str, tools: bool) -> R:
        response.additional_kwargs = {**response.additional_kwargs, INFO_KEY: info}
        if tools and isinstance(response, ChatResponse):
            response.message.additional_kwargs[MODEL_TAG] = model
        return response

    def _finish(self, response: R, answer: Answer[Any], tools: bool) -> R:
        """``response`` with the facts of ``answer``: info, usage, the tool-call tag."""
        feedback = answer.result.feedback
        response.raw = with_usage(
            response.raw,
            feedback.input_tokens,
            feedback.output_tokens,
            force=len(answer.result.served_by) > 1,
        )
        return self._tag(response, answer.info(), answer.model, tools)

    def _respond(self, answer: Answer[R], calls: LlamaIndexCalls[R]) -> R:
        self._routed(answer)
        return self._finish(answer.value, answer, calls.tools)

    def _limit(self) -> None:
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()

    async def _alimit(self) -> None:
        if self.rate_limiter is not None:
            await self.rate_limiter.async_acquire()

    def _last(self, chunk: R | None, calls: LlamaIndexCalls[R]) -> Iterator[R]:
        """The last chunk of a stream, with the answer's facts (held back until known)."""
        if chunk is None:
            return
        if calls.answers:
            yield self._finish(chunk, calls.answers[0], calls.tools)
        else:  # pragma: no cover - the engine reports every stream it ends
            yield chunk

    def _stream(self, request: Request, calls: LlamaIndexCalls[R]) -> Generator[R, None, None]:
        self._limit()
        chunks = cast("Generator[R, None, None]", self._engine.stream(request, calls, calls.finish))
        last: R | None = None
        try:
            # Hold one chunk back: the last one carries the cost, known only at the end.
            for chunk in chunks:
                if last is not None:
                    yield self._tag(last, {"model": calls.serving}, calls.serving, calls.tools)
                last = chunk
        except Exception:
            # A model that fails mid-stream: every chunk it sent reaches the caller first.
            if last is not None:
                yield self._tag(last, {"model": calls.serving}, calls.serving, calls.tools)
            raise
        finally:
            chunks.close()
        yield from self._last(last, calls)

    async def _astream(
        self, request: Request, calls: LlamaIndexCalls[R]
    ) -> AsyncGenerator[R, None]:
        await self._alimit()
        chunks = cast("AsyncGenerator[R, None]", self._engine.astream(request, calls, calls.finish))
        last: R | None = None
        try:
            async for chunk in chunks:
                if last is not None:
                    yield self._tag(last, {"model": calls.serving}, calls.serving, calls.tools)
                last = chunk
        except Exception:
            if last is not None:
                yield self._tag(last, {"model": calls.serving}, calls.serving, calls.tools)
            raise
        finally:
            await chunks.aclose()
        for final in self._last(last, calls):
            yield final

    # ------------------------------------------------------------------ chat
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route, then run the chosen LLM's ``chat`` (or ``chat_with_tools``)."""
        request, calls = self._chat_call(messages, kwargs)
        self._limit()
        return self._respond(self._engine.run(request, calls), calls)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route, then await the chosen LLM's ``achat``."""
        request, calls = self._chat_call(messages, kwargs)
        await self._alimit()
        return self._respond(await self._engine.arun(request, calls), calls)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the chosen LLM's ``stream_chat`` (routed at the first chunk)."""
        return self._stream(*self._chat_call(messages, kwargs))

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream the chosen LLM's ``astream_chat`` (routed at the first chunk)."""
        return self._astream(*self._chat_call(messages, kwargs))

    # ------------------------------------------------------------------ complete
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Route, then run the chosen LLM's ``complete``."""
        request, calls = self._complete_call(prompt, formatted, kwargs)
        self._limit()
        return self._respond(self._engine.run(request, calls), calls)

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Route, then await the chosen LLM's ``acomplete``."""
        request, calls = self._complete_call(prompt, formatted, kwargs)
        await self._alimit()
        return self._respond(await self._engine.arun(request, calls), calls)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the chosen LLM's ``stream_complete`` (routed at the first chunk)."""
        return self._stream(*self._complete_call(prompt, formatted, kwargs))

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream the chosen LLM's ``astream_complete`` (routed at the first chunk)."""
        return self._astream(*self._complete_call(prompt, formatted, kwargs))

    # ------------------------------------------------------------------ tool calling
    def _prepare_chat_with_tools(  # noqa: PLR0917 - FunctionCallingLLM's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` kwargs that run the whole tool call on the model routed to.

        Nothing is routed here: ``chat(**kwargs)`` routes among the models that can call
        tools and hands the call to the chosen LLM's ``chat_with_tools``, which formats
        the tools its own way. ``FunctionCallingLLM.chat_with_tools`` and its variants
        call this, then ``chat``/``achat``/``stream_chat``/``astream_chat``.
        """
        messages = list(chat_history or [])
        if isinstance(user_msg, ChatMessage):
            messages.append(user_msg)
        elif user_msg:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        return {
            "messages": messages,
            _TOOLS_KWARG: list(tools),
            "verbose": verbose,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "tool_required": tool_required,
            **kwargs,
        }

    def _answering_tool_llm(self, response: ChatResponse) -> FunctionCallingLLM:
        info = response.additional_kwargs.get(INFO_KEY)
        name = info.get("model") if isinstance(info, dict) else None
        if name is None:
            name = response.message.additional_kwargs.get(MODEL_TAG)
        child = self.models.get(name) if isinstance(name, str) else None
        if isinstance(child, FunctionCallingLLM):
            return child
        # A response PickLLM did not tag: parse it with the first tool-calling model.
        for candidate in self.models.values():
            if isinstance(candidate, FunctionCallingLLM):
                return candidate
        msg = "no model of this PickLLM is a FunctionCallingLLM"
        raise TypeError(msg)

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Parse tool calls with the LLM that produced the response (cheap per chunk)."""
        return self._answering_tool_llm(response).get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )
