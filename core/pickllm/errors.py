"""Exceptions raised by PickLLM.

Every error derives from :class:`PickLLMError` and from the builtin it refines, so
callers can catch either::

    PickLLMError
    ├── ConfigError(ValueError)          bad hyperparameter, weight, price or argument
    │   └── ConfigTypeError(TypeError)   an argument of the wrong type
    ├── StateError(ValueError)           a saved state that is corrupted, edited or incompatible
    ├── DataError(ValueError)            a malformed outcome file (names file, line, column)
    ├── NoCandidateError(LookupError)    no candidate can serve what the call requires
    ├── UnknownDecisionError(KeyError)   a decision this router cannot take feedback for
    ├── AttemptTimeoutError(TimeoutError)     one attempt ran past its ``timeout`` (then retried)
    ├── BudgetExceededError(RuntimeError) a spend limit is reached (``on_budget="raise"``)
    ├── StoreUnavailableError(ConnectionError)  a shared state store did not answer in time
    └── ExecutionError(RuntimeError)     every candidate of a decision failed
        └── DeadlineExceededError(TimeoutError)  the call's ``deadline`` passed before an answer

Warnings derive from :class:`PickLLMWarning` (a ``UserWarning``)::

    PickLLMWarning(UserWarning)
    └── StoreWarning                     the shared store is unreachable: routing goes on locally
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

    from pickllm.types import Feedback

__all__ = [
    "AttemptTimeoutError",
    "BudgetExceededError",
    "ConfigError",
    "ConfigTypeError",
    "DataError",
    "DeadlineExceededError",
    "ExecutionError",
    "NoCandidateError",
    "PickLLMError",
    "PickLLMWarning",
    "StateError",
    "StoreUnavailableError",
    "StoreWarning",
    "UnknownDecisionError",
]


class PickLLMError(Exception):
    """Root of every exception PickLLM raises."""


class ConfigError(PickLLMError, ValueError):
    """A parameter has a value that is not allowed."""

    @classmethod
    def from_validation(cls, owner: str, exc: ValidationError) -> ConfigError:
        """One error naming, for each problem pydantic found, the field, value and rule.

        Examples:
            >>> from pydantic import BaseModel, ValidationError
            >>> class Limits(BaseModel):
            ...     retries: int
            >>> try:
            ...     Limits(retries="many")
            ... except ValidationError as exc:
            ...     print(ConfigError.from_validation("Limits", exc))  # doctest: +ELLIPSIS
            Limits retries='many' is not allowed: Input should be a valid integer...
        """
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}={err.get('input')!r} is not allowed: "
            f"{err['msg']}"
            for err in exc.errors()
        )
        return cls(f"{owner} {problems}")


class ConfigTypeError(ConfigError, TypeError):
    """An argument has the wrong type (caught as ``ConfigError`` or as ``TypeError``)."""


class StateError(PickLLMError, ValueError):
    """A saved state cannot be loaded (corrupted, hand-edited or incompatible)."""


class DataError(PickLLMError, ValueError):
    """An outcome table is malformed."""


class NoCandidateError(PickLLMError, LookupError):
    """No candidate of the pool can serve what the call requires."""


class UnknownDecisionError(PickLLMError, KeyError):
    """Feedback for a decision the router cannot take it for.

    Attributes:
        reason: why, one of ``"unknown"`` (never issued, or forgotten), ``"foreign"``
            (made by another router), ``"failed"`` (every attempt of the call failed: it
            was learned from with reward 0 and takes no score), ``"scored"`` (it already
            has its score), ``"learned"`` (recorded without waiting for a score) and
            ``"expired"`` (it waited longer than ``pending_ttl_s`` or was pushed out by
            ``max_pending``).
    """

    def __init__(self, message: str, *, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        # KeyError quotes its argument; our messages are sentences.
        return str(self.args[0]) if self.args else ""


class ExecutionError(PickLLMError, RuntimeError):
    """Every candidate of a decision failed.

    Attributes:
        attempts: the feedback recorded for each failed attempt, in order.
    """

    def __init__(self, message: str, *, attempts: Sequence[Feedback] = ()) -> None:
        super().__init__(message)
        self.attempts: tuple[Feedback, ...] = tuple(attempts)


class DeadlineExceededError(ExecutionError, TimeoutError):
    """The call's ``deadline`` passed before any candidate answered."""


class AttemptTimeoutError(PickLLMError, TimeoutError):
    """One attempt ran past its ``timeout``; it was abandoned (sync) or cancelled (async)."""


class BudgetExceededError(PickLLMError, RuntimeError):
    """A spend limit is reached and the router is set to refuse calls (``on_budget="raise"``)."""


class StoreUnavailableError(PickLLMError, ConnectionError):
    """A shared state store (Redis) failed or did not answer within its timeout.

    The router never lets it reach the application: it keeps routing from its local copy
    and issues a :class:`StoreWarning`. Store methods called directly raise it.
    """


class PickLLMWarning(UserWarning):
    """Root of every warning PickLLM issues."""


class StoreWarning(PickLLMWarning):
    """The shared state store is unreachable: routing goes on from the local copy.

    Updates are kept locally and sent when the store answers again. Issued at most once per
    ``warn_interval_s`` of the store while it stays unreachable.
    """
