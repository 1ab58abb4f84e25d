"""``ChatPickLLM``: a LangChain chat model that routes every call and learns from it.

The routing, retries, fallbacks and learning live in :mod:`pickllm` (``Router`` and
``Executor``); this module only translates LangChain messages into a routing context and
the chosen model's answer back into a LangChain message.

Forwarding is *inline*: the chosen child's own ``_generate``/``_agenerate``/``_stream``/
``_astream`` runs inside this model's LLM run, with the keyword arguments the child's own
``bind_tools`` produced. So each call is one LLM run in traces and callbacks, token usage
is counted once (``get_usage_metadata_callback``), and LangGraph's ``stream_mode="messages"``
sees each token once. The children's callbacks, cache and ``output_version`` are bypassed
(this model's apply); their ``rate_limiter`` is honoured.
"""

# Inline forwarding calls the children's documented subclass hooks (_generate, _stream,
# ...), which are private by name only.
# ruff: noqa: SLF001

from __future__ import annotations

import contextlib
import inspect
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput, ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, InstanceOf, PrivateAttr, ValidationError, model_validator

from pickllm.errors import ConfigError, NoCandidateError, PickLLMError
from pickllm.evaluation import EvaluationRunner
from pickllm.executor import ExecutionResult, Executor, RetryConfig
from pickllm.objective import Objective
from pickllm.policies.base import Policy, new_decision_id
from pickllm.pricing import PriceTable, Usage, estimate_tokens
from pickllm.router import CandidateStats, Router
from pickllm.types import Candidate, Context, Decision

__all__ = ["ChatPickLLM"]

_RUN_PREFIX = "lc_run--"
_CAPABILITY_KEYS = frozenset({"tool_calling", "structured_output", "max_context_tokens"})


def _model_name_of(model: BaseChatModel) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _text(message: BaseMessage) -> str:
    """The message's text; a plain string content is used as is (``.text`` wraps it)."""
    content = message.content
    return content if isinstance(content, str) else str(message.text)


def _message_text(message: BaseMessage) -> str:
    text = _text(message)
    calls = getattr(message, "tool_calls", None)
    if calls:
        # Tool-call arguments are output tokens too; a provider without usage is billed
        # for them, so the estimate counts them.
        text += "".join(json.dumps(c.get("args", {})) for c in calls)
    return text


def _last_user_text(messages: Sequence[BaseMessage], texts: Sequence[str]) -> str:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return texts[i]
    return texts[-1] if texts else ""


def _reported_cost(metadata: Mapping[str, Any]) -> float | None:
    cost = metadata.get("cost_usd")
    if cost is None:  # the common case, checked first
        return None
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return float(cost)
    return None


def _usage_of(message: BaseMessage) -> Usage:
    usage = getattr(message, "usage_metadata", None)
    cost = _reported_cost(message.response_metadata)
    if not usage:
        return Usage(cost_usd=cost)
    return Usage(
        input_tokens=int(usage["input_tokens"]),
        output_tokens=int(usage["output_tokens"]),
        cost_usd=cost,
    )


def _result_usage(_: Candidate, result: ChatResult) -> Usage:
    return _usage_of(result.generations[0].message)


def _result_text(result: ChatResult) -> str:
    return _message_text(result.generations[0].message)


def _chunks_usage(_: Candidate, chunks: list[ChatGenerationChunk]) -> Usage:
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
    if total is None:
        return Usage(cost_usd=cost)
    return Usage(
        input_tokens=int(total["input_tokens"]),
        output_tokens=int(total["output_tokens"]),
        cost_usd=cost,
    )


def _chunks_text(chunks: list[ChatGenerationChunk]) -> str:
    text = "".join(c.message.text for c in chunks)
    args = "".join(
        str(tc.get("args") or "")
        for c in chunks
        for tc in getattr(c.message, "tool_call_chunks", None) or ()
    )
    return text + args


def _has_model_name(chunk: ChatGenerationChunk) -> bool:
    return "model_name" in chunk.message.response_metadata or "model_name" in (
        chunk.generation_info or {}
    )


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    generation = result.generations[0]
    message = generation.message
    chunk = AIMessageChunk(**message.model_dump(exclude={"type", "chunk_position"}))
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


def _run_key(run_id: object) -> uuid.UUID | None:
    """The run id in a LangChain run id, UUID, or message id (``lc_run--<uuid>[-i]``)."""
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(str(run_id).removeprefix(_RUN_PREFIX)[:36])
    except ValueError:
        return None


def _cache_hook_signatures(cls: type) -> None:
    """Store the signatures of ``cls``'s own ``_generate``/``_agenerate`` on them.

    LangChain reads the hook's signature on every call to decide whether to pass
    ``run_manager``; computed from the code object, that costs about 10 us a call, and a
    stored ``__signature__`` is returned by ``inspect.signature`` as is.
    """
    for name in ("_generate", "_agenerate"):
        hook = cls.__dict__.get(name)
        if inspect.isfunction(hook) and "__signature__" not in hook.__dict__:
            hook.__signature__ = inspect.signature(hook)  # type: ignore[attr-defined]


