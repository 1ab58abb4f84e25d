"""What a router believes of each model, and why a query would go where it goes.

``Router.beliefs()`` and ``Router.explain(query)`` are built here, from the policy's saved
state (``Policy.state_dict()``, its public form) and the router's statistics; nothing
here changes a policy, and ``explain`` runs a *copy* of it, so neither learns nor draws
from the live policy's random generator.

What each built-in policy's estimate is (:class:`Belief`):

* ``thompson``: the Beta posterior of the model's reward: ``mean_reward`` its mean,
  ``uncertainty`` its standard deviation, ``calls`` the rewards it has absorbed;
* ``ucb1``: the mean reward observed, ``uncertainty`` the exploration bonus
  ``exploration * sqrt(ln(total) / calls)`` it adds (None before the first reward);
* ``epsilon_greedy_q``: the Q value (``mean_reward``), no uncertainty; ``detail`` gives
  the current exploration rate;
* ``learning_automaton``: ``probability``, the automaton's probability of choosing
  the model (its whole state), and the mean reward the router observed;
* ``per_context``: the shared (global) learner's beliefs, or those of ``key``'s learner;
* every other policy (contextual and learned scorers, whose estimate depends on the
  query; the fixed baselines, which learn nothing): the mean reward the router observed,
  with ``detail`` saying so. ``explain(query)`` shows their per-query scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pickllm.policies.base import Policy
from pickllm.types import Context

__all__ = ["Belief", "Explanation", "explain_policy", "policy_beliefs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Belief:
    """One model's current estimate under the router's policy.

    Args:
        model: the model's name.
        mean_reward: the policy's estimate of its mean reward in [0, 1] (None: no
            estimate yet).
        uncertainty: how unsure that estimate is (see the module docstring), or None.
        calls: rewards the estimate rests on.
        probability: the policy's probability of choosing it, when the policy keeps one.
        detail: what the numbers are under this policy.

    Examples:
        >>> Belief(model="small", mean_reward=0.75, uncertainty=0.19, calls=2,
        ...        detail="Beta(3, 1)")
        Belief(small: mean 0.75 ± 0.19, 2 calls, Beta(3, 1))
    """

    model: str
    mean_reward: float | None
    uncertainty: float | None = None
    calls: int = 0
    probability: float | None = None
    detail: str = ""

    def __repr__(self) -> str:
        mean = "no estimate" if self.mean_reward is None else f"mean {self.mean_reward:.3g}"
        if self.mean_reward is not None and self.uncertainty is not None:
            mean += f" ± {self.uncertainty:.3g}"
        parts = [mean, f"{self.calls} call{'s' * (self.calls != 1)}"]
        if self.probability is not None:
            parts.append(f"P(chosen) {self.probability:.3g}")
        if self.detail:
            parts.append(self.detail)
        return f"Belief({self.model}: {', '.join(parts)})"

    def as_dict(self) -> dict[str, Any]:
        """The belief as a plain, JSON-ready mapping."""
        return {
            "model": self.model,
            "mean_reward": self.mean_reward,
            "uncertainty": self.uncertainty,
            "calls": self.calls,
            "probability": self.probability,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why a query would go where it goes, under the router's current policy.

    Args:
        query: the query explained (kept for ``str``; never logged).
        policy: the policy's name.
        chosen: the model a copy of the policy picked for it.
        probability: the probability the policy gave that pick.
        scores: the policy's score per offered model for the pick (None if the policy
            gives none), best first.
        choice_rates: how often each offered model was picked in ``draws`` picks of the
            copy (the policy's choice probabilities, estimated; exact for deterministic
            policies).
        excluded: models not offered for this query, and why.
        beliefs: each model's belief (:class:`Belief`).
        draws: how many picks ``choice_rates`` counts.
        note: anything else that decides the call (a spent budget).
    """

    query: str = field(repr=False)
    policy: str
    chosen: str
    probability: float
    scores: Mapping[str, float] | None
    choice_rates: Mapping[str, float]
    excluded: Mapping[str, str]
    beliefs: Mapping[str, Belief] = field(repr=False)
    draws: int = field(repr=False)
    note: str = ""

    def __str__(self) -> str:
        rate = self.choice_rates.get(self.chosen, 0.0)
        head = (
            f"policy {self.policy}: would choose {self.chosen} (probability "
            f"{self.probability:.3g}; chosen in {rate:.0%} of {self.draws} draws)"
        )
        lines = [head]
        if self.note:
            lines.append(self.note)
        lines.append(f"{'model':<20} {'chosen':>7} {'score':>7} {'mean':>7} {'±':>6} {'calls':>6}")
        for name, belief in self.beliefs.items():
            if name in self.excluded:
                lines.append(f"{name:<20} excluded: {self.excluded[name]}")
                continue
            score = None if self.scores is None else self.scores.get(name)
            lines.append(
                f"{name:<20} {self.choice_rates.get(name, 0.0):>7.1%} {_num(score):>7} "
                f"{_num(belief.mean_reward):>7} {_num(belief.uncertainty):>6} {belief.calls:>6}"
            )
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value + 0.0:.3g}"


