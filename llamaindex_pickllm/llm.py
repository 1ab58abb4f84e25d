"""``PickLLM``: a LlamaIndex LLM that routes every call to one of your LLMs and learns.

Set ``Settings.llm = PickLLM(...)`` or pass it to a query engine, chat engine or agent:
each ``chat``/``complete``/``stream_*``/``a*`` call and each tool call is routed on its own
by a core :class:`pickllm.Router`, run by the core :class:`pickllm.executor.Executor`
(retries, fallback along the ranking, one feedback per attempt) and fed back as reward.

Pass-through, on purpose: these methods carry no ``llm_*_callback`` decorator, so the
chosen LLM's own call is the single LLM event of each call (instrumentation events and
legacy callbacks such as ``TokenCountingHandler``); LlamaIndex still wraps them in a span,
so the chosen LLM's span nests under PickLLM's. The router's callback manager is handed to
a candidate that has no handlers of its own, which is how ``Settings.callback_manager``
reaches the LLM that answers.

Where the routing facts are: every response (and every streamed chunk) carries
``response.additional_kwargs["pickllm"]``, a dict with ``model`` (the candidate whose
answer it is), ``decision_id`` (for :meth:`PickLLM.feedback`), ``policy``, ``probability``
and ``kind``; the final response, or the last chunk of a stream, adds ``cost_usd``,
``input_tokens``, ``output_tokens``, ``tokens_estimated``, ``latency_s``, ``served_by``
and ``reward``. The token usage is in ``response.raw["usage"]`` (``prompt_tokens``,
``completion_tokens``, ``total_tokens``): the model's own report when it gave one,
otherwise PickLLM's estimate (``ceil(len(text) / 4)``), which is also what the cost was
computed from. A raw response that is not a dict (a provider SDK object) is left as it is.
Nothing is written into ``response.message.additional_kwargs``, which some providers send
back to the model. A ``rate_limiter`` given to PickLLM is acquired once per routed call (the
candidates' own limiters apply to their calls as usual).

Plans: an ensemble decision runs its members concurrently; the answer is the member
chosen by ``router.aggregate`` over the answers' texts, its usage and cost the sum, its
latency the slowest member's (the executor's combined feedback). A stream of an ensemble
decision is delivered as one chunk, since the answer is known only when every member has
answered. Tool calls always run one model (merged tool calls of several models mean
nothing): a multi-model decision serves tool calls with its first member.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
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
from pickllm.errors import ConfigError
from pickllm.evaluation import EvaluationRunner
from pickllm.executor import ExecutionResult, Executor, RetryConfig
from pickllm.objective import Objective
from pickllm.policies.base import Policy
from pickllm.pricing import PriceTable, Usage, estimate_tokens
from pickllm.router import CandidateStats, Router
from pickllm.types import Candidate, Context, Decision

__all__ = ["PickLLM", "PickLLMRouteEvent", "TrackedCalls"]

dispatcher = get_dispatcher(__name__)

INFO_KEY = "pickllm"
"""Key of the routing facts in ``response.additional_kwargs``."""

_DECISION_KWARG = "pickllm_decision"
"""Carries a decision from ``_prepare_chat_with_tools`` to the ``chat`` it prepares."""

R = TypeVar("R", ChatResponse, CompletionResponse)


class PickLLMRouteEvent(BaseEvent):
    """Instrumentation event fired once per routed call, inside PickLLM's span.

    Args:
        model: the chosen candidate.
        decision_id: the decision's id.
        policy: the policy's name.
        probability: the probability with which the policy chose ``model``.
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


class TrackedCalls:
    """The decisions PickLLM made inside a ``with llm.track()`` block (see :meth:`PickLLM.track`).

    Examples:
        >>> calls = TrackedCalls()
        >>> calls.decision_ids
        []
    """

    __slots__ = ("_ids", "_lock")

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def _add(self, decision_id: str) -> None:
        with self._lock:
            self._ids.append(decision_id)

    @property
    def decision_ids(self) -> list[str]:
        """The decision ids, in the order the calls were routed."""
        with self._lock:
            return list(self._ids)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __repr__(self) -> str:
        return f"TrackedCalls({self.decision_ids!r})"


# The trackers open in this context, with the id of the PickLLM each one tracks. A context
# variable, so that threads and asyncio tasks each see their own blocks; tasks started
# inside a block inherit it and report into the same TrackedCalls.
_TRACKERS: ContextVar[tuple[tuple[int, TrackedCalls], ...]] = ContextVar(
    "llamaindex_pickllm_trackers", default=()
)


