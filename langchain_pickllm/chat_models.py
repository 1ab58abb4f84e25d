"""``ChatPickLLM``: a LangChain chat model that routes every call and learns from it.

The whole routed call (route, retries and fallbacks, plans, evaluation, learning) is
:class:`pickllm.engine.Engine`'s; this module translates a LangChain call into an engine
``Request`` plus ``Calls`` (:mod:`langchain_pickllm._translate`), and the engine's
``Answer`` back into the chosen model's message, tagged with the routing facts.

Forwarding is *inline*: the chosen child's own ``_generate``/``_agenerate``/``_stream``/
``_astream`` runs inside this model's LLM run, with the keyword arguments the child's own
``bind_tools`` produced. So each call is one LLM run in traces and callbacks, token usage
is counted once (``get_usage_metadata_callback``), and LangGraph's ``stream_mode="messages"``
sees each token once. The children's callbacks, cache and ``output_version`` are bypassed
(this model's apply); their ``rate_limiter`` is honoured.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput, ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, InstanceOf, PrivateAttr, ValidationError, model_validator

from langchain_pickllm._runs import alias_runs
from langchain_pickllm._runs import install as install_run_lineage
from langchain_pickllm._translate import (
    Child,
    LangChainCalls,
    detected_of,
    has_model_name,
    model_name_of,
    query_and_prompt,
    run_key,
    tag,
    tool_loop_model,
)
from langchain_pickllm.tracing import annotate_run
from pickllm.beliefs import Belief, Explanation
from pickllm.engine import Answer, Engine, Request, RoutingSettings
from pickllm.engine.tracking import Tracking
from pickllm.errors import ConfigError, NoCandidateError, PickLLMError
from pickllm.evaluation import EvaluationRunner
from pickllm.router import CandidateStats, Router

__all__ = ["ChatPickLLM"]


class ChatPickLLM(BaseChatModel, RoutingSettings):
    """A chat model that routes each call to one of several chat models and learns from it.

    Every ``invoke``/``ainvoke``/``stream``/``astream``/``batch``/``abatch`` item is routed
    on its own by a :class:`pickllm.engine.Engine`: the router's policy picks a model, the
    engine runs it (retrying transient errors, falling back along the policy's ranking,
    recording failures), and the call's latency and token cost become the policy's reward,
    with an evaluator's quality score when one is set.

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
        The answer is the chosen model's message, with its ``usage_metadata``,
        ``model_name`` and LangSmith ``ls_provider``/``ls_model_name``;
        ``response_metadata["pickllm"]`` says how it was routed (``Answer.info()``):
        ``decision_id``, ``model`` (the candidate that answered), ``chosen`` (the one the
        policy picked; differs after a fallback), ``probability``, ``policy``, ``plan``,
        ``cost_usd``, ``cost_estimated`` (the cost rests on estimated token counts),
        ``latency_s``, ``attempts``, when streamed ``time_to_first_token_s`` and, for a
        multi-model plan, ``members``; for a cascade, ``strategy`` and ``steps`` (see
        Cascades).

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
        Usage is the chosen model's own, counted once (one LLM run per call); a
        multi-model plan's answer carries the usage of every member that ran. A model that
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
        ``(prompt, answer, **kw) -> score in [0, 1] | None``, see :mod:`pickllm.evaluation`;
        it gets the keywords ``messages`` and ``model``) the score of each answer joins
        the reward inline or, with ``evaluate_in_background=True``, when it is ready; an
        answer it does not score is learned from at once, without a quality score.
        Without an evaluator, each call waits for a later score (``await_feedback``
        defaults to ``"auto"``), given with ``feedback(id, score)``, where ``id`` is the
        decision id (``response_metadata["pickllm"]["decision_id"]``), the call's run or
        message id, or the run id of any run enclosing it (a chain's, an agent's: every
        routed call inside it takes the score); or with ``track()``:
        ``with llm.track() as t: chain.invoke(...)`` then ``t.feedback(score)``. A call
        that gets no score is learned from without one when it expires
        (``pending_ttl_s``, ``max_pending``).

        >>> answer = llm.invoke("What is the capital of France?")
        >>> reward = llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)
        >>> 0.0 <= reward <= 1.0
        True

    Cascades:
        With ``strategy=`` (and ``budget_per_call_usd=``) a call that binds no tools may
        run several models in turn and return the answer with the best post-hoc estimate;
        ``response_metadata["pickllm"]["steps"]`` lists each model run (see
        ``docs/cascades.md``). A stream then yields only the returned answer.

    Choosing the model:
        A call made with ``model=<name>`` is served by that model (the policy is bypassed;
        the call is still recorded, evaluated and learned from, with probability 1). A
        turn answering tool calls (the messages end with tool results) is served by the
        model that made the calls, so a tool loop stays on one model.

    Tools and structured output:
        ``bind_tools`` and ``with_structured_output`` bind the tools on the chosen model at
        call time; models that cannot call tools (their ``bind_tools`` is not implemented,
        or their ``profile`` or ``capabilities`` say so), lack native structured output
        when the call asks for a ``response_format``, or whose context window is too small
        are not offered for that call. ``profile`` promises only what every model promises.

    Args:
        models: the candidates, as a mapping name -> chat model or a list named by each
            model's ``model_name`` (or ``model``).
        model_name: this model's name in traces (alias ``model``).
        streaming: make ``invoke`` stream from the chosen model.
        temperature: accepted for drop-in compatibility; each model keeps its own.
        max_tokens: accepted for drop-in compatibility; each model keeps its own.
        stop: default stop sequences, passed to the chosen model.
        **settings: the routing settings shared with LlamaIndex's ``PickLLM``
            (:class:`pickllm.engine.RoutingSettings`; the README's table lists them).
            ``prices`` may leave models out: their prices come from the ``genai-prices``
            database (offline), by the provider and model name each model reports.

    Raises:
        ConfigError: a setting is not allowed (a missing price, an unknown capability,
            a router whose candidates are not the models).
    """

    model_config = ConfigDict(populate_by_name=True)

    models: dict[str, InstanceOf[BaseChatModel]]
    """The candidate chat models by name."""
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

    # One private attribute, read once per call: each read of a pydantic private
    # attribute goes through BaseModel.__getattr__ (a few microseconds).
    _pool: tuple[Engine, dict[str, Child]] = PrivateAttr()

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
            name = model_name_of(model)
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
        """Build the engine once, over capabilities read off each model."""
        super().model_post_init(context)
        install_run_lineage()  # feedback by the run id of any enclosing run
        detected = {name: detected_of(model) for name, model in self.models.items()}
        engine = self.build_engine(list(self.models), detected)
        self._pool = (engine, {name: Child.of(name, model) for name, model in self.models.items()})
        if self.router is None:
            # Not a user setting: the built router, readable as before (fields_set unchanged).
            object.__setattr__(self, "router", engine.router)

    # ------------------------------------------------------------------ LangChain members
    @property
    def _llm_type(self) -> str:
        return "pickllm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        router = self.router  # the engine's (a plain field, cheaper to read than _pool)
        policy = router.policy.name if router is not None else str(self.policy)
        params = {"model_name": self.model_name, "models": sorted(self.models), "policy": policy}
        strategy = self._pool[0].strategy
        if strategy is not None:
            params["strategy"] = strategy.name
        return params

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
        if all(c.tool_calling is False for c in self.engine.router.candidates):
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
    @property
    def engine(self) -> Engine:
        """The engine that runs every call (its router holds the learned state)."""
        return self._pool[0]

    @property
    def evaluation(self) -> EvaluationRunner | None:
        """The evaluation runner (``join()`` waits for background scores), if any."""
        return self.engine.evaluation

    def feedback(self, id_: str | uuid.UUID, score: float) -> float | None:
        """Join a score that came later (a user's rating) to a routed call.

        Args:
            id_: the call's decision id (``response_metadata["pickllm"]["decision_id"]``),
                its LangChain run id, its message id (``lc_run--<run id>...``), or the
                run id of any run enclosing it (a chain's, an agent's); such a run may
                have made several routed calls: each one still waiting for a score takes
                it.
            score: quality in [0, 1].

        Returns:
            The reward the policy learned from (of the last call, for several), or None
            while the call itself is not recorded yet.

        Raises:
            UnknownDecisionError: no call it names is waiting for a score (unknown,
                already scored, expired, or routed with ``await_feedback=False`` or an
                evaluator).
        """
        return self.engine.feedback(run_key(id_), score)

    def track(self) -> Tracking:
        """A block whose routed calls can be scored together, e.g. a chain's or agent's.

        ``with llm.track() as t: chain.invoke(...)``, then ``t.feedback(0.9)`` gives the
        score to every call this model routed inside the block (``async with`` works
        too). Blocks are per thread and per asyncio task; tasks created inside the block,
        and LangChain's own executors (``batch``), report into it.

        Examples:
            >>> from langchain_pickllm.testing import FakeToolChatModel
            >>> llm = ChatPickLLM(models=[FakeToolChatModel(model="a"),
            ...                          FakeToolChatModel(model="b")], cost=0, seed=0)
            >>> with llm.track() as tracked:
            ...     _ = llm.invoke("What is the capital of France?")
            ...     _ = llm.invoke("And of Italy?")
            >>> len(tracked), 0.0 <= tracked.feedback(1.0) <= 1.0
            (2, True)
        """
        return self.engine.track()

    def decision_id(self, id_: str | uuid.UUID) -> str:
        """The decision id of a call given its decision id, run id or message id.

        For the run id of an enclosing run that made several routed calls, the latest.

        Raises:
            UnknownDecisionError: ``id_`` names no pending decision and no call among the
                last ``max_tracked_runs``.
        """
        return self.engine.decision_id(run_key(id_))

    def stats(self) -> dict[str, CandidateStats]:
        """Per candidate: calls, errors, mean reward, cost and latency."""
        return self.engine.router.stats()

    def beliefs(self) -> dict[str, Belief]:
        """Each model's current estimate under the policy (``Router.beliefs``)."""
        return self.engine.router.beliefs()

    def explain(self, query: str, **kwargs: Any) -> Explanation:
        """Why ``query`` would go where it goes, without routing it (``Router.explain``).

        ``kwargs``: ``key``, ``needs_tool_calling``, ``needs_structured_output``, ``draws``.
        """
        return self.engine.router.explain(query, **kwargs)

    def save(self, path: str | Path) -> None:
        """Save the router's configuration and learned state (JSON, atomic)."""
        self.engine.router.save(path)

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

    # ------------------------------------------------------------------ translation
    def _prepare(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: Any,
        kwargs: dict[str, Any],
    ) -> tuple[Engine, Request, LangChainCalls]:
        """The engine, and its request and calls for one LangChain call."""
        if not messages:
            msg = "messages must hold at least one message, got none"
            raise ConfigError(msg)
        pin = tools = tool_choice = None
        engine, children = self._pool
        if kwargs:
            pin = kwargs.pop("model", None)
            kwargs.pop("stream", None)
            tools = kwargs.pop("tools", None)
            tool_choice = kwargs.pop("tool_choice", None)
        query, prompt = query_and_prompt(messages)
        request = Request(
            query=query,
            prompt=prompt,
            key=None if self.context_key is None else self.context_key(messages),
            needs_tool_calling=bool(tools),
            needs_structured_output=kwargs.get("response_format") is not None,
            pin=None if pin is None else str(pin),
            tool_loop_model=tool_loop_model(messages),
            evaluator_kwargs={"messages": messages},
        )
        calls = LangChainCalls(
            children,
            messages,
            self.stop if stop is None else stop,
            run_manager,
            tools,
            tool_choice,
            kwargs,
        )
        return engine, request, calls

    @staticmethod
    def _result(
        engine: Engine, calls: LangChainCalls, answer: Answer[ChatResult], run_manager: Any
    ) -> ChatResult:
        """The chosen answer, tagged; its run id now names the decision."""
        result = answer.value
        generation = result.generations[0]
        named = "model_name" in generation.message.response_metadata or "model_name" in (
            generation.generation_info or {}
        )
        child = calls.children[answer.model]
        tag(generation.message, answer, child, named=named)
        if run_manager is not None:
            alias_runs(
                engine, run_manager.run_id, run_manager.parent_run_id, answer.decision.decision_id
            )
            annotate_run(
                run_manager, child.ls_params, generation.message.response_metadata["pickllm"]
            )
        return result

    @staticmethod
    def _tagged(
        calls: LangChainCalls,
        last: ChatGenerationChunk,
        answers: list[Answer[list[ChatGenerationChunk]]],
    ) -> ChatGenerationChunk:
        """A stream's last chunk, tagged (routing facts go on exactly one chunk)."""
        if answers:
            answer = answers[0]
            # A copy of the metadata: LangChain merges chunks' dicts, they must not share.
            last.message.response_metadata = dict(last.message.response_metadata)
            child = calls.children[answer.model]
            tag(last.message, answer, child, named=has_model_name(answer.value))
        return last

    @staticmethod
    def _alias_stream(
        engine: Engine,
        run_manager: Any,
        last: ChatGenerationChunk,
        answers: list[Answer[list[ChatGenerationChunk]]],
    ) -> None:
        if not answers:
            return
        decision_id = answers[0].decision.decision_id
        # LangChain's stream paths pass no run_manager (on purpose); the run id is then
        # read off the message id the base class gave the chunks ("lc_run--<run id>").
        if run_manager is not None:
            alias_runs(engine, run_manager.run_id, run_manager.parent_run_id, decision_id)
        elif last.message.id:
            alias_runs(engine, run_key(last.message.id), None, decision_id)

    # ------------------------------------------------------------------ LangChain hooks
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        return self._result(engine, calls, engine.run(request, calls), run_manager)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        return self._result(engine, calls, await engine.arun(request, calls), run_manager)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        answers: list[Answer[list[ChatGenerationChunk]]] = []
        chunks = engine.stream(request, calls, on_finish=answers.append)
        held: ChatGenerationChunk | None = None
        try:
            for chunk in chunks:  # held back by one: the last gets the routing facts
                if held is not None:
                    yield held
                held = chunk
        except Exception:
            # A model that fails mid-stream: every chunk it sent reaches the caller first.
            if held is not None:
                yield held
            raise
        finally:
            chunks.close()
        if held is not None:
            yield self._tagged(calls, held, answers)
            self._alias_stream(engine, run_manager, held, answers)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        engine, request, calls = self._prepare(messages, stop, run_manager, kwargs)
        answers: list[Answer[list[ChatGenerationChunk]]] = []
        chunks = engine.astream(request, calls, on_finish=answers.append)
        held: ChatGenerationChunk | None = None
        try:
            async for chunk in chunks:  # held back by one: the last gets the routing facts
                if held is not None:
                    yield held
                held = chunk
        except Exception:
            # A model that fails mid-stream: every chunk it sent reaches the caller first.
            if held is not None:
                yield held
            raise
        finally:
            await chunks.aclose()
        if held is not None:
            yield self._tagged(calls, held, answers)
            self._alias_stream(engine, run_manager, held, answers)
