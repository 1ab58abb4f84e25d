"""Hot-path value types: candidates, contexts, decisions, plans and feedback.

All are frozen, slotted, keyword-only dataclasses: cheap to build on every call, safe
to share between threads, and impossible to mutate by accident inside a policy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Literal

import numpy as np

from pickllm.errors import ConfigError, ConfigTypeError

__all__ = [
    "MAX_TOKENS",
    "Candidate",
    "Context",
    "Decision",
    "Feedback",
    "Plan",
    "PlanKind",
    "SeedLike",
    "check_count",
    "check_number",
]

SeedLike = int | np.random.Generator | None
"""What every ``seed`` parameter accepts: an int, a ready Generator, or None (fresh entropy)."""

PlanKind = Literal["single", "ensemble", "cascade"]

MAX_TOKENS = 2**53
"""The largest token count accepted (every count up to it is exact as a float)."""


def check_number(
    owner: str, what: str, value: object, *, high: float | None = None, optional: bool = False
) -> None:
    """Raise unless ``value`` is a finite real number in ``[0, high]`` (None if ``optional``).

    Raises:
        ConfigTypeError: ``value`` is not a real number (bools are not numbers here).
        ConfigError: it is NaN, infinite, negative or above ``high``.
    """
    if value is None and optional:
        return
    # int and float first: the numbers.Real check (numpy scalars, Fractions) is an ABC
    # check, several times dearer, on every value of every call.
    if isinstance(value, bool) or not isinstance(value, int | float | numbers.Real):
        kind = "a number or None" if optional else "a number"
        msg = f"{owner} {what} must be {kind}, got {value!r}"
        raise ConfigTypeError(msg)
    number = float(value)
    if not math.isfinite(number) or number < 0.0 or (high is not None and number > high):
        allowed = f"in [0, {high:g}]" if high is not None else "a finite number >= 0"
        alternative = " or None" if optional else ""
        msg = f"{owner} {what} must be {allowed}{alternative}, got {value!r}"
        raise ConfigError(msg)


def check_count(owner: str, what: str, value: object, *, optional: bool = False) -> None:
    """Raise unless ``value`` is an int in ``[0, MAX_TOKENS]`` (or None if ``optional``).

    Raises:
        ConfigTypeError: ``value`` is not an int (a float such as 1.5 or a bool is not).
        ConfigError: it is negative or larger than ``MAX_TOKENS``.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | numbers.Integral):
        kind = "an int or None" if optional else "an int"
        msg = f"{owner} {what} must be {kind}, got {value!r}"
        raise ConfigTypeError(msg)
    if not 0 <= int(value) <= MAX_TOKENS:
        msg = f"{owner} {what} must be an int in [0, 2**53], got {value!r}"
        raise ConfigError(msg)


def _check_flag(owner: str, what: str, value: object, *, optional: bool = False) -> None:
    if (value is None and optional) or isinstance(value, bool):
        return
    kind = "True, False or None" if optional else "True or False"
    msg = f"{owner} {what} must be {kind}, got {value!r}"
    raise ConfigTypeError(msg)


def _check_text(owner: str, what: str, value: object, *, optional: bool = False) -> None:
    if (value is None and optional) or isinstance(value, str):
        return
    kind = "a string or None" if optional else "a string"
    msg = f"{owner} {what} must be {kind}, got {value!r}"
    raise ConfigTypeError(msg)


def _candidates_tuple(value: object) -> bool:
    """Whether ``value`` is a tuple of Candidate (checked on every Context of every call)."""
    return isinstance(value, tuple) and all(map(isinstance, value, repeat(Candidate)))


