"""Run a routing decision: call the model, retry, fall back, run plans, stream; record feedback.

The executor is what wrappers use to turn a :class:`~pickllm.Decision` into an answer
without knowing anything about a framework: they pass a ``call(candidate)`` function and a
``usage(candidate, value)`` function that reads the token usage off the answer. For every
attempt the executor times the call with the injected clock and records exactly one
:class:`~pickllm.Feedback` into its recorder (normally a :class:`~pickllm.router.Router`);
a failed attempt is feedback too (``error`` = the exception's class name, the latency until
it failed, estimated input tokens, cost 0).

Errors fall in three classes (see :class:`RetryConfig`):

* **transient** (timeouts, connection errors, rate limits, 5xx): the same candidate is
  retried with exponential backoff and jitter, up to ``max_attempts`` attempts;
* **fatal** (bad request, content policy, authentication): re-raised at once, with no retry
  and no fallback, since another model would fail the same way;
* **other**: no retry on that candidate; the executor falls back to the next one.

When a candidate keeps failing the executor moves down ``decision.ranking`` (at most
``max_fallbacks`` times); when every candidate failed it raises
:class:`~pickllm.ExecutionError`, whose ``attempts`` hold the failures, chained to the last
exception. Exceptions that are not :class:`Exception` (``KeyboardInterrupt``,
``SystemExit``, ``GeneratorExit``, ``asyncio.CancelledError``) always propagate; a
cancelled ``arun``/``astream`` first records the in-flight attempt as a failure with
``error="CancelledError"``.

Plans: a decision of kind ``ensemble`` runs every member concurrently (threads for
:meth:`Executor.run`, ``asyncio.gather`` for :meth:`Executor.arun`), each with its own
retries and no fallback, and aggregates the answers; a ``cascade`` runs the members in order
and stops at the first answer the stop rule accepts. The successful members' feedback is
recorded once the plan has finished (failures as they happen). With ``await_score``, the
members whose answers make the returned one wait for the delayed score: every answering
member of an ensemble, only the accepted member of a cascade; they are recorded first, the
others (rejected cascade answers) after, in plan order. A fatal error of an ensemble member
is re-raised once every member has finished and the answers have been recorded.

Streams (:meth:`Executor.stream`, :meth:`Executor.astream`) serve one candidate: they retry
and fall back only until the first chunk, and ignore a decision's plan.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from pickllm.errors import ConfigError, ExecutionError
from pickllm.pricing import Usage, estimate_tokens, make_feedback
from pickllm.types import Candidate, Decision, Feedback, SeedLike

__all__ = [
    "DEFAULT_FATAL_NAMES",
    "DEFAULT_RETRY_ON_NAMES",
    "ExecutionResult",
    "Executor",
    "MemoryRecorder",
    "Recorder",
    "RetryConfig",
]

T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R")

DEFAULT_RETRY_ON_NAMES: tuple[str, ...] = (
    "RateLimitError",  # OpenAI, Anthropic, LiteLLM, Mistral
    "APITimeoutError",  # OpenAI, Anthropic
    "APIConnectionError",  # OpenAI, Anthropic, LiteLLM
    "InternalServerError",  # OpenAI, Anthropic, LiteLLM, google-api-core
    "OverloadedError",  # Anthropic 529
    "ServiceUnavailableError",  # LiteLLM
    "ServiceUnavailable",  # google-api-core 503
    "ResourceExhausted",  # google-api-core 429
    "DeadlineExceeded",  # google-api-core 504
    "ServerError",  # google-genai 5xx
    "Timeout",  # LiteLLM, requests
    "TimeoutException",  # httpx (ConnectTimeout, ReadTimeout, ...)
    "ConnectError",  # httpx
)
"""Exception class names retried by default, matched anywhere in the error's MRO, so the
provider SDKs need not be importable."""

DEFAULT_FATAL_NAMES: tuple[str, ...] = (
    "BadRequestError",  # OpenAI, Anthropic, LiteLLM (400)
    "UnprocessableEntityError",  # OpenAI, Anthropic (422)
    "ContentPolicyViolationError",  # LiteLLM
    "ContentFilterError",
    "AuthenticationError",  # OpenAI, Anthropic, LiteLLM (401)
    "PermissionDeniedError",  # OpenAI, Anthropic (403)
    "InvalidArgument",  # google-api-core 400
)
"""Exception class names re-raised at once (no retry, no fallback) by default."""

# TimeoutError and asyncio.TimeoutError are one class from Python 3.11 on, two before.
_DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = tuple(
    dict.fromkeys((TimeoutError, ConnectionError, asyncio.TimeoutError))
)

_OTHER, _TRANSIENT, _FATAL = 0, 1, 2


@runtime_checkable
class Recorder(Protocol):
    """Where the executor records feedback; :class:`~pickllm.router.Router` is one.

    ``record`` is called once per attempt with the decision retargeted to the candidate
    that ran (``feedback.candidate`` names it too) and returns the reward, or None when
    the reward waits for a delayed score (``await_score=True``).

    Examples:
        >>> isinstance(MemoryRecorder(), Recorder)
        True
    """

    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        """Record ``feedback`` for ``decision``; return the reward if known."""
        ...


class MemoryRecorder:
    """A :class:`Recorder` that keeps what it is given, in order (thread-safe).

    Useful in tests and to run the executor without a router. ``record`` returns None.

    Examples:
        >>> rec = MemoryRecorder()
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=1.0,
        ...              policy="fixed")
        >>> rec.record(d, Feedback(latency_s=0.1)) is None
        True
        >>> [(dec.decision_id, fb.latency_s, wait) for dec, fb, wait in rec.records]
        [('d1', 0.1, False)]
    """

    def __init__(self) -> None:
        self._records: list[tuple[Decision, Feedback, bool]] = []
        self._lock = threading.Lock()

    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        """Keep ``(decision, feedback, await_score)``; return None."""
        with self._lock:
            self._records.append((decision, feedback, await_score))
        return None

    @property
    def records(self) -> tuple[tuple[Decision, Feedback, bool], ...]:
        """Every ``(decision, feedback, await_score)`` recorded so far, in order."""
        with self._lock:
            return tuple(self._records)

    @property
    def feedbacks(self) -> tuple[Feedback, ...]:
        """The recorded feedback, in order."""
        with self._lock:
            return tuple(fb for _, fb, _ in self._records)


class RetryConfig(BaseModel):
    """How the executor retries, falls back and gives up.

    The wait after the n-th failed attempt of a candidate is
    ``min(max_wait_s, initial_wait_s * 2**(n-1) + U(0, jitter_s))``, with the uniform
    jitter drawn from the executor's own seeded generator.

    An error is *fatal* if it is an instance of a class in ``fatal`` or any class in its MRO
    is named in ``fatal_names``; otherwise *transient* if the same holds for ``retry_on`` /
    ``retry_on_names``; otherwise it only moves on to the next candidate.

    Args:
        max_attempts: attempts per candidate, first one included (>= 1).
        initial_wait_s: wait before the first retry, without jitter (>= 0).
        max_wait_s: cap on any wait (>= 0).
        jitter_s: width of the uniform jitter added to each wait (>= 0).
        max_fallbacks: how many further candidates of the ranking to try after the
            chosen one (>= 0), or None for the whole ranking.
        retry_on: exception classes retried on the same candidate.
        retry_on_names: class names retried, for provider errors not importable here.
        fatal: exception classes re-raised at once, with no retry and no fallback.
        fatal_names: class names treated as fatal.

    Raises:
        ConfigError: a value is not allowed (the message names it).

    Examples:
        >>> cfg = RetryConfig(max_attempts=2, max_fallbacks=1)
        >>> cfg.max_attempts, cfg.initial_wait_s, cfg.retry_on[:2]
        (2, 0.5, (<class 'TimeoutError'>, <class 'ConnectionError'>))
        >>> RetryConfig(max_attempts=0)
        Traceback (most recent call last):
        ...
        pickllm.errors.ConfigError: RetryConfig max_attempts=0 is not allowed: Input should be greater than or equal to 1
    """  # noqa: E501

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_attempts: int = Field(default=3, ge=1, strict=True)
    initial_wait_s: float = Field(default=0.5, ge=0.0, allow_inf_nan=False)
    max_wait_s: float = Field(default=8.0, ge=0.0, allow_inf_nan=False)
    jitter_s: float = Field(default=0.5, ge=0.0, allow_inf_nan=False)
    max_fallbacks: int | None = Field(default=None, ge=0, strict=True)
    retry_on: tuple[type[BaseException], ...] = _DEFAULT_RETRY_ON
    retry_on_names: tuple[str, ...] = DEFAULT_RETRY_ON_NAMES
    fatal: tuple[type[BaseException], ...] = ()
    fatal_names: tuple[str, ...] = DEFAULT_FATAL_NAMES

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}={err.get('input')!r} is not allowed: "
                f"{err['msg']}"
                for err in exc.errors()
            )
            msg = f"RetryConfig {problems}"
            raise ConfigError(msg) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult(Generic[T]):
    """What running a decision produced.

    Args:
        value: the answer (for plans, the aggregated or accepted answer; for streams, the
            list of chunks).
        decision: the decision, retargeted to the candidate that served the answer.
        feedback: the feedback of the answer; for plans, the combined feedback (tokens and
            cost summed over the answering members, latency the plan's wall time, quality
            None, ``candidate`` None).
        attempts: the feedback of every attempt, in order (plans: member by member, in
            plan order).
        reward: the reward the recorder returned for the served answer (plans: for the
            member named by ``decision``), or None while a delayed score is awaited.
        values: the answer of each member that answered, in plan order (one for a single
            model).
        served_by: the names of the candidates whose answers are in ``values``.

    Examples:
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=1.0,
        ...              policy="fixed")
        >>> r = ExecutionResult(value="hi", decision=d, feedback=Feedback(), attempts=(),
        ...                     reward=None, values=("hi",), served_by=("a",))
        >>> r.value, r.served_by
        ('hi', ('a',))
    """

    value: T
    decision: Decision
    feedback: Feedback
    attempts: tuple[Feedback, ...]
    reward: float | None
    values: tuple[T, ...]
    served_by: tuple[str, ...]


@dataclass(slots=True)
class _Opened(Generic[C]):
    """A stream that produced its first chunk (or ended without one)."""

    iterator: Any
    head: list[C]
    started: float
    first_at: float


@dataclass(slots=True, eq=False)
class _Outcome(Generic[T]):
    """What one plan member produced: an answer and its (unrecorded) feedback, or an error."""

    candidate: Candidate
    attempts: list[Feedback] = field(default_factory=list)
    answer: tuple[T, Feedback] | None = None
    error: Exception | None = None


class Executor:
    """Runs decisions: timing, retries, fallbacks, plans and streams, recording feedback.

    Args:
        recorder: where each attempt's feedback goes (a Router, or a MemoryRecorder).
        retry: the retry and fallback settings; None uses ``RetryConfig()``.
        clock: monotonic clock in seconds, used to time every attempt.
        sleep: how to wait between retries in :meth:`run` and :meth:`stream`.
        async_sleep: how to wait between retries in :meth:`arun` and :meth:`astream`.
        seed: seed of the generator that draws the backoff jitter.
        max_workers: at most this many ensemble members run at once in :meth:`run`;
            None runs all of them at once.

    Examples:
        >>> a, b = Candidate(name="a"), Candidate(name="b")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a, b), probability=1.0,
        ...              policy="fixed")
        >>> def call(candidate):
        ...     if candidate.name == "a":
        ...         raise ConnectionError("a is down")
        ...     return "hello from " + candidate.name
        >>> waits = []
        >>> ex = Executor(MemoryRecorder(), retry=RetryConfig(max_attempts=2),
        ...               sleep=waits.append, seed=0)
        >>> res = ex.run(d, call, lambda c, v: Usage(input_tokens=5, output_tokens=3))
        >>> res.value, res.decision.candidate.name
        ('hello from b', 'b')
        >>> [(f.candidate, f.error) for f in res.attempts]
        [('a', 'ConnectionError'), ('a', 'ConnectionError'), ('b', None)]
        >>> [round(w, 4) for w in waits]
        [0.8185]
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        retry: RetryConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: SeedLike = None,
        max_workers: int | None = None,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryConfig):
            msg = f"retry must be a RetryConfig or None, got {retry!r}"
            raise TypeError(msg)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
        ):
            msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
            raise TypeError(msg)
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            msg = f"max_workers must be an int >= 1 or None, got {max_workers!r}"
            raise ConfigError(msg)
        self.recorder = recorder
        self.retry = retry
        self.clock = clock
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.seed = seed
        self.max_workers = max_workers
        self._config = retry if retry is not None else RetryConfig()
        self._rng = np.random.default_rng(seed)
        # numpy Generators are not safe to draw from in several threads at once, and
        # ensemble members retry in parallel threads.
        self._rng_lock = threading.Lock()
        self._fatal_names = frozenset(self._config.fatal_names)
        self._retry_names = frozenset(self._config.retry_on_names)
        self._kinds: dict[type[BaseException], int] = {}

    # ------------------------------------------------------------------ classification
    def _kind(self, exc: BaseException) -> int:
        cls = type(exc)
        kind = self._kinds.get(cls)
        if kind is None:
            cfg = self._config
            names = {k.__name__ for k in cls.__mro__}
            if issubclass(cls, cfg.fatal) or not names.isdisjoint(self._fatal_names):
                kind = _FATAL
            elif issubclass(cls, cfg.retry_on) or not names.isdisjoint(self._retry_names):
                kind = _TRANSIENT
            else:
                kind = _OTHER
            self._kinds[cls] = kind
        return kind

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is retried on the same candidate."""
        return isinstance(exc, Exception) and self._kind(exc) == _TRANSIENT

    def is_fatal(self, exc: BaseException) -> bool:
        """Whether ``exc`` is re-raised at once, without retry or fallback."""
        return isinstance(exc, Exception) and self._kind(exc) == _FATAL

    def backoff(self, failures: int) -> float:
        """The wait in seconds after the ``failures``-th failed attempt (draws jitter).

        Raises:
            ConfigError: ``failures`` is less than 1.
        """
        if failures < 1:
            msg = f"failures must be an int >= 1, got {failures!r}"
            raise ConfigError(msg)
        cfg = self._config
        # Past 2**64 the cap always wins; bounding the exponent avoids float overflow.
        wait = cfg.initial_wait_s * 2.0 ** min(failures - 1, 64)
        if cfg.jitter_s > 0.0:
            with self._rng_lock:
                wait += float(self._rng.uniform(0.0, cfg.jitter_s))
        return min(cfg.max_wait_s, wait)

    def _wait(self, retry_state: RetryCallState) -> float:
        return self.backoff(retry_state.attempt_number)

    # ------------------------------------------------------------------ feedback
    def _fail(
        self,
        decision: Decision,
        candidate: Candidate,
        exc: BaseException,
        *,
        latency_s: float,
        prompt_text: str,
        attempts: list[Feedback],
        ttft: float | None = None,
    ) -> None:
        feedback = Feedback(
            latency_s=max(latency_s, 0.0),
            input_tokens=estimate_tokens(prompt_text),
            error=type(exc).__name__,
            tokens_estimated=True,
            time_to_first_token_s=ttft,
            candidate=candidate.name,
        )
        attempts.append(feedback)
        self.recorder.record(_retarget(decision, candidate), feedback)

    @staticmethod
    def _success(
        candidate: Candidate,
        usage: Usage,
        *,
        latency_s: float,
        prompt_text: str,
        completion_text: Callable[[Any], str] | None,
        value: object,
        ttft: float | None = None,
    ) -> Feedback:
        i, o = usage.input_tokens, usage.output_tokens
        if i is not None and o is not None:
            # Reported usage (the common case): nothing to estimate.
            cost = usage.cost_usd
            return Feedback(
                latency_s=max(latency_s, 0.0),
                input_tokens=i,
                output_tokens=o,
                cost_usd=candidate.price_of(i, o) if cost is None else float(cost),
                time_to_first_token_s=ttft,
                candidate=candidate.name,
            )
        text = ""
        if o is None:
            if completion_text is not None:
                text = completion_text(value)
            elif isinstance(value, str):
                text = value
        return make_feedback(
            candidate,
            usage,
            latency_s=max(latency_s, 0.0),
            prompt_text=prompt_text,
            completion_text=text,
            time_to_first_token_s=ttft,
        )

    # ------------------------------------------------------------------ retries, fallback
    def _order(self, decision: Decision) -> tuple[Candidate, ...]:
        """The chosen candidate, then its fallbacks from the ranking."""
        first = decision.candidate
        seen = {first.name}
        rest: list[Candidate] = []
        for cand in decision.ranking:
            if cand.name not in seen:
                seen.add(cand.name)
                rest.append(cand)
        limit = self._config.max_fallbacks
        if limit is not None:
            del rest[limit:]
        return (first, *rest)

    def _try(self, candidate: Candidate, attempt: Callable[[Candidate], R]) -> R:
        """Run ``attempt`` on ``candidate``, retrying transient errors."""
        try:
            return attempt(candidate)
        except Exception as exc:  # noqa: BLE001 - classified and re-raised there
            return self._retry(candidate, attempt, exc)

    def _retry(
        self, candidate: Candidate, attempt: Callable[[Candidate], R], first: Exception
    ) -> R:
        """Go on with ``candidate`` after its first attempt failed with ``first``."""
        # The first try runs outside tenacity so that a success costs no retry machinery;
        # only a transient failure builds the retry loop.
        if self._config.max_attempts == 1 or self._kind(first) != _TRANSIENT:
            raise first
        replay = True
        result: R
        for manager in Retrying(
            stop=stop_after_attempt(self._config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self.is_transient),
            sleep=self.sleep,
            reraise=True,
        ):
            with manager:
                if replay:
                    # Tenacity's attempt 1 replays the failure that already happened (and
                    # was recorded), so its stop and wait rules count it.
                    replay = False
                    raise first
                result = attempt(candidate)
        return result

    async def _atry(self, candidate: Candidate, attempt: Callable[[Candidate], Awaitable[R]]) -> R:
        """Async :meth:`_try`."""
        try:
            return await attempt(candidate)
        except Exception as exc:  # noqa: BLE001 - classified and re-raised there
            return await self._aretry(candidate, attempt, exc)

    async def _aretry(
        self, candidate: Candidate, attempt: Callable[[Candidate], Awaitable[R]], first: Exception
    ) -> R:
        """Async :meth:`_retry`."""
        if self._config.max_attempts == 1 or self._kind(first) != _TRANSIENT:
            raise first
        replay = True
        result: R
        async for manager in AsyncRetrying(
            stop=stop_after_attempt(self._config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self.is_transient),
            sleep=self.async_sleep,
            reraise=True,
        ):
            with manager:
                if replay:
                    replay = False
                    raise first
                result = await attempt(candidate)
        return result

    def _serve(
        self, decision: Decision, attempt: Callable[[Candidate], R], attempts: list[Feedback]
    ) -> tuple[Candidate, R]:
        """Try the chosen candidate, then (on failure) retries and fallbacks."""
        candidate = decision.candidate
        try:
            return candidate, attempt(candidate)
        except Exception as exc:  # noqa: BLE001 - classified and re-raised there
            return self._recover(decision, attempt, attempts, exc)

    def _recover(
        self,
        decision: Decision,
        attempt: Callable[[Candidate], R],
        attempts: list[Feedback],
        first: Exception,
    ) -> tuple[Candidate, R]:
        """Retry the chosen candidate, then fall back along the ranking until one succeeds."""
        order = self._order(decision)
        last: Exception
        try:
            return order[0], self._retry(order[0], attempt, first)
        except Exception as exc:
            if self._kind(exc) == _FATAL:
                raise
            last = exc
        for candidate in order[1:]:
            try:
                return candidate, self._try(candidate, attempt)
            except Exception as exc:
                if self._kind(exc) == _FATAL:
                    raise
                last = exc
        raise _all_failed(decision, attempts) from last

    async def _aserve(
        self,
        decision: Decision,
        attempt: Callable[[Candidate], Awaitable[R]],
        attempts: list[Feedback],
    ) -> tuple[Candidate, R]:
        """Async :meth:`_serve`."""
        candidate = decision.candidate
        try:
            return candidate, await attempt(candidate)
        except Exception as exc:  # noqa: BLE001 - classified and re-raised there
            return await self._arecover(decision, attempt, attempts, exc)

    async def _arecover(
        self,
        decision: Decision,
        attempt: Callable[[Candidate], Awaitable[R]],
        attempts: list[Feedback],
        first: Exception,
    ) -> tuple[Candidate, R]:
        """Async :meth:`_recover`."""
        order = self._order(decision)
        last: Exception
        try:
            return order[0], await self._aretry(order[0], attempt, first)
        except Exception as exc:
            if self._kind(exc) == _FATAL:
                raise
            last = exc
        for candidate in order[1:]:
            try:
                return candidate, await self._atry(candidate, attempt)
            except Exception as exc:
                if self._kind(exc) == _FATAL:
                    raise
                last = exc
        raise _all_failed(decision, attempts) from last

    # ------------------------------------------------------------------ attempts
    def _attempt(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        *,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
        attempts: list[Feedback],
    ) -> Callable[[Candidate], tuple[T, Feedback]]:
        clock = self.clock

        def attempt(candidate: Candidate) -> tuple[T, Feedback]:
            start = clock()
            try:
                value = call(candidate)
                latency = clock() - start
                feedback = self._success(
                    candidate,
                    usage(candidate, value),
                    latency_s=latency,
                    prompt_text=prompt_text,
                    completion_text=completion_text,
                    value=value,
                )
            except Exception as exc:
                self._fail(
                    decision,
                    candidate,
                    exc,
                    latency_s=clock() - start,
                    prompt_text=prompt_text,
                    attempts=attempts,
                )
                raise
            return value, feedback

        return attempt

    def _aattempt(
        self,
        decision: Decision,
        call: Callable[[Candidate], Awaitable[T]],
        usage: Callable[[Candidate, T], Usage],
        *,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
        attempts: list[Feedback],
    ) -> Callable[[Candidate], Awaitable[tuple[T, Feedback]]]:
        clock = self.clock

        async def attempt(candidate: Candidate) -> tuple[T, Feedback]:
            start = clock()
            try:
                value = await call(candidate)
                latency = clock() - start
                feedback = self._success(
                    candidate,
                    usage(candidate, value),
                    latency_s=latency,
                    prompt_text=prompt_text,
                    completion_text=completion_text,
                    value=value,
                )
            except (Exception, asyncio.CancelledError) as exc:
                self._fail(
                    decision,
                    candidate,
                    exc,
                    latency_s=clock() - start,
                    prompt_text=prompt_text,
                    attempts=attempts,
                )
                raise
            return value, feedback

        return attempt

    def _served(  # noqa: PLR0917 - the parts of one result, internal
        self,
        decision: Decision,
        candidate: Candidate,
        value: T,
        feedback: Feedback,
        attempts: list[Feedback],
        await_score: bool,
    ) -> ExecutionResult[T]:
        """Record the answer of a single-model run and wrap it up."""
        served = _retarget(decision, candidate)
        reward = self.recorder.record(served, feedback, await_score=await_score)
        attempts.append(feedback)
        return ExecutionResult(
            value=value,
            decision=served,
            feedback=feedback,
            attempts=tuple(attempts),
            reward=reward,
            values=(value,),
            served_by=(candidate.name,),
        )

    def _run_recovering(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        first: Exception,
        *,
        latency_s: float,
        await_score: bool,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
    ) -> ExecutionResult[T]:
        """:meth:`run` of a single model after its first attempt failed with ``first``."""
        attempts: list[Feedback] = []
        self._fail(
            decision,
            decision.candidate,
            first,
            latency_s=latency_s,
            prompt_text=prompt_text,
            attempts=attempts,
        )
        attempt = self._attempt(
            decision,
            call,
            usage,
            prompt_text=prompt_text,
            completion_text=completion_text,
            attempts=attempts,
        )
        candidate, (value, feedback) = self._recover(decision, attempt, attempts, first)
        return self._served(decision, candidate, value, feedback, attempts, await_score)

    # ------------------------------------------------------------------ run
    def run(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool = False,
        aggregate: Callable[[Sequence[T]], T] | None = None,
        stop: Callable[[Candidate, T], bool] | None = None,
        prompt_text: str = "",
        completion_text: Callable[[T], str] | None = None,
    ) -> ExecutionResult[T]:
        """Run ``decision`` with ``call`` and record one feedback per attempt.

        Args:
            decision: what to run; its ``kind`` selects single, ensemble or cascade.
            call: calls one candidate and returns its answer.
            usage: reads the token usage (and cost, if reported) off an answer; fields
                left None are estimated from ``prompt_text`` and the answer's text.
            await_score: record the served answer as waiting for a delayed quality score.
            aggregate: combines the members' answers of an ensemble (default: the first
                successful member's in plan order) or cascade (default: the accepted one).
            stop: for a cascade, ``stop(candidate, answer)`` accepts an answer and ends
                the cascade; it is not asked about the last member's answer. None accepts
                the first answer.
            prompt_text: the prompt, to estimate input tokens when usage has none.
            completion_text: the text of an answer, to estimate output tokens when usage
                has none; None uses the answer itself if it is a string, else "".

        Returns:
            The answer, the decision retargeted to who served it, and the feedback.

        Raises:
            ExecutionError: every candidate (or every plan member) failed.
            Exception: a fatal error, re-raised as is.
        """
        kind = "single" if decision.plan is None else decision.plan.kind
        if kind == "ensemble":
            return self._run_ensemble(
                decision,
                call,
                usage,
                await_score=await_score,
                aggregate=aggregate,
                prompt_text=prompt_text,
                completion_text=completion_text,
            )
        if kind == "cascade":
            return self._run_cascade(
                decision,
                call,
                usage,
                await_score=await_score,
                aggregate=aggregate,
                stop=stop,
                prompt_text=prompt_text,
                completion_text=completion_text,
            )
        # The first attempt is inlined: it is the whole call on the hot path, and building
        # the retrying closure only when it fails saves its cost on every call that works.
        candidate = decision.candidate
        clock = self.clock
        start = clock()
        try:
            value = call(candidate)
            latency = clock() - start
            feedback = self._success(
                candidate,
                usage(candidate, value),
                latency_s=latency,
                prompt_text=prompt_text,
                completion_text=completion_text,
                value=value,
            )
        except Exception as exc:  # noqa: BLE001 - classified and re-raised in _recover
            return self._run_recovering(
                decision,
                call,
                usage,
                exc,
                latency_s=clock() - start,
                await_score=await_score,
                prompt_text=prompt_text,
                completion_text=completion_text,
            )
        reward = self.recorder.record(decision, feedback, await_score=await_score)
        return ExecutionResult(
            value=value,
            decision=decision,
            feedback=feedback,
            attempts=(feedback,),
            reward=reward,
            values=(value,),
            served_by=(candidate.name,),
        )

    async def arun(
        self,
        decision: Decision,
        call: Callable[[Candidate], Awaitable[T]],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool = False,
        aggregate: Callable[[Sequence[T]], T] | None = None,
        stop: Callable[[Candidate, T], bool] | None = None,
        prompt_text: str = "",
        completion_text: Callable[[T], str] | None = None,
    ) -> ExecutionResult[T]:
        """Async :meth:`run`: ``call`` returns an awaitable; ensembles use ``asyncio.gather``.

        If the calling task is cancelled, the in-flight attempt(s) are recorded as failed
        with ``error="CancelledError"`` and the cancellation propagates.
        """
        kind = "single" if decision.plan is None else decision.plan.kind
        if kind == "ensemble":
            return await self._arun_ensemble(
                decision,
                call,
                usage,
                await_score=await_score,
                aggregate=aggregate,
                prompt_text=prompt_text,
                completion_text=completion_text,
            )
        if kind == "cascade":
            return await self._arun_cascade(
                decision,
                call,
                usage,
                await_score=await_score,
                aggregate=aggregate,
                stop=stop,
                prompt_text=prompt_text,
                completion_text=completion_text,
            )
        attempts: list[Feedback] = []
        attempt = self._aattempt(
            decision,
            call,
            usage,
            prompt_text=prompt_text,
            completion_text=completion_text,
            attempts=attempts,
        )
        candidate, (value, feedback) = await self._aserve(decision, attempt, attempts)
        return self._served(decision, candidate, value, feedback, attempts, await_score)

    # ------------------------------------------------------------------ plans
    def _run_ensemble(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool,
        aggregate: Callable[[Sequence[T]], T] | None,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
    ) -> ExecutionResult[T]:
        outcomes: list[_Outcome[T]] = [_Outcome(candidate=m) for m in decision.members]

        def run_member(outcome: _Outcome[T]) -> None:
            attempt = self._attempt(
                decision,
                call,
                usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                attempts=outcome.attempts,
            )
            try:
                outcome.answer = self._try(outcome.candidate, attempt)
            except Exception as exc:  # noqa: BLE001 - kept and re-raised by _finish_plan
                outcome.error = exc

        start = self.clock()
        workers = min(len(outcomes), self.max_workers or len(outcomes))
        if workers == 1:
            for outcome in outcomes:
                run_member(outcome)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pickllm") as pool:
                # Each member runs in a copy of the caller's context, so context variables
                # (tracing, framework callbacks) are visible inside ``call``.
                futures = [
                    pool.submit(contextvars.copy_context().run, run_member, outcome)
                    for outcome in outcomes
                ]
                for future in futures:
                    future.result()
        latency = self.clock() - start
        return self._finish_plan(
            decision,
            outcomes,
            latency=latency,
            await_score=await_score,
            aggregate=aggregate,
            ensemble=True,
        )

    async def _arun_ensemble(
        self,
        decision: Decision,
        call: Callable[[Candidate], Awaitable[T]],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool,
        aggregate: Callable[[Sequence[T]], T] | None,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
    ) -> ExecutionResult[T]:
        outcomes: list[_Outcome[T]] = [_Outcome(candidate=m) for m in decision.members]

        async def run_member(outcome: _Outcome[T]) -> None:
            attempt = self._aattempt(
                decision,
                call,
                usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                attempts=outcome.attempts,
            )
            try:
                outcome.answer = await self._atry(outcome.candidate, attempt)
            except Exception as exc:  # noqa: BLE001 - kept and re-raised by _finish_plan
                outcome.error = exc

        start = self.clock()
        await asyncio.gather(*(run_member(outcome) for outcome in outcomes))
        latency = self.clock() - start
        return self._finish_plan(
            decision,
            outcomes,
            latency=latency,
            await_score=await_score,
            aggregate=aggregate,
            ensemble=True,
        )

    def _run_cascade(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool,
        aggregate: Callable[[Sequence[T]], T] | None,
        stop: Callable[[Candidate, T], bool] | None,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
    ) -> ExecutionResult[T]:
        members = decision.members
        outcomes: list[_Outcome[T]] = []
        start = self.clock()
        for i, member in enumerate(members):
            outcome: _Outcome[T] = _Outcome(candidate=member)
            outcomes.append(outcome)
            attempt = self._attempt(
                decision,
                call,
                usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                attempts=outcome.attempts,
            )
            try:
                outcome.answer = self._try(member, attempt)
            except Exception as exc:  # noqa: BLE001 - kept and re-raised by _finish_plan
                outcome.error = exc
                if self._kind(exc) == _FATAL:
                    break
                continue
            if i < len(members) - 1 and (stop is None or stop(member, outcome.answer[0])):
                break
        latency = self.clock() - start
        return self._finish_plan(
            decision,
            outcomes,
            latency=latency,
            await_score=await_score,
            aggregate=aggregate,
            ensemble=False,
        )

    async def _arun_cascade(
        self,
        decision: Decision,
        call: Callable[[Candidate], Awaitable[T]],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool,
        aggregate: Callable[[Sequence[T]], T] | None,
        stop: Callable[[Candidate, T], bool] | None,
        prompt_text: str,
        completion_text: Callable[[T], str] | None,
    ) -> ExecutionResult[T]:
        members = decision.members
        outcomes: list[_Outcome[T]] = []
        start = self.clock()
        for i, member in enumerate(members):
            outcome: _Outcome[T] = _Outcome(candidate=member)
            outcomes.append(outcome)
            attempt = self._aattempt(
                decision,
                call,
                usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                attempts=outcome.attempts,
            )
            try:
                outcome.answer = await self._atry(member, attempt)
            except Exception as exc:  # noqa: BLE001 - kept and re-raised by _finish_plan
                outcome.error = exc
                if self._kind(exc) == _FATAL:
                    break
                continue
            if i < len(members) - 1 and (stop is None or stop(member, outcome.answer[0])):
                break
        latency = self.clock() - start
        return self._finish_plan(
            decision,
            outcomes,
            latency=latency,
            await_score=await_score,
            aggregate=aggregate,
            ensemble=False,
        )

    def _finish_plan(
        self,
        decision: Decision,
        outcomes: list[_Outcome[T]],
        *,
        latency: float,
        await_score: bool,
        aggregate: Callable[[Sequence[T]], T] | None,
        ensemble: bool,
    ) -> ExecutionResult[T]:
        """Record the answers of a finished plan and combine them.

        The served member is the first answering one (ensemble) or the last (cascade:
        the accepted answer, or the last that answered when no answer was accepted).
        """
        answered = [(o, o.answer) for o in outcomes if o.answer is not None]
        served = None
        if answered:
            served = answered[0] if ensemble else answered[-1]
        fatal = next(
            (o.error for o in outcomes if o.error is not None and self._kind(o.error) == _FATAL),
            None,
        )
        attempts: list[Feedback] = []
        for outcome in outcomes:
            attempts.extend(outcome.attempts)
            if outcome.answer is not None:
                attempts.append(outcome.answer[1])
        # A delayed score is for the answer the caller gets: every answering member of an
        # ensemble shaped it; in a cascade only the accepted member did.
        waiting: list[tuple[_Outcome[T], tuple[T, Feedback]]] = []
        if await_score and fatal is None and served is not None:
            waiting = answered if ensemble else [served]
        # Waiting members are recorded first: a recorder such as Router closes a decision's
        # pending entry when an answer that does not wait arrives before any that does.
        waiting_ids = {id(o) for o, _ in waiting}
        reward: float | None = None
        for outcome, (_, feedback) in (
            *waiting,
            *(pair for pair in answered if id(pair[0]) not in waiting_ids),
        ):
            got = self.recorder.record(
                _retarget(decision, outcome.candidate),
                feedback,
                await_score=id(outcome) in waiting_ids,
            )
            if served is not None and outcome is served[0]:
                reward = got
        if fatal is not None:
            raise fatal
        if served is None:
            last = next((o.error for o in reversed(outcomes) if o.error is not None), None)
            raise _all_failed(decision, attempts) from last
        values = tuple(answer[0] for _, answer in answered)
        feedbacks = [answer[1] for _, answer in answered]
        value = aggregate(values) if aggregate is not None else served[1][0]
        combined = Feedback(
            latency_s=max(latency, 0.0),
            input_tokens=sum(f.input_tokens for f in feedbacks),
            output_tokens=sum(f.output_tokens for f in feedbacks),
            cost_usd=sum(f.cost_usd for f in feedbacks),
            tokens_estimated=any(f.tokens_estimated for f in feedbacks),
        )
        return ExecutionResult(
            value=value,
            decision=_retarget(decision, served[0].candidate),
            feedback=combined,
            attempts=tuple(attempts),
            reward=reward,
            values=values,
            served_by=tuple(o.candidate.name for o, _ in answered),
        )

    # ------------------------------------------------------------------ streaming
    def stream(
        self,
        decision: Decision,
        open_stream: Callable[[Candidate], Iterator[C]],
        usage: Callable[[Candidate, list[C]], Usage],
        *,
        await_score: bool = False,
        prompt_text: str = "",
        completion_text: Callable[[list[C]], str] | None = None,
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[C]]], None] | None = None,
    ) -> Generator[C, None, None]:
        """Stream the answer of ``decision``'s candidate, chunk by chunk.

        Retries and fallbacks happen only before the first chunk: opening the stream or
        getting its first chunk is the attempt. Once a chunk has been yielded, an error
        is recorded as a failure and re-raised. The feedback carries the time to first
        chunk (from opening the stream) and the total latency (until the last chunk was
        consumed, so it includes the consumer's own time between chunks); usage is read
        at the end from the chunks. Nothing runs until the first chunk is requested.

        If the consumer stops early (``close()``, a ``break`` in a ``for`` loop, or the
        generator being garbage collected), the chunks received so far are recorded as
        a successful call with ``extra=(("closed_early", 1.0),)``, the underlying
        iterator is closed, and ``on_finish`` is still called.

        Args:
            decision: what to run (the plan is ignored: streams serve one candidate).
            open_stream: opens a stream of chunks from one candidate.
            usage: reads the usage from the collected chunks (None fields are estimated).
            await_score: record the answer as waiting for a delayed quality score.
            prompt_text: the prompt, to estimate input tokens when usage has none.
            completion_text: the text of the chunks, to estimate output tokens; None joins
                them if they are strings.
            on_start: called with the serving candidate before its first chunk is yielded.
            on_finish: called with the result (value = the chunks) once the feedback has
                been recorded.

        Yields:
            The chunks of the serving candidate.
        """
        attempts: list[Feedback] = []
        clock = self.clock

        def attempt(candidate: Candidate) -> _Opened[C]:
            start = clock()
            try:
                iterator = iter(open_stream(candidate))
                head: list[C] = []
                for chunk in iterator:
                    head.append(chunk)
                    break
                first_at = clock()
            except Exception as exc:
                self._fail(
                    decision,
                    candidate,
                    exc,
                    latency_s=clock() - start,
                    prompt_text=prompt_text,
                    attempts=attempts,
                )
                raise
            return _Opened(iterator=iterator, head=head, started=start, first_at=first_at)

        candidate, opened = self._serve(decision, attempt, attempts)
        if on_start is not None:
            on_start(candidate)
        ttft = opened.first_at - opened.started if opened.head else None
        chunks: list[C] = []
        iterator = opened.iterator
        try:
            if opened.head:
                chunks.append(opened.head[0])
                yield opened.head[0]
                for item in iterator:
                    chunks.append(item)
                    yield item
        except GeneratorExit:
            _close(iterator)
            self._finish_stream(
                decision,
                candidate,
                opened,
                chunks,
                ttft=ttft,
                attempts=attempts,
                usage=usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                await_score=await_score,
                on_finish=on_finish,
                closed_early=True,
            )
            raise
        except Exception as exc:
            _close(iterator)
            self._fail(
                decision,
                candidate,
                exc,
                latency_s=clock() - opened.started,
                prompt_text=prompt_text,
                attempts=attempts,
                ttft=ttft,
            )
            raise
        self._finish_stream(
            decision,
            candidate,
            opened,
            chunks,
            ttft=ttft,
            attempts=attempts,
            usage=usage,
            prompt_text=prompt_text,
            completion_text=completion_text,
            await_score=await_score,
            on_finish=on_finish,
            closed_early=False,
        )

    async def astream(
        self,
        decision: Decision,
        open_stream: Callable[[Candidate], AsyncIterator[C] | Awaitable[AsyncIterator[C]]],
        usage: Callable[[Candidate, list[C]], Usage],
        *,
        await_score: bool = False,
        prompt_text: str = "",
        completion_text: Callable[[list[C]], str] | None = None,
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[C]]], None] | None = None,
    ) -> AsyncGenerator[C, None]:
        """Async :meth:`stream`; ``open_stream`` returns an async iterator (or an awaitable of one).

        A cancelled consumer task records the serving attempt as failed with
        ``error="CancelledError"``; ``aclose()`` records the chunks received so far as in
        :meth:`stream`.
        """
        attempts: list[Feedback] = []
        clock = self.clock

        async def attempt(candidate: Candidate) -> _Opened[C]:
            start = clock()
            try:
                opened = open_stream(candidate)
                if inspect.isawaitable(opened):
                    opened = await opened
                iterator = opened
                head: list[C] = []
                async for chunk in iterator:
                    head.append(chunk)
                    break
                first_at = clock()
            except (Exception, asyncio.CancelledError) as exc:
                self._fail(
                    decision,
                    candidate,
                    exc,
                    latency_s=clock() - start,
                    prompt_text=prompt_text,
                    attempts=attempts,
                )
                raise
            return _Opened(iterator=iterator, head=head, started=start, first_at=first_at)

        candidate, opened = await self._aserve(decision, attempt, attempts)
        if on_start is not None:
            on_start(candidate)
        ttft = opened.first_at - opened.started if opened.head else None
        chunks: list[C] = []
        iterator = opened.iterator
        try:
            if opened.head:
                chunks.append(opened.head[0])
                yield opened.head[0]
                async for item in iterator:
                    chunks.append(item)
                    yield item
        except GeneratorExit:
            await _aclose(iterator)
            self._finish_stream(
                decision,
                candidate,
                opened,
                chunks,
                ttft=ttft,
                attempts=attempts,
                usage=usage,
                prompt_text=prompt_text,
                completion_text=completion_text,
                await_score=await_score,
                on_finish=on_finish,
                closed_early=True,
            )
            raise
        except (Exception, asyncio.CancelledError) as exc:
            await _aclose(iterator)
            self._fail(
                decision,
                candidate,
                exc,
                latency_s=clock() - opened.started,
                prompt_text=prompt_text,
                attempts=attempts,
                ttft=ttft,
            )
            raise
        self._finish_stream(
            decision,
            candidate,
            opened,
            chunks,
            ttft=ttft,
            attempts=attempts,
            usage=usage,
            prompt_text=prompt_text,
            completion_text=completion_text,
            await_score=await_score,
            on_finish=on_finish,
            closed_early=False,
        )

    def _finish_stream(
        self,
        decision: Decision,
        candidate: Candidate,
        opened: _Opened[C],
        chunks: list[C],
        *,
        ttft: float | None,
        attempts: list[Feedback],
        usage: Callable[[Candidate, list[C]], Usage],
        prompt_text: str,
        completion_text: Callable[[list[C]], str] | None,
        await_score: bool,
        on_finish: Callable[[ExecutionResult[list[C]]], None] | None,
        closed_early: bool,
    ) -> None:
        latency = self.clock() - opened.started
        try:
            text = completion_text
            if text is None and all(isinstance(c, str) for c in chunks):
                text = _join
            feedback = self._success(
                candidate,
                usage(candidate, chunks),
                latency_s=latency,
                prompt_text=prompt_text,
                completion_text=text,
                value=chunks,
                ttft=ttft,
            )
        except Exception as exc:
            self._fail(
                decision,
                candidate,
                exc,
                latency_s=latency,
                prompt_text=prompt_text,
                attempts=attempts,
                ttft=ttft,
            )
            raise
        if closed_early:
            feedback = _with_extra(feedback, "closed_early")
        reward = self.recorder.record(
            _retarget(decision, candidate), feedback, await_score=await_score
        )
        attempts.append(feedback)
        if on_finish is not None:
            on_finish(
                ExecutionResult(
                    value=chunks,
                    decision=_retarget(decision, candidate),
                    feedback=feedback,
                    attempts=tuple(attempts),
                    reward=reward,
                    values=(chunks,),
                    served_by=(candidate.name,),
                )
            )


def _retarget(decision: Decision, candidate: Candidate) -> Decision:
    # Identity first: comparing candidates field by field costs a microsecond per call.
    return decision if candidate is decision.candidate else decision.retarget(candidate)


def _join(chunks: list[Any]) -> str:
    return "".join(chunks)


def _with_extra(feedback: Feedback, name: str) -> Feedback:
    return replace(feedback, extra=(*feedback.extra, (name, 1.0)))


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if callable(aclose):
        await aclose()


def _all_failed(decision: Decision, attempts: Sequence[Feedback]) -> ExecutionError:
    failures = [f for f in attempts if f.error is not None]
    summary = ", ".join(f"{f.candidate}: {f.error}" for f in failures)
    msg = (
        f"every candidate of decision {decision.decision_id!r} ({decision.kind}) failed "
        f"after {len(failures)} attempt(s): {summary}"
    )
    return ExecutionError(msg, attempts=failures)
