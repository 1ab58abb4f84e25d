"""The executor: runs a decision with a wrapper's call, sync, async or streamed.

It pairs a :class:`~pickllm.engine.plans.Planner` (the I/O-free state machines that retry,
fall back, run plans and record feedback) with a driver of
:mod:`pickllm.engine.drivers`. Exceptions that are not :class:`Exception`
(``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``) always propagate; a cancelled
``arun``/``astream`` first records the in-flight attempt as a failure with
``error="CancelledError"``.
"""

from __future__ import annotations

import asyncio
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
from typing import Any, TypeVar

from pickllm.cascade.protocol import CascadeStrategy
from pickllm.engine.attempts import ErrorKind, RetryConfig
from pickllm.engine.drivers import AsyncIO, SyncIO, adrive, adrive_stream, drive, drive_stream
from pickllm.engine.plans import ExecutionResult, Job, Planner, Recorder
from pickllm.errors import ConfigError
from pickllm.pricing import Usage
from pickllm.types import Candidate, Decision, SeedLike

__all__ = ["Executor"]

T = TypeVar("T")
C = TypeVar("C")


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
        >>> from pickllm import Candidate, Decision, MemoryRecorder, Usage
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
        self.planner = Planner(recorder, retry=retry, clock=clock, seed=seed)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _workers(self) -> ThreadPoolExecutor | None:
        """The threads that run sync attempts with a timeout (built on first use)."""
        config = self.planner.config
        if config.timeout is None and config.deadline is None:
            return None
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=config.timeout_workers, thread_name_prefix="pickllm-attempt"
                )
            return self._pool

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is retried on the same candidate."""
        return isinstance(exc, Exception) and self.planner.kind(exc) is ErrorKind.TRANSIENT

    def is_fatal(self, exc: BaseException) -> bool:
        """Whether ``exc`` surfaces at once, without retry or fallback."""
        return isinstance(exc, Exception) and self.planner.kind(exc) is ErrorKind.FATAL

    def backoff(self, failures: int) -> float:
        """The wait in seconds after the ``failures``-th failed attempt (draws jitter)."""
        return self.planner.backoff(failures)

    def run(
        self,
        decision: Decision,
        call: Callable[[Candidate], T],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool = False,
        choose: Callable[[Sequence[T]], int] | None = None,
        stop: Callable[[Candidate, T], bool] | None = None,
        prompt_text: str = "",
        completion_text: Callable[[T], str] | None = None,
        strategy: CascadeStrategy | None = None,
        query: str = "",
        score: Callable[[Candidate, T], float | None] | None = None,
    ) -> ExecutionResult[T]:
        """Run ``decision`` with ``call`` and record one feedback per attempt.

        Args:
            decision: what to run; its ``kind`` selects single, ensemble or cascade.
            call: calls one candidate and returns its answer.
            usage: reads the token usage (and cost, if reported) off an answer; fields
                left None are estimated from ``prompt_text`` and the answer's text.
            await_score: the returned answer waits for a delayed quality score.
            choose: picks the returned answer among a plan's answers, as an index
                (default: the first member's for an ensemble, the accepted one for a
                cascade).
            stop: for a cascade, ``stop(candidate, answer)`` accepts an answer and ends
                the cascade; None accepts the first answer.
            prompt_text: the prompt, to estimate input tokens when usage has none.
            completion_text: the text of an answer, to estimate output tokens when usage
                has none; None uses the answer itself if it is a string, else "".
            strategy: runs a ``cascade`` decision as a strategy cascade over its members
                (see :mod:`pickllm.engine.plans`).
            query: the query a strategy cascade's session starts with.
            score: scores each answer of a strategy cascade inline (its evaluator),
                returning a score in [0, 1] or None; it must not raise.

        Returns:
            The answer, the decision retargeted to who served it, and the feedback.

        Raises:
            ExecutionError: every candidate (or every plan member) failed.
            Exception: a fatal error, re-raised as is.
        """
        job = Job(
            decision=decision,
            usage=usage,
            await_score=await_score,
            prompt_text=prompt_text,
            text=completion_text,
            choose=choose,
            stop=stop,
            strategy=strategy,
            query=query,
            score=score is not None,
        )
        return self.execute(job, call, score)

    async def arun(
        self,
        decision: Decision,
        call: Callable[[Candidate], Awaitable[T]],
        usage: Callable[[Candidate, T], Usage],
        *,
        await_score: bool = False,
        choose: Callable[[Sequence[T]], int] | None = None,
        stop: Callable[[Candidate, T], bool] | None = None,
        prompt_text: str = "",
        completion_text: Callable[[T], str] | None = None,
        strategy: CascadeStrategy | None = None,
        query: str = "",
        score: Callable[[Candidate, T], Awaitable[float | None]] | None = None,
    ) -> ExecutionResult[T]:
        """Async :meth:`run`: ``call`` and ``score`` return awaitables; ensembles gather."""
        job = Job(
            decision=decision,
            usage=usage,
            await_score=await_score,
            prompt_text=prompt_text,
            text=completion_text,
            choose=choose,
            stop=stop,
            strategy=strategy,
            query=query,
            score=score is not None,
        )
        return await self.aexecute(job, call, score)

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
        on_finish: Callable[[ExecutionResult[list[Any]]], None] | None = None,
    ) -> Generator[C, None, None]:
        """Stream the answer of ``decision``'s candidate, chunk by chunk.

        Retries and fallbacks happen only before the first chunk: opening the stream and
        getting its first chunk is the attempt. After it, an error is recorded as a
        failure and re-raised once every chunk received has been yielded. The feedback
        carries the time to first chunk and the total latency (until the last chunk was
        consumed); usage is read at the end from the chunks. Nothing runs until the
        first chunk is requested. If the consumer stops early, the chunks received so
        far are recorded with ``extra=(("closed_early", 1.0),)`` and ``on_finish`` is
        still called.

        Args:
            decision: what to run (the plan is not used: streams serve one candidate).
            open_stream: opens a stream of chunks from one candidate.
            usage: reads the usage from the collected chunks (None fields are estimated).
            await_score: record the answer as waiting for a delayed quality score.
            prompt_text: the prompt, to estimate input tokens when usage has none.
            completion_text: the text of the chunks; None joins them if they are strings.
            on_start: called with the serving candidate before its first chunk.
            on_finish: called with the result (value = the chunks) once recorded.

        Yields:
            The chunks of the serving candidate.
        """
        job = Job(
            decision=decision,
            usage=usage,
            await_score=await_score,
            prompt_text=prompt_text,
            text=completion_text,
        )
        return self.execute_stream(job, open_stream, on_start, on_finish)

    def astream(
        self,
        decision: Decision,
        open_stream: Callable[[Candidate], AsyncIterator[C] | Awaitable[AsyncIterator[C]]],
        usage: Callable[[Candidate, list[C]], Usage],
        *,
        await_score: bool = False,
        prompt_text: str = "",
        completion_text: Callable[[list[C]], str] | None = None,
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[Any]]], None] | None = None,
    ) -> AsyncGenerator[C, None]:
        """Async :meth:`stream`; ``open_stream`` returns an async iterator (or an awaitable)."""
        job = Job(
            decision=decision,
            usage=usage,
            await_score=await_score,
            prompt_text=prompt_text,
            text=completion_text,
        )
        return self.aexecute_stream(job, open_stream, on_start, on_finish)

    # ------------------------------------------------------------------ ready jobs
    # The engine builds its Job itself; run/arun/stream/astream build one from their
    # arguments. Either way a job runs here, through one machine and a driver.
    def execute(
        self,
        job: Job,
        call: Callable[[Candidate], T],
        score: Callable[[Candidate, T], float | None] | None = None,
    ) -> ExecutionResult[T]:
        """Run a ready ``job`` with ``call`` (``score``: a strategy cascade's evaluator)."""
        io = SyncIO(
            call=call,
            sleep=self.sleep,
            max_workers=self.max_workers,
            workers=self._workers(),
            score=score,
        )
        return drive(self.planner.plan(job), io)

    async def aexecute(
        self,
        job: Job,
        call: Callable[[Candidate], Awaitable[T]],
        score: Callable[[Candidate, T], Awaitable[float | None]] | None = None,
    ) -> ExecutionResult[T]:
        """Async :meth:`execute`."""
        io = AsyncIO(call=call, sleep=self.async_sleep, score=score)
        return await adrive(self.planner.plan(job), io)

    def execute_stream(
        self,
        job: Job,
        open_stream: Callable[[Candidate], Iterator[C]],
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[Any]]], None] | None = None,
    ) -> Generator[C, None, None]:
        """Stream a ready ``job``'s answer (see :meth:`stream`)."""
        io = SyncIO(open_stream=open_stream, sleep=self.sleep, workers=self._workers())
        return drive_stream(self.planner.stream(job, on_start, on_finish), io)

    def aexecute_stream(
        self,
        job: Job,
        open_stream: Callable[[Candidate], AsyncIterator[C] | Awaitable[AsyncIterator[C]]],
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[Any]]], None] | None = None,
    ) -> AsyncGenerator[C, None]:
        """Async :meth:`execute_stream`."""
        io = AsyncIO(open_stream=open_stream, sleep=self.async_sleep)
        return adrive_stream(self.planner.stream(job, on_start, on_finish), io)
