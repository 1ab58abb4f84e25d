"""Attempts: how a failed call is classified, how long to wait, and the actions of a run.

A run is a pure state machine (a generator, see :mod:`pickllm.engine.plans`) that yields
*actions* and receives their outcomes; the sync and async drivers
(:mod:`pickllm.engine.drivers`) perform them. Nothing here does I/O.

Errors fall in five kinds (:class:`ErrorKind`), decided by :class:`RetryConfig`:

* ``TRANSIENT`` (timeouts, connection errors, rate limits, 5xx): the same candidate is
  retried with exponential backoff and jitter, up to ``max_attempts`` attempts, then the
  run falls back; a ``retry-after`` longer than ``max_wait_s`` falls back at once;
* ``FATAL`` (bad request, authentication, permission, not found): surfaced at once, with
  no retry and no fallback, since another model would fail the same way;
* ``CONTENT_POLICY``: surfaced like a fatal error, unless ``content_policy_fallbacks``
  names models to re-route it to (then only those are tried);
* ``CONTEXT_LENGTH``: the prompt is too long for that model; the run falls back to the
  candidates with a larger (or unknown) context window;
* ``OTHER``: no retry on that candidate; the run falls back to the next one.

An error is classified by the classes the settings name, by the names of the classes in
its MRO (provider SDKs need not be importable), by its message for content-policy and
context-length errors that come as generic classes, and by its HTTP status where the SDK
exposes one (``status_code``, ``response.status_code`` or ``code``): 408, 429 and 5xx are
transient, 400, 401, 403, 404, 413 and 422 fatal.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pickllm.errors import ConfigError, ExecutionError
from pickllm.types import Candidate, Decision, Feedback

__all__ = [
    "DEFAULT_FATAL_NAMES",
    "DEFAULT_RETRY_ON_NAMES",
    "Call",
    "Close",
    "Emit",
    "ErrorKind",
    "Gather",
    "Next",
    "Open",
    "Outcome",
    "RetryConfig",
    "Score",
    "Sleep",
    "all_failed",
]

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
"""Exception class names retried by default, matched anywhere in the error's MRO."""

DEFAULT_FATAL_NAMES: tuple[str, ...] = (
    "BadRequestError",  # OpenAI, Anthropic, LiteLLM (400)
    "UnprocessableEntityError",  # OpenAI, Anthropic (422)
    "AuthenticationError",  # OpenAI, Anthropic, LiteLLM (401)
    "PermissionDeniedError",  # OpenAI, Anthropic (403)
    "InvalidArgument",  # google-api-core 400
)
"""Exception class names surfaced at once (no retry, no fallback) by default."""

CONTENT_POLICY_NAMES: tuple[str, ...] = ("ContentPolicyViolationError", "ContentFilterError")
"""Exception class names of content-policy refusals (LiteLLM and others)."""

CONTEXT_LENGTH_NAMES: tuple[str, ...] = ("ContextWindowExceededError",)
"""Exception class names of prompts too long for the model (LiteLLM)."""

_CONTENT_POLICY_WORDS = ("content policy", "content_policy", "content filter", "content_filter")
_CONTEXT_LENGTH_WORDS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",
)

_TRANSIENT_STATUS = frozenset({408, 429})
_FATAL_STATUS = frozenset({400, 401, 403, 404, 413, 422})


class ErrorKind(enum.Enum):
    """What a failed attempt leads to."""

    OTHER = "other"
    """Fall back to the next candidate."""
    TRANSIENT = "transient"
    """Retry the same candidate after a wait."""
    FATAL = "fatal"
    """Surface the error to the caller."""
    CONTENT_POLICY = "content_policy"
    """A refusal: surface it, or re-route to ``content_policy_fallbacks``."""
    CONTEXT_LENGTH = "context_length"
    """The prompt is too long: fall back to a model with a larger context window."""


