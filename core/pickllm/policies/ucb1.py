"""UCB1: the optimistic upper-confidence-bound bandit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pickllm.errors import StateError
from pickllm.policies.base import (
    Choice,
    Policy,
    check_number,
    state_count,
    state_field,
    state_float,
    state_names,
)
from pickllm.types import Context, Decision, SeedLike

__all__ = ["UCB1"]


class UCB1(Policy):
    """UCB1 (Auer et al., 2002): pick the highest upper confidence bound on the mean reward.

    Every offered candidate without a reward yet is tried first, the cheapest first (by
    ``input_price + output_price``, then by name); then the call goes to the candidate
    with the highest ``mean + exploration * sqrt(ln N / n)``, where ``n`` is the
    candidate's number of rewards and ``N`` the policy's total. Ties go to the cheapest,
    then to the first name. The policy is deterministic: decisions have probability 1
    and ``seed`` is accepted only for a uniform interface.

    The scores of a decision are the bounds; an untried candidate's bound is infinite, so
    the fallback ranking puts untried candidates first, cheapest first.

    Args:
        exploration: the exploration weight ``c >= 0`` (``sqrt(2)`` is UCB1's constant for
            rewards in [0, 1]; 0 is greedy).
        seed: accepted for a uniform interface; UCB1 draws no random numbers.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> ctx = Context(candidates=(Candidate(name="small", input_price=0.1),
        ...                           Candidate(name="large", input_price=2.0)))
        >>> policy = UCB1(seed=0)
        >>> [policy.select(ctx).candidate.name for _ in range(2)]  # untried, cheapest first
        ['small', 'small']
        >>> for _ in range(20):
        ...     decision = policy.select(ctx)
        ...     policy.update(decision, 0.9 if decision.candidate.name == "large" else 0.3)
        >>> policy.counts
        {'small': 4, 'large': 16}
        >>> round(policy.means["large"], 2)
        0.9
    """

    name = "ucb1"

    def __init__(self, *, exploration: float = math.sqrt(2.0), seed: SeedLike = None) -> None:
        super().__init__(seed=seed)
        self._c = check_number(type(self).__name__, "exploration", exploration, low=0.0)
        self.exploration = exploration
        self._n: dict[str, int] = {}
        self._mean: dict[str, float] = {}
        self._total = 0

    # ------------------------------------------------------------------ read-only views
    @property
    def counts(self) -> dict[str, int]:
        """How many rewards each candidate has had (a copy)."""
        return dict(self._n)

    @property
    def means(self) -> dict[str, float]:
        """The mean reward of each candidate rewarded so far (a copy)."""
        return dict(self._mean)

    # ------------------------------------------------------------------ hooks
    def _select(self, context: Context) -> Choice:
        cands = context.candidates
        counts = self._n
        means = self._mean
        log_total = math.log(self._total) if self._total > 1 else 0.0
        c = self._c
        scores: list[float] = []
        best = -1
        best_score = -math.inf
        for i, cand in enumerate(cands):
            n = counts.get(cand.name, 0)
            s = means[cand.name] + c * math.sqrt(log_total / n) if n else math.inf
            scores.append(s)
            if s > best_score:
                best, best_score = i, s
            elif s == best_score:
                other = cands[best]
                pa = cand.input_price + cand.output_price
                pb = other.input_price + other.output_price
                if pa < pb or (pa == pb and cand.name < other.name):
                    best = i
        return Choice(best, 1.0, scores)

    def _update(self, decision: Decision, reward: float) -> None:
        name = decision.candidate.name
        n = self._n.get(name, 0) + 1
        self._n[name] = n
        old = self._mean.get(name, 0.0)
        self._mean[name] = old + (reward - old) / n
        self._total += 1

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        return {"counts": dict(self._n), "means": dict(self._mean), "total": self._total}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        pol = self.name
        raw_n = state_names(pol, "counts", state_field(pol, state, "counts"))
        raw_m = state_names(pol, "means", state_field(pol, state, "means"))
        if set(raw_n) != set(raw_m):
            msg = (
                f"state of policy {pol!r}: counts and means must name the same candidates, "
                f"got {sorted(raw_n)} and {sorted(raw_m)}"
            )
            raise StateError(msg)
        counts = {n: state_count(pol, f"counts[{n!r}]", v) for n, v in raw_n.items()}
        if any(v == 0 for v in counts.values()):
            msg = (
                f"state of policy {pol!r}: a candidate with a mean needs a count >= 1, got {counts}"
            )
            raise StateError(msg)
        means = {
            n: state_float(pol, f"means[{n!r}]", v, low=0.0, high=1.0) for n, v in raw_m.items()
        }
        total = state_count(pol, "total", state_field(pol, state, "total"))
        if total != sum(counts.values()):
            msg = (
                f"state of policy {pol!r}: total must be the sum of the counts "
                f"({sum(counts.values())}), got {total}"
            )
            raise StateError(msg)
        self._n = counts
        self._mean = means
        self._total = total