# ---------------------------------------------------------------------- beliefs
Observed: TypeAlias = Mapping[str, tuple[int, float | None]]
"""Per model: rewards the router learned from, and their mean (None if none)."""

_Reader: TypeAlias = Callable[
    [Mapping[str, Any], Mapping[str, Any], Sequence[str], Observed], dict[str, Belief]
]


def _thompson(
    state: Mapping[str, Any], params: Mapping[str, Any], names: Sequence[str], _obs: Observed
) -> dict[str, Belief]:
    a0, b0 = float(params["prior_alpha"]), float(params["prior_beta"])
    alpha, beta = state.get("alpha", {}), state.get("beta", {})
    out = {}
    for n in names:
        a, b = float(alpha.get(n, a0)), float(beta.get(n, b0))
        total = a + b
        std = math.sqrt(a * b / (total * total * (total + 1.0)))
        out[n] = Belief(
            model=n,
            mean_reward=a / total,
            uncertainty=std,
            calls=round(total - a0 - b0),
            detail=f"Beta({a:.3g}, {b:.3g}) posterior",
        )
    return out


def _ucb1(
    state: Mapping[str, Any], params: Mapping[str, Any], names: Sequence[str], _obs: Observed
) -> dict[str, Belief]:
    counts, means = state.get("counts", {}), state.get("means", {})
    total = int(state.get("total", 0))
    c = float(params["exploration"])
    out = {}
    for n in names:
        k = int(counts.get(n, 0))
        bonus = c * math.sqrt(math.log(total) / k) if k and total > 1 else None
        out[n] = Belief(
            model=n,
            mean_reward=float(means[n]) if k else None,
            uncertainty=bonus,
            calls=k,
            detail="untried: chosen first" if not k else "mean + bonus is its score",
        )
    return out


def _epsilon_greedy(
    state: Mapping[str, Any], _params: Mapping[str, Any], names: Sequence[str], _obs: Observed
) -> dict[str, Belief]:
    q, counts = state.get("q_values", {}), state.get("counts", {})
    eps = float(state.get("epsilon", 0.0))
    return {
        n: Belief(
            model=n,
            mean_reward=float(q[n]) if n in q else None,
            calls=int(counts.get(n, 0)),
            detail=f"Q value; exploration rate {eps:.3g}",
        )
        for n in names
    }


def _automaton(
    state: Mapping[str, Any], _params: Mapping[str, Any], names: Sequence[str], obs: Observed
) -> dict[str, Belief]:
    probs = state.get("probabilities", {})
    locked = state.get("locked")
    return {
        n: Belief(
            model=n,
            mean_reward=obs[n][1],
            calls=obs[n][0],
            probability=float(probs[n]) if n in probs else None,
            detail="locked in" if locked == n else "action probability; observed mean",
        )
        for n in names
    }


