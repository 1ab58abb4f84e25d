"""Scoped feedback: the decisions an engine makes inside a block, scored together.

A chain, a query engine or an agent hides the routed model's answers, so the decision ids
they carry are out of reach. :meth:`pickllm.engine.Engine.track` opens a block that
collects every decision its engine makes inside it; :meth:`Tracker.feedback` then gives
them all one score::

    with engine.track() as tracked:       # or: async with engine.track() as tracked:
        chain.invoke(...)
    tracked.feedback(0.9)

The open blocks live in a context variable, so each thread and each asyncio task sees its
own blocks; asyncio tasks created inside a block, and threads started with a copy of its
context (``contextvars.copy_context().run``, LangChain's executors), report into it too.
Blocks nest: a decision joins every open block of its engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType

from pickllm.errors import ConfigError

__all__ = ["Tracker", "Tracking", "note_decision"]

_OPEN: ContextVar[tuple[tuple[object, Tracker], ...]] = ContextVar("pickllm_trackers", default=())
"""The blocks open in this context, with the engine each one tracks."""


class Tracker:
    """The decisions an engine made inside a ``track()`` block.

    Args:
        feedback: joins one score to several decision ids (the engine's
            ``feedback_each``).

    Examples:
        >>> tracker = Tracker(lambda ids, score: None)
        >>> tracker.decision_ids, len(tracker)
        ([], 0)
    """

    __slots__ = ("_feedback", "_ids", "_lock")

    def __init__(self, feedback: Callable[[Sequence[str], float], float | None]) -> None:
        self._feedback = feedback
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def add(self, decision_id: str) -> None:
        """Collect ``decision_id`` (called by the engine when it routes)."""
        with self._lock:
            self._ids.append(decision_id)

    @property
    def decision_ids(self) -> list[str]:
        """The decision ids, in the order the calls were routed."""
        with self._lock:
            return list(self._ids)

    def feedback(self, score: float) -> float | None:
        """Give every call of the block that waits for a score the quality ``score``.

        A call that does not wait for one (it failed, was already scored or was learned
        from at once) is left out.

        Returns:
            The reward of the last call that took the score (None while that call itself
            is not recorded yet).

        Raises:
            UnknownDecisionError: no call of the block waits for a score (or none was
                routed).
        """
        return self._feedback(self.decision_ids, score)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __repr__(self) -> str:
        return f"Tracker({self.decision_ids!r})"


class Tracking:
    """The ``track()`` block: a sync and async context manager yielding its :class:`Tracker`.

    Args:
        owner: the engine whose decisions are collected.
        tracker: where they are collected.

    Examples:
        >>> engine = object()
        >>> with Tracking(engine, Tracker(lambda ids, score: None)) as tracked:
        ...     note_decision(engine, "d-1")
        >>> tracked.decision_ids
        ['d-1']
    """

    __slots__ = ("_owner", "_token", "tracker")

    def __init__(self, owner: object, tracker: Tracker) -> None:
        self._owner = owner
        self.tracker = tracker
        self._token: Token[tuple[tuple[object, Tracker], ...]] | None = None

    def __enter__(self) -> Tracker:
        if self._token is not None:
            msg = "this track() block is already open; call track() again for another block"
            raise ConfigError(msg)
        self._token = _OPEN.set((*_OPEN.get(), (self._owner, self.tracker)))
        return self.tracker

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _OPEN.reset(token)

    async def __aenter__(self) -> Tracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


def note_decision(owner: object, decision_id: str) -> None:
    """Collect ``decision_id`` in every block open for ``owner`` in this context."""
    for engine, tracker in _OPEN.get():
        if engine is owner:
            tracker.add(decision_id)
