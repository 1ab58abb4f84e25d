"""The sync and async drivers: they perform the actions a plan's machine yields.

A driver knows how to call a candidate (the wrapper's ``call``/``open_stream``), how to
sleep and how to run sub-plans at once (threads for sync, ``asyncio.gather`` for async);
the machine decides everything else. An action's error is sent back to the machine as an
:class:`~pickllm.engine.attempts.Outcome`, so the machine records it; in async code a
cancelled call is sent back too (recorded as ``CancelledError``), then re-raised by the
machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pickllm.engine.attempts import Call, Close, Emit, Gather, Next, Open, Outcome, Score, Sleep
from pickllm.engine.plans import ClosedEarly, Machine
from pickllm.errors import AttemptTimeoutError
from pickllm.types import Candidate

__all__ = ["AsyncIO", "SyncIO", "adrive", "adrive_stream", "drive", "drive_stream"]

T = TypeVar("T")


@dataclass(slots=True)
class SyncIO:
    """How the sync driver talks to the outside world."""

    call: Callable[[Candidate], Any] | None = None
    open_stream: Callable[[Candidate], Iterator[Any]] | None = None
    sleep: Callable[[float], None] = lambda _: None
    max_workers: int | None = None
    workers: ThreadPoolExecutor | None = None
    """Runs attempts that have a timeout (None: attempts run in the calling thread)."""
    score: Callable[[Candidate, Any], float | None] | None = None
    """Scores a cascade step's answer (the engine's evaluator; it never raises)."""

    def perform(self, action: object) -> Any:  # noqa: PLR0911 - one return per action
        """Do ``action`` and return what its machine is sent back."""
        # The commonest action first: most calls are one Call and nothing else.
        if isinstance(action, Call) and self.call is not None:
            return self._within(action.timeout, self.call, action.candidate)
        if isinstance(action, Sleep):
            self.sleep(action.seconds)
            return None
        if isinstance(action, Score) and self.score is not None:
            return self.score(action.candidate, action.answer)
        if isinstance(action, Gather):
            return self._gather(action)
        if isinstance(action, Close):
            close = getattr(action.iterator, "close", None)
            if callable(close):
                # "generator already executing": a read that timed out still runs in its
                # worker thread; the generator is left to finish there.
                with contextlib.suppress(ValueError):
                    close()
            return None
        if isinstance(action, Open) and self.open_stream is not None:
            return self._within(action.timeout, _open, self.open_stream, action.candidate)
        if isinstance(action, Next):
            return self._within(action.timeout, _take, action.iterator)
        msg = f"the sync driver cannot perform {action!r}"
        raise TypeError(msg)

    def _within(self, timeout: float | None, fn: Callable[..., Any], *args: Any) -> Outcome:
        """``fn(*args)`` as an Outcome; past ``timeout`` it is abandoned to its thread."""
        if timeout is None or self.workers is None:
            try:
                return Outcome(value=fn(*args))
            except Exception as exc:  # noqa: BLE001 - sent to the machine, which classifies it
                return Outcome(error=exc)
        future = self.workers.submit(contextvars.copy_context().run, fn, *args)
        try:
            return Outcome(value=future.result(timeout=timeout))
        except TimeoutError as exc:
            if future.done():  # the call's own timeout error, not ours
                return Outcome(error=exc)
            future.cancel()
            return Outcome(error=AttemptTimeoutError(f"the attempt took more than {timeout:.3g} s"))
        except Exception as exc:  # noqa: BLE001 - sent to the machine, which classifies it
            return Outcome(error=exc)

    def _gather(self, action: Gather) -> list[Any]:
        machines = action.machines
        workers = min(len(machines), self.max_workers or len(machines))
        if workers <= 1:
            return [drive(m, self) for m in machines]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pickllm") as pool:
            # Each member runs in a copy of the caller's context, so context variables
            # (tracing, framework callbacks) are visible inside ``call``.
            futures = [
                pool.submit(contextvars.copy_context().run, drive, m, self) for m in machines
            ]
            return [f.result() for f in futures]


def _open(open_stream: Callable[[Candidate], Iterator[Any]], candidate: Candidate) -> Any:
    iterator = iter(open_stream(candidate))
    return iterator, _take(iterator)


def _take(iterator: Iterator[Any]) -> list[Any]:
    for item in iterator:
        return [item]
    return []


async def _atake(iterator: AsyncIterator[Any]) -> list[Any]:
    async for item in iterator:
        return [item]
    return []


@dataclass(slots=True)
class AsyncIO:
    """How the async driver talks to the outside world."""

    call: Callable[[Candidate], Awaitable[Any]] | None = None
    open_stream: (
        Callable[[Candidate], AsyncIterator[Any] | Awaitable[AsyncIterator[Any]]] | None
    ) = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    score: Callable[[Candidate, Any], Awaitable[float | None]] | None = None
    """Scores a cascade step's answer (the engine's evaluator; it never raises)."""

    async def perform(self, action: object) -> Any:  # noqa: PLR0911 - one return per action
        """Do ``action`` and return what its machine is sent back."""
        if isinstance(action, Call) and self.call is not None:
            return await _awithin(action.timeout, self.call(action.candidate))
        if isinstance(action, Sleep):
            await self.sleep(action.seconds)
            return None
        if isinstance(action, Score) and self.score is not None:
            return await self.score(action.candidate, action.answer)
        if isinstance(action, Gather):
            return await asyncio.gather(*(adrive(m, self) for m in action.machines))
        if isinstance(action, Close):
            aclose = getattr(action.iterator, "aclose", None)
            if callable(aclose):
                await aclose()
            return None
        if isinstance(action, Open) and self.open_stream is not None:
            return await _awithin(action.timeout, self._aopen(action.candidate))
        if isinstance(action, Next):
            return await _awithin(action.timeout, _atake(action.iterator))
        msg = f"the async driver cannot perform {action!r}"
        raise TypeError(msg)

    async def _aopen(self, candidate: Candidate) -> Any:
        assert self.open_stream is not None  # noqa: S101 - checked by perform
        opened = self.open_stream(candidate)
        iterator = await opened if inspect.isawaitable(opened) else opened
        return iterator, await _atake(iterator)


async def _awithin(limit_s: float | None, work: Awaitable[Any]) -> Outcome:
    """``work``'s result as an Outcome; past ``limit_s`` seconds it is cancelled."""
    try:
        async with asyncio.timeout(limit_s) as scope:
            return Outcome(value=await work)
    except TimeoutError as exc:
        if scope.expired():
            return Outcome(error=AttemptTimeoutError(f"the attempt took more than {limit_s:.3g} s"))
        return Outcome(error=exc)
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - to the machine
        # A cancelled attempt is recorded by the machine, which then re-raises it.
        return Outcome(error=exc)


