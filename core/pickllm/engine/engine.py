"""The engine: one routed call, from the request to the recorded reward.

:class:`Engine` is the only place that sequences a call; both framework wrappers use it.

1. **route**: ``Router.route`` picks a decision among the candidates that can serve the
   request (a model the caller pins, or the model that started a tool loop, is used as is,
   with probability 1);
2. **execute**: the decision's plan runs with the wrapper's ``call`` (retries, fallbacks,
   ensembles, cascades, streams: :mod:`pickllm.engine.plans`), one feedback per attempt;
3. **evaluate**: the evaluator scores the answer returned, inline or in the background, and
   the score joins the decision (``Router.feedback``);
4. **record**: the router turns each feedback into a reward and updates the policy.

Rules decided here, once:

* the evaluator sees the request's ``query`` (the last user message) as its prompt, the
  answer's text, and the keywords ``model``, ``decision_id``, ``raw_answer`` (the wrapper's
  answer object; for a stream, its chunks) plus whatever the wrapper puts in
  ``evaluator_kwargs`` (the framework's messages);
* an answer waits for a delayed score when there is an evaluator or ``await_feedback``
  (until ``Router.pending_ttl_s`` or ``Router.max_pending`` expires it: it is then learned
  from with the objective's ``missing_quality`` rule);
  an answer that will get no score (the evaluator returned None or failed, and nobody
  awaits feedback) is learned from at once, without a quality score;
* an ensemble's answer is chosen by ``Router.aggregate`` (the policy's vote, with its
  member weights), and only the member whose answer is returned waits for the score;
* streaming a multi-model plan runs the plan and emits the answer returned, as the
  wrapper's chunks; a single model streams with retries and fallback until its first chunk;
* a turn that binds tools runs one model (a plan's first member, the others as its
  fallbacks): tool calls are neither voted on nor cascaded;
* delayed feedback reaches a decision by its id, by an *alias* (a framework's run id: the
  call's own, or any enclosing run's; one alias may name several decisions, which all
  take the score), or through a :meth:`Engine.track` block; a score given to several
  decisions joins each one that still waits for a score.

With a cascade ``strategy`` (:class:`~pickllm.cascade.CascadeStrategy`), every call that
binds no tools and names no model (no ``pin``, no tool loop to stay on) is a *cascade
call*:

* route: ``Router.route`` still runs (its policy's pick is not used): it fixes the models
  this call may use (those that can serve it, minus open circuits; only the cheapest when
  the spend cap is reached with ``on_budget="cheapest"``), and the decision becomes a
  ``cascade`` plan over them (in the pool's order), made with probability 1;
* execute: the strategy's session picks each model in turn, each step run with retries
  and no fallback; the answer returned is the session's ``final()`` (see
  :mod:`pickllm.engine.plans`), and ``strategy.settle(session)`` ends every call;
* evaluate: the evaluator, if any, scores *every step* inline, whatever
  ``evaluate_in_background`` says (the strategy needs the score to decide), and its
  score goes to ``session.observe(score=...)``; nothing is scored after the call;
* record: every step is one feedback to the router (its policy and ``stats()``): cost,
  latency, and as quality the evaluator's score, else the strategy's post-hoc estimate;
  with ``await_feedback`` and no evaluator score, the returned step waits for
  ``feedback()`` instead;
* stream: the steps run whole (not streamed) until the session ends; then the returned
  answer is emitted as the wrapper's chunks (``as_chunks``). No step's tokens are
  streamed and none is retracted; the time to first token, counted from the call's start,
  is the whole cascade's time.

Tool-binding turns, pinned calls and tool-loop turns are routed by the policy as without
a strategy: a cascade applies to the turns that give the final answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
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
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from pickllm.cascade.protocol import CascadeStrategy
from pickllm.engine.attempts import RetryConfig
from pickllm.engine.executor import Executor
from pickllm.engine.plans import ExecutionResult, Job
from pickllm.engine.tracking import Tracker, Tracking, note_decision
from pickllm.errors import ConfigError, UnknownDecisionError
from pickllm.evaluation import EvaluationRunner
from pickllm.pricing import Usage, estimate_tokens
from pickllm.router import Router
from pickllm.types import Candidate, Context, Decision, Plan

__all__ = ["Answer", "Calls", "Engine", "Request"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
C = TypeVar("C")


class Calls(Protocol[T_co, C]):
    """How the engine talks to a framework for one call: the wrapper's side.

    ``call``/``acall`` ask one candidate for a whole answer, ``stream``/``astream`` open
    its stream of chunks; ``usage``/``text`` read an answer, ``chunks_usage``/
    ``chunks_text`` a list of chunks; ``as_chunks`` turns a whole answer into chunks (to
    stream a multi-model plan's answer). Each takes a :class:`~pickllm.Candidate`.
    """

    def call(self, candidate: Candidate) -> T_co:
        """The candidate's answer."""
        ...

    def acall(self, candidate: Candidate) -> Awaitable[T_co]:
        """The candidate's answer, awaited."""
        ...

    def stream(self, candidate: Candidate) -> Iterator[C]:
        """The candidate's answer, as chunks."""
        ...

    def astream(self, candidate: Candidate) -> AsyncIterator[C]:
        """The candidate's answer, as async chunks."""
        ...

    def usage(self, candidate: Candidate, answer: Any) -> Usage:
        """The usage an answer reports."""
        ...

    def text(self, answer: Any) -> str:
        """The text of an answer."""
        ...

    def chunks_usage(self, candidate: Candidate, chunks: list[C]) -> Usage:
        """The usage reported by a stream's chunks."""
        ...

    def chunks_text(self, chunks: list[C]) -> str:
        """The text of a stream's chunks."""
        ...

    def as_chunks(self, answer: Any) -> list[C]:
        """A whole answer as chunks."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What a wrapper knows of one call, in the core's terms.

    Args:
        query: the text the policy routes on and the evaluator scores against (the last
            user message).
        prompt: the whole prompt's text, for token estimates (default: ``query``).
        key: the context key for per-context policies.
        needs_tool_calling: the call binds tools.
        needs_structured_output: the call asks for structured output.
        pin: a model the caller names for this call (the policy is bypassed).
        tool_loop_model: the model whose tool call this turn answers; it serves the turn,
            so a tool loop stays on the model that started it.
        evaluator_kwargs: extra keyword arguments for the evaluator (the messages).

    Examples:
        >>> Request(query="What is 2+2?").prompt_text
        'What is 2+2?'
    """

    query: str
    prompt: str | None = None
    key: str | None = None
    needs_tool_calling: bool = False
    needs_structured_output: bool = False
    pin: str | None = None
    tool_loop_model: str | None = None
    evaluator_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt's text (the query when no prompt was given)."""
        return self.query if self.prompt is None else self.prompt


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Generic[T]):
    """The outcome of one routed call.

    Args:
        value: the answer returned.
        decision: the routing decision, as made.
        result: what running it produced (attempts, feedback, members' answers, a
            cascade's steps).
        strategy: the name of the cascade strategy that ran the call, if one did.
    """

    value: T
    decision: Decision
    result: ExecutionResult[Any]
    strategy: str | None = None

    @property
    def model(self) -> str:
        """The name of the model whose answer is returned."""
        return self.result.decision.candidate.name

    def info(self) -> dict[str, Any]:
        """The routing facts a wrapper puts in the response's metadata."""
        feedback = self.result.feedback
        info: dict[str, Any] = {
            "decision_id": self.decision.decision_id,
            "model": self.model,
            "chosen": self.decision.candidate.name,
            "probability": self.decision.probability,
            "policy": self.decision.policy,
            "plan": self.decision.kind,
            "cost_usd": feedback.cost_usd,
            "cost_estimated": feedback.tokens_estimated,
            "latency_s": feedback.latency_s,
            "attempts": len(self.result.attempts),
        }
        if feedback.time_to_first_token_s is not None:
            info["time_to_first_token_s"] = feedback.time_to_first_token_s
        if len(self.result.served_by) > 1:
            info["members"] = list(self.result.served_by)
        steps = self.result.steps
        if steps:
            info["strategy"] = self.strategy
            info["chosen"] = steps[0].model
            info["steps"] = [
                {
                    "model": step.model,
                    "cost_usd": step.cost_usd,
                    "latency_s": step.latency_s,
                    "estimate": step.quality,
                    "ex_ante": step.ex_ante,
                    "error": step.error,
                }
                for step in steps
            ]
        return info


