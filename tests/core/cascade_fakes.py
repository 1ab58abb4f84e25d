"""A deterministic test-only cascade strategy (the real ones live in ``pickllm.cascade``).

:class:`PriceOrderCascade` runs the offered models from the cheapest to the dearest and
stops at the first answer whose estimate reaches ``threshold``; the estimate is the
evaluator's score when there is one, else ``estimate(text)``. The returned answer is the
best estimate (the earliest among equals). Every call is kept for the tests to inspect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pickllm.cascade import CascadeSession, CascadeStep
from pickllm.types import Candidate


@dataclass(frozen=True, slots=True)
class Observed:
    """One ``observe`` call, as received."""

    model: str
    text: str
    cost_usd: float
    latency_s: float
    score: float | None


@dataclass(eq=False)
class PriceOrderSession:
    """The session of one call of :class:`PriceOrderCascade`."""

    query: str
    order: list[str]
    prompt_tokens: int
    threshold: float
    estimate: Callable[[str], float]
    observed: list[Observed] = field(default_factory=list)
    failures: list[tuple[str, str, float]] = field(default_factory=list)
    _steps: list[CascadeStep] = field(default_factory=list)
    _done: bool = False

    def next_model(self) -> str | None:
        """The cheapest model not run yet, unless an answer was good enough."""
        if self._done or not self.order:
            return None
        return self.order.pop(0)

    def observe(
        self,
        model: str,
        text: str,
        *,
        cost_usd: float,
        latency_s: float,
        score: float | None = None,
    ) -> float:
        """The score if given, else the estimate of the text; stops at the threshold."""
        self.observed.append(Observed(model, text, cost_usd, latency_s, score))
        quality = score if score is not None else self.estimate(text)
        self._steps.append(
            CascadeStep(model=model, cost_usd=cost_usd, latency_s=latency_s, quality=quality)
        )
        if quality >= self.threshold:
            self._done = True
        return quality

    def failed(self, model: str, *, error: str, latency_s: float) -> None:
        """Note the failure; the next model is tried."""
        self.failures.append((model, error, latency_s))
        self._steps.append(
            CascadeStep(model=model, cost_usd=0.0, latency_s=latency_s, quality=None, error=error)
        )

    def final(self) -> str:
        """The best estimate so far (the earliest among equals)."""
        answered = [s for s in self._steps if s.quality is not None]
        if not answered:
            msg = "no model has answered"
            raise LookupError(msg)
        best = max(answered, key=lambda s: s.quality if s.quality is not None else -1.0)
        return best.model

    @property
    def steps(self) -> tuple[CascadeStep, ...]:
        """The steps so far."""
        return tuple(self._steps)


class PriceOrderCascade:
    """Cheapest first, stop at ``threshold``; keeps its sessions and settled sessions."""

    name = "price_order"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        estimate: Callable[[str], float] = lambda text: 0.5,
    ) -> None:
        self.threshold = threshold
        self.estimate = estimate
        self.sessions: list[PriceOrderSession] = []
        self.settled: list[PriceOrderSession] = []
        self.offered: list[tuple[str, ...]] = []

    def start(
        self, query: str, candidates: Sequence[Candidate], *, prompt_tokens: int
    ) -> PriceOrderSession:
        """A session over ``candidates``, cheapest first."""
        self.offered.append(tuple(c.name for c in candidates))
        order = sorted(candidates, key=lambda c: (c.input_price + c.output_price, c.name))
        session = PriceOrderSession(
            query=query,
            order=[c.name for c in order],
            prompt_tokens=prompt_tokens,
            threshold=self.threshold,
            estimate=self.estimate,
        )
        self.sessions.append(session)
        return session

    def settle(self, session: CascadeSession) -> None:
        """Keep the finished session."""
        if not isinstance(session, PriceOrderSession):
            msg = f"settle() got a session it did not start: {session!r}"
            raise TypeError(msg)
        self.settled.append(session)
