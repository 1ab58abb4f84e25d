"""How each policy's learning is merged across the routers that share a store.

Two ways, chosen per policy by :func:`merge_for`:

* **Sums** (the update commutes): the policy's learning is a vector of sums, and what a
  router learned since its last sync is the difference between its vector now and the
  shared one it last adopted. The store adds the differences (``HINCRBYFLOAT`` in one Lua
  script in Redis) and returns the totals, which the router adopts, plus what it learned
  while the exchange ran. The totals are **exact**: every update of every router counts
  once, whatever the order. A router's local copy lags the others by at most one sync
  interval (``sync_interval_s`` of its clock, or ``sync_every`` records).
* **Replay** (the update does not commute): the router queues its updates (decision and
  reward, bounded by the store's ``max_queue``) and at sync replays them, in order, on the
  shared state inside a compare-and-set (``WATCH``/``MULTI`` in Redis; retried if another
  router wrote in between). Every update is applied once, in the order of the syncs (the
  result is one of the sequential orders the updates could have had, batch by batch);
  eventually consistent within one interval. Updates beyond ``max_queue`` while the store
  is unreachable are dropped and counted.

==========================================  ======  ===========================================
policy                                      merge   consistency
==========================================  ======  ===========================================
``thompson`` (Beta counts)                  sums    exact; local copy within one interval
``ucb1`` (counts, reward sums, total)       sums    exact; local copy within one interval
``epsilon_greedy_q`` with ``alpha=None``    sums    exact (sample means; epsilon from the total
                                                    count: ``epsilon * decay**N``)
``epsilon_greedy_q`` with a constant alpha  replay  ``Q += a (r - Q)`` depends on the order:
                                                    serialised by sync, within one interval
``learning_automaton`` (probabilities)      replay  serialised by sync, within one interval
``lin_ucb``, ``linear_thompson``            sums    exact (A, b, s, n, the running means,
                                                    the ``shared_prior`` head and the sums
                                                    learned against a reward prior are sums;
                                                    ``A^-1`` recomputed on adoption)
``fixed``, ``random``, ``cheapest``,        none    nothing is learned (statistics, spend and
trained query scorers                               breakers are still shared)
==========================================  ======  ===========================================

Not supported with a store (``ConfigError`` when the router is built): the linear policies
with ``discount < 1`` or ``change_threshold`` (forgetting and resets do not commute and need
each decision's features) and ``per_context`` (one learner per key: share it by giving
each key its own router and store name).

The policies' random generators stay local: each process draws its own numbers.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np

from pickllm.errors import ConfigError
from pickllm.policies.base import Policy
from pickllm.policies.epsilon_greedy_q import EpsilonGreedyQ
from pickllm.policies.learning_automaton import LearningAutomaton
from pickllm.policies.linear import LinearPolicy
from pickllm.policies.thompson_sampling import ThompsonSampling
from pickllm.policies.ucb1 import UCB1
from pickllm.types import Decision

__all__ = ["Merge", "ReplayMerge", "SumsMerge", "merge_for"]

SEP = "|"
"""Separates the parts of a field name; the candidate's name comes last (it may hold one)."""


class Merge:
    """How one policy's learning is shared (see the module docstring)."""

    kind: str = "none"


class NoMerge(Merge):
    """A policy that learns nothing online: nothing of it is shared."""


class SumsMerge(Merge):
    """A policy whose learning is a vector of sums (its updates commute)."""

    kind = "sums"

    @abstractmethod
    def sums(self, policy: Policy) -> dict[str, float]:
        """The policy's learning as additive fields (``"p|..."``)."""

    @abstractmethod
    def load(self, policy: Policy, sums: Mapping[str, float]) -> None:
        """Set the policy's learning from totals of :meth:`sums` (its generator untouched)."""


class ReplayMerge(Merge):
    """A policy whose updates do not commute: replayed in order on the shared state."""

    kind = "replay"

    @staticmethod
    def state(policy: Policy) -> dict[str, Any]:
        """The policy's learned state (without its generator), JSON-ready."""
        return dict(policy.state_dict()["state"])

    @staticmethod
    def load(policy: Policy, state: Mapping[str, Any]) -> None:
        """Set the policy's learned state, keeping its generator."""
        policy.load_state_dict({"policy": policy.name, "state": state})

    def replay(
        self,
        policy: Policy,
        state: Mapping[str, Any] | None,
        updates: Iterable[tuple[Decision, float]],
    ) -> dict[str, Any]:
        """The state after ``updates``, in order, starting from ``state`` (None: fresh)."""
        scratch = policy.clone()
        if state is not None:
            self.load(scratch, state)
        for decision, reward in updates:
            scratch.update(decision, reward)
        return self.state(scratch)


def _load(policy: Policy, state: Mapping[str, Any]) -> None:
    policy.load_state_dict({"policy": policy.name, "state": state})


def _split(sums: Mapping[str, float], field: str) -> dict[str, float]:
    """``{candidate: value}`` of the fields ``p|<field>|<candidate>``."""
    prefix = f"p{SEP}{field}{SEP}"
    return {k[len(prefix) :]: v for k, v in sums.items() if k.startswith(prefix)}


