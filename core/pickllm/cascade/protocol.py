"""What a live cascade strategy promises the engine: one session per call, step by step.

The engine runs a call under a :class:`CascadeStrategy` like this::

    session = strategy.start(query, candidates, prompt_tokens=n)
    while (name := session.next_model()) is not None:
        answer = <run the model called name, with retries, no fallback>
        if it failed:
            session.failed(name)
        else:
            session.observe(name, text, cost_usd=..., latency_s=..., score=<evaluator> or None)
    returned = session.final()          # the name whose answer the call returns
    strategy.settle(session)            # the call is over: budget control, learning

A strategy decides everything about the cascade (which model next, when to stop, which
answer wins); the engine only runs models, times and prices them, and records one
feedback per step. A session never sees the model objects, only names, texts and numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pickllm.types import Candidate

__all__ = ["CascadeSession", "CascadeStep", "CascadeStrategy"]


@dataclass(frozen=True, slots=True)
class CascadeStep:
    """One model run within a cascaded call.

    Args:
        model: the candidate's name.
        cost_usd: what the step cost (reported, or tokens times prices).
        latency_s: how long the step took, retries included.
        quality: the post-hoc quality estimate of its answer, in [0, 1]; None if it failed.
        ex_ante: the quality estimate the strategy had before running it.
        error: the exception's class name if the step failed, else None.
    """

    model: str
    cost_usd: float
    latency_s: float
    quality: float | None
    ex_ante: float | None = None
    error: str | None = None


@runtime_checkable
class CascadeSession(Protocol):
    """The state of one cascaded call."""

    def next_model(self) -> str | None:
        """The name of the model to run next, or None to stop."""
        ...

    def observe(
        self,
        model: str,
        text: str,
        *,
        cost_usd: float,
        latency_s: float,
        score: float | None = None,
    ) -> float:
        """Take one model's answer; return its post-hoc quality estimate in [0, 1].

        ``score`` is the user's evaluator's score of the answer, when one is configured.
        """
        ...

    def failed(self, model: str, *, error: str, latency_s: float) -> None:
        """Note that a model failed (after its retries); it is not proposed again."""
        ...

    def final(self) -> str:
        """The model whose answer the call returns (best post-hoc estimate).

        Raises:
            LookupError: no model has answered.
        """
        ...

    @property
    def steps(self) -> tuple[CascadeStep, ...]:
        """The steps run so far, in order."""
        ...


@runtime_checkable
class CascadeStrategy(Protocol):
    """Starts a session per call and learns from finished ones."""

    name: str

    def start(
        self, query: str, candidates: Sequence[Candidate], *, prompt_tokens: int
    ) -> CascadeSession:
        """A new session for ``query`` over ``candidates`` (the models allowed this call)."""
        ...

    def settle(self, session: CascadeSession) -> None:
        """The call of ``session`` is over (budget tracking, online learning)."""
        ...