def drive(machine: Machine[T], io: SyncIO) -> T:
    """Run ``machine`` to its end with ``io``; return its result."""
    reply: Any = None
    while True:
        try:
            action = machine.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply = io.perform(action)


async def adrive(machine: Machine[T], io: AsyncIO) -> T:
    """Async :func:`drive`."""
    reply: Any = None
    while True:
        try:
            action = machine.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply = await io.perform(action)


def drive_stream(machine: Machine[Any], io: SyncIO) -> Generator[Any, None, None]:
    """Run a stream's ``machine``, yielding the chunks it emits.

    Nothing runs until the first chunk is requested. Closing the returned generator
    throws :class:`ClosedEarly` into the machine, which records what was received.
    """
    reply: Any = None
    while True:
        try:
            action = machine.send(reply)
        except StopIteration:
            return
        if not isinstance(action, Emit):
            reply = io.perform(action)
            continue
        reply = None
        try:
            yield action.chunk
        except GeneratorExit:
            _finish(machine, io)
            raise


def _finish(machine: Machine[Any], io: SyncIO) -> None:
    try:
        action = machine.throw(ClosedEarly())
        while True:
            action = machine.send(io.perform(action))
    except StopIteration:
        return


async def adrive_stream(machine: Machine[Any], io: AsyncIO) -> AsyncGenerator[Any, None]:
    """Async :func:`drive_stream`."""
    reply: Any = None
    while True:
        try:
            action = machine.send(reply)
        except StopIteration:
            return
        if not isinstance(action, Emit):
            reply = await io.perform(action)
            continue
        reply = None
        try:
            yield action.chunk
        except GeneratorExit:
            await _afinish(machine, io)
            raise


async def _afinish(machine: Machine[Any], io: AsyncIO) -> None:
    try:
        action = machine.throw(ClosedEarly())
        while True:
            action = machine.send(await io.perform(action))
    except StopIteration:
        return