class _ThompsonMerge(SumsMerge):
    def sums(self, policy: Policy) -> dict[str, float]:
        policy = cast("ThompsonSampling", policy)
        a0, b0 = float(policy.prior_alpha), float(policy.prior_beta)
        out: dict[str, float] = {}
        for name, (a, b) in policy.posteriors.items():
            out[f"p|a|{name}"] = a - a0
            out[f"p|b|{name}"] = b - b0
        return out

    def load(self, policy: Policy, sums: Mapping[str, float]) -> None:
        policy = cast("ThompsonSampling", policy)
        a0, b0 = float(policy.prior_alpha), float(policy.prior_beta)
        alpha, beta = _split(sums, "a"), _split(sums, "b")
        names = set(alpha) | set(beta)
        _load(
            policy,
            {
                "alpha": {n: a0 + max(alpha.get(n, 0.0), 0.0) for n in names},
                "beta": {n: b0 + max(beta.get(n, 0.0), 0.0) for n in names},
            },
        )


def _means(counts: Mapping[str, float], totals: Mapping[str, float]) -> dict[str, float]:
    return {
        n: min(max(totals.get(n, 0.0) / c, 0.0), 1.0) for n, c in counts.items() if round(c) >= 1
    }


class _UCB1Merge(SumsMerge):
    def sums(self, policy: Policy) -> dict[str, float]:
        policy = cast("UCB1", policy)
        out: dict[str, float] = {}
        means = policy.means
        for name, n in policy.counts.items():
            out[f"p|n|{name}"] = float(n)
            out[f"p|r|{name}"] = means[name] * n
        return out

    def load(self, policy: Policy, sums: Mapping[str, float]) -> None:
        counts = _split(sums, "n")
        means = _means(counts, _split(sums, "r"))
        whole = {n: round(counts[n]) for n in means}
        _load(policy, {"counts": whole, "means": means, "total": sum(whole.values())})


class _SampleMeanQMerge(SumsMerge):
    """Epsilon-greedy Q-learning with sample means: counts and reward sums."""

    def sums(self, policy: Policy) -> dict[str, float]:
        policy = cast("EpsilonGreedyQ", policy)
        out: dict[str, float] = {}
        q = policy.q_values
        for name, n in policy.counts.items():
            out[f"p|n|{name}"] = float(n)
            out[f"p|r|{name}"] = q[name] * n
        return out

    def load(self, policy: Policy, sums: Mapping[str, float]) -> None:
        policy = cast("EpsilonGreedyQ", policy)
        counts = _split(sums, "n")
        q = _means(counts, _split(sums, "r"))
        whole = {n: round(counts[n]) for n in q}
        updates = sum(whole.values())
        epsilon = max(policy.epsilon_min, policy.epsilon * policy.epsilon_decay**updates)
        _load(policy, {"q_values": q, "counts": whole, "epsilon": min(max(epsilon, 0.0), 1.0)})


class _LinearMerge(SumsMerge):
    """Ridge heads: ``A - reg I`` (upper triangle), ``b``, ``s``, ``n`` and running means."""

    def sums(self, policy: Policy) -> dict[str, float]:
        policy = cast("LinearPolicy", policy)
        state = policy.state_dict()["state"]
        dim = int(state["dim"])
        out: dict[str, float] = {}
        if dim == 0:
            return out
        reg = float(policy.regularization)
        upper = np.triu_indices(dim)
        for i, name in enumerate(state["models"]):
            a = np.asarray(state["A"][i]) - reg * np.eye(dim)
            for row, col, v in zip(*upper, a[upper].tolist(), strict=True):
                out[f"p|A|{row}|{col}|{name}"] = v
            for j, v in enumerate(state["b"][i]):
                out[f"p|b|{j}|{name}"] = v
            for j, v in enumerate(state["s"][i]):
                out[f"p|s|{j}|{name}"] = v
            for j, v in enumerate(state["prior_s"][i]):
                out[f"p|sp|{j}|{name}"] = v
            out[f"p|n|{name}"] = float(state["n"][i])
        if policy.shared_prior:
            out.update(_shared_sums(state, dim + 1, reg))
        # Whether some reward was learned against a reward prior (a count: > 0 when any
        # router's was), so the merged policy too refuses to route without its prior.
        out["p|pu"] = 1.0 if state["prior_used"] else 0.0
        out["p|rs"] = float(state["reward_sum"])
        out["p|rn"] = float(state["reward_n"])
        out["p|xn"] = float(state["x_n"])
        for j, v in enumerate(state["x_sum"]):
            out[f"p|xs|{j}"] = v
        return out

    def load(self, policy: Policy, sums: Mapping[str, float]) -> None:
        policy = cast("LinearPolicy", policy)
        counts = _split(sums, "n")
        if not counts:
            return
        dim = 1 + max(int(k.split(SEP)[2]) for k in sums if k.startswith("p|xs|"))
        local = policy.models
        names = local + sorted(n for n in counts if n not in set(local))
        reg = float(policy.regularization)
        k = len(names)
        a = np.broadcast_to(np.eye(dim) * reg, (k, dim, dim)).copy()
        b = np.zeros((k, dim))
        s = np.zeros((k, dim))
        sp = np.zeros((k, dim))
        n = np.zeros(k)
        index = {name: i for i, name in enumerate(names)}
        x_sum = np.zeros(dim)
        for key, value in sums.items():
            parts = key.split(SEP, 4)
            field = parts[1]
            if field == "A" and parts[4] in index:
                i, j, m = index[parts[4]], int(parts[2]), int(parts[3])
                a[i, j, m] += value
                if j != m:
                    a[i, m, j] += value
            elif field in ("b", "s", "sp") and (name := key.split(SEP, 3)[3]) in index:
                {"b": b, "s": s, "sp": sp}[field][index[name], int(parts[2])] = value
            elif field == "n" and (name := key.split(SEP, 2)[2]) in index:
                n[index[name]] = max(value, 0.0)
            elif field == "xs":
                x_sum[int(parts[2])] = value
        state = {
            "dim": dim,
            "models": names,
            "A": a.tolist(),
            "A_inv": np.linalg.inv(a).tolist(),
            "b": b.tolist(),
            "s": s.tolist(),
            "prior_s": sp.tolist(),
            "prior_used": sums.get("p|pu", 0.0) > 0.0,
            "n": n.tolist(),
            "page_hinkley": [0.0] * k,
            "reward_sum": sums.get("p|rs", 0.0),
            "reward_n": max(sums.get("p|rn", 0.0), 0.0),
            "x_sum": x_sum.tolist(),
            "x_n": max(sums.get("p|xn", 0.0), 0.0),
            "changes": 0,
        }
        if policy.shared_prior:
            # Relative prices are the router's own (from the candidates it offers).
            price = dict(zip(local, policy.state_dict()["state"]["price"], strict=True))
            state["price"] = [price.get(name, 0.0) for name in names]
            state.update(_shared_head(sums, dim + 1, reg))
        _load(policy, state)


