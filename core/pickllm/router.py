"""The router: routes calls with a policy, records what they cost, learns from the reward.

``Router`` owns the pool of candidates, one policy and one objective. ``route`` asks the
policy for a decision among the candidates that can serve the call; ``record`` turns the
call's feedback into a reward with the objective and updates the policy; ``feedback`` joins
a score that arrives later (an evaluator that runs in the background, a user's thumbs-up)
to the decision it scores.

Delayed scores: ``route`` registers each decision as *pending*. ``record(...,
await_score=True)`` records cost and latency at once and keeps the decision pending until
``feedback(decision_id, score)`` arrives; only then is the policy updated, with the full
reward. Pending entries are bounded (``max_pending``, oldest dropped first) and expire
after ``pending_ttl_s``; a recorded call whose score never came is then learned from with
the objective's ``missing_quality`` rule, so nothing that was recorded is lost.

Feedback semantics (each case has one defined outcome, never a silent drop):

* ``record`` of a **failed** attempt (``feedback.error`` set) is learned from at once with
  reward 0, and the decision leaves the pending table at once (unless a score that arrived
  early, or another member's answer, waits there); a fallback's answer recorded after it
  re-enters the table if it awaits a score.
* ``feedback`` for a call whose every attempt failed raises ``UnknownDecisionError`` with
  ``reason="failed"``; a **second** score for the same decision (also a second early one)
  raises it with ``reason="scored"``; an id this router never issued (or has forgotten:
  the last 10,000 closed ids are remembered) with ``reason="unknown"``; a decision recorded
  without ``await_score`` with ``reason="learned"``; one that waited too long with
  ``reason="expired"``; one released without a score with ``reason="released"``.
* ``record`` refuses a decision made by another router (``UnknownDecisionError``,
  ``reason="foreign"``; decisions carry their router's ``issuer`` id) and feedback naming a
  model this router never had (``ConfigError``), before counting anything.
* ``release`` of an id that waits for nothing returns None.

Circuit breaker: a model whose last ``breaker_failures`` (default 5) recorded attempts all
failed is *open*: ``route`` does not offer it (policies never pick it, fallback rankings
exclude it) for ``breaker_cooldown_s`` (default 30 s on the router's clock). It is then
*half-open*: one routed call offers it again as a probe (if that call never reaches it,
another is offered after a further cooldown). A success closes it, a failure re-opens it.
Errors that are not the model's fault (``Feedback.error_kind`` ``"fatal"``,
``"content_policy"``, ``"context_length"``) do not count. A model is never skipped when
every candidate that can serve the call is open: they are all offered. A pinned model is
used as is. ``stats()`` shows each model's ``circuit`` and ``consecutive_failures``.

Spend budgets: with ``budget_usd`` (for the whole router) or ``budget_per_key_usd`` (for
each context key), the recorded cost of the current period (``budget_period_s``, fixed
windows from the router's creation; None: no reset) is compared with the limit before each
call: once it is reached, ``route`` raises ``BudgetExceededError`` (``on_budget="raise"``)
or offers only the cheapest candidate that can serve the call (``on_budget="cheapest"``).
Calls already running may overshoot the limit by their own cost. ``spend()`` shows it.

``save`` keeps the breaker and budget *settings*; the breakers' states and the spend are
not saved (a loaded router starts with closed breakers and a fresh period).

Several processes: with ``store=`` (a :class:`pickllm.state.RedisStore`, or a
:class:`pickllm.state.MemoryStore` shared by routers of one process) the learned policy
state, the statistics, the circuit breakers and the spend are shared by every router of the
store's namespace. Each router routes from its local copy (``route`` never waits for the
store) and syncs after a ``record`` every ``sync_interval_s`` or ``sync_every`` records
(see :mod:`pickllm.state`); ``sync()`` syncs now.

What ``save`` keeps for ``pickllm stats`` (no prompt or answer): per model the counts,
summed reward, cost and tokens and the last ``latency_window`` latencies (the p50/p95 of
``stats()``), and the router's last :data:`HISTORY_LENGTH` learned calls in order (which
model, what reward), from which ``pickllm stats --plot`` draws choices and reward over
time. Files saved before the history existed load with an empty one.

Thread safety: every mutation of the policy, the pending table, the statistics, the
breakers and the spend happens under one lock, so concurrent ``route``/``record`` from
many threads lose no update.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pickllm.beliefs import Belief, Explanation, explain_policy, policy_beliefs
from pickllm.errors import (
    BudgetExceededError,
    ConfigError,
    ConfigTypeError,
    NoCandidateError,
    StateError,
    UnknownDecisionError,
)
from pickllm.objective import Objective, PriceRange
from pickllm.ope import DecisionLog, KeptContext
from pickllm.policies.base import Policy, new_decision_id
from pickllm.policies.cheapest import Cheapest
from pickllm.pricing import estimate_tokens
from pickllm.registry import make_policy
from pickllm.state.store import StateStore
from pickllm.state.sync import Syncer, SyncStatus
from pickllm.types import Candidate, Context, Decision, Feedback, SeedLike

if TYPE_CHECKING:
    from pickllm.learn.base import QueryScorer

__all__ = [
    "HISTORY_LENGTH",
    "CandidateStats",
    "Circuit",
    "Router",
    "Spend",
    "StatsTable",
    "decode_history",
    "policy_config",
    "policy_from_config",
    "read_state",
]

logger = logging.getLogger(__name__)

_FORMAT = "pickllm.router"
_FORMAT_VERSION = 1
HISTORY_LENGTH = 2048
"""How many learned calls (model, reward), most recent last, a router keeps and saves."""

Circuit = Literal["closed", "open", "half_open"]
"""A model's circuit-breaker state."""

_CLOSED_MEMORY = 10_000
"""How many closed decision ids ``feedback`` remembers, to say why it refuses a score."""
_MAX_SPEND_KEYS = 10_000
"""How many context keys the spend is tracked for (least recently charged dropped)."""
_NOT_MODEL_FAULTS = frozenset({"fatal", "content_policy", "context_length"})
"""Error kinds a circuit breaker does not count: the request, not the model, was at fault."""
_CHEAPEST = Cheapest()
_MIN_LOGGED = 1024
"""The fewest routed decisions whose logged context a ``decision_log`` router keeps."""