def _check_price(name: str, value: float, what: str) -> None:
    check_number(f"Candidate {name!r}:", f"{what} (USD per 1M tokens)", value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One model of the pool, with its prices and what it can do.

    Args:
        name: unique name of the model within the pool.
        input_price: USD per 1M input (prompt) tokens.
        output_price: USD per 1M output (completion) tokens.
        tool_calling: whether the model can call tools; None means unknown (assumed yes).
        structured_output: whether it can return structured output; None means unknown
            (assumed yes).
        max_context_tokens: the context window, if known.

    Examples:
        >>> gpt = Candidate(name="gpt-4o", input_price=2.5, output_price=10.0)
        >>> gpt.price_of(1_000, 200)
        0.0045
    """

    name: str
    input_price: float = 0.0
    output_price: float = 0.0
    tool_calling: bool | None = None
    structured_output: bool | None = None
    max_context_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            msg = f"Candidate name must be a non-empty string, got {self.name!r}"
            raise ConfigError(msg)
        _check_price(self.name, self.input_price, "input_price")
        _check_price(self.name, self.output_price, "output_price")
        owner = f"Candidate {self.name!r}:"
        # "no" is truthy: a capability must be a real bool, or None for unknown.
        _check_flag(owner, "tool_calling", self.tool_calling, optional=True)
        _check_flag(owner, "structured_output", self.structured_output, optional=True)
        if self.max_context_tokens is not None and (
            isinstance(self.max_context_tokens, bool)
            or not isinstance(self.max_context_tokens, int)
            or self.max_context_tokens <= 0
        ):
            msg = (
                f"Candidate {self.name!r}: max_context_tokens must be a positive int or None, "
                f"got {self.max_context_tokens!r}"
            )
            raise ConfigError(msg)

    def price_of(self, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of a call with this many tokens."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6

    def can_serve(self, context: Context) -> bool:
        """Whether this candidate has every capability ``context`` requires."""
        if context.needs_tool_calling and self.tool_calling is False:
            return False
        if context.needs_structured_output and self.structured_output is False:
            return False
        return not (
            context.min_context_tokens is not None
            and self.max_context_tokens is not None
            and self.max_context_tokens < context.min_context_tokens
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a policy sees of one call.

    Args:
        query: the query text (may be empty for context-free routing).
        key: an optional context key (topic, task tag, session) for per-context learners.
        features: an optional feature vector for query-aware policies.
        candidates: the arms offered for this call; the router fills them in from its
            pool, minus those that cannot serve the call.
        needs_tool_calling: the call binds tools.
        needs_structured_output: the call asks for structured output.
        min_context_tokens: the prompt's size in tokens, if known.
        input_tokens: the (estimated) prompt tokens, for cost-aware policies.

    Examples:
        >>> Context(query="What is 2+2?", key="math").key
        'math'
    """

    query: str = ""
    key: str | None = None
    features: tuple[float, ...] | None = None
    candidates: tuple[Candidate, ...] = ()
    needs_tool_calling: bool = False
    needs_structured_output: bool = False
    min_context_tokens: int | None = None
    input_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_text("Context", "query", self.query)
        _check_text("Context", "key", self.key, optional=True)
        _check_flag("Context", "needs_tool_calling", self.needs_tool_calling)
        _check_flag("Context", "needs_structured_output", self.needs_structured_output)
        check_count("Context", "min_context_tokens", self.min_context_tokens, optional=True)
        check_count("Context", "input_tokens", self.input_tokens, optional=True)
        if not _candidates_tuple(self.candidates):
            msg = f"Context candidates must be a tuple of Candidate, got {self.candidates!r}"
            raise ConfigTypeError(msg)

    def with_candidates(self, candidates: Sequence[Candidate]) -> Context:
        """A copy of this context offering ``candidates``."""
        return replace(self, candidates=tuple(candidates))

    def feature_array(self) -> np.ndarray:
        """The feature vector as a float array (empty if there is none)."""
        if self.features is None:
            return np.zeros(0)
        return np.asarray(self.features, dtype=float)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Which models a decision runs, and how.

    ``single`` runs ``members[0]`` (the rest of the ranking is for fallbacks); ``ensemble``
    runs every member concurrently and aggregates the answers; ``cascade`` runs members in
    order and stops when the executor's stop rule accepts an answer.

    Examples:
        >>> a, b = Candidate(name="a"), Candidate(name="b")
        >>> Plan(kind="ensemble", members=(a, b)).kind
        'ensemble'
    """

    kind: PlanKind = "single"
    members: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("single", "ensemble", "cascade"):
            msg = f"Plan kind must be 'single', 'ensemble' or 'cascade', got {self.kind!r}"
            raise ConfigError(msg)
        if not _candidates_tuple(self.members):
            msg = f"Plan members must be a tuple of Candidate, got {self.members!r}"
            raise ConfigTypeError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A routing decision.

    Args:
        decision_id: unique id, used to join delayed scores.
        candidate: the chosen candidate (the first one to run).
        ranking: every offered candidate, best first, starting with ``candidate``;
            the executor falls back along it.
        probability: the probability with which the policy chose ``candidate``.
        policy: the policy's name.
        key: the context key the decision was made under.
        plan: the models to run; by default only ``candidate``.
        scores: the policy's score per candidate of ``ranking`` (same order), if any.
        issuer: the id of the router that made the decision (``Router.route`` sets it;
            ``Router.record`` refuses a decision another router made). Not compared.

    Examples:
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=1.0,
        ...              policy="fixed")
        >>> [m.name for m in d.members]
        ['a']
    """

    decision_id: str
    candidate: Candidate
    ranking: tuple[Candidate, ...]
    probability: float
    policy: str
    key: str | None = None
    plan: Plan | None = None
    scores: tuple[float, ...] | None = None
    issuer: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.decision_id, str) or not self.decision_id:
            msg = f"Decision decision_id must be a non-empty string, got {self.decision_id!r}"
            raise ConfigError(msg)
        if not isinstance(self.candidate, Candidate):
            msg = f"Decision candidate must be a Candidate, got {self.candidate!r}"
            raise ConfigTypeError(msg)
        # Tolerance: a policy's probability may come out a rounding error above 1.
        check_number("Decision", "probability", self.probability, high=1.0 + 1e-9)

    @property
    def members(self) -> tuple[Candidate, ...]:
        """The models this decision runs (one, unless the plan names several)."""
        if self.plan is None or not self.plan.members:
            return (self.candidate,)
        return self.plan.members

    @property
    def kind(self) -> PlanKind:
        """``single``, ``ensemble`` or ``cascade``."""
        return "single" if self.plan is None else self.plan.kind

    def retarget(self, candidate: Candidate) -> Decision:
        """The same decision, attributed to ``candidate`` (a fallback or plan member)."""
        if candidate == self.candidate:
            return self
        return replace(self, candidate=candidate)


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """What one call of one candidate cost, how long it took and how good it was.

    Args:
        latency_s: wall time of the call in seconds.
        input_tokens: prompt tokens.
        output_tokens: completion tokens.
        cost_usd: cost of the call in USD.
        quality: answer quality in [0, 1], or None when not (yet) scored.
        error: the error's class name when the call failed, else None.
        tokens_estimated: the token counts were estimated, not reported by the provider.
        time_to_first_token_s: for streamed calls, the time to the first chunk.
        candidate: name of the candidate that served the call, when it differs from
            the decision's (fallbacks, plan members).
        extra: further named measurements, as ``(name, number)`` pairs.
        error_kind: how the failed attempt's error was classified, when known (an
            ``ErrorKind`` value: ``"transient"``, ``"other"``, ``"fatal"``,
            ``"content_policy"``, ``"context_length"``). The router's circuit breaker counts
            only failures of the model (transient, other, or unknown), not refusals or
            requests no model could serve.

    Raises:
        ConfigError: a number is NaN, infinite, negative, or (quality) above 1; a token
            count is above 2**53 (the message names the field and the value).
        ConfigTypeError: a field has the wrong type (a fractional token count, a string
            for a number).

    Examples:
        >>> Feedback(latency_s=0.8, input_tokens=120, output_tokens=30, quality=1.0).failed
        False
    """

    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    quality: float | None = None
    error: str | None = None
    tokens_estimated: bool = False
    time_to_first_token_s: float | None = None
    candidate: str | None = None
    extra: tuple[tuple[str, float], ...] = field(default=())
    error_kind: str | None = None

    def __post_init__(self) -> None:
        # Every number is checked here, at the boundary: one NaN or infinity let in would
        # poison a reward, a policy's statistics and every later save.
        check_number("Feedback", "latency_s", self.latency_s)
        check_count("Feedback", "input_tokens", self.input_tokens)
        check_count("Feedback", "output_tokens", self.output_tokens)
        check_number("Feedback", "cost_usd", self.cost_usd)
        check_number("Feedback", "quality", self.quality, high=1.0, optional=True)
        _check_text("Feedback", "error", self.error, optional=True)
        _check_text("Feedback", "error_kind", self.error_kind, optional=True)
        _check_flag("Feedback", "tokens_estimated", self.tokens_estimated)
        check_number("Feedback", "time_to_first_token_s", self.time_to_first_token_s, optional=True)
        _check_text("Feedback", "candidate", self.candidate, optional=True)
        if not isinstance(self.extra, tuple):
            msg = f"Feedback extra must be a tuple of (name, number) pairs, got {self.extra!r}"
            raise ConfigTypeError(msg)
        for item in self.extra:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                msg = f"Feedback extra items must be (name, number) pairs, got {item!r}"
                raise ConfigTypeError(msg)
            value = item[1]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                msg = f"Feedback extra[{item[0]!r}] must be a number, got {value!r}"
                raise ConfigTypeError(msg)
            if not math.isfinite(value):
                msg = f"Feedback extra[{item[0]!r}] must be finite, got {value!r}"
                raise ConfigError(msg)

    @property
    def failed(self) -> bool:
        """Whether the call failed."""
        return self.error is not None

    def with_quality(self, quality: float | None) -> Feedback:
        """A copy carrying ``quality``."""
        return replace(self, quality=quality)