def _per_context(
    state: Mapping[str, Any], params: Mapping[str, Any], names: Sequence[str], obs: Observed
) -> dict[str, Belief]:
    inner = params["policy"]
    shared = state.get("global") or state.get("default")
    if not isinstance(inner, Policy) or not isinstance(shared, Mapping):
        return _observed({}, {}, names, obs)
    return _beliefs_of(inner.name, shared.get("state", {}), inner.get_params(), names, obs)


def _observed(
    _state: Mapping[str, Any], _params: Mapping[str, Any], names: Sequence[str], obs: Observed
) -> dict[str, Belief]:
    return {
        n: Belief(
            model=n,
            mean_reward=obs[n][1],
            calls=obs[n][0],
            detail="observed mean (the policy keeps no per-model estimate)",
        )
        for n in names
    }


_READERS: dict[str, _Reader] = {
    "thompson": _thompson,
    "ucb1": _ucb1,
    "epsilon_greedy_q": _epsilon_greedy,
    "learning_automaton": _automaton,
    "per_context": _per_context,
}


def _beliefs_of(
    name: str,
    state: Mapping[str, Any],
    params: Mapping[str, Any],
    names: Sequence[str],
    obs: Observed,
) -> dict[str, Belief]:
    reader = _READERS.get(name, _observed)
    try:
        return reader(state, params, names, obs)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        # A subclass reusing a built-in name with another state: what the router saw.
        return _observed(state, params, names, obs)


def policy_beliefs(policy: Policy, names: Sequence[str], observed: Observed) -> dict[str, Belief]:
    """Each model's belief under ``policy`` (read from its ``state_dict()``).

    Args:
        policy: the policy (not changed).
        names: the models, in the pool's order.
        observed: per model, the rewards the router learned from and their mean.

    Examples:
        >>> from pickllm import Candidate, Context, ThompsonSampling
        >>> policy = ThompsonSampling(seed=0)
        >>> pool = (Candidate(name="a"), Candidate(name="b"))
        >>> policy.update(policy.select(Context(candidates=pool)), 1.0)
        >>> beliefs = policy_beliefs(policy, ["a", "b"], {"a": (0, None), "b": (0, None)})
        >>> sorted((b.model, b.mean_reward, b.calls) for b in beliefs.values())
        [('a', 0.5, 0), ('b', 0.6666666666666666, 1)]
    """
    state = policy.state_dict().get("state", {})
    return _beliefs_of(policy.name, state, policy.get_params(), names, observed)


# ---------------------------------------------------------------------- explain
def explain_policy(
    scratch: Policy,
    context: Context,
    *,
    excluded: Mapping[str, str],
    beliefs: Mapping[str, Belief],
    draws: int,
    note: str = "",
) -> Explanation:
    """Explain ``context``'s routing with ``scratch``, a throwaway copy of the policy.

    The copy picks once (its decision's probability and scores) and ``draws`` times
    more (how often each model comes out).
    """
    decision = scratch.select(context)
    scores = None
    if decision.scores is not None:
        scores = {c.name: s for c, s in zip(decision.ranking, decision.scores, strict=True)}
    counts: Counter[str] = Counter()
    for _ in range(draws):
        counts[scratch.select(context).candidate.name] += 1
    offered = [c.name for c in context.candidates]
    rates = {
        n: counts[n] / draws if draws else float(n == decision.candidate.name) for n in offered
    }
    return Explanation(
        query=context.query,
        policy=scratch.name,
        chosen=decision.candidate.name,
        probability=decision.probability,
        scores=scores,
        choice_rates=rates,
        excluded=dict(excluded),
        beliefs=dict(beliefs),
        draws=draws,
        note=note,
    )