# ---------------------------------------------------------------------- text and usage
def _message_text(message: ChatMessage) -> str:
    return message.content or ""


def _query_of(messages: Sequence[ChatMessage]) -> str:
    """The last user message (the question), else the last message."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            return _message_text(message)
    return _message_text(messages[-1]) if messages else ""


def _prompt_of(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(_message_text(m) for m in messages)


def _response_text(response: ChatResponse | CompletionResponse) -> str:
    if isinstance(response, ChatResponse):
        return response.message.content or ""
    return response.text or ""


def _stream_text(chunks: Sequence[ChatResponse | CompletionResponse]) -> str:
    deltas = [c.delta for c in chunks if c.delta]
    if deltas:
        return "".join(deltas)
    return _response_text(chunks[-1]) if chunks else ""


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


def _reported_usage(response: ChatResponse | CompletionResponse) -> Usage:
    usage = _usage_dict(response.raw)
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=_count(usage, _INPUT_KEYS),
        output_tokens=_count(usage, _OUTPUT_KEYS),
        cost_usd=_cost(usage),
    )


def _usage(_: Candidate, response: ChatResponse | CompletionResponse) -> Usage:
    return _reported_usage(response)


def _stream_usage(_: Candidate, chunks: list[Any]) -> Usage:
    # Providers that report usage on a stream put it on one chunk, usually the last.
    for chunk in reversed(chunks):
        usage = _reported_usage(chunk)
        if usage != Usage():
            return usage
    return Usage()


def _with_usage(raw: Any, input_tokens: int, output_tokens: int, *, force: bool) -> Any:
    """``raw`` with the call's token counts in ``raw["usage"]``.

    Counts the model reported are kept; missing ones (or, with ``force``, all of them: an
    ensemble's usage is the sum over its members) are set to what the cost was computed
    from. A ``raw`` that is neither None nor a dict is a provider's object: left as it is.
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


def _single(decision: Decision) -> Decision:
    """The decision run as one model (its first member), with its fallbacks."""
    if decision.plan is None:
        return decision
    return dataclasses.replace(decision, plan=None)


def _pinned(decision: Decision) -> Decision:
    """The decision run on its candidate only: no plan and no fallback."""
    return dataclasses.replace(decision, plan=None, ranking=(decision.candidate,))


def _name_llms(llms: Mapping[str, LLM] | Sequence[LLM]) -> dict[str, LLM]:
    if isinstance(llms, Mapping):
        named = dict(llms)
    elif isinstance(llms, Sequence) and not isinstance(llms, str):
        named = {}
        for llm in llms:
            name = llm.metadata.model_name if isinstance(llm, LLM) else None
            if name in named:
                msg = (
                    f"two candidate LLMs are both named {name!r} by metadata.model_name; "
                    "pass a mapping name -> LLM instead"
                )
                raise ConfigError(msg)
            named[str(name)] = llm
    else:
        msg = f"llms must be a mapping name -> LLM or a list of LLMs, got {type(llms).__name__}"
        raise TypeError(msg)
    if not named:
        msg = "llms must name at least one candidate LLM, got none"
        raise ConfigError(msg)
    for name, llm in named.items():
        if not isinstance(name, str) or not name:
            msg = f"candidate names must be non-empty strings, got {name!r}"
            raise ConfigError(msg)
        if not isinstance(llm, LLM):
            msg = f"candidate {name!r} must be a LlamaIndex LLM, got {type(llm).__name__}"
            raise TypeError(msg)
    return named


def _can_call_tools(llm: LLM) -> bool:
    return isinstance(llm, FunctionCallingLLM) and bool(llm.metadata.is_function_calling_model)


def _candidates(
    llms: Mapping[str, LLM],
    prices: Mapping[str, tuple[float, float]],
    objective: Objective,
) -> list[Candidate]:
    missing = [n for n in llms if n not in prices]
    if missing and objective.cost:
        msg = (
            f"no price for candidate(s) {missing}: with a cost weight of {objective.cost!r}, "
            "prices= must give (input, output) USD per 1M tokens for every candidate "
            "(or set cost=0)"
        )
        raise ConfigError(msg)
    out = []
    for name, llm in llms.items():
        input_price, output_price = prices.get(name, (0.0, 0.0))
        window = llm.metadata.context_window
        out.append(
            Candidate(
                name=name,
                input_price=input_price,
                output_price=output_price,
                tool_calling=_can_call_tools(llm),
                max_context_tokens=window if isinstance(window, int) and window > 0 else None,
            )
        )
    return out


# ---------------------------------------------------------------------- the LLM
class PickLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that routes each call to one of several LLMs and learns from it.

    Each call is routed on its own (the query is the last user message or the prompt),
    run with retries and fallback, and recorded with its latency and token cost; an
    evaluator's score, or a later :meth:`feedback`, adds the quality part of the reward.
    See the module docstring for where the routing facts, usage and cost are reported.

    ``metadata`` promises only what every candidate can do: the smallest context window
    and output size, a chat model only if all are, a function-calling model only if all
    are. Tool calls are routed only to candidates that can call tools, and prompts only to
    candidates whose context window holds them (estimated tokens).

    Args:
        llms: the candidate LLMs, as a mapping name -> LLM, or a list named by each LLM's
            ``metadata.model_name``.
        prices: name -> (input, output) USD per 1M tokens, or a ``PriceTable``; every
            candidate needs one when the cost weight is not zero.
        policy: a policy object, or a short name for ``pickllm.make_policy``.
        quality: weight of the quality score in the reward.
        cost: weight of the (normalised) cost.
        latency: weight of the (normalised, log-scaled) latency.
        objective: the full objective, instead of the three weights.
        evaluator: scores each answer in [0, 1] (or None to skip): a LlamaIndex
            ``BaseEvaluator`` (mapped as in :mod:`llamaindex_pickllm.evaluators`) or a
            callable ``(prompt, answer, **kwargs)`` (see :mod:`pickllm.evaluation`).
        evaluate_in_background: score after returning the answer (a thread pool or an
            asyncio task) rather than before.
        await_feedback: keep each call waiting for ``feedback(decision_id, score)`` (set it
            when you score answers yourself; automatic with an evaluator).
        seed: seeds the policy (given by name) and the retry jitter.
        retry: retry and fallback settings (``pickllm.executor.RetryConfig``).
        router: a pre-built or loaded core router over the same names (``policy``,
            ``prices`` and the weights are then taken from it).
        key: function of the query text returning a context key for per-context policies.
        model_name: the name reported in ``metadata.model_name``.
        clock: monotonic clock for latencies (injected in tests).
        sleep: how to wait between retries of sync calls.
        async_sleep: how to wait between retries of async calls.
        **kwargs: other ``LLM`` fields (``callback_manager``, ``system_prompt``, ...).

    Examples:
        >>> from llama_index.core.llms import MockLLM
        >>> from pickllm.policies.fixed import Fixed
        >>> llm = PickLLM({"short": MockLLM(max_tokens=2), "long": MockLLM(max_tokens=5)},
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

    llms: dict[str, SerializeAsAny[LLM]] = Field(description="The candidate LLMs, by name.")
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="USD per 1M (input, output) tokens, by candidate."
    )
    policy: Any = Field(default="thompson", exclude=True, description="Policy object or name.")
    quality: float = Field(default=1.0, description="Weight of the quality score.")
    cost: float = Field(default=0.5, description="Weight of the normalised cost.")
    latency: float = Field(default=0.2, description="Weight of the normalised latency.")
    objective: Any = Field(default=None, exclude=True, description="Full objective, or None.")
    evaluator: Any = Field(default=None, exclude=True, description="Scores answers in [0, 1].")
    evaluate_in_background: bool = Field(default=True, description="Score after answering.")
    await_feedback: bool = Field(default=False, description="Wait for delayed scores.")
    seed: Any = Field(default=None, exclude=True, description="Seed of policy and jitter.")
    retry: Any = Field(default=None, exclude=True, description="RetryConfig or None.")
    router: Any = Field(default=None, exclude=True, description="Pre-built core router.")
    key: Any = Field(default=None, exclude=True, description="Query -> context key.")
    model_name: str = Field(default="pickllm", description="Name in metadata.model_name.")
    clock: Any = Field(default=None, exclude=True, description="Monotonic clock.")
    sleep: Any = Field(default=None, exclude=True, description="Sync retry sleep.")
    async_sleep: Any = Field(default=None, exclude=True, description="Async retry sleep.")

    _router: Router = PrivateAttr()
    _executor: Executor = PrivateAttr()
    _runner: EvaluationRunner | None = PrivateAttr(default=None)
    _await_score: bool = PrivateAttr(default=False)
    _handed: dict[str, CallbackManager] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        llms: Mapping[str, LLM] | Sequence[LLM],
        *,
        prices: Mapping[str, tuple[float, float]] | PriceTable | None = None,
        policy: Policy | str = "thompson",
        quality: float = 1.0,
        cost: float = 0.5,
        latency: float = 0.2,
        objective: Objective | None = None,
        evaluator: BaseEvaluator | Callable[..., Any] | None = None,
        evaluate_in_background: bool = True,
        await_feedback: bool = False,
        seed: int | np.random.Generator | None = None,
        retry: RetryConfig | None = None,
        router: Router | None = None,
        key: Callable[[str], str | None] | None = None,
        model_name: str = "pickllm",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        named = _name_llms(llms)
        price_map = _check_prices(prices)
        _check_options(
            evaluate_in_background=evaluate_in_background,
            await_feedback=await_feedback,
            key=key,
            evaluator=evaluator,
            seed=seed,
        )
        super().__init__(
            llms=named,
            prices=price_map,
            policy=policy,
            quality=quality,
            cost=cost,
            latency=latency,
            objective=objective,
            evaluator=evaluator,
            evaluate_in_background=evaluate_in_background,
            await_feedback=await_feedback,
            seed=seed,
            retry=retry,
            router=router,
            key=key,
            model_name=model_name,
            clock=clock,
            sleep=sleep,
            async_sleep=async_sleep,
            **kwargs,
        )
        # One stream of random numbers per component (C6): the policy's draws do not
        # shift when retries draw jitter, and the reverse.
        policy_rng, jitter_rng = np.random.default_rng(seed).spawn(2)
        core = _core_router(
            named,
            price_map,
            router=router,
            policy=policy,
            objective=objective,
            weights=(quality, cost, latency),
            seed=policy_rng,
        )
        self._router = core
        given = (("clock", clock), ("sleep", sleep), ("async_sleep", async_sleep))
        effects: dict[str, Any] = {name: fn for name, fn in given if fn is not None}
        self._executor = Executor(core, retry=retry, seed=jitter_rng, **effects)
        if evaluator is not None:
            scorer = (
                LlamaIndexEvaluator(evaluator)
                if isinstance(evaluator, BaseEvaluator)
                else evaluator
            )
            self._runner = EvaluationRunner(scorer, core, background=evaluate_in_background)
        self._await_score = evaluator is not None or await_feedback

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name of this class."""
        return "PickLLM"

    # ------------------------------------------------------------------ metadata
    @property
    def metadata(self) -> LLMMetadata:
        """What every candidate can do (see the class docstring)."""
        children = list(self.llms.values())
        metas = [c.metadata for c in children]
        roles = {m.system_role for m in metas}
        return LLMMetadata(
            context_window=min(m.context_window for m in metas),
            num_output=min(m.num_output for m in metas),
            is_chat_model=all(m.is_chat_model for m in metas),
            is_function_calling_model=all(_can_call_tools(c) for c in children),
            model_name=self.model_name,
            system_role=roles.pop() if len(roles) == 1 else MessageRole.SYSTEM,
        )

    # ------------------------------------------------------------------ core access
    @property
    def core_router(self) -> Router:
        """The core router (policy, objective, statistics, learned state)."""
        return self._router

    @property
    def evaluation(self) -> EvaluationRunner | None:
        """The evaluation runner (``join()``/``ajoin()`` wait for background scores)."""
        return self._runner

    def feedback(
        self, target: str | ChatResponse | CompletionResponse | TrackedCalls, score: float
    ) -> float | None:
        """Give the quality score of an answer; the policy learns from it.

        Args:
            target: the decision id; or the response that carries it; or the
                :class:`TrackedCalls` of a :meth:`track` block, whose every call gets the
                score (a query engine may call the LLM more than once per query).
            score: quality in [0, 1].

        Returns:
            The reward learned from (of the last call for ``TrackedCalls``; None if a
            call is not recorded yet).

        Raises:
            UnknownDecisionError: a decision is not waiting for a score: unknown,
                already scored, expired, or the LLM was built without ``await_feedback``
                or an evaluator (then each call is learned from when it returns).
        """
        if isinstance(target, TrackedCalls):
            reward = None
            for decision_id in target.decision_ids:
                reward = self._router.feedback(decision_id, score)
            return reward
        if isinstance(target, ChatResponse | CompletionResponse):
            info = target.additional_kwargs.get(INFO_KEY)
            if not isinstance(info, dict) or "decision_id" not in info:
                msg = "the response was not routed by a PickLLM (no additional_kwargs['pickllm'])"
                raise ConfigError(msg)
            target = str(info["decision_id"])
        return self._router.feedback(target, score)

    @contextmanager
    def track(self) -> Iterator[TrackedCalls]:
        """Collect the decisions this PickLLM makes inside a ``with`` block.

        A query engine or agent hides the LLM's responses; this is how to score what a
        query cost, later::

            with llm.track() as calls:
                response = query_engine.query("...")
            llm.feedback(calls, 1.0)  # e.g. the user's thumbs-up

        Blocks are per thread and per asyncio task (and nest); calls routed in tasks
        started inside the block are collected too.
        """
        calls = TrackedCalls()
        token = _TRACKERS.set((*_TRACKERS.get(), (id(self), calls)))
        try:
            yield calls
        finally:
            _TRACKERS.reset(token)

    def stats(self) -> dict[str, CandidateStats]:
        """Per candidate: calls, errors, mean reward, cost, latency (``Router.stats``)."""
        return self._router.stats()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the learned state (the core router's JSON, written atomically)."""
        self._router.save(path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], llms: Mapping[str, LLM] | Sequence[LLM], **kwargs: Any
    ) -> PickLLM:
        """A PickLLM over ``llms`` that continues from a state saved with :meth:`save`.

        Raises:
            StateError: the file is missing, corrupted or not a router state.
            ConfigError: the saved candidates are not the names of ``llms``.
        """
        return cls(llms, router=Router.load(path), **kwargs)

    # ------------------------------------------------------------------ routing
    def _route(self, query: str, prompt_text: str, *, tools: bool = False) -> Decision:
        tokens = estimate_tokens(prompt_text)
        key = self.key(query) if self.key is not None else None
        decision = self._router.route(
            Context(
                query=query,
                key=key,
                needs_tool_calling=tools,
                min_context_tokens=tokens or None,
                input_tokens=tokens,
            )
        )
        for owner, calls in _TRACKERS.get():
            if owner == id(self):
                calls._add(decision.decision_id)  # noqa: SLF001 - module-private helper
        dispatcher.event(
            PickLLMRouteEvent(
                model=decision.candidate.name,
                decision_id=decision.decision_id,
                policy=decision.policy,
                probability=decision.probability,
                kind=decision.kind,
            )
        )
        return decision

    def _child(self, name: str) -> LLM:
        child = self.llms[name]
        mine = self.callback_manager
        theirs = child.callback_manager
        # Settings.llm gives Settings.callback_manager to PickLLM only; hand it down so that
        # handlers see the answering LLM's event. A child with handlers of its own keeps them.
        if theirs is not mine and (not theirs.handlers or self._handed.get(name) is theirs):
            child.callback_manager = mine
            self._handed[name] = mine
        return child

    @staticmethod
    def _base_info(decision: Decision, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "decision_id": decision.decision_id,
            "policy": decision.policy,
            "probability": decision.probability,
            "kind": decision.kind,
        }

    def _tag(self, response: R, info: dict[str, Any]) -> R:
        response.additional_kwargs = {**response.additional_kwargs, INFO_KEY: info}
        return response

    def _finish(self, decision: Decision, value: R, result: ExecutionResult[Any], model: str) -> R:
        """Tag the answer ``value`` of ``model`` with the facts of ``result``."""
        fb = result.feedback
        info = self._base_info(decision, model)
        info.update(
            cost_usd=fb.cost_usd,
            input_tokens=fb.input_tokens,
            output_tokens=fb.output_tokens,
            tokens_estimated=fb.tokens_estimated,
            latency_s=fb.latency_s,
            served_by=list(result.served_by),
            reward=result.reward,
        )
        value.raw = _with_usage(
            value.raw, fb.input_tokens, fb.output_tokens, force=len(result.served_by) > 1
        )
        return self._tag(value, info)

    @staticmethod
    def _answered_by(result: ExecutionResult[Any], chosen: list[int]) -> str:
        """Whose answer it is: the aggregated member of an ensemble, else who served."""
        return result.served_by[chosen[0]] if chosen else result.decision.candidate.name

    def _aggregate(self, chosen: list[int]) -> Callable[[Sequence[R]], R]:
        def aggregate(values: Sequence[R]) -> R:
            index = self._router.aggregate([_response_text(v) for v in values])
            chosen.append(index)
            return values[index]

        return aggregate

    def _run(self, decision: Decision, call: Callable[[Candidate], R], prompt_text: str) -> R:
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        chosen: list[int] = []
        result = self._executor.run(
            decision,
            call,
            _usage,
            await_score=self._await_score,
            aggregate=self._aggregate(chosen) if decision.kind == "ensemble" else None,
            prompt_text=prompt_text,
            completion_text=_response_text,
        )
        response = self._finish(decision, result.value, result, self._answered_by(result, chosen))
        if self._runner is not None:
            self._runner.submit(
                decision.decision_id,
                prompt_text,
                _response_text(response),
                model=response.additional_kwargs[INFO_KEY]["model"],
            )
        return response

    async def _arun(
        self, decision: Decision, call: Callable[[Candidate], Awaitable[R]], prompt_text: str
    ) -> R:
        if self.rate_limiter is not None:
            await self.rate_limiter.async_acquire()
        chosen: list[int] = []
        result = await self._executor.arun(
            decision,
            call,
            _usage,
            await_score=self._await_score,
            aggregate=self._aggregate(chosen) if decision.kind == "ensemble" else None,
            prompt_text=prompt_text,
            completion_text=_response_text,
        )
        response = self._finish(decision, result.value, result, self._answered_by(result, chosen))
        if self._runner is not None:
            await self._runner.asubmit(
                decision.decision_id,
                prompt_text,
                _response_text(response),
                model=response.additional_kwargs[INFO_KEY]["model"],
            )
        return response

    def _stream(
        self,
        decision: Decision,
        open_stream: Callable[[Candidate], Iterator[R]],
        call: Callable[[Candidate], R],
        prompt_text: str,
    ) -> Generator[R, None, None]:
        if decision.kind == "ensemble":
            response = self._run(decision, call, prompt_text)
            if response.delta is None:
                response.delta = _response_text(response)
            yield response
            return
        decision = _single(decision)
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        serving: list[str] = []
        finished: list[ExecutionResult[list[R]]] = []
        chunks = self._executor.stream(
            decision,
            open_stream,
            _stream_usage,
            await_score=self._await_score,
            prompt_text=prompt_text,
            completion_text=_stream_text,
            on_start=lambda c: serving.append(c.name),
            on_finish=finished.append,
        )
        last: R | None = None
        try:
            # Hold one chunk back: the last one carries the cost, known only at the end.
            for chunk in chunks:
                if last is not None:
                    yield self._tag(last, self._base_info(decision, serving[0]))
                last = chunk
        finally:
            chunks.close()
        if last is None:
            return
        result = finished[0]
        final = self._finish(decision, last, result, result.decision.candidate.name)
        yield final
        if self._runner is not None:
            self._runner.submit(
                decision.decision_id,
                prompt_text,
                _stream_text(result.value),
                model=result.decision.candidate.name,
            )

    async def _astream(
        self,
        decision: Decision,
        open_stream: Callable[[Candidate], AsyncIterator[R]],
        call: Callable[[Candidate], Awaitable[R]],
        prompt_text: str,
    ) -> AsyncGenerator[R, None]:
        if decision.kind == "ensemble":
            response = await self._arun(decision, call, prompt_text)
            if response.delta is None:
                response.delta = _response_text(response)
            yield response
            return
        decision = _single(decision)
        if self.rate_limiter is not None:
            await self.rate_limiter.async_acquire()
        serving: list[str] = []
        finished: list[ExecutionResult[list[R]]] = []
        chunks = self._executor.astream(
            decision,
            open_stream,
            _stream_usage,
            await_score=self._await_score,
            prompt_text=prompt_text,
            completion_text=_stream_text,
            on_start=lambda c: serving.append(c.name),
            on_finish=finished.append,
        )
        last: R | None = None
        try:
            async for chunk in chunks:
                if last is not None:
                    yield self._tag(last, self._base_info(decision, serving[0]))
                last = chunk
        finally:
            await chunks.aclose()
        if last is None:
            return
        result = finished[0]
        final = self._finish(decision, last, result, result.decision.candidate.name)
        yield final
        if self._runner is not None:
            await self._runner.asubmit(
                decision.decision_id,
                prompt_text,
                _stream_text(result.value),
                model=result.decision.candidate.name,
            )

    # ------------------------------------------------------------------ chat
    def _chat_decision(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[Decision, str]:
        prompt_text = _prompt_of(messages)
        pinned = kwargs.pop(_DECISION_KWARG, None)
        if isinstance(pinned, Decision):
            return _pinned(pinned), prompt_text
        return self._route(_query_of(messages), prompt_text), prompt_text

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route, then run the chosen LLM's ``chat``."""
        decision, prompt_text = self._chat_decision(messages, kwargs)
        return self._run(
            decision, lambda c: self._child(c.name).chat(messages, **kwargs), prompt_text
        )

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Route now, then stream the chosen LLM's ``stream_chat``."""
        decision, prompt_text = self._chat_decision(messages, kwargs)
        return self._stream(
            decision,
            lambda c: self._child(c.name).stream_chat(messages, **kwargs),
            lambda c: self._child(c.name).chat(messages, **kwargs),
            prompt_text,
        )

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route, then await the chosen LLM's ``achat``."""
        decision, prompt_text = self._chat_decision(messages, kwargs)
        return await self._arun(
            decision, lambda c: self._child(c.name).achat(messages, **kwargs), prompt_text
        )

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Route now, then stream the chosen LLM's ``astream_chat``."""
        decision, prompt_text = self._chat_decision(messages, kwargs)

        async def open_stream(c: Candidate) -> AsyncIterator[ChatResponse]:
            async for chunk in await self._child(c.name).astream_chat(messages, **kwargs):
                yield chunk

        return self._astream(
            decision,
            open_stream,
            lambda c: self._child(c.name).achat(messages, **kwargs),
            prompt_text,
        )

    # ------------------------------------------------------------------ complete
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Route, then run the chosen LLM's ``complete``."""
        decision = self._route(prompt, prompt)
        return self._run(
            decision,
            lambda c: self._child(c.name).complete(prompt, formatted=formatted, **kwargs),
            prompt,
        )

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Route now, then stream the chosen LLM's ``stream_complete``."""
        decision = self._route(prompt, prompt)
        return self._stream(
            decision,
            lambda c: self._child(c.name).stream_complete(prompt, formatted=formatted, **kwargs),
            lambda c: self._child(c.name).complete(prompt, formatted=formatted, **kwargs),
            prompt,
        )

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Route, then await the chosen LLM's ``acomplete``."""
        decision = self._route(prompt, prompt)
        return await self._arun(
            decision,
            lambda c: self._child(c.name).acomplete(prompt, formatted=formatted, **kwargs),
            prompt,
        )

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Route now, then stream the chosen LLM's ``astream_complete``."""
        decision = self._route(prompt, prompt)

        async def open_stream(c: Candidate) -> AsyncIterator[CompletionResponse]:
            child = self._child(c.name)
            async for chunk in await child.astream_complete(prompt, formatted=formatted, **kwargs):
                yield chunk

        return self._astream(
            decision,
            open_stream,
            lambda c: self._child(c.name).acomplete(prompt, formatted=formatted, **kwargs),
            prompt,
        )

    # ------------------------------------------------------------------ tool calling
    def _tools_decision(
        self, user_msg: str | ChatMessage | None, chat_history: Sequence[ChatMessage] | None
    ) -> tuple[Decision, str]:
        messages = list(chat_history or [])
        if isinstance(user_msg, ChatMessage):
            messages.append(user_msg)
        elif user_msg:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        prompt_text = _prompt_of(messages)
        decision = self._route(_query_of(messages), prompt_text, tools=True)
        return _single(decision), prompt_text

    def _tool_child(self, name: str) -> FunctionCallingLLM:
        child = self._child(name)
        if not isinstance(child, FunctionCallingLLM):  # the router excludes these
            msg = f"candidate {name!r} is not a FunctionCallingLLM and cannot call tools"
            raise TypeError(msg)
        return child

    def chat_with_tools(  # noqa: PLR0917 - FunctionCallingLLM's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Route among tool-calling candidates; the chosen one runs the whole call."""
        decision, prompt_text = self._tools_decision(user_msg, chat_history)
        return self._run(
            decision,
            lambda c: self._tool_child(c.name).chat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **kwargs,
            ),
            prompt_text,
        )

    async def achat_with_tools(  # noqa: PLR0917 - FunctionCallingLLM's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`."""
        decision, prompt_text = self._tools_decision(user_msg, chat_history)
        return await self._arun(
            decision,
            lambda c: self._tool_child(c.name).achat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **kwargs,
            ),
            prompt_text,
        )

    def stream_chat_with_tools(  # noqa: PLR0917 - FunctionCallingLLM's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Streaming :meth:`chat_with_tools`."""
        decision, prompt_text = self._tools_decision(user_msg, chat_history)
        options = {
            "user_msg": user_msg,
            "chat_history": chat_history,
            "verbose": verbose,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "tool_required": tool_required,
            **kwargs,
        }
        return self._stream(
            decision,
            lambda c: self._tool_child(c.name).stream_chat_with_tools(tools, **options),
            lambda c: self._tool_child(c.name).chat_with_tools(tools, **options),
            prompt_text,
        )

    async def astream_chat_with_tools(  # noqa: PLR0917 - FunctionCallingLLM's signature
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async streaming :meth:`chat_with_tools`."""
        decision, prompt_text = self._tools_decision(user_msg, chat_history)
        options = {
            "user_msg": user_msg,
            "chat_history": chat_history,
            "verbose": verbose,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "tool_required": tool_required,
            **kwargs,
        }

        async def open_stream(c: Candidate) -> AsyncIterator[ChatResponse]:
            child = self._tool_child(c.name)
            async for chunk in await child.astream_chat_with_tools(tools, **options):
                yield chunk

        return self._astream(
            decision,
            open_stream,
            lambda c: self._tool_child(c.name).achat_with_tools(tools, **options),
            prompt_text,
        )

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
        """Route now and let the chosen LLM prepare the call.

        The returned kwargs carry the decision, so the ``chat(**kwargs)`` they are meant
        for runs that LLM (with no fallback: the kwargs are formatted for it).
        """
        decision, _ = self._tools_decision(user_msg, chat_history)
        prepared = self._tool_child(decision.candidate.name)._prepare_chat_with_tools_compat(  # noqa: SLF001
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )
        return {**prepared, _DECISION_KWARG: decision}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        child = self._answering_tool_llm(response)
        return child._validate_chat_with_tools_response(  # noqa: SLF001
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def _answering_tool_llm(self, response: ChatResponse) -> FunctionCallingLLM:
        info = response.additional_kwargs.get(INFO_KEY)
        name = info.get("model") if isinstance(info, dict) else None
        child = self.llms.get(name) if isinstance(name, str) else None
        if isinstance(child, FunctionCallingLLM):
            return child
        # A response PickLLM did not tag: parse it with the first tool-calling candidate.
        for candidate in self.llms.values():
            if isinstance(candidate, FunctionCallingLLM):
                return candidate
        msg = "no candidate LLM of this PickLLM is a FunctionCallingLLM"
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


def _check_options(
    *,
    evaluate_in_background: object,
    await_feedback: object,
    key: object,
    evaluator: object,
    seed: object,
) -> None:
    for flag, value in (
        ("evaluate_in_background", evaluate_in_background),
        ("await_feedback", await_feedback),
    ):
        if not isinstance(value, bool):
            msg = f"{flag} must be a bool, got {value!r}"
            raise TypeError(msg)
    if key is not None and not callable(key):
        msg = f"key must be a function of the query text or None, got {key!r}"
        raise TypeError(msg)
    if evaluator is not None and not (isinstance(evaluator, BaseEvaluator) or callable(evaluator)):
        msg = (
            "evaluator must be a LlamaIndex BaseEvaluator or a callable "
            f"(prompt, answer, **kwargs) -> score, got {evaluator!r}"
        )
        raise TypeError(msg)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
    ):
        msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
        raise TypeError(msg)


def _core_router(
    llms: Mapping[str, LLM],
    prices: Mapping[str, tuple[float, float]],
    *,
    router: Router | None,
    policy: Policy | str,
    objective: Objective | None,
    weights: tuple[float, float, float],
    seed: np.random.Generator,
) -> Router:
    """The given router (checked against the LLMs' names), or a new one."""
    if router is not None:
        if not isinstance(router, Router):
            msg = f"router must be a pickllm.Router or None, got {router!r}"
            raise TypeError(msg)
        pool = {c.name for c in router.candidates}
        if pool != set(llms):
            msg = f"the router's candidates {sorted(pool)} must be the LLMs' names {sorted(llms)}"
            raise ConfigError(msg)
        return router
    if objective is None:
        quality, cost, latency = weights
        objective = Objective(quality=quality, cost=cost, latency=latency)
    elif not isinstance(objective, Objective):
        msg = f"objective must be a pickllm.Objective or None, got {objective!r}"
        raise TypeError(msg)
    return Router(
        _candidates(llms, prices, objective),
        policy,
        objective,
        seed=seed if isinstance(policy, str) else None,
    )


def _check_prices(
    prices: Mapping[str, tuple[float, float]] | PriceTable | None,
) -> dict[str, tuple[float, float]]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        msg = (
            "prices must map candidate names to (input, output) USD per 1M tokens, or be "
            f"a PriceTable, got {type(prices).__name__}"
        )
        raise TypeError(msg)
    # PriceTable validates each pair (finite, >= 0) with a message naming the model.
    table = prices if isinstance(prices, PriceTable) else PriceTable(prices)
    return {name: table.price(name) for name in table}
