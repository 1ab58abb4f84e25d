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

Thread safety: every mutation of the policy, the pending table and the statistics happens
under one lock, so concurrent ``route``/``record`` from many threads lose no update.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pickllm.errors import ConfigError, NoCandidateError, StateError, UnknownDecisionError
from pickllm.objective import Objective, PriceRange
from pickllm.policies.base import Policy, new_decision_id
from pickllm.registry import make_policy
from pickllm.types import Candidate, Context, Decision, Feedback, SeedLike

if TYPE_CHECKING:
    from pickllm.learn.base import QueryScorer

__all__ = ["CandidateStats", "Router", "policy_config", "policy_from_config"]

_FORMAT = "pickllm.router"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
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

    def snapshot(self) -> CandidateStats:
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

    def __init__(
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
    ) -> None:
        pool = tuple(candidates)
        _check_pool(pool)
        if isinstance(policy, str):
            policy = make_policy(policy, seed=seed)
        elif not isinstance(policy, Policy):
            policy = _learned_policy(policy, seed)
        if objective is None:
            objective = Objective()
        elif not isinstance(objective, Objective):
            msg = f"objective must be an Objective, got {objective!r}"
            raise TypeError(msg)
        if not isinstance(max_pending, int) or max_pending < 0:
            msg = f"max_pending must be an int >= 0, got {max_pending!r}"
            raise ConfigError(msg)
        if not (isinstance(pending_ttl_s, int | float) and pending_ttl_s > 0):
            msg = f"pending_ttl_s must be a positive number of seconds, got {pending_ttl_s!r}"
            raise ConfigError(msg)
        if not isinstance(latency_window, int) or latency_window < 1:
            msg = f"latency_window must be an int >= 1, got {latency_window!r}"
            raise ConfigError(msg)
        self.policy = policy
        self.objective = objective
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.clock = clock
        self.latency_window = latency_window
        self._lock = threading.Lock()
        self._pool: tuple[Candidate, ...] = ()
        self._by_name: dict[str, Candidate] = {}
        self._prices = PriceRange()
        self._tallies: dict[str, _Tally] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._expired = 0
        self._set_pool(pool)

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
            ConfigError: ``pin`` names no candidate of the pool.
        """
        pool = self._pool
        if isinstance(context, Context):
            ctx = context
            if ctx.candidates and ctx.candidates is not pool:
                # The caller narrows this call to some candidates of the pool.
                unknown = [c.name for c in ctx.candidates if c.name not in self._by_name]
                if unknown:
                    msg = (
                        f"context.candidates {unknown} are not in the pool {sorted(self._by_name)}"
                    )
                    raise ConfigError(msg)
                pool = ctx.candidates
        else:
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
        if ctx.candidates is not offered:
            ctx = ctx.with_candidates(offered)
        with self._lock:
            decision = self.policy.select(ctx) if pin is None else self._pinned(ctx, pin)
            if self.max_pending:
                now = self.clock()
                pending = self._pending
                pending[decision.decision_id] = _Pending(now)
                self._expire(now)
                if len(pending) > self.max_pending:
                    self._drop_oldest()
        return decision

    def _pinned(self, context: Context, name: str) -> Decision:
        candidate = self.candidate(name)
        if candidate not in context.candidates:
            msg = f"the pinned model {name!r} cannot serve this call ({_needs(context)})"
            raise NoCandidateError(msg)
        return Decision(
            decision_id=new_decision_id(),
            candidate=candidate,
            ranking=(candidate,),
            probability=1.0,
            policy=self.policy.name,
            key=context.key,
        )

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
        """
        if not isinstance(feedback, Feedback):
            msg = f"feedback must be a Feedback, got {type(feedback).__name__}"
            raise TypeError(msg)
        name = feedback.candidate
        if name is not None and name != decision.candidate.name:
            decision = decision.retarget(self._member(decision, name))
        did = decision.decision_id
        with self._lock:
            tally = self._count(decision.candidate.name, feedback)
            pending = self._pending
            entry = pending.get(did)
            if feedback.quality is None and feedback.error is None:
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
            if entry is not None and feedback.error is None and not entry.awaiting:
                del pending[did]
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
            ConfigError: the score is not in [0, 1].
            UnknownDecisionError: the decision is not pending (unknown, already scored, or
                expired).
        """
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            msg = f"score must be a number in [0, 1], got {score!r}"
            raise ConfigError(msg)
        with self._lock:
            entry = self._pending.get(decision_id)
            if entry is None:
                msg = (
                    f"decision {decision_id!r} is not pending: unknown, already scored, or "
                    f"expired (pending decisions wait at most {self.pending_ttl_s} s and "
                    f"{self.max_pending} at a time)"
                )
                raise UnknownDecisionError(msg)
            if not entry.awaiting:
                entry.early_score = float(score)
                return None
            del self._pending[decision_id]
            reward = None
            for decision, fb in entry.awaiting:
                reward = self._learn(
                    decision, fb.with_quality(float(score)), self._tallies[decision.candidate.name]
                )
            return reward

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
        tally = self._tallies.get(name)
        if tally is None:
            # A candidate removed since routing still gets its call counted.
            tally = self._tallies[name] = _Tally(latencies=deque(maxlen=self.latency_window))
        tally.calls += 1
        tally.cost += feedback.cost_usd
        tally.input_tokens += feedback.input_tokens
        tally.output_tokens += feedback.output_tokens
        tally.latencies.append(feedback.latency_s)
        if feedback.error is not None:
            tally.errors += 1
        return tally

    def _learn(self, decision: Decision, feedback: Feedback, tally: _Tally) -> float:
        reward = self.objective.reward(feedback, self._prices)
        self.policy.update(decision, reward)
        tally.rewarded += 1
        tally.reward_sum += reward
        return reward

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
        _, entry = self._pending.popitem(last=False)
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
    def stats(self) -> dict[str, CandidateStats]:
        """Per candidate of the pool: calls, errors, mean reward, cost and latency."""
        with self._lock:
            return {c.name: self._tallies[c.name].snapshot() for c in self._pool}

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
            }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON, atomically.

        The JSON goes to a temporary file in the same folder, is flushed to disk, then
        renamed over ``path``: a crash at any point leaves the previous file intact. The
        file carries a SHA-256 checksum of its content, so ``load`` detects corruption and
        hand edits.
        """
        body = self.state_dict()
        text = json.dumps(body, sort_keys=True, allow_nan=False)
        document = {"checksum": _checksum(text), "router": body}
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, sort_keys=True, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        verify: bool = True,
    ) -> Router:
        """Rebuild a router saved with ``save``.

        Args:
            path: the file ``save`` wrote.
            clock: the new router's clock.
            verify: check the checksum (turn off only to load a file you edited on purpose).

        Raises:
            StateError: the file is missing, not JSON, corrupted, edited, or not a router.
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
        if not isinstance(document, dict) or "router" not in document:
            msg = f"router state file {str(p)!r} has no 'router' object; is it a PickLLM state?"
            raise StateError(msg)
        body = document["router"]
        if verify:
            text = json.dumps(body, sort_keys=True, allow_nan=False)
            if document.get("checksum") != _checksum(text):
                msg = (
                    f"router state file {str(p)!r} does not match its checksum: it was "
                    "corrupted or edited (pass verify=False to load an edited file)"
                )
                raise StateError(msg)
        try:
            return cls._from_state(body, clock=clock)
        except StateError as exc:
            msg = f"router state file {str(p)!r}: {exc}"
            raise StateError(msg) from exc

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
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"malformed router state ({type(exc).__name__}: {exc})"
            raise StateError(msg) from exc
        return router


# ---------------------------------------------------------------------- helpers
def _learned_policy(scorer: object, seed: SeedLike) -> Policy:
    """Wrap a trained SelectLLM/Zooter query scorer in its policy."""
    from pickllm.learn.base import QueryScorer
    from pickllm.learn.policy import LearnedPolicy

    if not isinstance(scorer, QueryScorer):
        msg = f"policy must be a Policy, a policy name or a trained QueryScorer, got {scorer!r}"
        raise TypeError(msg)
    return LearnedPolicy(scorer=scorer, seed=seed)


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_pool(pool: tuple[Candidate, ...]) -> None:
    seen: set[str] = set()
    for c in pool:
        if not isinstance(c, Candidate):
            msg = f"candidates must be Candidate objects, got {c!r}"
            raise TypeError(msg)
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
    if not pool:
        return "the router's pool is empty: add a candidate first"
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
