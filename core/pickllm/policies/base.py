"""The policy base class: ``select(context) -> Decision`` and ``update(decision, reward)``.

A policy learns one thing: which candidate to pick. Public verbs validate and share the
bookkeeping; each policy implements one protected hook per verb (``_select``, ``_update``)
plus its state. Learned state is keyed by candidate *name*, so the pool may change between
calls without losing what was learned about the candidates that stay.

A policy's class attribute ``name`` is what ``pickllm.make_policy`` (in
:mod:`pickllm.registry`) finds it by, with no list to edit.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from pickllm.errors import ConfigError, NoCandidateError, StateError
from pickllm.types import Candidate, Context, Decision, Plan, PlanKind, SeedLike

__all__ = [
    "Choice",
    "Policy",
    "new_decision_id",
]

P = TypeVar("P", bound="Policy")


def new_decision_id() -> str:
    """A unique decision id: 128 random bits from the OS, in hex.

    As random as ``uuid4().hex``, without building a UUID object on every call.
    """
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class Choice:
    """What ``_select`` returns: an index into ``context.candidates`` and how it was chosen.

    Args:
        index: the chosen candidate's position in ``context.candidates``.
        probability: the probability with which it was chosen.
        scores: optional score per candidate (same order as ``context.candidates``); the
            fallback ranking sorts the others by it, highest first.
        members: for a multi-model plan, the indices of the models to run (in order for
            a cascade); None for a single-model decision.
        kind: the plan kind when ``members`` is given (``ensemble`` or ``cascade``).
        decision_id: the id the decision will carry; None draws a fresh one. A policy
            that must recognise its decision in ``_update`` (to find what it saw at
            ``_select`` time) sets it, from :func:`new_decision_id`.
    """

    index: int
    probability: float
    scores: Sequence[float] | None = None
    members: Sequence[int] | None = None
    kind: PlanKind = "single"
    decision_id: str | None = None


class Policy(ABC):
    """Base class of every routing policy.

    Subclasses set the class attribute ``name``, take their hyperparameters keyword-only
    (stored under the same name, validated in ``__init__``), keep learned state in
    ``_``-prefixed attributes, and implement ``_select``, ``_update``, ``_get_state`` and
    ``_set_state``. ``seed`` is normalised once into ``self._rng``.

    Args:
        seed: an int, a ``numpy.random.Generator`` or None.
    """

    name: ClassVar[str] = ""
    contextual: ClassVar[bool] = False
    """Whether the policy uses ``Context.features``, ``Context.query`` or ``Context.key``."""

    learning: ClassVar[bool] = True
    """Whether the policy learns from feedback; the fixed baselines (``fixed``, ``random``,
    ``cheapest``) set it to False, and the conformance suite then does not ask them to
    beat random choice."""

    @property
    def blocking(self) -> bool:
        """Whether ``select`` runs a model: async callers then route in a worker thread.

        True for a trained query scorer and a linear policy with a reward prior, so the
        event loop is not held. A subclass that always runs one sets ``blocking = True``.
        """
        return False

    def __init__(self, *, seed: SeedLike = None) -> None:
        _check_seed(seed)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ public verbs
    def select(self, context: Context, *, issuer: str | None = None) -> Decision:
        """Choose a candidate among ``context.candidates``.

        ``issuer`` is stamped on the decision (a Router passes its id, so that it can
        refuse the decisions of another router).

        Raises:
            NoCandidateError: if the context offers no candidate.
        """
        cands = context.candidates
        if not cands:
            msg = "select() needs at least one candidate in context.candidates, got none"
            raise NoCandidateError(msg)
        choice = self._select(context)
        chosen = cands[choice.index]
        ranking: tuple[Candidate, ...]
        scores: tuple[float, ...] | None
        if choice.scores is None:
            ranking = (chosen, *cands[: choice.index], *cands[choice.index + 1 :])
            scores = None
        else:
            s = choice.scores
            prices = [c.input_price + c.output_price for c in cands]
            # Best score first; ties go to the cheaper candidate.
            order = sorted(range(len(cands)), key=lambda i: (-s[i], prices[i]))
            order.remove(choice.index)
            ranking = (chosen, *[cands[i] for i in order])
            # float(): scores may come as numpy scalars (float32 is no float subclass).
            scores = (float(s[choice.index]), *[float(s[i]) for i in order])
        plan = None
        if choice.members is not None:
            plan = Plan(kind=choice.kind, members=tuple(cands[i] for i in choice.members))
        return Decision(
            decision_id=choice.decision_id or new_decision_id(),
            candidate=chosen,
            ranking=ranking,
            probability=choice.probability,
            policy=self.name,
            key=context.key,
            plan=plan,
            scores=scores,
            issuer=issuer,
        )

    def update(self, decision: Decision, reward: float) -> None:
        """Learn from the outcome of ``decision``.

        The router turns each call's ``Feedback`` into the reward with its ``Objective``;
        code that drives a policy directly does the same with ``Objective.reward``.

        Args:
            decision: a decision this policy (or a clone) made; the arm updated is
                ``decision.candidate``.
            reward: the reward, a finite number in [0, 1].

        Raises:
            TypeError: ``reward`` is not a number (a ``Feedback``, for example).
            ConfigError: ``reward`` is NaN, infinite or outside [0, 1].
        """
        self._update(decision, check_number("Policy.update", "reward", reward, low=0.0, high=1.0))

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _select(self, context: Context) -> Choice:
        """Pick among ``context.candidates`` (never empty)."""

    @abstractmethod
    def _update(self, decision: Decision, reward: float) -> None:
        """Learn from ``reward`` in [0, 1] for ``decision.candidate``."""

    def _get_state(self) -> dict[str, Any]:
        """Learned state, JSON-ready (no numpy scalars or arrays)."""
        return {}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``_get_state`` returned; raise StateError if it is invalid."""

    # ------------------------------------------------------------------ state
    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to ``__init__`` (``seed`` as None if a Generator)."""
        params: dict[str, Any] = {}
        for pname in _init_params(type(self)):
            value = getattr(self, pname)
            if pname == "seed" and isinstance(value, np.random.Generator):
                value = None
            params[pname] = value
        return params

    def state_dict(self) -> dict[str, Any]:
        """Everything learned plus the RNG state, JSON-ready."""
        return {
            "policy": self.name,
            "state": self._get_state(),
            "rng": _jsonable(self._rng.bit_generator.state),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``.

        Raises:
            StateError: the state is for another policy or is malformed.
        """
        if not isinstance(state, Mapping) or state.get("policy") != self.name:
            got = state.get("policy") if isinstance(state, Mapping) else type(state).__name__
            msg = f"state is for policy {got!r}, not {self.name!r}"
            raise StateError(msg)
        inner = state.get("state")
        if not isinstance(inner, Mapping):
            msg = f"state of policy {self.name!r} has no 'state' mapping"
            raise StateError(msg)
        rng_state = state.get("rng")
        try:
            # Check the RNG state on a scratch generator first, so a bad state leaves the
            # policy untouched instead of half loaded.
            if rng_state is not None:
                if not isinstance(rng_state, Mapping):
                    msg = f"'rng' must be a mapping, got {type(rng_state).__name__}"
                    raise TypeError(msg)
                scratch = copy.deepcopy(self._rng.bit_generator)
                scratch.state = dict(rng_state)
            self._set_state(inner)
            if rng_state is not None:
                self._rng.bit_generator.state = dict(rng_state)
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            msg = f"state of policy {self.name!r} is malformed: {exc}"
            raise StateError(msg) from exc

    def clone(self, **overrides: Any) -> Self:
        """A fresh, unfitted copy with the same hyperparameters (and the same seed).

        A Generator seed is deep-copied, so the clone draws the same numbers.
        """
        params = self.get_params()
        if isinstance(self.seed, np.random.Generator) and "seed" not in overrides:
            params["seed"] = copy.deepcopy(self.seed)
        params.update(overrides)
        return type(self)(**params)

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        """Hyperparameters for the conformance checks (defaults unless overridden)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@functools.cache
def _init_params(cls: type[Policy]) -> tuple[str, ...]:
    """The names of ``cls.__init__``'s parameters.

    Cached: ``clone()`` runs on hot paths (a new context key of ``PerContext``).
    """
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def _check_seed(seed: object) -> None:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
    ):
        msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
        raise TypeError(msg)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):  # the state of MT19937, Philox, SFC64 generators
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite number in the given interval, else raise.

    For the policies' ``__init__``: the message names ``owner``'s parameter, the value
    and the allowed interval.

    Raises:
        TypeError: ``value`` is not an int or float (bools are refused).
        ConfigError: ``value`` is NaN, infinite or outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{owner} {name} must be a number, got {value!r}"
        raise TypeError(msg)
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if not math.isfinite(v) or too_low or too_high:
        left = "(" if low_open or math.isinf(low) else "["
        right = ")" if high_open or math.isinf(high) else "]"
        hi = "inf" if math.isinf(high) else f"{high:g}"
        lo = "-inf" if math.isinf(low) else f"{low:g}"
        msg = f"{owner} {name} must be a finite number in {left}{lo}, {hi}{right}, got {value!r}"
        raise ConfigError(msg)
    return v


def state_float(
    policy: str, field: str, value: object, *, low: float = -math.inf, high: float = math.inf
) -> float:
    """A finite float in [low, high] read from a saved state, else StateError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"state of policy {policy!r}: {field} must be a number, got {value!r}"
        raise StateError(msg)
    v = float(value)
    if not math.isfinite(v) or not low <= v <= high:
        msg = (
            f"state of policy {policy!r}: {field} must be a finite number in "
            f"[{low:g}, {high:g}], got {value!r}"
        )
        raise StateError(msg)
    return v


def state_count(policy: str, field: str, value: object) -> int:
    """A non-negative int read from a saved state, else StateError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"state of policy {policy!r}: {field} must be an int >= 0, got {value!r}"
        raise StateError(msg)
    return value


def state_names(policy: str, field: str, value: object) -> Mapping[str, Any]:
    """A mapping keyed by candidate names read from a saved state, else StateError."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        msg = (
            f"state of policy {policy!r}: {field} must be a mapping keyed by candidate "
            f"names, got {value!r}"
        )
        raise StateError(msg)
    return value


def state_field(policy: str, state: Mapping[str, Any], field: str) -> Any:
    """``state[field]``, or StateError naming the missing field."""
    if field not in state:
        msg = f"state of policy {policy!r} has no {field!r} (it has {sorted(state)})"
        raise StateError(msg)
    return state[field]