# Temporary files of saves running in this process (cleaning must not delete them).
_SAVING: set[str] = set()
_SAVING_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class CandidateStats:
    """What the router has seen of one candidate.

    Attributes:
        calls: recorded calls (failed ones included).
        errors: failed calls.
        mean_reward: mean reward of the calls the policy has learned from (NaN if none).
        total_cost_usd: summed cost of the recorded calls.
        mean_cost_usd: mean cost per recorded call (NaN if none).
        latency_p50_s: median latency of the recent calls (NaN if none).
        latency_p95_s: 95th percentile latency of the recent calls (NaN if none).
        input_tokens: summed input tokens.
        output_tokens: summed output tokens.
        circuit: the circuit breaker's state: ``"closed"`` (offered), ``"open"`` (skipped
            until its cooldown ends) or ``"half_open"`` (offered once, as a probe).
        consecutive_failures: failed attempts since the last success.
    """

    calls: int
    errors: int
    mean_reward: float
    total_cost_usd: float
    mean_cost_usd: float
    latency_p50_s: float
    latency_p95_s: float
    input_tokens: int
    output_tokens: int
    circuit: Circuit = "closed"
    consecutive_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The statistics as a plain mapping, JSON-ready: None where there is no value."""
        return {
            f.name: None if isinstance(v, float) and math.isnan(v) else v
            for f in fields(self)
            for v in (getattr(self, f.name),)
        }

    def __repr__(self) -> str:
        # No "nan": a value not measured yet reads None; floats to 4 significant digits.
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
            for k, v in self.as_dict().items()
            if not (k == "consecutive_failures" and v == 0)
        )
        return f"CandidateStats({shown})"


class StatsTable(dict[str, CandidateStats]):
    """``Router.stats()``: per model name its :class:`CandidateStats`, shown as a table.

    A plain ``dict`` otherwise (``stats()["small"].calls``); ``rows()`` gives JSON-ready
    rows with None where a value is not measured yet (no NaN).
    """

    _COLUMNS = (
        ("calls", "calls"),
        ("errors", "errors"),
        ("mean_reward", "reward"),
        ("total_cost_usd", "cost_usd"),
        ("latency_p50_s", "p50_s"),
        ("latency_p95_s", "p95_s"),
        ("circuit", "circuit"),
    )

    def rows(self) -> list[dict[str, Any]]:
        """One mapping per model: ``model`` then every statistic (None: not measured)."""
        return [{"model": name, **stats.as_dict()} for name, stats in self.items()]

    def __repr__(self) -> str:
        if not self:
            return "StatsTable(empty)"
        width = max(5, *(len(n) for n in self))
        head = f"{'model':<{width}} " + " ".join(f"{title:>9}" for _, title in self._COLUMNS)
        lines = [head]
        for row in self.rows():
            cells = []
            for key, _ in self._COLUMNS:
                value = row[key]
                text = (
                    "-" if value is None else f"{value:.4g}" if isinstance(value, float) else value
                )
                cells.append(f"{text!s:>9}")
            lines.append(f"{row['model']:<{width}} " + " ".join(cells))
        return "\n".join(lines)

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class Spend:
    """What the router has spent in the current budget period.

    Attributes:
        spent_usd: recorded cost in the current period (of the key asked for, if any).
        limit_usd: the limit that applies (``budget_usd``, or ``budget_per_key_usd`` for a
            key), or None.
        remaining_usd: ``limit_usd - spent_usd``, at least 0 (None without a limit).
        period_s: the period's length (None: the router's lifetime).
        resets_in_s: seconds until the period ends (None without a period).
        exceeded: the limit is reached (calls are refused or sent to the cheapest model).
    """

    spent_usd: float
    limit_usd: float | None
    remaining_usd: float | None
    period_s: float | None
    resets_in_s: float | None
    exceeded: bool


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    state: Circuit = "closed"
    opened_at: float = 0.0
    # When the half-open probe was last offered (None: not yet).
    probe_at: float | None = None


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    errors: int = 0
    rewarded: int = 0
    reward_sum: float = 0.0
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def snapshot(self, circuit: Circuit = "closed", failures: int = 0) -> CandidateStats:
        lat = sorted(self.latencies)
        return CandidateStats(
            calls=self.calls,
            errors=self.errors,
            mean_reward=self.reward_sum / self.rewarded if self.rewarded else math.nan,
            total_cost_usd=self.cost,
            mean_cost_usd=self.cost / self.calls if self.calls else math.nan,
            latency_p50_s=_quantile(lat, 0.5),
            latency_p95_s=_quantile(lat, 0.95),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            circuit=circuit,
            consecutive_failures=failures,
        )


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class _Pending:
    """A routed decision not yet fully learned from.

    It may hold recorded calls waiting for their score, or a score waiting for its call;
    a decision that is only routed holds neither.
    """

    __slots__ = ("awaiting", "early_score", "since")

    def __init__(self, since: float) -> None:
        self.since = since
        # Recorded calls waiting for their score (an ensemble records one per member).
        self.awaiting: list[tuple[Decision, Feedback]] = []
        # A score that arrived before the call was recorded.
        self.early_score: float | None = None


class Router:
    """Routes each call to a candidate with a policy and learns from the reward.

    Args:
        candidates: the pool (names must be unique).
        policy: a policy object, a short name for ``pickllm.make_policy``, or a trained
            SelectLLM/Zooter query scorer (``pickllm train``; wrapped in
            ``pickllm.learn.LearnedPolicy``, which also takes the saved directory). The default,
            Thompson sampling, had the best online reward of the built-in policies on the
            bundled RouterBench replay (``pickllm bench``) and needs no tuning; PickLLM's
            own learners (``learning_automaton``, ``epsilon_greedy_q``) converge to one
            model, which suits stationary sessions.
        objective: the reward's weights; defaults to ``Objective()``.
        seed: seed for a policy given by name (ignored for a policy object).
        max_pending: how many decisions may wait for a delayed score.
        pending_ttl_s: how long a decision may wait for a delayed score.
        clock: monotonic clock in seconds (injected for tests).
        latency_window: how many recent latencies per candidate ``stats()`` keeps.
        breaker_failures: consecutive failed attempts that open a model's circuit (an int
            >= 1), or None for no circuit breaker.
        breaker_cooldown_s: seconds an open circuit skips its model before a probe.
        budget_usd: USD the router may spend per period, or None for no limit.
        budget_per_key_usd: USD each context key may spend per period, or None.
        budget_period_s: the budget period in seconds (default one day), or None for the
            router's lifetime.
        on_budget: at the limit, ``"raise"`` ``BudgetExceededError`` from ``route``, or
            route to the ``"cheapest"`` candidate that can serve the call.
        store: a shared state store (``pickllm.state.RedisStore``, or a ``MemoryStore``
            shared in this process): the routers of its namespace learn as one. None (the
            default): this router's state is its own.
        decision_log: a JSONL file path or a ``pickllm.ope.DecisionLog``: one line per
            learned decision (features, key, offered and chosen candidates, propensity,
            reward; no query text by default) for off-policy evaluation
            (``pickllm.ope.evaluate``, ``pickllm ope``). The context of at most
            ``max(max_pending, 1024)`` routed decisions is kept until their reward is
            known (oldest forgotten first). Not saved by ``save``. None: no log.

    Raises:
        ConfigError: an argument is not allowed (an empty pool, duplicate names, a
            negative or non-finite number, an unknown policy name, a policy given by name
            without the arguments it needs); ``ConfigTypeError`` for a wrong type.

    Examples:
        >>> from pickllm import Candidate, Feedback
        >>> pool = [Candidate(name="small", input_price=0.1, output_price=0.1),
        ...         Candidate(name="large", input_price=5.0, output_price=15.0)]
        >>> router = Router(pool, policy="epsilon_greedy_q", seed=0)
        >>> decision = router.route("What is the capital of France?")
        >>> decision.candidate.name in {"small", "large"}
        True
        >>> reward = router.record(decision, Feedback(latency_s=0.4, quality=1.0))
        >>> 0.0 <= reward <= 1.0
        True
        >>> router.stats()[decision.candidate.name].calls
        1
    """

    def __init__(  # noqa: PLR0915 - one check per argument
        self,
        candidates: Iterable[Candidate],
        policy: Policy | str | QueryScorer = "thompson",
        objective: Objective | None = None,
        *,
        seed: SeedLike = None,
        max_pending: int = 100_000,
        pending_ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        latency_window: int = 1024,
        breaker_failures: int | None = 5,
        breaker_cooldown_s: float = 30.0,
        budget_usd: float | None = None,
        budget_per_key_usd: float | None = None,
        budget_period_s: float | None = 86_400.0,
        on_budget: Literal["raise", "cheapest"] = "raise",
        store: StateStore | None = None,
        decision_log: DecisionLog | str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(candidates, str | bytes | Candidate) or not isinstance(candidates, Iterable):
            msg = f"candidates must be an iterable of Candidate, got {candidates!r}"
            raise ConfigTypeError(msg)
        pool = tuple(candidates)
        _check_pool(pool)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
        ):
            msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
            raise ConfigTypeError(msg)
        if isinstance(policy, str):
            policy = make_policy(policy, seed=seed)
        elif not isinstance(policy, Policy):
            policy = _learned_policy(policy, seed)
        if objective is None:
            objective = Objective()
        elif not isinstance(objective, Objective):
            msg = f"objective must be an Objective, got {objective!r}"
            raise ConfigTypeError(msg)
        _check_int("max_pending", max_pending, 0)
        _check_seconds("pending_ttl_s", pending_ttl_s, allow_inf=True)
        _check_int("latency_window", latency_window, 1)
        if not callable(clock):
            msg = f"clock must be a callable returning seconds, got {clock!r}"
            raise ConfigTypeError(msg)
        _check_guards(
            breaker_failures,
            breaker_cooldown_s,
            budget_usd,
            budget_per_key_usd,
            budget_period_s,
            on_budget,
        )
        if decision_log is not None and not isinstance(decision_log, DecisionLog):
            decision_log = DecisionLog(decision_log)
        self.policy = policy
        self.objective = objective
        self.decision_log: DecisionLog | None = decision_log
        # Per routed decision (bounded, oldest dropped): the context to log and the pick.
        self._logged: OrderedDict[str, tuple[KeptContext, str]] = OrderedDict()
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.clock = clock
        self.latency_window = latency_window
        self.breaker_failures = breaker_failures
        self.breaker_cooldown_s = breaker_cooldown_s
        self.budget_usd = budget_usd
        self.budget_per_key_usd = budget_per_key_usd
        self.budget_period_s = budget_period_s
        self.on_budget = on_budget
        self._id = uuid.uuid4().hex
        self._lock = threading.Lock()
        # Circuit breakers, ids of closed decisions, spend of the budget period.
        self._breakers: dict[str, _Breaker] = {}
        self._not_closed = 0
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._epoch, self._period, self._spent = clock(), 0, 0.0
        self._spent_by_key: OrderedDict[str, float] = OrderedDict()
        self._pool: tuple[Candidate, ...] = ()
        self._by_name: dict[str, Candidate] = {}
        self._prices = PriceRange()
        self._tallies: dict[str, _Tally] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._expired = 0
        # The last learned calls, (model, reward) in order: what `pickllm stats` plots.
        self._history: deque[tuple[str, float]] = deque(maxlen=HISTORY_LENGTH)
        self._set_pool(pool)
        self.store = store
        self._sync = _syncer(self, store)
        # Entered around record/feedback, exited after the lock: syncs when one is due.
        self._sync_after: AbstractContextManager[None] = self._sync or nullcontext()

    # ------------------------------------------------------------------ pool
    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """The current pool."""
        return self._pool

    def candidate(self, name: str) -> Candidate:
        """The candidate called ``name``.

        Raises:
            ConfigError: no candidate has that name (the message lists the pool).
        """
        try:
            return self._by_name[name]
        except KeyError:
            msg = f"no candidate named {name!r}; the pool has {sorted(self._by_name)}"
            raise ConfigError(msg) from None

    @property
    def names(self) -> frozenset[str]:
        """The names of the pool's candidates."""
        return frozenset(self._by_name)

    @property
    def knows_context_limits(self) -> bool:
        """Whether any candidate declares its context window (then prompts are measured)."""
        return self._knows_context_limits

    def is_pending(self, decision_id: str) -> bool:
        """Whether ``decision_id`` is routed and not yet fully learned from."""
        with self._lock:
            return decision_id in self._pending

    def add_candidate(self, candidate: Candidate) -> None:
        """Add a model to the pool; what was learned about the others is kept."""
        with self._lock:
            self._set_pool((*self._pool, candidate))

    def remove_candidate(self, name: str) -> None:
        """Remove a model from the pool; what was learned about it is kept for its return."""
        with self._lock:
            if name not in self._by_name:
                msg = f"no candidate named {name!r}; the pool has {sorted(self._by_name)}"
                raise ConfigError(msg)
            self._set_pool(tuple(c for c in self._pool if c.name != name))

    def _set_pool(self, pool: tuple[Candidate, ...]) -> None:
        _check_pool(pool)
        self._pool = pool
        self._by_name = {c.name: c for c in pool}
        self._prices = PriceRange.of(pool)
        self._knows_context_limits = any(c.max_context_tokens is not None for c in pool)
        for c in pool:
            if c.name not in self._tallies:
                self._tallies[c.name] = _Tally(latencies=deque(maxlen=self.latency_window))

    # ------------------------------------------------------------------ route
    def route(
        self,
        context: Context | str | None = None,
        *,
        key: str | None = None,
        needs_tool_calling: bool = False,
        needs_structured_output: bool = False,
        min_context_tokens: int | None = None,
        pin: str | None = None,
    ) -> Decision:
        """Choose the candidate for one call.

        Args:
            context: a ``Context``, or the query text, or None. A Context that names
                ``candidates`` limits the call to those (they must be in the pool).
            key: context key (topic, task, session) when ``context`` is not a Context.
            needs_tool_calling: only candidates that can call tools may serve.
            needs_structured_output: only candidates with structured output may serve.
            min_context_tokens: only candidates with a large enough context window may serve.
            pin: the name of a candidate to use as is (the caller chose it): the policy is
                bypassed, and the call is recorded and learned from as an observation of
                that candidate made with probability 1, with no fallback.

        Raises:
            NoCandidateError: no candidate of the pool can serve the call (or the pinned
                one cannot).
            ConfigError: ``pin`` names no candidate of the pool; an argument has the wrong
                type (``ConfigTypeError``) or value.
            BudgetExceededError: a spend limit is reached and ``on_budget="raise"``.
        """
        if pin is not None and not isinstance(pin, str):
            msg = f"route() pin must be a candidate name or None, got {pin!r}"
            raise ConfigTypeError(msg)
        if isinstance(context, Context):
            ctx = context
            pool = self._narrowed(ctx)
        else:
            if context is not None and not isinstance(context, str):
                msg = f"route() context must be a Context, a query string or None, got {context!r}"
                raise ConfigTypeError(msg)
            pool = self._pool
            ctx = Context(
                query=context or "",
                key=key,
                needs_tool_calling=needs_tool_calling,
                needs_structured_output=needs_structured_output,
                min_context_tokens=min_context_tokens,
                candidates=pool,
            )
        needs = ctx.needs_tool_calling or ctx.needs_structured_output or ctx.min_context_tokens
        offered = tuple(c for c in pool if c.can_serve(ctx)) if needs else pool
        if not offered:
            raise NoCandidateError(_no_candidate_message(ctx, pool))
        with self._lock:
            now = self.clock()
            decision = self._decide(ctx, offered, pin, now)
            if self.max_pending:
                pending = self._pending
                pending[decision.decision_id] = _Pending(now)
                self._expire(now)
                if len(pending) > self.max_pending:
                    self._drop_oldest()
        if logger.isEnabledFor(logging.DEBUG):
            # Names, ids and numbers only: never the query (it is user text).
            logger.debug(
                "route %s: %s (probability %.3g, policy %s, plan %s, %d offered)",
                decision.decision_id,
                decision.candidate.name,
                decision.probability,
                decision.policy,
                decision.kind,
                len(offered),
            )
        return decision

    def _decide(
        self, ctx: Context, offered: tuple[Candidate, ...], pin: str | None, now: float
    ) -> Decision:
        """The decision among ``offered``: breakers filter it, budgets may narrow it."""
        if self._not_closed and pin is None:
            offered = self._admit(offered, now)
        if ctx.candidates is not offered:
            ctx = ctx.with_candidates(offered)
        over = self._over_budget(ctx.key, now)
        if over is not None and self.on_budget == "raise":
            raise BudgetExceededError(over)
        if pin is not None:
            decision = self._pinned(ctx, pin)
        elif over is not None:
            decision = self._cheapest(ctx)
        else:
            decision = self.policy.select(ctx, issuer=self._id)
        if self.decision_log is not None:
            # The offered candidates: a pinned or cheapest call was chosen with probability 1.
            self._remember(ctx, decision)
        return decision

    def _remember(self, ctx: Context, decision: Decision) -> None:
        """Keep what ``decision_log`` will log of ``ctx`` once the reward is known."""
        assert self.decision_log is not None  # noqa: S101 - the caller checked
        logged = self._logged
        logged[decision.decision_id] = (self.decision_log.keep(ctx), decision.candidate.name)
        if len(logged) > max(self.max_pending, _MIN_LOGGED):
            logged.popitem(last=False)

    def _narrowed(self, ctx: Context) -> tuple[Candidate, ...]:
        """The pool, or the candidates of the pool a Context limits the call to."""
        pool = self._pool
        if ctx.candidates and ctx.candidates is not pool:
            unknown = [c.name for c in ctx.candidates if c.name not in self._by_name]
            if unknown:
                msg = f"context.candidates {unknown} are not in the pool {sorted(self._by_name)}"
                raise ConfigError(msg)
            return ctx.candidates
        return pool

    def _admit(self, offered: tuple[Candidate, ...], now: float) -> tuple[Candidate, ...]:
        """``offered`` minus the models whose circuit is open (all of them if all are)."""
        kept: list[Candidate] = []
        probes: list[_Breaker] = []
        cooldown = self.breaker_cooldown_s
        for c in offered:
            b = self._breakers.get(c.name)
            if b is None or b.state == "closed":
                kept.append(c)
                continue
            if b.state == "open" and now - b.opened_at >= cooldown:
                b.state = "half_open"
                b.probe_at = None
            if b.state == "half_open" and (b.probe_at is None or now - b.probe_at >= cooldown):
                kept.append(c)
                probes.append(b)
        if not kept:
            # Every model that can serve the call is open: skipping them all would fail it.
            return offered
        for b in probes:
            b.probe_at = now
        return offered if len(kept) == len(offered) else tuple(kept)

    def _only(self, candidate: Candidate, context: Context) -> Decision:
        """A decision for ``candidate`` alone, made by the router (probability 1, no fallback)."""
        return Decision(
            decision_id=new_decision_id(),
            candidate=candidate,
            ranking=(candidate,),
            probability=1.0,
            policy=self.policy.name,
            key=context.key,
            issuer=self._id,
        )

    def _cheapest(self, context: Context) -> Decision:
        return self._only(_CHEAPEST.select(context).candidate, context)

    def _pinned(self, context: Context, name: str) -> Decision:
        candidate = self._by_name.get(name)
        if candidate is None:
            msg = f"pin: no candidate named {name!r}; the pool has {sorted(self._by_name)}"
            raise ConfigError(msg)
        if candidate not in context.candidates:
            msg = f"the pinned model {name!r} cannot serve this call ({_needs(context)})"
            raise NoCandidateError(msg)
        return self._only(candidate, context)

    # ------------------------------------------------------------------ record
    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        """Record one call's outcome; learn from it unless its score is still to come.

        Args:
            decision: the decision the call served.
            feedback: what the call cost and took; ``feedback.candidate`` names the model
                that served when it is not ``decision.candidate`` (a fallback or a plan
                member).
            await_score: keep the decision pending until ``feedback(decision_id, score)``
                brings the quality score (ignored for failed or already scored calls).

        Returns:
            The reward the policy learned from, or None when it waits for a score.

        Raises:
            UnknownDecisionError: ``decision`` was made by another router
                (``reason="foreign"``).
            ConfigError: the feedback names a model this router never had;
                ``ConfigTypeError`` for arguments of the wrong type.
        """
        decision = self._served(decision, feedback, await_score)
        served = decision.candidate.name
        did = decision.decision_id
        with self._sync_after, self._lock:
            now = self.clock()
            tally = self._count(served, feedback)
            self._trip(served, feedback, now)
            self._charge(decision.key, feedback.cost_usd, now)
            pending = self._pending
            entry = pending.get(did)
            if feedback.error is not None:
                return self._failed(decision, feedback, tally)
            if feedback.quality is None:
                if entry is not None and entry.early_score is not None:
                    feedback = feedback.with_quality(entry.early_score)
                elif await_score:
                    if entry is None:
                        # Another member of the same plan was already learned from.
                        entry = pending[did] = _Pending(self.clock())
                    entry.awaiting.append((decision, feedback))
                    # After the append: with no room (max_pending=0), the call dropped is
                    # learned from at once instead of being lost.
                    if len(pending) > self.max_pending:
                        self._drop_oldest()
                    return None
            if entry is not None and not entry.awaiting:
                del pending[did]
            if did not in pending:
                self._close(
                    did, "learned" if entry is None or entry.early_score is None else "scored"
                )
            return self._learn(decision, feedback, tally)

    def feedback(self, decision_id: str, score: float) -> float | None:
        """Join a quality score that arrived later to its decision and learn from it.

        Args:
            decision_id: ``Decision.decision_id`` of a pending decision.
            score: quality in [0, 1].

        Returns:
            The reward learned from, or None when the call itself is not recorded yet (the
            score is kept and used when it is).

        Raises:
            ConfigError: the score is not a finite number in [0, 1].
            UnknownDecisionError: the decision takes no score; its ``reason`` says why
                (``"failed"``, ``"scored"``, ``"learned"``, ``"expired"``, ``"released"``
                or ``"unknown"``; see the module docstring).
        """
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            msg = f"score must be a number in [0, 1], got {score!r}"
            raise ConfigError(msg)
        if not isinstance(decision_id, str):
            msg = f"decision_id must be a string, got {decision_id!r}"
            raise ConfigTypeError(msg)
        logger.debug("score %s: quality %.3g", decision_id, score)
        with self._sync_after, self._lock:
            entry = self._pending.get(decision_id)
            if entry is None:
                raise self._not_pending(decision_id)
            if not entry.awaiting:
                if entry.early_score is not None:
                    msg = (
                        f"decision {decision_id!r} is already scored "
                        f"({entry.early_score!r}); a second score is refused"
                    )
                    raise UnknownDecisionError(msg, reason="scored")
                entry.early_score = float(score)
                return None
            del self._pending[decision_id]
            self._close(decision_id, "scored")
            reward = None
            for decision, fb in entry.awaiting:
                reward = self._learn(
                    decision, fb.with_quality(float(score)), self._tallies[decision.candidate.name]
                )
            return reward

    def _served(self, decision: Decision, feedback: Feedback, await_score: object) -> Decision:
        """``decision`` attributed to the model that served; refuses what it cannot record."""
        if not isinstance(decision, Decision):
            msg = f"decision must be a Decision, got {type(decision).__name__}"
            raise ConfigTypeError(msg)
        if not isinstance(feedback, Feedback):
            msg = f"feedback must be a Feedback, got {type(feedback).__name__}"
            raise ConfigTypeError(msg)
        if not isinstance(await_score, bool):
            msg = f"await_score must be a bool, got {await_score!r}"
            raise ConfigTypeError(msg)
        if decision.issuer != self._id:
            msg = (
                f"decision {decision.decision_id!r} was not made by this router (record it "
                "with the router whose route() made it)"
            )
            raise UnknownDecisionError(msg, reason="foreign")
        name = feedback.candidate
        if name is not None and name != decision.candidate.name:
            decision = decision.retarget(self._member(decision, name))
        if decision.candidate.name not in self._tallies:
            msg = f"feedback for model {decision.candidate.name!r}, which this router never had"
            raise ConfigError(msg)
        return decision

    def _failed(self, decision: Decision, feedback: Feedback, tally: _Tally) -> float:
        # A failed attempt is learned from now (reward 0) and leaves the pending table,
        # unless an early score or another member's answer waits there.
        did = decision.decision_id
        pending = self._pending
        entry = pending.get(did)
        if entry is not None and not entry.awaiting and entry.early_score is None:
            del pending[did]
        if did not in pending:
            self._close(did, "failed")
        return self._learn(decision, feedback, tally)

    def _not_pending(self, decision_id: str) -> UnknownDecisionError:
        reason = self._closed.get(decision_id, "unknown")
        why = {
            "failed": "every attempt of its call failed (learned from with reward 0); a "
            "failed call takes no score",
            "scored": "it is already scored; a second score is refused",
            "learned": "it was recorded without await_score=True and already learned from",
            "expired": "it expired and was learned from without a score (pending decisions "
            f"wait at most {self.pending_ttl_s} s and {self.max_pending} at a time)",
            "released": "it was released without a score",
            "unknown": "this router never issued it, or has forgotten it",
        }[reason]
        msg = f"decision {decision_id!r} is not pending: {why}"
        return UnknownDecisionError(msg, reason=reason)

    def _close(self, decision_id: str, reason: str) -> None:
        closed = self._closed
        closed[decision_id] = reason
        closed.move_to_end(decision_id)
        if len(closed) > _CLOSED_MEMORY:
            closed.popitem(last=False)

    def release(self, decision_id: str) -> float | None:
        """Learn now, without a quality score, from a decision that waits for one.

        For a score that will not come (an evaluator that abstained or failed): the
        recorded call is learned from with the objective's ``missing_quality`` rule at once
        instead of when the entry expires. An unknown or already learned decision is
        ignored.

        Returns:
            The reward learned from, or None if nothing was waiting.
        """
        with self._lock:
            entry = self._pending.pop(decision_id, None)
            if entry is None:
                return None
            self._close(decision_id, "released")
            reward = None
            for decision, fb in entry.awaiting:
                tally = self._tallies.get(decision.candidate.name)
                if tally is not None:
                    reward = self._learn(decision, fb, tally)
            return reward

    def pending(self) -> int:
        """How many decisions are pending (routed and not yet fully learned from)."""
        with self._lock:
            return len(self._pending)

    def expire(self) -> int:
        """Expire pending decisions older than ``pending_ttl_s`` now; returns how many."""
        with self._lock:
            before = self._expired
            self._expire(self.clock())
            return self._expired - before

    def _count(self, name: str, feedback: Feedback) -> _Tally:
        # Known (record checked it): a candidate removed since routing keeps its tally.
        tally = self._tallies[name]
        tally.calls += 1
        tally.cost += feedback.cost_usd
        tally.input_tokens += feedback.input_tokens
        tally.output_tokens += feedback.output_tokens
        tally.latencies.append(feedback.latency_s)
        if feedback.error is not None:
            tally.errors += 1
        return tally

    def _trip(self, name: str, feedback: Feedback, now: float) -> None:
        """Update ``name``'s circuit breaker with one attempt's outcome."""
        if self.breaker_failures is None:
            return
        b = self._breakers.get(name)
        if b is None:
            b = self._breakers[name] = _Breaker()
        if feedback.error is None:
            if b.state != "closed":
                self._not_closed -= 1
                logger.info("model %r answered: its circuit is closed again", name)
            b.failures = 0
            b.state = "closed"
            return
        if feedback.error_kind in _NOT_MODEL_FAULTS:
            return
        b.failures += 1
        if b.state == "closed" and b.failures < self.breaker_failures:
            return
        if b.state == "closed":
            self._not_closed += 1
            logger.warning(
                "model %r failed %d times in a row (%s): skipped for %s s",
                name,
                b.failures,
                feedback.error,
                self.breaker_cooldown_s,
            )
        # Opened, or re-opened by a failed probe (or a late failure): a full cooldown.
        b.state = "open"
        b.opened_at = now
        b.probe_at = None

    def admits(self, name: str) -> bool:
        """Whether ``name``'s circuit lets a call through now (closed, or due a probe).

        The executor asks before retrying a model: one whose circuit a failure just
        opened is not retried, the call falls back at once.
        """
        with self._lock:
            return self._circuit(name, self.clock())[0] != "open"

    def _circuit(self, name: str, now: float) -> tuple[Circuit, int]:
        b = self._breakers.get(name)
        if b is None:
            return "closed", 0
        if b.state == "open" and now - b.opened_at >= self.breaker_cooldown_s:
            return "half_open", b.failures
        return b.state, b.failures

    def _roll(self, now: float) -> None:
        """Start a new budget period if the current one is over."""
        period = self.budget_period_s
        if period is None:
            return
        index = math.floor((now - self._epoch) / period)
        if index != self._period:
            self._period = index
            self._spent = 0.0
            self._spent_by_key.clear()

    def _charge(self, key: str | None, cost: float, now: float) -> None:
        self._roll(now)
        self._spent += cost
        if key is not None:
            by_key = self._spent_by_key
            by_key[key] = by_key.get(key, 0.0) + cost
            by_key.move_to_end(key)
            if len(by_key) > _MAX_SPEND_KEYS:
                by_key.popitem(last=False)

    def _over_budget(self, key: str | None, now: float) -> str | None:
        """Why a call may not be routed normally (a limit is reached), or None."""
        if self.budget_usd is None and self.budget_per_key_usd is None:
            return None
        self._roll(now)
        period = "" if self.budget_period_s is None else f" per {self.budget_period_s:g} s"
        if self.budget_usd is not None and self._spent >= self.budget_usd:
            return (
                f"the router's budget of {self.budget_usd!r} USD{period} is spent "
                f"({self._spent!r} USD)"
            )
        limit = self.budget_per_key_usd
        if limit is not None and key is not None:
            spent = self._spent_by_key.get(key, 0.0)
            if spent >= limit:
                return (
                    f"the budget of {limit!r} USD{period} of key {key!r} is spent ({spent!r} USD)"
                )
        return None

    def spend(self, key: str | None = None) -> Spend:
        """The spend of the current budget period: the router's, or ``key``'s.

        Examples:
            >>> from pickllm import Candidate, Feedback
            >>> router = Router([Candidate(name="m")], policy="cheapest", budget_usd=1.0)
            >>> _ = router.record(router.route("q"), Feedback(cost_usd=0.25))
            >>> s = router.spend()
            >>> s.spent_usd, s.remaining_usd, s.exceeded
            (0.25, 0.75, False)
        """
        if key is not None and not isinstance(key, str):
            msg = f"spend() key must be a string or None, got {key!r}"
            raise ConfigTypeError(msg)
        with self._lock:
            now = self.clock()
            self._roll(now)
            if key is None:
                spent, limit = self._spent, self.budget_usd
            else:
                spent, limit = self._spent_by_key.get(key, 0.0), self.budget_per_key_usd
            period = self.budget_period_s
            resets = None
            if period is not None:
                resets = self._epoch + (self._period + 1) * period - now
        return Spend(
            spent_usd=spent,
            limit_usd=limit,
            remaining_usd=None if limit is None else max(limit - spent, 0.0),
            period_s=period,
            resets_in_s=resets,
            exceeded=limit is not None and spent >= limit,
        )

    def _learn(self, decision: Decision, feedback: Feedback, tally: _Tally) -> float:
        reward = self.objective.reward(feedback, self._prices)
        self.policy.update(decision, reward)
        tally.rewarded += 1
        tally.reward_sum += reward
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "update %s: %s reward %.3g (quality %s, cost %.3g USD, latency %.3g s%s)",
                decision.decision_id,
                decision.candidate.name,
                reward,
                "none" if feedback.quality is None else f"{feedback.quality:.3g}",
                feedback.cost_usd,
                feedback.latency_s,
                "" if feedback.error is None else f", failed: {feedback.error}",
            )
        if self._sync is not None:
            self._sync.learned(decision, reward)
        self._history.append((decision.candidate.name, reward))
        if self.decision_log is not None:
            logged = self._logged.get(decision.decision_id)
            if logged is not None and logged[1] == decision.candidate.name:
                del self._logged[decision.decision_id]
                self.decision_log.write(logged[0], decision, reward)
        return reward

    def sync(self) -> SyncStatus | None:
        """Sync with the store now (send what was learned, adopt the shared totals).

        Never raises for an unreachable store (a ``StoreWarning`` says it). Returns how
        sharing is going, or None for a router without a store.
        """
        return None if self._sync is None else self._sync.sync()

    def _member(self, decision: Decision, name: str) -> Candidate:
        for c in (*decision.ranking, *decision.members):
            if c.name == name:
                return c
        if name in self._by_name:
            return self._by_name[name]
        msg = (
            f"feedback.candidate {name!r} is neither in the decision's ranking nor in the pool "
            f"({[c.name for c in decision.ranking]})"
        )
        raise ConfigError(msg)

    def _expire(self, now: float) -> None:
        deadline = now - self.pending_ttl_s
        pending = self._pending
        while pending:
            entry = next(iter(pending.values()))
            if entry.since > deadline:
                return
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        did, entry = self._pending.popitem(last=False)
        self._close(did, "expired")
        self._expired += 1
        # A recorded call whose score never came is learned from without it.
        for decision, fb in entry.awaiting:
            tally = self._tallies.get(decision.candidate.name)
            if tally is not None:
                self._learn(decision, fb, tally)

    def aggregate(self, answers: Sequence[str], decision: Decision | None = None) -> int:
        """Which of a multi-model plan's answers is the answer (an index into ``answers``).

        Policies that run several models (SelectLLM) define ``aggregate``; with the
        ``decision`` the answers come from, a policy that weighs its members
        (``member_weights(decision)``, SelectLLM's WeightedMaxConf) votes with those
        weights. Otherwise the first answer, the plan's best-ranked member, wins.
        """
        if not answers:
            msg = "aggregate() needs at least one answer, got none"
            raise ConfigError(msg)
        combine = getattr(self.policy, "aggregate", None)
        if not callable(combine):
            return 0
        weigh = getattr(self.policy, "member_weights", None)
        if decision is not None and callable(weigh):
            weights = list(weigh(decision))
            if len(weights) == len(answers):
                return int(combine(answers, weights))
        return int(combine(answers))

    # ------------------------------------------------------------------ stats
    def stats(self) -> StatsTable:
        """Per candidate of the pool: calls, errors, mean reward, cost, latency, circuit.

        A mapping name -> :class:`CandidateStats` that prints as a table (``rows()``:
        JSON-ready rows, None where nothing is measured yet).
        """
        with self._lock:
            now = self.clock()
            return StatsTable(
                (c.name, self._tallies[c.name].snapshot(*self._circuit(c.name, now)))
                for c in self._pool
            )

    # ------------------------------------------------------------------ insight
    def __repr__(self) -> str:
        names = [c.name for c in self._pool]
        return f"Router(candidates={names}, policy={self.policy!r}, objective={self.objective!r})"

    def beliefs(self) -> dict[str, Belief]:
        """Each model's current estimate under the policy, read from its state.

        Per model of the pool: the policy's estimate of its mean reward, how uncertain it
        is, how many rewards it rests on (and, for the learning automaton, its choice
        probability); see :mod:`pickllm.beliefs` for what the numbers are per policy.
        Nothing is learned or drawn.

        Examples:
            >>> from pickllm import Candidate, Feedback
            >>> router = Router([Candidate(name="a"), Candidate(name="b")], seed=0)
            >>> _ = router.record(router.route("q"), Feedback(quality=1.0))
            >>> router.beliefs()["a"]
            Belief(a: mean 0.5 ± 0.289, 0 calls, Beta(1, 1) posterior)
            >>> router.beliefs()["b"]
            Belief(b: mean 0.667 ± 0.236, 1 call, Beta(2, 1) posterior)
        """
        with self._lock:
            names = [c.name for c in self._pool]
            observed = {
                n: (t.rewarded, t.reward_sum / t.rewarded if t.rewarded else None)
                for n in names
                for t in (self._tallies[n],)
            }
            return policy_beliefs(self.policy, names, observed)

    def explain(
        self,
        query: str = "",
        *,
        key: str | None = None,
        needs_tool_calling: bool = False,
        needs_structured_output: bool = False,
        draws: int = 200,
    ) -> Explanation:
        """Why ``query`` would go where it goes under the current policy, without routing it.

        A copy of the policy picks for the query (the pick, its probability and the
        policy's scores per model) and ``draws`` times more (how often each model comes
        out); models the call could not use (a missing capability, an open circuit) are
        listed with the reason. The live policy neither learns nor draws, nothing is
        recorded, and no decision is issued. ``str()`` of the result is a small table.
        Each draw is one ``select`` of the copy: with a trained query scorer (which runs
        its model to pick) pass a small ``draws``.

        Raises:
            ConfigError: ``draws`` is not an int >= 0.

        Examples:
            >>> from pickllm import Candidate
            >>> router = Router([Candidate(name="small", input_price=0.1, output_price=0.4),
            ...                  Candidate(name="large", input_price=3.0, output_price=15.0)],
            ...                 policy="cheapest")
            >>> why = router.explain("What is 2 + 2?")
            >>> why.chosen, why.probability, why.choice_rates["small"]
            ('small', 1.0, 1.0)
        """
        _check_int("draws", draws, 0)
        context = Context(
            query=query,
            key=key,
            needs_tool_calling=needs_tool_calling,
            needs_structured_output=needs_structured_output,
            input_tokens=estimate_tokens(query),
            candidates=self._pool,
        )
        excluded: dict[str, str] = {}
        for c in self._pool:
            if not c.can_serve(context):
                excluded[c.name] = _needs(context).replace("it needs", "cannot serve: needs")
        beliefs = self.beliefs()
        with self._lock:
            now = self.clock()
            servable = [c for c in self._pool if c.name not in excluded]
            open_ = {c.name for c in servable if self._circuit(c.name, now)[0] == "open"}
            if len(open_) < len(servable):  # all open: all are offered (see route)
                excluded.update(dict.fromkeys(open_, "circuit open"))
            over = self._over_budget(key, now)
            scratch = copy.deepcopy(self.policy)
        offered = tuple(c for c in self._pool if c.name not in excluded)
        if not offered:
            raise NoCandidateError(_no_candidate_message(context, self._pool))
        note = "" if over is None else f"{over}: calls go to the cheapest model or fail"
        return explain_policy(
            scratch,
            context.with_candidates(offered),
            excluded=excluded,
            beliefs=beliefs,
            draws=draws,
            note=note,
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The router's configuration and learned state, JSON-ready."""
        with self._lock:
            return {
                "format": _FORMAT,
                "version": _FORMAT_VERSION,
                "candidates": [asdict(c) for c in self._pool],
                "objective": self.objective.as_dict(),
                "policy": policy_config(self.policy),
                "policy_state": self.policy.state_dict(),
                "settings": {
                    "max_pending": self.max_pending,
                    "pending_ttl_s": self.pending_ttl_s,
                    "latency_window": self.latency_window,
                    "breaker_failures": self.breaker_failures,
                    "breaker_cooldown_s": self.breaker_cooldown_s,
                    "budget_usd": self.budget_usd,
                    "budget_per_key_usd": self.budget_per_key_usd,
                    "budget_period_s": self.budget_period_s,
                    "on_budget": self.on_budget,
                },
                "stats": {
                    name: {
                        "calls": t.calls,
                        "errors": t.errors,
                        "rewarded": t.rewarded,
                        "reward_sum": t.reward_sum,
                        "cost": t.cost,
                        "input_tokens": t.input_tokens,
                        "output_tokens": t.output_tokens,
                        "latencies": list(t.latencies),
                    }
                    for name, t in self._tallies.items()
                },
                "history": _encode_history(self._history),
            }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON, atomically.

        The JSON goes to a temporary file in the same folder, is flushed to disk, then
        renamed over ``path``: a crash at any point leaves the previous file intact. The
        file carries a SHA-256 checksum of its content, so ``load`` detects corruption and
        hand edits. Temporary files left by interrupted saves to the same path
        (``.{name}.*.tmp``) are deleted, except those of saves running in this process
        (two processes must not save to the same path at once).

        No state can break it: a non-finite number (which validated inputs cannot produce,
        but a policy's own state might) is written as ``{"__float__": "nan"}`` and read back.
        """
        body = _encode_json(self.state_dict())
        text = json.dumps(body, sort_keys=True, allow_nan=False)
        document = {"checksum": _checksum(text), "router": body}
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with _SAVING_LOCK:
            _SAVING.add(tmp)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, sort_keys=True, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            with _SAVING_LOCK:
                _SAVING.discard(tmp)
        _clean_stray_tmp(target)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        verify: bool = True,
        decision_log: DecisionLog | str | os.PathLike[str] | None = None,
    ) -> Router:
        """Rebuild a router saved with ``save``.

        Args:
            path: the file ``save`` wrote.
            clock: the new router's clock.
            verify: check the checksum (turn off only to load a file you edited on purpose).
            decision_log: the new router's decision log (see ``Router``; not saved).

        Raises:
            StateError: the file is missing, not JSON, corrupted, edited, or not a router.
            ConfigError: ``decision_log`` cannot be appended to.
        """
        log = (
            decision_log
            if decision_log is None or isinstance(decision_log, DecisionLog)
            else DecisionLog(decision_log)
        )
        body = read_state(path, verify=verify)
        try:
            router = cls._from_state(body, clock=clock)
        except StateError as exc:
            msg = f"router state file {str(path)!r}: {exc}"
            raise StateError(msg) from exc
        router.decision_log = log
        return router

    @classmethod
    def _from_state(cls, body: Any, *, clock: Callable[[], float]) -> Router:
        if not isinstance(body, dict) or body.get("format") != _FORMAT:
            msg = f"not a {_FORMAT!r} state"
            raise StateError(msg)
        if body.get("version") != _FORMAT_VERSION:
            got = body.get("version")
            msg = f"state version {got!r} is not supported (expected {_FORMAT_VERSION})"
            raise StateError(msg)
        try:
            candidates = [Candidate(**c) for c in body["candidates"]]
            objective = Objective(**body["objective"])
            policy = policy_from_config(body["policy"])
            settings = body["settings"]
            router = cls(
                candidates,
                policy,
                objective,
                max_pending=settings["max_pending"],
                pending_ttl_s=settings["pending_ttl_s"],
                latency_window=settings["latency_window"],
                clock=clock,
                # Files saved before breakers and budgets existed get the defaults.
                breaker_failures=settings.get("breaker_failures", 5),
                breaker_cooldown_s=settings.get("breaker_cooldown_s", 30.0),
                budget_usd=settings.get("budget_usd"),
                budget_per_key_usd=settings.get("budget_per_key_usd"),
                budget_period_s=settings.get("budget_period_s", 86_400.0),
                on_budget=settings.get("on_budget", "raise"),
            )
            policy.load_state_dict(body["policy_state"])
            for name, s in body["stats"].items():
                tally = _Tally(
                    calls=int(s["calls"]),
                    errors=int(s["errors"]),
                    rewarded=int(s["rewarded"]),
                    reward_sum=float(s["reward_sum"]),
                    cost=float(s["cost"]),
                    input_tokens=int(s["input_tokens"]),
                    output_tokens=int(s["output_tokens"]),
                    latencies=deque(
                        (float(x) for x in s["latencies"]), maxlen=router.latency_window
                    ),
                )
                if min(tally.calls, tally.errors, tally.rewarded) < 0 or tally.errors > tally.calls:
                    msg = f"statistics of {name!r} are inconsistent: {s!r}"
                    raise StateError(msg)
                router._tallies[name] = tally
            # Files saved before the history existed have none.
            router._history.extend(decode_history(body.get("history")))
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"malformed router state ({type(exc).__name__}: {exc})"
            raise StateError(msg) from exc
        return router


# ---------------------------------------------------------------------- helpers
def _syncer(router: Router, store: object) -> Syncer | None:
    """The router's link to its shared store (None: no store), synced once already."""
    if store is None:
        return None
    if not isinstance(store, StateStore):
        msg = f"store must be a pickllm.state StateStore or None, got {store!r}"
        raise ConfigTypeError(msg)
    syncer = Syncer(router, store, new_breaker=_Breaker, max_spend_keys=_MAX_SPEND_KEYS)
    syncer.start()
    return syncer


def read_state(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """The router state that ``Router.save`` wrote to ``path``, as a plain dict.

    ``Router.load`` rebuilds a router from it; ``pickllm stats`` only reads it.

    Args:
        path: the file ``save`` wrote.
        verify: check the checksum.

    Raises:
        StateError: the file is missing, not JSON, corrupted, edited (with ``verify``) or
            not a router state; the message names the file.
    """
    p = Path(path)
    try:
        document = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"router state file {str(p)!r} does not exist"
        raise StateError(msg) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"router state file {str(p)!r} is not valid JSON: {exc}"
        raise StateError(msg) from exc
    if not isinstance(document, dict) or not isinstance(document.get("router"), dict):
        msg = f"router state file {str(p)!r} has no 'router' object; is it a PickLLM state?"
        raise StateError(msg)
    body = document["router"]
    if verify:
        try:
            text: str | None = json.dumps(body, sort_keys=True, allow_nan=False)
        except ValueError:  # a NaN or infinity literal: ``save`` never writes one
            text = None
        if text is None or document.get("checksum") != _checksum(text):
            msg = (
                f"router state file {str(p)!r} does not match its checksum: it was "
                "corrupted or edited (pass verify=False to load an edited file)"
            )
            raise StateError(msg)
    decoded: dict[str, Any] = _decode_json(body)
    return decoded


def _encode_history(history: Iterable[tuple[str, float]]) -> dict[str, list[Any]]:
    # Each model's name once, then an index per call: a few bytes per call in the file.
    names: dict[str, int] = {}
    choice = [names.setdefault(name, len(names)) for name, _ in history]
    return {"models": list(names), "choice": choice, "reward": [r for _, r in history]}


def decode_history(encoded: Any) -> list[tuple[str, float]]:
    """The learned calls ``(model, reward)`` of a saved state's ``"history"``, oldest first.

    Args:
        encoded: the ``"history"`` object of a state file, or None for a file saved
            before the history existed (an empty history).

    Raises:
        StateError: the object is malformed.

    Examples:
        >>> decode_history({"models": ["a", "b"], "choice": [0, 1, 0], "reward": [1, 0, 0.5]})
        [('a', 1.0), ('b', 0.0), ('a', 0.5)]
        >>> decode_history(None)
        []
    """
    if encoded is None:
        return []
    try:
        models = [str(m) for m in encoded["models"]]
        choice, reward = encoded["choice"], encoded["reward"]
        if len(choice) != len(reward):
            msg = f"{len(choice)} choices for {len(reward)} rewards"
            raise ValueError(msg)
        history = [(models[int(i)], float(r)) for i, r in zip(choice, reward, strict=True)]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        msg = f"malformed history ({type(exc).__name__}: {exc})"
        raise StateError(msg) from exc
    if any(not 0.0 <= r <= 1.0 for _, r in history):
        msg = "malformed history: a reward outside [0, 1]"
        raise StateError(msg)
    return history


def _learned_policy(scorer: object, seed: SeedLike) -> Policy:
    """Wrap a trained SelectLLM/Zooter query scorer in its policy."""
    from pickllm.learn.base import QueryScorer
    from pickllm.learn.policy import LearnedPolicy

    if not isinstance(scorer, QueryScorer):
        msg = f"policy must be a Policy, a policy name or a trained QueryScorer, got {scorer!r}"
        raise ConfigTypeError(msg)
    return LearnedPolicy(scorer=scorer, seed=seed)


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_guards(  # noqa: PLR0917 - the Router's own arguments, in order
    breaker_failures: object,
    breaker_cooldown_s: object,
    budget_usd: object,
    budget_per_key_usd: object,
    budget_period_s: object,
    on_budget: object,
) -> None:
    """Check the circuit-breaker and budget arguments of ``Router``."""
    if breaker_failures is not None:
        _check_int("breaker_failures", breaker_failures, 1)
    _check_seconds("breaker_cooldown_s", breaker_cooldown_s)
    for name, limit in (("budget_usd", budget_usd), ("budget_per_key_usd", budget_per_key_usd)):
        if limit is not None:
            _check_usd(name, limit)
    if budget_period_s is not None:
        _check_seconds("budget_period_s", budget_period_s)
    if on_budget not in ("raise", "cheapest"):
        msg = f"on_budget must be 'raise' or 'cheapest', got {on_budget!r}"
        raise ConfigError(msg)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int >= {low}, got {value!r}"
        raise ConfigTypeError(msg)
    if value < low:
        msg = f"{name} must be an int >= {low}, got {value!r}"
        raise ConfigError(msg)


def _check_seconds(name: str, value: object, *, allow_inf: bool = False) -> None:
    msg = f"{name} must be a positive number of seconds, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(msg)
    if not (value > 0 and (allow_inf or math.isfinite(value))):
        raise ConfigError(msg)


def _check_usd(name: str, value: object) -> None:
    msg = f"{name} must be a finite number of USD >= 0 or None, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(msg)
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(msg)


def _encode_json(value: Any) -> Any:
    """``value`` with every non-finite float (and numpy value) made JSON-safe."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if isinstance(value, dict):
        return {k: _encode_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _encode_json(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    return value


def _decode_json(value: Any) -> Any:
    """The inverse of ``_encode_json`` (numpy values come back as lists and numbers)."""
    if isinstance(value, dict):
        if set(value) == {"__float__"} and value["__float__"] in ("nan", "inf", "-inf"):
            return float(value["__float__"])
        return {k: _decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _clean_stray_tmp(target: Path) -> None:
    """Delete the temporary files interrupted saves to ``target`` left behind."""
    with _SAVING_LOCK:
        running = set(_SAVING)
    for stray in target.parent.glob(f".{target.name}.*.tmp"):
        if str(stray) not in running:
            try:
                stray.unlink()
            except OSError as exc:  # already gone, or not ours to delete: kept, said once
                logger.debug("could not delete %s: %s", stray, exc)


def _check_pool(pool: tuple[Candidate, ...]) -> None:
    if not pool:
        msg = "candidates must hold at least one Candidate, got none"
        raise ConfigError(msg)
    seen: set[str] = set()
    for c in pool:
        if not isinstance(c, Candidate):
            msg = f"candidates must be Candidate objects, got {c!r}"
            raise ConfigTypeError(msg)
        if c.name in seen:
            msg = f"candidate names must be unique, {c.name!r} appears twice"
            raise ConfigError(msg)
        seen.add(c.name)


def _needs(ctx: Context) -> str:
    needs = []
    if ctx.needs_tool_calling:
        needs.append("tool calling")
    if ctx.needs_structured_output:
        needs.append("structured output")
    if ctx.min_context_tokens is not None:
        needs.append(f"a context window of {ctx.min_context_tokens} tokens")
    return "it needs " + " and ".join(needs) if needs else "it is not offered"


def _no_candidate_message(ctx: Context, pool: Sequence[Candidate]) -> str:
    needs = []
    if ctx.needs_tool_calling:
        needs.append("tool calling")
    if ctx.needs_structured_output:
        needs.append("structured output")
    if ctx.min_context_tokens is not None:
        needs.append(f"a context window of {ctx.min_context_tokens} tokens")
    return (
        f"no candidate can serve this call, which needs {' and '.join(needs)}; "
        f"the pool is {[c.name for c in pool]}"
    )


def policy_config(policy: Policy) -> dict[str, Any]:
    """The policy's name and hyperparameters, JSON-ready (nested policies included)."""
    return {"name": policy.name, "params": _encode_params(policy.get_params())}


def _encode_params(value: Any) -> Any:
    if isinstance(value, Policy):
        return {"__policy__": policy_config(value)}
    if isinstance(value, Mapping):
        return {str(k): _encode_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_params(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    msg = f"policy parameter {value!r} cannot be saved as JSON"
    raise StateError(msg)


def _decode_params(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__policy__"}:
            return policy_from_config(value["__policy__"])
        return {k: _decode_params(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_params(v) for v in value]
    return value


def policy_from_config(config: Mapping[str, Any]) -> Policy:
    """Rebuild a fresh policy from ``policy_config`` output.

    Raises:
        StateError: the configuration names an unknown policy or bad parameters.
    """
    try:
        return make_policy(str(config["name"]), **_decode_params(dict(config["params"])))
    except (ConfigError, KeyError, TypeError) as exc:
        msg = f"cannot rebuild the policy from {dict(config)!r}: {exc}"
        raise StateError(msg) from exc