def _shared_sums(state: Mapping[str, Any], dim: int, reg: float) -> dict[str, float]:
    """A ``shared_prior`` head's sums: ``A - reg I`` (upper triangle), ``b`` and ``s``."""
    upper = np.triu_indices(dim)
    a = np.asarray(state["shared_A"]) - reg * np.eye(dim)
    out = {f"p|SA|{row}|{col}": v for row, col, v in zip(*upper, a[upper].tolist(), strict=True)}
    out.update({f"p|Sb|{j}": v for j, v in enumerate(state["shared_b"])})
    out.update({f"p|Ss|{j}": v for j, v in enumerate(state["shared_s"])})
    return out


def _shared_head(sums: Mapping[str, float], dim: int, reg: float) -> dict[str, Any]:
    """The ``shared_prior`` head's state fields from the shared sums."""
    a = np.eye(dim) * reg
    b = np.zeros(dim)
    s = np.zeros(dim)
    for key, value in sums.items():
        parts = key.split(SEP)
        if parts[1] == "SA":
            j, m = int(parts[2]), int(parts[3])
            a[j, m] += value
            if j != m:
                a[m, j] += value
        elif parts[1] in ("Sb", "Ss"):
            (b if parts[1] == "Sb" else s)[int(parts[2])] = value
    return {
        "shared_A": a.tolist(),
        "shared_A_inv": np.linalg.inv(a).tolist(),
        "shared_b": b.tolist(),
        "shared_s": s.tolist(),
    }


def merge_for(policy: Policy) -> Merge:
    """How ``policy``'s learning is shared (see the table in the module docstring).

    Raises:
        ConfigError: the policy's learning cannot be shared (its message says why and
            what to use instead).
    """
    if isinstance(policy, ThompsonSampling):
        return _ThompsonMerge()
    if isinstance(policy, UCB1):
        return _UCB1Merge()
    if isinstance(policy, EpsilonGreedyQ):
        return _SampleMeanQMerge() if policy.alpha is None else ReplayMerge()
    if isinstance(policy, LearningAutomaton):
        return ReplayMerge()
    if isinstance(policy, LinearPolicy):
        if policy.discount < 1.0 or policy.change_threshold is not None:
            msg = (
                f"{type(policy).__name__} with discount={policy.discount!r} and "
                f"change_threshold={policy.change_threshold!r} cannot share its learning "
                "through a store (forgetting and resets do not commute): use discount=1.0 "
                "and change_threshold=None"
            )
            raise ConfigError(msg)
        return _LinearMerge()
    if not type(policy).learning:
        return NoMerge()
    msg = (
        f"policy {policy.name!r} cannot share its learning through a store; the ones that can "
        "are thompson, ucb1, epsilon_greedy_q, learning_automaton, lin_ucb and "
        "linear_thompson (see pickllm.state.merge)"
    )
    raise ConfigError(msg)


def finite(values: Mapping[str, float]) -> bool:
    """Whether every value is a finite number."""
    return all(math.isfinite(v) for v in values.values())