class _State:
    """Per-instance state read on every call.

    Pydantic private attributes cost about 3 us per read on a LangChain model (a failed
    normal lookup, then ``__getattr__``); this object sits in the instance ``__dict__``,
    where a read costs tens of nanoseconds.
    """

    __slots__ = (
        "await_score",
        "context_limits",
        "executor",
        "max_runs",
        "router",
        "runner",
        "runs",
        "takes_run_manager",
    )

    def __init__(
        self,
        *,
        router: Router,
        executor: Executor,
        runner: EvaluationRunner | None,
        await_score: bool,
        max_runs: int,
        takes_run_manager: dict[str, bool],
    ) -> None:
        self.router = router
        self.executor = executor
        self.runner = runner
        self.await_score = await_score
        self.max_runs = max_runs
        self.takes_run_manager = takes_run_manager
        self.context_limits = any(c.max_context_tokens is not None for c in router.candidates)
        self.runs: OrderedDict[uuid.UUID, str] = OrderedDict()

    def __deepcopy__(self, memo: dict[int, Any]) -> _State:
        # A deep copy of the model shares the router, its learning and its executor.
        return self

    def remember(self, run_id: object, decision_id: str) -> None:
        """Map a LangChain run id (UUID, run id or message id) to its decision id."""
        if not self.max_runs:
            return
        # UUID keys: run ids arrive as UUIDs, and formatting one as text costs a microsecond.
        key = run_id if isinstance(run_id, uuid.UUID) else _run_key(run_id)
        if key is None:
            return
        runs = self.runs
        # Each OrderedDict operation is atomic under the GIL; two threads trimming at once
        # can only drop one entry too many, which the bound allows.
        runs[key] = decision_id
        if len(runs) > self.max_runs:
            with contextlib.suppress(KeyError):  # emptied by another thread meanwhile
                runs.popitem(last=False)


class _Request:
    """One call, translated: what the policy sees and what the child gets."""

    # A plain slotted class: a frozen dataclass costs a microsecond more per call.
    __slots__ = ("kwargs", "messages", "prompt", "query", "stop", "tool_choice", "tools")

    def __init__(  # noqa: PLR0917 - built in one place, positionally for speed
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        tools: list[Any] | None,
        tool_choice: Any,
        kwargs: dict[str, Any],
        prompt: str,
        query: str,
    ) -> None:
        self.messages = messages
        self.stop = stop
        self.tools = tools
        self.tool_choice = tool_choice
        self.kwargs = kwargs
        self.prompt = prompt
        self.query = query