class RetryConfig(BaseModel):
    """How a run retries, falls back and gives up.

    The wait after the n-th failed attempt of a candidate is
    ``min(max_wait_s, initial_wait_s * 2**(n-1) + U(0, jitter_s))``, with the uniform
    jitter drawn from the engine's own seeded generator.

    Args:
        max_attempts: attempts per candidate, first one included (>= 1).
        initial_wait_s: wait before the first retry, without jitter (>= 0).
        max_wait_s: cap on any wait (>= 0).
        jitter_s: width of the uniform jitter added to each wait (>= 0).
        max_fallbacks: how many further candidates of the ranking to try after the
            chosen one (>= 0), or None for the whole ranking.
        retry_on: exception classes retried on the same candidate.
        retry_on_names: class names retried, for provider errors not importable here.
        fatal: exception classes surfaced at once, with no retry and no fallback.
        fatal_names: class names treated as fatal.
        content_policy_fallbacks: models a content-policy refusal is re-routed to (in
            this order); by default a refusal surfaces to the caller.
        timeout: seconds one attempt may take (for a stream: until its first chunk, and
            between two chunks) before it is abandoned (sync: it keeps running in its
            worker thread, its result ignored) or cancelled (async), recorded as an
            ``AttemptTimeoutError`` and retried; None waits as long as the model does.
        deadline: seconds the whole call (every attempt and wait) may take; past it the
            call raises ``DeadlineExceededError``; None sets no limit.
        timeout_workers: worker threads that run sync attempts when ``timeout`` is set
            (a hung model holds one until it returns).

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
    retry_on: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)
    retry_on_names: tuple[str, ...] = DEFAULT_RETRY_ON_NAMES
    fatal: tuple[type[BaseException], ...] = ()
    fatal_names: tuple[str, ...] = DEFAULT_FATAL_NAMES
    content_policy_fallbacks: tuple[str, ...] = ()
    timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    deadline: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    timeout_workers: int = Field(default=32, ge=1, strict=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError.from_validation("RetryConfig", exc) from exc

    def classify(self, exc: BaseException) -> ErrorKind:  # noqa: PLR0911 - one rule a line
        """The kind of a failed attempt's error (see the module docstring)."""
        cls = type(exc)
        if issubclass(cls, self.fatal):
            return ErrorKind.FATAL
        names = {k.__name__ for k in cls.__mro__}
        text = f"{exc} {getattr(exc, 'code', '')}".lower()
        if not names.isdisjoint(CONTENT_POLICY_NAMES) or any(
            w in text for w in _CONTENT_POLICY_WORDS
        ):
            return ErrorKind.CONTENT_POLICY
        if not names.isdisjoint(CONTEXT_LENGTH_NAMES) or any(
            w in text for w in _CONTEXT_LENGTH_WORDS
        ):
            return ErrorKind.CONTEXT_LENGTH
        if not names.isdisjoint(self.fatal_names):
            return ErrorKind.FATAL
        if issubclass(cls, self.retry_on) or not names.isdisjoint(self.retry_on_names):
            return ErrorKind.TRANSIENT
        status = http_status(exc)
        if status is not None:
            if status in _TRANSIENT_STATUS or 500 <= status < 600:
                return ErrorKind.TRANSIENT
            if status in _FATAL_STATUS:
                return ErrorKind.FATAL
        return ErrorKind.OTHER

    def wait_s(self, failures: int, jitter: float) -> float:
        """The wait after the ``failures``-th failed attempt, given a jitter draw in [0, 1)."""
        # Past 2**64 the cap always wins; bounding the exponent avoids float overflow.
        wait = self.initial_wait_s * 2.0 ** min(failures - 1, 64)
        return min(self.max_wait_s, wait + jitter * self.jitter_s)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an SDK error carries, if any (``status_code``, ``response``, ``code``)."""
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        getattr(exc, "code", None),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
            return value
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """The wait in seconds an error asks for (``retry_after``, or a ``retry-after`` header)."""
    value: object = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(
            exc, "headers", None
        )
        getter = getattr(headers, "get", None)
        if callable(getter):
            value = getter("retry-after") or getter("Retry-After")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # absent, or an HTTP date: the backoff rule applies
    return seconds if 0.0 <= seconds < float("inf") else None


# ---------------------------------------------------------------------- actions
# Messages between a machine and its driver, two or more per attempt: plain slots.
@dataclass(slots=True)
class Call:
    """Call ``candidate`` once, within ``timeout`` seconds; sends back an :class:`Outcome`."""

    candidate: Candidate
    timeout: float | None = None


@dataclass(slots=True)
class Open:
    """Open a stream from ``candidate`` and read its first chunk.

    Sends back an Outcome of ``(iterator, head)``, ``head`` being ``[first chunk]`` or ``[]``.
    """

    candidate: Candidate
    timeout: float | None = None


@dataclass(slots=True)
class Next:
    """Read the next chunk of an opened stream (an Outcome of ``[chunk]``, ``[]`` at its end)."""

    iterator: Any
    timeout: float | None = None


@dataclass(slots=True)
class Close:
    """Close an opened stream (sends back None)."""

    iterator: Any


@dataclass(slots=True)
class Emit:
    """Hand a chunk to the consumer of a stream (sends back None)."""

    chunk: Any


@dataclass(slots=True)
class Sleep:
    """Wait ``seconds`` before the next attempt (sends back None)."""

    seconds: float


@dataclass(slots=True)
class Score:
    """Score ``answer``, the answer of ``candidate``, with the evaluator.

    Sends back the score in [0, 1], or None when the evaluator gave none (or failed:
    an evaluator's error never fails the call).
    """

    candidate: Candidate
    answer: Any


@dataclass(slots=True)
class Gather:
    """Run these sub-machines concurrently; sends back their return values, in order.

    Each sub-machine must catch its own errors: a gathered machine that raises is a bug.
    """

    machines: tuple[Any, ...]


@dataclass(slots=True)
class Outcome:
    """What an I/O action produced: a value, or the error it raised."""

    value: Any = None
    error: BaseException | None = None


def all_failed(decision: Decision, attempts: Sequence[Feedback]) -> ExecutionError:
    """The error raised when every candidate (or plan member) of ``decision`` failed."""
    failures = [f for f in attempts if f.error is not None]
    summary = ", ".join(f"{f.candidate}: {f.error}" for f in failures)
    msg = (
        f"every candidate of decision {decision.decision_id!r} ({decision.kind}) failed "
        f"after {len(failures)} attempt(s): {summary}"
    )
    return ExecutionError(msg, attempts=failures)
