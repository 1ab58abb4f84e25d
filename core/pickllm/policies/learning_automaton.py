"""PickLLM's learning automaton: linear reward-inaction (L_R-I) over the candidates."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from pickllm.errors import StateError
from pickllm.policies.base import (
    Choice,
    Policy,
    check_number,
    state_field,
    state_float,
    state_names,
)
from pickllm.types import Candidate, Context, Decision, SeedLike

__all__ = ["LearningAutomaton"]

# Saved probabilities may drift from summing to 1 by rounding; more than this is an edit.
_SUM_TOLERANCE = 1e-6


class LearningAutomaton(Policy):
    """A stochastic learning automaton, PickLLM's policy (a): linear reward-inaction.

    The automaton keeps a probability ``P`` per candidate, samples the candidate of each
    call from ``P`` and, after a reward ``r`` in [0, 1] for candidate ``i``, moves
    probability towards it: ``P_i += b*r*(1 - P_i)`` and ``P_j -= b*r*P_j`` for the other
    candidates (a reward of 0 changes nothing: "inaction"). The update keeps ``sum(P) = 1``.

    Candidate sets that change between calls:

    * Only the offered candidates compete: ``i`` is sampled from ``P`` restricted to
      ``context.candidates`` and renormalised, and the update redistributes probability
      only among the candidates the decision was made over (``decision.ranking``), as if
      they formed an automaton of their own holding their share ``M`` of the mass:
      ``P_i += b*r*(M - P_i)``. Candidates not offered keep their probability untouched,
      so a model that is briefly unavailable loses nothing it had learned.
    * A never-seen candidate joins with probability ``1/(K+1)``, where ``K`` is the number
      of candidates known so far, and the others are scaled by ``K/(K+1)``: it starts
      where it would have started in a uniform automaton of ``K+1`` arms, and the relative
      preferences among the others are kept. Candidates joining one by one from an empty
      automaton thus end up uniform, ``1/K`` each.
    * If the offered candidates hold no probability at all (every one underflowed to 0
      after a long lock-in on a candidate that is now missing), the call is sampled
      uniformly among them and learning among them cannot start again: L_R-I is
      absorbing by design.

    Lock-in: once a candidate's probability reaches ``lock_in`` it is :attr:`locked` and
    chosen with probability 1 whenever it is offered, without drawing a random number
    (PickLLM's session convergence; the threshold 0.99 is our default, the paper's was not
    found). Rewards keep updating ``P`` and can only strengthen the locked candidate,
    except a reward for another candidate (a fallback, or a call where the locked one was
    not offered among others) and the arrival of a new candidate, whose rescaling can
    bring ``P`` below ``lock_in`` and unlock the automaton, so the newcomer gets tried.

    Convergence (``tests/core/test_convergence.py``): with Bernoulli rewards whose success
    rates are ``0.1 + gap`` for the best of ``K`` candidates and 0.1 for the others, the
    automaton locks on the best candidate in 100 seeded sessions this often, with these
    learning rates (median lock-in step in brackets): ``K=4``, gap 0.2: 100% at 0.1 (236);
    ``K=4``, gap 0.05: 98% at 0.05 (1,728); ``K=16``, gap 0.2: 100% at 0.03 (1,134);
    ``K=16``, gap 0.05: 97% at 0.015 (8,765). Larger rates lock in sooner but more often on
    a worse candidate: L_R-I is only epsilon-optimal, so the default 0.1 suits a few
    clearly different candidates, not many close ones. The steps grow with the reward
    level, since each step moves ``P`` in proportion to the reward: with success rates 0.5
    and 0.55 among 16 candidates, 95% needs a rate near 0.003 and ~45,000 steps.

    Args:
        learning_rate: the step size ``b`` in (0, 1).
        lock_in: the probability in (0, 1] at which the automaton commits to a candidate,
            or None to never commit.
        seed: seed of the random generator that samples the candidates.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> ctx = Context(candidates=(Candidate(name="small"), Candidate(name="large")))
        >>> policy = LearningAutomaton(learning_rate=0.5, seed=0)
        >>> for _ in range(8):
        ...     decision = policy.select(ctx)
        ...     policy.update(decision, 1.0 if decision.candidate.name == "large" else 0.0)
        >>> {name: round(p, 3) for name, p in policy.probabilities.items()}
        {'small': 0.008, 'large': 0.992}
        >>> policy.locked
        'large'
        >>> policy.select(ctx).probability
        1.0
    """

    name = "learning_automaton"

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        lock_in: float | None = 0.99,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed=seed)
        owner = type(self).__name__
        self._b = check_number(
            owner, "learning_rate", learning_rate, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.learning_rate = learning_rate
        self._lock_at: float | None = None
        if lock_in is not None:
            self._lock_at = check_number(
                owner, "lock_in", lock_in, low=0.0, high=1.0, low_open=True
            )
        self.lock_in = lock_in
        self._p: dict[str, float] = {}
        self._locked: str | None = None
        # The candidate tuple last registered, and its names (a cache, not learned state).
        self._registered: tuple[Candidate, ...] = ()
        self._names: list[str] = []

    # ------------------------------------------------------------------ read-only views
    @property
    def probabilities(self) -> dict[str, float]:
        """The selection probability of every candidate seen so far (a copy)."""
        return dict(self._p)

    @property
    def locked(self) -> str | None:
        """The candidate the automaton has committed to, or None."""
        return self._locked

    # ------------------------------------------------------------------ hooks
    def _select(self, context: Context) -> Choice:
        cands = context.candidates
        p = self._p
        if cands is not self._registered:
            # Routers offer the same pool tuple call after call: register its names once
            # (names never leave ``_p`` except through ``_set_state``, which resets this).
            for c in cands:
                if c.name not in p:
                    self._add(c.name)
            self._registered = cands
            self._names = [c.name for c in cands]
        probs = [p[n] for n in self._names]
        locked = self._locked
        if locked is not None and locked in self._names:
            return Choice(self._names.index(locked), 1.0, probs)
        k = len(probs)
        cumulative = list(accumulate(probs))
        total = cumulative[-1]
        if total <= 0.0:
            return Choice(min(int(self._rng.random() * k), k - 1), 1.0 / k, probs)
        i = bisect_right(cumulative, self._rng.random() * total)
        if i >= k:
            # Rounding put the draw at the very top: take the last candidate with mass.
            i = max(j for j in range(k) if probs[j] > 0.0)
        return Choice(i, probs[i] / total, probs)

    def _update(self, decision: Decision, reward: float) -> None:
        if reward <= 0.0:
            return
        p = self._p
        chosen = decision.candidate.name
        names = [c.name for c in decision.ranking]
        if chosen not in names:
            names.append(chosen)
        for n in names:
            if n not in p:
                self._add(n)
        step = self._b * reward
        keep = 1.0 - step
        mass = 0.0
        for n in names:
            mass += p[n]
            if n != chosen:
                p[n] *= keep
        p[chosen] += step * (mass - p[chosen])
        self._relock(chosen)

    # ------------------------------------------------------------------ internals
    def _add(self, name: str) -> None:
        p = self._p
        k = len(p)
        if k:
            scale = k / (k + 1)
            for n in p:
                p[n] *= scale
        p[name] = 1.0 / (k + 1)
        self._relock(None)

    def _relock(self, raised: str | None) -> None:
        """Update the lock after ``raised`` gained probability and the others lost some."""
        at = self._lock_at
        if at is None:
            return
        p = self._p
        if at > 0.5:
            # At most one candidate can hold more than half the mass: no search needed.
            if raised is not None and p[raised] >= at:
                self._locked = raised
            elif self._locked is not None and p[self._locked] < at:
                self._locked = None
            return
        best = max(p, key=p.__getitem__)
        self._locked = best if p[best] >= at else None

    def _get_state(self) -> dict[str, Any]:
        return {"probabilities": dict(self._p), "locked": self._locked}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        raw = state_names(
            self.name, "probabilities", state_field(self.name, state, "probabilities")
        )
        probs = {
            n: state_float(self.name, f"probabilities[{n!r}]", v, low=0.0, high=1.0)
            for n, v in raw.items()
        }
        total = sum(probs.values())
        if probs and abs(total - 1.0) > _SUM_TOLERANCE:
            msg = f"state of policy {self.name!r}: probabilities must sum to 1, got {total!r}"
            raise StateError(msg)
        locked = state.get("locked")
        if locked is not None:
            if locked not in probs:
                msg = (
                    f"state of policy {self.name!r}: locked candidate {locked!r} has no "
                    f"probability (known: {sorted(probs)})"
                )
                raise StateError(msg)
            at = self._lock_at
            if at is None or probs[locked] < at:
                msg = (
                    f"state of policy {self.name!r}: locked candidate {locked!r} has "
                    f"probability {probs[locked]!r}, below lock_in={self.lock_in!r}"
                )
                raise StateError(msg)
        # Kept as saved (not renormalised), so a round trip restores the exact state.
        self._p = probs
        self._locked = locked
        self._registered = ()
        if locked is None and self._p:
            self._relock(max(self._p, key=self._p.__getitem__))

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"learning_rate": 0.1}