class ChatPickLLM(BaseChatModel):
    """A chat model that routes each call to one of several chat models and learns from it.

    Every ``invoke``/``ainvoke``/``stream``/``astream``/``batch``/``abatch`` item is routed
    on its own by a :class:`pickllm.Router`: its policy picks a model, the
    :class:`pickllm.executor.Executor` runs it (retrying transient errors, falling back
    along the policy's ranking, recording failures), and the call's latency and token cost
    become the policy's reward, with an evaluator's quality score when one is set.

    Setup:
        Install the extra: ``pip install "pickllm[langchain]"``. The candidates are any
        LangChain chat models (``ChatOpenAI``, ``ChatAnthropic``, ...); prices are USD per
        1M input and output tokens. The examples use offline fakes.

    Instantiate:
        >>> from langchain_pickllm import ChatPickLLM
        >>> from langchain_pickllm.testing import FakeToolChatModel
        >>> llm = ChatPickLLM(
        ...     models=[FakeToolChatModel(model="small", answer="Paris."),
        ...             FakeToolChatModel(model="large", answer="Paris, France.")],
        ...     prices={"small": (0.1, 0.4), "large": (2.5, 10.0)},
        ...     policy="cheapest", quality=1.0, cost=0.5, latency=0.1, seed=0)

        With real models: ``models=[ChatOpenAI(model="gpt-4o-mini"),
        ChatOpenAI(model="gpt-4o")]``, ``policy="learning_automaton"``, and an evaluator
        such as ``LLMJudge(ChatOpenAI(model="gpt-4o-mini"))``.

    Invoke:
        The answer is the chosen model's message, with its ``usage_metadata`` and
        ``model_name``; ``response_metadata["pickllm"]`` says how it was routed:
        ``decision_id``, ``model`` (the candidate that answered), ``chosen`` (the one the
        policy picked; differs after a fallback), ``probability``, ``policy``, ``plan``,
        ``cost_usd``, ``cost_estimated`` (the cost rests on estimated token counts),
        ``latency_s``, ``attempts`` and, when streamed, ``time_to_first_token_s``.

        >>> answer = llm.invoke("What is the capital of France?")
        >>> answer.content, answer.response_metadata["model_name"]
        ('Paris.', 'small')
        >>> routed = answer.response_metadata["pickllm"]
        >>> routed["model"], routed["policy"], round(routed["cost_usd"], 12)
        ('small', 'cheapest', 1.6e-06)

    Stream:
        Tokens stream from the chosen model; retries and fallbacks happen before the first
        token. Routing facts, ``model_name`` and usage are on the last chunk only.

        >>> chunks = list(llm.stream("What is the capital of France?"))
        >>> [c.content for c in chunks], "pickllm" in chunks[-1].response_metadata
        (['Paris.', ''], True)

    Async:
        ``ainvoke``/``astream``/``abatch`` call the children's native async methods.

        >>> import asyncio
        >>> asyncio.run(llm.ainvoke("What is the capital of France?")).content
        'Paris.'

    Token usage:
        Usage is the chosen model's own, counted once (one LLM run per call). A model that
        reports none gets its tokens estimated (4 characters per token) for the cost,
        flagged in ``response_metadata["pickllm"]["cost_estimated"]``. A model may report
        its own cost as ``response_metadata["cost_usd"]``; it then replaces the price-based
        cost.

        >>> from langchain_core.callbacks import get_usage_metadata_callback
        >>> with get_usage_metadata_callback() as usage:
        ...     _ = llm.invoke("What is the capital of France?")
        >>> usage.usage_metadata
        {'small': {'input_tokens': 8, 'output_tokens': 2, 'total_tokens': 10}}
        >>> llm.stats()["small"].calls
        4

    Feedback:
        Latency and cost are recorded automatically. With an ``evaluator`` (a callable
        ``(prompt, answer, **kw) -> score in [0, 1] | None``, see :mod:`pickllm.evaluation`)
        the score of each answer joins the reward inline or, with
        ``evaluate_in_background=True``, when it is ready. For scores that come later (a
        user's thumbs-up) set ``await_feedback=True`` and call ``feedback(id, score)``
        with the decision id or the LangChain run id (or message id) of the call. An
        answer the evaluator scores None waits like that too, and is learned from without
        a quality score when the router expires it. A call made with ``model=<name>``
        bypasses the policy: it is recorded and learned from (probability 1), not
        evaluated.

    Tools and structured output:
        ``bind_tools`` and ``with_structured_output`` bind the tools on the chosen model at
        call time; models that cannot call tools (their ``bind_tools`` is not implemented,
        or their ``profile`` or ``capabilities`` say so), lack native structured output
        when the call asks for a ``response_format``, or whose context window is too small
        are not offered for that call. ``profile`` promises only what every model promises.

    Args:
        models: the candidates, as a mapping name -> chat model or a list named by each
            model's ``model_name`` (or ``model``).
        prices: name -> (input, output) USD per 1M tokens, or a ``PriceTable``. Required for
            every model when the cost weight is not zero.
        policy: a ``pickllm`` policy or its short name.
        quality: weight of the answer quality in the reward.
        cost: weight of the cost.
        latency: weight of the latency.
        objective: a full ``Objective`` (overrides the three weights).
        evaluator: scores answers (see Feedback).
        evaluate_in_background: run the evaluator after returning.
        await_feedback: keep each decision waiting for ``feedback()`` before learning.
        seed: seed of the policy and of the retry jitter.
        retry: retry and fallback settings.
        router: a pre-built or loaded ``Router``; its candidates must be the models.
        capabilities: per model, overrides of ``tool_calling``, ``structured_output`` and
            ``max_context_tokens``.
        context_key: maps the messages to a context key for per-context policies.
        clock: monotonic clock (injected in tests).
        sleep: sync sleep between retries (injected in tests).
        async_sleep: async sleep between retries (injected in tests).
        max_tracked_runs: how many LangChain run ids are remembered for ``feedback``.
        model_name: this model's name in traces (alias ``model``).
        streaming: make ``invoke`` stream from the chosen model.
        temperature: accepted for drop-in compatibility; each model keeps its own.
        max_tokens: accepted for drop-in compatibility; each model keeps its own.
        stop: default stop sequences, passed to the chosen model.

    Raises:
        ConfigError: a setting is not allowed (a missing price, an unknown capability,
            a router whose candidates are not the models).
    """

    model_config = ConfigDict(populate_by_name=True)

    models: dict[str, InstanceOf[BaseChatModel]]
    """The candidate chat models by name."""
    prices: InstanceOf[PriceTable] | dict[str, tuple[float, float]] | None = None
    """USD per 1M input and output tokens, per model."""
    policy: InstanceOf[Policy] | str = "thompson"
    """The routing policy, or its short name."""
    quality: float = 1.0
    """Weight of the answer quality."""
    cost: float = 0.5
    """Weight of the cost."""
    latency: float = 0.2
    """Weight of the latency."""
    objective: InstanceOf[Objective] | None = Field(default=None, exclude=True)
    """A full objective; overrides ``quality``/``cost``/``latency``."""
    evaluator: Any = Field(default=None, exclude=True)
    """Scores each answer: ``(prompt, answer, **kw) -> float | None`` (or awaitable)."""
    evaluate_in_background: bool = False
    """Run the evaluator after the answer is returned."""
    await_feedback: bool = False
    """Learn from a call only once ``feedback()`` brings its score (or it expires)."""
    seed: int | None = None
    """Seed of the policy (when given by name) and of the retry jitter."""
    retry: InstanceOf[RetryConfig] | None = Field(default=None, exclude=True)
    """Retry and fallback settings (``pickllm.executor.RetryConfig``)."""
    router: InstanceOf[Router] | None = Field(default=None, exclude=True)
    """The core router (built from the other settings when not given)."""
    capabilities: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per model: ``tool_calling``, ``structured_output``, ``max_context_tokens`` overrides."""
    context_key: Callable[[list[BaseMessage]], str | None] | None = Field(
        default=None, exclude=True
    )
    """Context key of a call, for per-context policies."""
    clock: Callable[[], float] = Field(default=time.monotonic, exclude=True)
    """Monotonic clock in seconds."""
    sleep: Callable[[float], None] = Field(default=time.sleep, exclude=True)
    """Sleep between sync retries."""
    async_sleep: Callable[[float], Awaitable[None]] | None = Field(default=None, exclude=True)
    """Sleep between async retries (``asyncio.sleep`` when None)."""
    max_tracked_runs: int = 10_000
    """How many run id -> decision id pairs are kept for ``feedback``."""
    model_name: str = Field(default="pickllm", alias="model")
    """This model's name in traces."""
    streaming: bool = False
    """Whether ``invoke`` streams from the chosen model."""
    temperature: float | None = None
    """Accepted for drop-in compatibility; each child keeps its own sampling settings."""
    max_tokens: int | None = None
    """Accepted for drop-in compatibility; each child keeps its own output limit."""
    stop: list[str] | None = None
    """Default stop sequences passed to the chosen model."""

    _state: _State = PrivateAttr()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _cache_hook_signatures(cls)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # Our own configuration errors surface as themselves (ConfigError, with the
            # parameter, the value and what is allowed), not wrapped by pydantic.
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, PickLLMError | TypeError):
                    raise cause from None
            raise

    @model_validator(mode="before")
    @classmethod
    def _name_models(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "models" not in data:
            return data
        models = data["models"]
        if isinstance(models, Mapping):
            return data
        if isinstance(models, BaseChatModel) or not isinstance(models, Sequence):
            msg = (
                "models must be a mapping name -> chat model or a list of chat models, "
                f"got {type(models).__name__}"
            )
            raise ConfigError(msg)
        named: dict[str, BaseChatModel] = {}
        for model in models:
            if not isinstance(model, BaseChatModel):
                msg = f"models must be LangChain chat models, got {type(model).__name__}"
                raise ConfigError(msg)
            name = _model_name_of(model)
            if name is None:
                msg = (
                    f"a {type(model).__name__} in models has no model_name or model; pass "
                    "models as a mapping name -> chat model to name it"
                )
                raise ConfigError(msg)
            if name in named:
                msg = (
                    f"two models are named {name!r}; pass models as a mapping "
                    "name -> chat model to give them distinct names"
                )
                raise ConfigError(msg)
            named[name] = model
        return {**data, "models": named}

    def model_post_init(self, context: Any, /) -> None:
        """Build the core router, executor and evaluation runner once."""
        super().model_post_init(context)
        if not self.models:
            msg = "models must name at least one chat model, got none"
            raise ConfigError(msg)
        if isinstance(self.max_tracked_runs, bool) or self.max_tracked_runs < 0:
            msg = f"max_tracked_runs must be an int >= 0, got {self.max_tracked_runs!r}"
            raise ConfigError(msg)
        for name, caps in self.capabilities.items():
            if name not in self.models:
                msg = (
                    f"capabilities names {name!r}, which is not among the models "
                    f"{sorted(self.models)}"
                )
                raise ConfigError(msg)
            unknown = set(caps) - _CAPABILITY_KEYS
            if unknown:
                msg = (
                    f"capabilities[{name!r}] has unknown key(s) {sorted(unknown)}; "
                    f"allowed: {sorted(_CAPABILITY_KEYS)}"
                )
                raise ConfigError(msg)
        if self.router is None:
            self.router = self._build_router()
        else:
            self._check_router(self.router)
        executor_seed = (
            None
            if self.seed is None
            else np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0])
        )
        extra: dict[str, Any] = {}
        if self.async_sleep is not None:
            extra["async_sleep"] = self.async_sleep
        executor = Executor(
            self.router,
            retry=self.retry,
            clock=self.clock,
            sleep=self.sleep,
            seed=executor_seed,
            **extra,
        )
        runner = None
        if self.evaluator is not None:
            runner = EvaluationRunner(
                self.evaluator, self.router, background=self.evaluate_in_background
            )
        state = _State(
            router=self.router,
            executor=executor,
            runner=runner,
            await_score=runner is not None or self.await_feedback,
            max_runs=self.max_tracked_runs,
            takes_run_manager={name: _takes_run_manager(m) for name, m in self.models.items()},
        )
        # Into the instance dict, not pydantic's private storage: see _State.
        object.__setattr__(self, "_state", state)

    # ------------------------------------------------------------------ construction
    def _objective(self) -> Objective:
        if self.objective is not None:
            return self.objective
        return Objective(quality=self.quality, cost=self.cost, latency=self.latency)

    def _build_router(self) -> Router:
        objective = self._objective()
        prices = self.prices
        table = prices if isinstance(prices, PriceTable) else PriceTable(prices or {})
        missing = [name for name in self.models if name not in table]
        if missing and objective.cost > 0:
            msg = (
                f"no price for model(s) {missing}: prices must give (input, output) USD per "
                "1M tokens for every model when the cost weight is not zero (got cost="
                f"{objective.cost!r}); add them to prices or set cost=0"
            )
            raise ConfigError(msg)
        candidates = []
        for name, model in self.models.items():
            input_price, output_price = table.get(name, (0.0, 0.0))
            candidates.append(
                Candidate(
                    name=name,
                    input_price=input_price,
                    output_price=output_price,
                    **self._capabilities_of(name, model),
                )
            )
        return Router(candidates, self.policy, objective, seed=self.seed, clock=self.clock)

    def _capabilities_of(self, name: str, model: BaseChatModel) -> dict[str, Any]:
        profile: Mapping[str, Any] = model.profile or {}
        can_bind = type(model).bind_tools is not BaseChatModel.bind_tools
        tool_calling = profile.get("tool_calling") if can_bind else False
        caps: dict[str, Any] = {
            "tool_calling": tool_calling,
            "structured_output": profile.get("structured_output") if can_bind else False,
            "max_context_tokens": profile.get("max_input_tokens"),
        }
        caps.update(self.capabilities.get(name, {}))
        return caps

    def _check_router(self, router: Router) -> None:
        names = {c.name for c in router.candidates}
        if names != set(self.models):
            msg = (
                f"the router's candidates {sorted(names)} are not the models "
                f"{sorted(self.models)}; a router given to ChatPickLLM must route exactly "
                "between its models"
            )
            raise ConfigError(msg)
        given = {"prices", "policy", "quality", "cost", "latency", "objective"}
        clash = sorted(given & self.model_fields_set)
        if clash:
            msg = (
                f"{clash} cannot be given together with router: the router already has its "
                "prices, policy and objective"
            )
            raise ConfigError(msg)

    # ------------------------------------------------------------------ LangChain members
    @property
    def _llm_type(self) -> str:
        return "pickllm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        router = self.router
        policy = router.policy.name if router is not None else str(self.policy)
        return {"model_name": self.model_name, "models": sorted(self.models), "policy": policy}

    def _resolve_model_profile(self) -> ModelProfile | None:
        # Promise only what every candidate promises (bools: all; limits: the smallest).
        profiles: list[Mapping[str, Any]] = [m.profile or {} for m in self.models.values()]
        keys = set.intersection(*(set(p) for p in profiles)) if profiles else set()
        out: dict[str, Any] = {}
        for key in keys:
            values = [p[key] for p in profiles]
            if all(isinstance(v, bool) for v in values):
                out[key] = all(values)
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                out[key] = min(values)
        return cast("ModelProfile", out) if out else None

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; at call time they are bound on the chosen model its own way.

        Provider tool dicts pass through unchanged; tools, functions and Pydantic classes
        are converted to OpenAI tool schemas, which every LangChain provider accepts.

        Raises:
            NoCandidateError: no candidate can call tools.
        """
        router = self.router
        if router is not None and all(c.tool_calling is False for c in router.candidates):
            msg = (
                "no candidate can call tools: the models "
                f"{sorted(self.models)} do not implement bind_tools or are marked "
                "tool_calling=False"
            )
            raise NoCandidateError(msg)
        formatted = [t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # ------------------------------------------------------------------ public API
    def feedback(self, id_: str | uuid.UUID, score: float) -> float | None:
        """Join a score that came later (a user's rating) to a routed call.

        Args:
            id_: the call's decision id (``response_metadata["pickllm"]["decision_id"]``),
                its LangChain run id, or its message id (``lc_run--<run id>...``).
            score: quality in [0, 1].

        Returns:
            The reward the policy learned from, or None while the call itself is not
            recorded yet.

        Raises:
            UnknownDecisionError: the call is not waiting for a score (unknown, already
                scored, expired, or not routed with ``await_feedback=True`` or an
                evaluator).
        """
        return self._state.router.feedback(self.decision_id(id_), score)

    def decision_id(self, id_: str | uuid.UUID) -> str:
        """The decision id of a call given its decision id, run id or message id."""
        key = _run_key(id_)
        if key is not None:
            found = self._state.runs.get(key)
            if found is not None:
                return found
        return str(id_)

    def stats(self) -> dict[str, CandidateStats]:
        """Per candidate: calls, errors, mean reward, cost and latency."""
        return self._state.router.stats()

    def save(self, path: str | Path) -> None:
        """Save the router's configuration and learned state (JSON, atomic)."""
        self._state.router.save(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        models: Mapping[str, BaseChatModel] | Sequence[BaseChatModel],
        **kwargs: Any,
    ) -> ChatPickLLM:
        """A ``ChatPickLLM`` over ``models`` with the router saved at ``path``.

        Args:
            path: a file written by :meth:`save`.
            models: the same candidates (by name) as when it was saved.
            **kwargs: other settings (evaluator, retry, clock, ...); the prices, the
                policy and the objective come from the file.

        Raises:
            StateError: the file is missing, corrupted or not a router state.
            ConfigError: the models are not the saved router's candidates.
        """
        clock = kwargs.get("clock", time.monotonic)
        return cls(models=models, router=Router.load(path, clock=clock), **kwargs)

    @property
    def evaluation(self) -> EvaluationRunner | None:
        """The evaluation runner (``join()`` waits for background scores), if any."""
        return self._state.runner

    # ------------------------------------------------------------------ routing
    def _request(
        self,
        state: _State,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> tuple[_Request, Decision, bool]:
        forced = tools = tool_choice = None
        if kwargs:
            forced = kwargs.pop("model", None)
            kwargs.pop("stream", None)
            tools = kwargs.pop("tools", None)
            tool_choice = kwargs.pop("tool_choice", None)
        prompt: str
        query: str
        if len(messages) == 1:
            prompt = query = _text(messages[0])
        else:
            texts = [_text(m) for m in messages]
            prompt = "\n".join(texts)
            query = _last_user_text(messages, texts)
        request = _Request(
            messages,
            stop if stop is not None else self.stop,
            tools,
            tool_choice,
            kwargs,
            prompt,
            query,
        )
        tokens = estimate_tokens(prompt)
        router = state.router
        context = Context(
            query=query,
            key=None if self.context_key is None else self.context_key(messages),
            needs_tool_calling=bool(tools),
            needs_structured_output=kwargs.get("response_format") is not None,
            min_context_tokens=tokens if state.context_limits else None,
            input_tokens=tokens,
            # The pool itself: the router then offers it as is instead of copying the
            # context (it still filters the pool when the call needs a capability).
            candidates=router.candidates,
        )
        if forced is not None:
            return request, _forced(router, str(forced), context), True
        return request, router.route(context), False

    def _bind(self, name: str, request: _Request) -> tuple[BaseChatModel, dict[str, Any]]:
        child = self.models[name]
        if not request.tools:
            return child, dict(request.kwargs)
        extra = {} if request.tool_choice is None else {"tool_choice": request.tool_choice}
        runnable: Any = child.bind_tools(request.tools, **extra)
        call_kwargs: dict[str, Any] = {}
        while isinstance(runnable, RunnableBinding):
            call_kwargs = {**runnable.kwargs, **call_kwargs}
            runnable = runnable.bound
        if runnable is not child:
            msg = (
                f"{name}: bind_tools must return a binding of the model itself "
                f"(self.bind(tools=...)), got {type(runnable).__name__}"
            )
            raise TypeError(msg)
        return child, {**call_kwargs, **request.kwargs}

    def _routing_info(
        self,
        decision: Decision,
        served: str,
        result: ExecutionResult[Any],
        *,
        reported_cost: bool,
    ) -> dict[str, Any]:
        feedback = result.feedback
        info: dict[str, Any] = {
            "decision_id": decision.decision_id,
            "model": served,
            "chosen": decision.candidate.name,
            "probability": decision.probability,
            "policy": decision.policy,
            "plan": decision.kind,
            "cost_usd": feedback.cost_usd,
            "cost_estimated": feedback.tokens_estimated and not reported_cost,
            "latency_s": feedback.latency_s,
            "attempts": len(result.attempts),
        }
        if feedback.time_to_first_token_s is not None:
            info["time_to_first_token_s"] = feedback.time_to_first_token_s
        return info

    def _finish(
        self, decision: Decision, result: ExecutionResult[ChatResult]
    ) -> tuple[ChatResult, str, BaseMessage]:
        """The answer of ``result``, tagged with the routing facts (in place)."""
        value = result.value
        served = result.decision.candidate.name
        if len(result.values) > 1:
            for name, member in zip(result.served_by, result.values, strict=True):
                if member is value:
                    served = name
        message = value.generations[0].message
        metadata = message.response_metadata
        reported = _reported_cost(metadata) is not None
        # The child built this message and its metadata for this call, so both are tagged
        # in place (a copied message costs a pydantic validation per call).
        if "model_name" not in metadata:
            metadata["model_name"] = _model_name_of(self.models[served]) or served
        metadata["pickllm"] = self._routing_info(decision, served, result, reported_cost=reported)
        if len(result.values) > 1 and isinstance(message, AIMessage):
            total = _summed_usage(result.values)
            if total is not None:
                message.usage_metadata = total
        return value, served, message

    def _evaluate(
        self,
        state: _State,
        request: _Request,
        decision: Decision,
        *,
        served: str,
        answer: str,
        message: BaseMessage,
    ) -> None:
        runner = state.runner
        if runner is None:
            return
        runner.submit(
            decision.decision_id,
            request.query,
            answer,
            messages=request.messages,
            message=message,
            model=served,
            decision_id=decision.decision_id,
        )

    async def _aevaluate(
        self,
        state: _State,
        request: _Request,
        decision: Decision,
        *,
        served: str,
        answer: str,
        message: BaseMessage,
    ) -> None:
        runner = state.runner
        if runner is None:
            return
        await runner.asubmit(
            decision.decision_id,
            request.query,
            answer,
            messages=request.messages,
            message=message,
            model=served,
            decision_id=decision.decision_id,
        )

    def _tag_last(
        self,
        chunk: ChatGenerationChunk,
        decision: Decision,
        result: ExecutionResult[list[ChatGenerationChunk]],
        *,
        has_name: bool,
    ) -> ChatGenerationChunk:
        # Routing facts go on exactly one chunk: string metadata concatenates when
        # LangChain adds chunks together.
        served = result.decision.candidate.name
        reported = any(
            _reported_cost(c.message.response_metadata) is not None for c in result.value
        )
        metadata = dict(chunk.message.response_metadata)
        if not has_name:
            metadata["model_name"] = _model_name_of(self.models[served]) or served
        metadata["pickllm"] = self._routing_info(decision, served, result, reported_cost=reported)
        chunk.message.response_metadata = metadata
        return chunk

    # ------------------------------------------------------------------ sync
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        state = self._state
        request, decision, forced = self._request(state, messages, stop, kwargs)
        if run_manager is not None:
            state.remember(run_manager.run_id, decision.decision_id)
        result = self._run(state, decision, request, run_manager, forced=forced)
        out, served, message = self._finish(decision, result)
        if not forced and state.runner is not None:
            self._evaluate(
                state,
                request,
                decision,
                served=served,
                answer=_message_text(message),
                message=message,
            )
        return out

    def _run(
        self,
        state: _State,
        decision: Decision,
        request: _Request,
        run_manager: CallbackManagerForLLMRun | None,
        *,
        forced: bool,
    ) -> ExecutionResult[ChatResult]:
        def call(candidate: Candidate) -> ChatResult:
            child, kw = self._bind(candidate.name, request)
            if child.rate_limiter is not None:
                child.rate_limiter.acquire(blocking=True)
            if state.takes_run_manager[candidate.name]:
                kw["run_manager"] = run_manager
            return child._generate(request.messages, stop=request.stop, **kw)

        return state.executor.run(
            decision,
            call,
            _result_usage,
            await_score=state.await_score and not forced,
            aggregate=self._aggregator(state) if decision.kind == "ensemble" else None,
            prompt_text=request.prompt,
            completion_text=_result_text,
        )

    @staticmethod
    def _aggregator(state: _State) -> Callable[[Sequence[ChatResult]], ChatResult]:
        def aggregate(results: Sequence[ChatResult]) -> ChatResult:
            return results[state.router.aggregate([_result_text(r) for r in results])]

        return aggregate

    def _open(self, request: _Request) -> Callable[[Candidate], Iterator[ChatGenerationChunk]]:
        def open_stream(candidate: Candidate) -> Iterator[ChatGenerationChunk]:
            child, kw = self._bind(candidate.name, request)
            if child.rate_limiter is not None:
                child.rate_limiter.acquire(blocking=True)
            messages, stop = request.messages, request.stop
            if type(child)._stream is BaseChatModel._stream:
                return iter([_as_chunk(child._generate(messages, stop=stop, **kw))])
            # run_manager=None: this model's run reports the tokens, once.
            return child._stream(messages, stop=stop, run_manager=None, **kw)

        return open_stream

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        state = self._state
        request, decision, forced = self._request(state, messages, stop, kwargs)
        if decision.kind != "single":
            result = self._run(state, decision, request, run_manager, forced=forced)
            out, served, message = self._finish(decision, result)
            if not forced:
                self._evaluate(
                    state,
                    request,
                    decision,
                    served=served,
                    answer=_message_text(message),
                    message=message,
                )
            yield _as_chunk(out)
            return
        # LangChain's stream paths do not pass run_manager (on purpose, see the notes);
        # the run id is then read off the first chunk, whose message id the base sets.
        run_known = run_manager is not None
        if run_manager is not None:
            state.remember(run_manager.run_id, decision.decision_id)
        finished: list[ExecutionResult[list[ChatGenerationChunk]]] = []
        chunks = state.executor.stream(
            decision,
            self._open(request),
            _chunks_usage,
            await_score=state.await_score and not forced,
            prompt_text=request.prompt,
            completion_text=_chunks_text,
            on_finish=finished.append,
        )
        held: ChatGenerationChunk | None = None
        has_name = False
        try:
            for chunk in chunks:
                if held is not None:
                    yield held
                    run_known = run_known or _remember_from(state, held, decision.decision_id)
                has_name = has_name or _has_model_name(chunk)
                held = chunk
        finally:
            chunks.close()
        if held is None or not finished:
            return
        tagged = self._tag_last(held, decision, finished[0], has_name=has_name)
        if not forced:
            served = finished[0].decision.candidate.name
            answer = _chunks_text(finished[0].value)
            self._evaluate(
                state, request, decision, served=served, answer=answer, message=tagged.message
            )
        yield tagged

    # ------------------------------------------------------------------ async
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        state = self._state
        request, decision, forced = self._request(state, messages, stop, kwargs)
        if run_manager is not None:
            state.remember(run_manager.run_id, decision.decision_id)
        result = await self._arun(state, decision, request, run_manager, forced=forced)
        out, served, message = self._finish(decision, result)
        if not forced and state.runner is not None:
            await self._aevaluate(
                state,
                request,
                decision,
                served=served,
                answer=_message_text(message),
                message=message,
            )
        return out

    async def _arun(
        self,
        state: _State,
        decision: Decision,
        request: _Request,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        *,
        forced: bool,
    ) -> ExecutionResult[ChatResult]:
        async def call(candidate: Candidate) -> ChatResult:
            child, kw = self._bind(candidate.name, request)
            if child.rate_limiter is not None:
                await child.rate_limiter.aacquire(blocking=True)
            if state.takes_run_manager[candidate.name]:
                kw["run_manager"] = run_manager
            return await child._agenerate(request.messages, stop=request.stop, **kw)

        return await state.executor.arun(
            decision,
            call,
            _result_usage,
            await_score=state.await_score and not forced,
            aggregate=self._aggregator(state) if decision.kind == "ensemble" else None,
            prompt_text=request.prompt,
            completion_text=_result_text,
        )

    def _aopen(
        self, request: _Request
    ) -> Callable[[Candidate], Awaitable[AsyncIterator[ChatGenerationChunk]]]:
        async def open_stream(candidate: Candidate) -> AsyncIterator[ChatGenerationChunk]:
            child, kw = self._bind(candidate.name, request)
            if child.rate_limiter is not None:
                await child.rate_limiter.aacquire(blocking=True)
            messages, stop = request.messages, request.stop
            cls = type(child)
            if cls._stream is BaseChatModel._stream and cls._astream is BaseChatModel._astream:
                result = await child._agenerate(messages, stop=stop, **kw)
                return _aiter_one(_as_chunk(result))
            return child._astream(messages, stop=stop, run_manager=None, **kw)

        return open_stream

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        state = self._state
        request, decision, forced = self._request(state, messages, stop, kwargs)
        if decision.kind != "single":
            result = await self._arun(state, decision, request, run_manager, forced=forced)
            out, served, message = self._finish(decision, result)
            if not forced:
                answer = _message_text(message)
                await self._aevaluate(
                    state, request, decision, served=served, answer=answer, message=message
                )
            yield _as_chunk(out)
            return
        run_known = run_manager is not None
        if run_manager is not None:
            state.remember(run_manager.run_id, decision.decision_id)
        finished: list[ExecutionResult[list[ChatGenerationChunk]]] = []
        chunks = state.executor.astream(
            decision,
            self._aopen(request),
            _chunks_usage,
            await_score=state.await_score and not forced,
            prompt_text=request.prompt,
            completion_text=_chunks_text,
            on_finish=finished.append,
        )
        held: ChatGenerationChunk | None = None
        has_name = False
        try:
            async for chunk in chunks:
                if held is not None:
                    yield held
                    run_known = run_known or _remember_from(state, held, decision.decision_id)
                has_name = has_name or _has_model_name(chunk)
                held = chunk
        finally:
            await chunks.aclose()
        if held is None or not finished:
            return
        tagged = self._tag_last(held, decision, finished[0], has_name=has_name)
        if not forced:
            served = finished[0].decision.candidate.name
            answer = _chunks_text(finished[0].value)
            await self._aevaluate(
                state, request, decision, served=served, answer=answer, message=tagged.message
            )
        yield tagged


def _forced(router: Router, name: str, context: Context) -> Decision:
    """A decision for the candidate a call names with ``model=``.

    The policy is bypassed for that call; the call is still recorded and learned from,
    as an observation of that candidate made with probability 1.
    """
    candidate = router.candidate(name)
    if not candidate.can_serve(context):
        msg = f"model {name!r} cannot serve this call (it needs tool calling or more)"
        raise NoCandidateError(msg)
    return Decision(
        decision_id=new_decision_id(),
        candidate=candidate,
        ranking=(candidate,),
        probability=1.0,
        policy=router.policy.name,
        key=context.key,
    )


def _remember_from(state: _State, chunk: ChatGenerationChunk, decision_id: str) -> bool:
    message_id = chunk.message.id
    if message_id and message_id.startswith(_RUN_PREFIX):
        state.remember(message_id, decision_id)
        return True
    return False


def _summed_usage(results: Sequence[ChatResult]) -> UsageMetadata | None:
    total: UsageMetadata | None = None
    for result in results:
        usage = getattr(result.generations[0].message, "usage_metadata", None)
        if usage:
            total = usage if total is None else add_usage(total, usage)
    return total


async def _aiter_one(chunk: ChatGenerationChunk) -> AsyncIterator[ChatGenerationChunk]:
    yield chunk


def _takes_run_manager(model: BaseChatModel) -> bool:
    try:
        return "run_manager" in inspect.signature(model._generate).parameters
    except (TypeError, ValueError):
        return False


_cache_hook_signatures(ChatPickLLM)