class Engine:
    """Runs routed calls for a wrapper: route, execute, evaluate, record.

    Args:
        router: the router (pool, policy, objective, learned state).
        retry: retry and fallback settings.
        evaluator: scores answers, ``(prompt, answer, **kw) -> score | None``.
        evaluate_in_background: score after returning instead of before.
        await_feedback: every answer waits for ``feedback()`` before it is learned from
            (or expires, see ``Router``).
        seed: seed of the retry jitter (the policy is seeded where it is built).
        clock: monotonic clock, for attempt timing.
        sleep: sync wait between retries.
        async_sleep: async wait between retries.
        max_aliases: how many external ids (a framework's run ids) are remembered for
            ``feedback``, and how many decisions each one may name (the latest are kept).
        strategy: a cascade strategy for the calls that give a final answer (see the
            module docstring); None routes every call with the router's policy.

    Examples:
        >>> from pickllm import Candidate, Router, Usage
        >>> router = Router([Candidate(name="small", input_price=0.1, output_price=0.4),
        ...                  Candidate(name="large", input_price=3.0, output_price=15.0)],
        ...                 policy="cheapest")
        >>> from pickllm.testing import EchoCalls
        >>> engine = Engine(router)
        >>> answer = engine.run(Request(query="Hi"), EchoCalls())
        >>> answer.value, answer.info()["plan"]
        ('small: Hi', 'single')
    """

    def __init__(
        self,
        router: Router,
        *,
        retry: RetryConfig | None = None,
        evaluator: Callable[..., Any] | None = None,
        evaluate_in_background: bool = False,
        await_feedback: bool = False,
        seed: int | Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_aliases: int = 10_000,
        strategy: CascadeStrategy | None = None,
    ) -> None:
        if not isinstance(router, Router):
            msg = f"router must be a pickllm Router, got {router!r}"
            raise TypeError(msg)
        if strategy is not None and not isinstance(strategy, CascadeStrategy):
            msg = (
                "strategy must implement pickllm.cascade.CascadeStrategy (name, start, "
                f"settle) or be None, got {strategy!r}"
            )
            raise TypeError(msg)
        for name, flag in (
            ("evaluate_in_background", evaluate_in_background),
            ("await_feedback", await_feedback),
        ):
            if not isinstance(flag, bool):
                msg = f"{name} must be a bool, got {flag!r}"
                raise ConfigError(msg)
        if isinstance(max_aliases, bool) or not isinstance(max_aliases, int) or max_aliases < 0:
            msg = f"max_aliases must be an int >= 0, got {max_aliases!r}"
            raise ConfigError(msg)
        self.router = router
        self.evaluator = evaluator
        self.await_feedback = await_feedback
        self.max_aliases = max_aliases
        self.strategy = strategy
        self.executor = Executor(
            router, retry=retry, seed=seed, clock=clock, sleep=sleep, async_sleep=async_sleep
        )
        self.evaluation: EvaluationRunner | None = None
        if evaluator is not None:
            self.evaluation = EvaluationRunner(
                evaluator,
                router,
                background=evaluate_in_background,
                release_unscored=not await_feedback,
            )
        self._aliases: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        evaluator = "None" if self.evaluator is None else type(self.evaluator).__name__
        return (
            f"Engine(router={self.router!r}, evaluator={evaluator}, "
            f"await_feedback={self.await_feedback})"
        )

    # ------------------------------------------------------------------ routing
    @property
    def waits_for_score(self) -> bool:
        """Whether answers wait for a score (an evaluator, or ``await_feedback``)."""
        return self.evaluator is not None or self.await_feedback

    def route(self, request: Request) -> Decision:
        """The decision for ``request`` (the first step of every call).

        Raises:
            NoCandidateError: no candidate can serve the request.
            ConfigError: the request pins a model that is not in the pool.
        """
        router = self.router
        tokens = estimate_tokens(request.prompt_text)
        context = Context(
            query=request.query,
            key=request.key,
            needs_tool_calling=request.needs_tool_calling,
            needs_structured_output=request.needs_structured_output,
            min_context_tokens=tokens if router.knows_context_limits else None,
            input_tokens=tokens,
            candidates=router.candidates,
        )
        pin = request.pin
        loop_model = request.tool_loop_model
        if pin is None and loop_model is not None and loop_model in router.names:
            pin = loop_model
        decision = router.route(context, pin=pin)
        if self.strategy is not None and pin is None and not request.needs_tool_calling:
            # A cascade call: the policy's pick is not used, the offered models are (in
            # the pool's order, so that a strategy's ties do not follow the policy's draw).
            offered = {c.name for c in decision.ranking}
            members = tuple(c for c in router.candidates if c.name in offered)
            plan = Plan(kind="cascade", members=members)
            decision = replace(decision, plan=plan, probability=1.0)
        elif request.needs_tool_calling and len(decision.members) > 1:
            # Tool calls are not voted on or cascaded: the plan's first model makes them,
            # the others stay its fallbacks.
            decision = replace(decision, plan=None)
        note_decision(self, decision.decision_id)
        return decision

    # ------------------------------------------------------------------ feedback
    def alias(self, external_id: str, decision_id: str) -> None:
        """Let ``feedback`` find ``decision_id`` by ``external_id`` (a framework's run id).

        An external id may name several decisions (a chain's run id names every routed
        call made inside the chain); the latest ``max_aliases`` are kept per id.
        """
        if not self.max_aliases:
            return
        with self._lock:
            named = self._aliases.get(external_id)
            if named is None:
                named = self._aliases[external_id] = []
            if decision_id not in named:
                named.append(decision_id)
                del named[: -self.max_aliases]
            self._aliases.move_to_end(external_id)
            while len(self._aliases) > self.max_aliases:
                self._aliases.popitem(last=False)

    def decision_ids(self, id_: str) -> list[str]:
        """The decision ids that ``id_`` (a decision id or an alias) names, oldest first.

        Raises:
            UnknownDecisionError: ``id_`` is neither a pending decision nor a known alias.
        """
        with self._lock:
            found = self._aliases.get(id_)
            if found is not None:
                return list(found)
        if self.router.is_pending(id_):
            return [id_]
        msg = (
            f"{id_!r} names no pending decision and no call this engine remembers "
            f"(the last {self.max_aliases} run ids are kept)"
        )
        raise UnknownDecisionError(msg)

    def decision_id(self, id_: str) -> str:
        """The decision id that ``id_`` names (the latest one, for an alias naming several).

        Raises:
            UnknownDecisionError: ``id_`` is neither a pending decision nor a known alias.
        """
        return self.decision_ids(id_)[-1]

    def feedback(self, id_: str, score: float) -> float | None:
        """Join a delayed quality score to the call(s) ``id_`` names; see ``Router.feedback``.

        ``id_`` is a decision id or an alias; an alias naming several decisions gives the
        score to each one that still waits for a score (see :meth:`feedback_each`).

        Raises:
            UnknownDecisionError: ``id_`` names no call waiting for a score; its ``reason``
                says why (see ``Router.feedback``).
        """
        with self._lock:
            found = self._aliases.get(id_)
            named = None if found is None else list(found)
        if named is None:
            return self.router.feedback(id_, score)
        return self.feedback_each(named, score)

    def feedback_each(self, decision_ids: Sequence[str], score: float) -> float | None:
        """Give ``score`` to each of ``decision_ids`` that waits for a score.

        Decisions that do not wait (failed, already scored, learned from at once,
        expired) are left out, so one score can go to every call of a chain or a block.

        Returns:
            The reward of the last decision that took the score (None while that call is
            not recorded yet).

        Raises:
            UnknownDecisionError: none of them waits for a score (the last one's error,
                with its ``reason``), or ``decision_ids`` is empty.
        """
        if not decision_ids:
            msg = "no routed call to give feedback to: none was made in this block"
            raise UnknownDecisionError(msg)
        reward: float | None = None
        joined = False
        refused: UnknownDecisionError | None = None
        for decision_id in decision_ids:
            try:
                reward = self.router.feedback(decision_id, score)
            except UnknownDecisionError as exc:
                refused = exc
            else:
                joined = True
        if not joined and refused is not None:
            raise refused
        return reward

    def track(self) -> Tracking:
        """A block collecting every decision this engine makes inside it (sync or async).

        ``with engine.track() as tracked: ...; tracked.feedback(0.9)``; see
        :mod:`pickllm.engine.tracking`.
        """
        return Tracking(self, Tracker(self.feedback_each))

    # ------------------------------------------------------------------ calls
    def _choose(self, decision: Decision, calls: Calls[Any, Any]) -> Callable[..., int]:
        def choose(values: Sequence[Any]) -> int:
            return self.router.aggregate([calls.text(v) for v in values], decision)

        return choose

    def _job(self, request: Request, decision: Decision, calls: Calls[Any, Any]) -> Job:
        """What the executor runs for ``decision``: a strategy cascade, or its plan."""
        if self._cascades(decision):
            return Job(
                decision=decision,
                usage=calls.usage,
                await_score=self.await_feedback,
                prompt_text=request.prompt_text,
                text=calls.text,
                strategy=self.strategy,
                query=request.query,
                score=self.evaluation is not None,
            )
        return Job(
            decision=decision,
            usage=calls.usage,
            await_score=self.waits_for_score,
            prompt_text=request.prompt_text,
            text=calls.text,
            choose=self._choose(decision, calls),
        )

    def _stream_job(self, request: Request, decision: Decision, calls: Calls[Any, Any]) -> Job:
        return Job(
            decision=decision,
            usage=calls.chunks_usage,
            await_score=self.waits_for_score,
            prompt_text=request.prompt_text,
            text=calls.chunks_text,
        )

    @staticmethod
    def _evaluation(answer: Answer[Any], text: str, request: Request) -> tuple[Any, ...]:
        kwargs = {
            "model": answer.model,
            "decision_id": answer.decision.decision_id,
            "raw_answer": answer.value,
            **request.evaluator_kwargs,
        }
        return (answer.decision.decision_id, request.query, text), kwargs

    def _evaluate(self, answer: Answer[Any], text: str, request: Request) -> None:
        if self.evaluation is not None:
            args, kwargs = self._evaluation(answer, text, request)
            self.evaluation.submit(*args, **kwargs)

    async def _aevaluate(self, answer: Answer[Any], text: str, request: Request) -> None:
        if self.evaluation is not None:
            args, kwargs = self._evaluation(answer, text, request)
            await self.evaluation.asubmit(*args, **kwargs)

    # ------------------------------------------------------------------ cascades
    def _cascades(self, decision: Decision) -> bool:
        """Whether ``decision`` is a cascade call, run by the strategy."""
        return self.strategy is not None and decision.kind == "cascade"

    @staticmethod
    def _step_kwargs(
        request: Request, decision: Decision, candidate: Candidate, value: Any
    ) -> dict[str, Any]:
        return {
            "model": candidate.name,
            "decision_id": decision.decision_id,
            "raw_answer": value,
            **request.evaluator_kwargs,
        }

    def _scorer(
        self, request: Request, decision: Decision, calls: Calls[Any, Any]
    ) -> Callable[[Candidate, Any], float | None] | None:
        """Scores a cascade step's answer inline with the evaluator (None: no evaluator)."""
        runner = self.evaluation
        if runner is None:
            return None

        def score(candidate: Candidate, value: Any) -> float | None:
            kwargs = self._step_kwargs(request, decision, candidate, value)
            did = decision.decision_id
            return runner.try_score(did, request.query, calls.text(value), **kwargs)

        return score

    def _ascorer(
        self, request: Request, decision: Decision, calls: Calls[Any, Any]
    ) -> Callable[[Candidate, Any], Awaitable[float | None]] | None:
        """Async :meth:`_scorer`."""
        runner = self.evaluation
        if runner is None:
            return None

        async def score(candidate: Candidate, value: Any) -> float | None:
            kwargs = self._step_kwargs(request, decision, candidate, value)
            did = decision.decision_id
            return await runner.atry_score(did, request.query, calls.text(value), **kwargs)

        return score

    def _first_chunk_at(self, result: ExecutionResult[T], start: float) -> ExecutionResult[T]:
        """A cascade's result whose time to first token runs from the call's start to now."""
        ttft = max(self.executor.clock() - start, 0.0)
        return replace(result, feedback=replace(result.feedback, time_to_first_token_s=ttft))

    def _cascade_answer(
        self, value: T, decision: Decision, result: ExecutionResult[Any]
    ) -> Answer[T]:
        """The answer of a call the cascade strategy ran, named after the strategy."""
        strategy = self.strategy
        assert strategy is not None  # noqa: S101 - only cascade calls get here
        return Answer(value=value, decision=decision, result=result, strategy=strategy.name)

    async def _aroute(self, request: Request) -> Decision:
        # A trained policy runs a model to route; off the event loop it blocks no one.
        if self.router.policy.blocking:
            return await asyncio.to_thread(self.route, request)
        return self.route(request)

    def run(
        self,
        request: Request,
        calls: Calls[T, Any],
        on_route: Callable[[Decision], None] | None = None,
    ) -> Answer[T]:
        """Route ``request``, run its plan with ``calls.call``, evaluate and record.

        ``on_route`` is called with the decision before any model runs (to tell the
        framework's tracing, or to remember ids for delayed feedback).

        Returns:
            The answer returned and how it was obtained.

        Raises:
            NoCandidateError: no candidate can serve the request.
            ExecutionError: every candidate of the plan failed.
            Exception: a fatal error of a model, as raised.
        """
        decision = self.route(request)
        if on_route is not None:
            on_route(decision)
        job = self._job(request, decision, calls)
        if job.strategy is not None:
            result = self.executor.execute(job, calls.call, self._scorer(request, decision, calls))
            return self._cascade_answer(result.value, decision, result)
        result = self.executor.execute(job, calls.call)
        answer = Answer(value=result.value, decision=decision, result=result)
        self._evaluate(answer, calls.text(result.value), request)
        return answer

    async def arun(
        self,
        request: Request,
        calls: Calls[T, Any],
        on_route: Callable[[Decision], None] | None = None,
    ) -> Answer[T]:
        """Async :meth:`run`, with ``calls.acall``."""
        decision = await self._aroute(request)
        if on_route is not None:
            on_route(decision)
        job = self._job(request, decision, calls)
        if job.strategy is not None:
            scorer = self._ascorer(request, decision, calls)
            result = await self.executor.aexecute(job, calls.acall, scorer)
            return self._cascade_answer(result.value, decision, result)
        result = await self.executor.aexecute(job, calls.acall)
        answer = Answer(value=result.value, decision=decision, result=result)
        await self._aevaluate(answer, calls.text(result.value), request)
        return answer

    def stream(
        self,
        request: Request,
        calls: Calls[Any, C],
        on_finish: Callable[[Answer[list[C]]], None] | None = None,
        on_route: Callable[[Decision], None] | None = None,
    ) -> Generator[C, None, None]:
        """Stream the answer to ``request``, chunk by chunk.

        A single model streams (retries and fallback until its first chunk); a
        multi-model plan runs with ``calls.call`` and the answer it returns is emitted as
        ``calls.as_chunks`` of it. ``on_finish`` gets the answer (value = the chunks) once
        it is recorded, before the evaluator runs; ``on_route`` as in :meth:`run`. A
        cascade call runs its steps whole, then emits the returned answer's chunks (see
        the module docstring).
        """
        start = self.executor.clock()
        decision = self.route(request)
        if on_route is not None:
            on_route(decision)
        if self._cascades(decision):
            job = self._job(request, decision, calls)
            result = self.executor.execute(job, calls.call, self._scorer(request, decision, calls))
            chunks = calls.as_chunks(result.value)
            result = self._first_chunk_at(result, start)
            yield from chunks
            if on_finish is not None:
                on_finish(self._cascade_answer(chunks, decision, result))
            return
        if len(decision.members) > 1:
            result = self.executor.execute(self._job(request, decision, calls), calls.call)
            chunks = calls.as_chunks(result.value)
            yield from chunks
            self._finished(
                request, calls, Answer(value=chunks, decision=decision, result=result), on_finish
            )
            return

        def finished(result: ExecutionResult[list[Any]]) -> None:
            answer = Answer(value=result.value, decision=decision, result=result)
            self._finished(request, calls, answer, on_finish)

        job = self._stream_job(request, decision, calls)
        yield from self.executor.execute_stream(job, calls.stream, on_finish=finished)

    def _finished(
        self,
        request: Request,
        calls: Calls[Any, C],
        answer: Answer[list[C]],
        on_finish: Callable[[Answer[list[C]]], None] | None,
    ) -> None:
        if on_finish is not None:
            on_finish(answer)
        self._evaluate(answer, calls.chunks_text(answer.value), request)

    async def astream(
        self,
        request: Request,
        calls: Calls[Any, C],
        on_finish: Callable[[Answer[list[C]]], None] | None = None,
        on_route: Callable[[Decision], None] | None = None,
    ) -> AsyncGenerator[C, None]:
        """Async :meth:`stream`, with ``calls.acall`` and ``calls.astream``."""
        start = self.executor.clock()
        decision = await self._aroute(request)
        if on_route is not None:
            on_route(decision)
        if self._cascades(decision):
            job = self._job(request, decision, calls)
            scorer = self._ascorer(request, decision, calls)
            result = await self.executor.aexecute(job, calls.acall, scorer)
            chunks = calls.as_chunks(result.value)
            result = self._first_chunk_at(result, start)
            for chunk in chunks:
                yield chunk
            if on_finish is not None:
                on_finish(self._cascade_answer(chunks, decision, result))
            return
        if len(decision.members) > 1:
            result = await self.executor.aexecute(self._job(request, decision, calls), calls.acall)
            chunks = calls.as_chunks(result.value)
            for chunk in chunks:
                yield chunk
            answer = Answer(value=chunks, decision=decision, result=result)
        else:
            done: list[ExecutionResult[list[Any]]] = []
            job = self._stream_job(request, decision, calls)
            async for chunk in self.executor.aexecute_stream(
                job, calls.astream, on_finish=done.append
            ):
                yield chunk
            answer = Answer(value=done[0].value, decision=decision, result=done[0])
        if on_finish is not None:
            on_finish(answer)
        await self._aevaluate(answer, calls.chunks_text(answer.value), request)
