"""PickLLM's context-aware routing: one learner per context key."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from pickllm.errors import ConfigError, StateError
from pickllm.policies.base import Choice, Policy, state_field
from pickllm.types import Context, Decision, SeedLike

__all__ = ["PerContext"]

# Seeds for the learners are drawn from the policy's own generator (not spawned from its
# SeedSequence), because only the generator's state travels in ``state_dict``.
_SEED_BOUND = 2**63


class PerContext(Policy):
    """One learner per context key, each a clone of a template policy.

    PickLLM's "context-aware" routing keeps one learner per context (a topic, a task tag,
    a session): ``context.key`` picks the learner, and calls without a key share a
    default learner. Decisions carry their key, so ``update`` reaches the learner that
    made them.

    Learners are clones of ``policy`` (the template itself never learns), each with its
    own random generator seeded from this policy's generator, so keys do not share random
    streams and a seeded ``PerContext`` is reproducible.

    With ``shared_prior``, a global learner is updated with every reward, whatever the
    key, and a key seen for the first time starts from a copy of the global learner's
    learned state instead of from scratch: what all contexts taught so far is the prior
    of a new one. Without it, a new key starts fresh.

    Memory is bounded: at most ``max_keys`` keyed learners are kept, and when a new key
    would exceed it, the least recently used key (by ``select`` or ``update``) is dropped;
    if it comes back it starts again from the prior. The default learner (key None) and
    the global learner do not count towards ``max_keys`` and are never dropped. An
    ``update`` for a dropped key re-creates its learner from the prior.

    Under key churn (more live keys than ``max_keys``) each new key reuses the learner it
    evicts: the learner's state is reset to the prior and it keeps its own random
    generator (which goes on with its stream), so a new key costs a state copy, not a
    clone and a freshly seeded generator. Eviction and reuse are O(1) (an ordered dict
    kept in least-recently-used order). A learner obtained from :meth:`learner` belongs to
    its key only while that key is kept.

    Args:
        policy: the template learner, cloned for each key.
        shared_prior: keep a global learner and start new keys from its state.
        max_keys: the most keyed learners kept (an int >= 1).
        seed: seed of the generator the learners' seeds are drawn from.

    Examples:
        >>> from pickllm.policies.ucb1 import UCB1
        >>> from pickllm.types import Candidate, Context
        >>> pool = (Candidate(name="coder"), Candidate(name="writer"))
        >>> policy = PerContext(policy=UCB1(), seed=0)
        >>> best = {"code": "coder", "prose": "writer"}
        >>> for _ in range(20):
        ...     for key in ("code", "prose"):
        ...         decision = policy.select(Context(candidates=pool, key=key))
        ...         policy.update(decision, 1.0 if decision.candidate.name == best[key] else 0.5)
        >>> [policy.select(Context(candidates=pool, key=k)).candidate.name for k in best]
        ['coder', 'writer']
        >>> policy.keys
        ['code', 'prose']
    """

    name = "per_context"
    contextual = True

    def __init__(
        self,
        *,
        policy: Policy,
        shared_prior: bool = True,
        max_keys: int = 10_000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed=seed)
        if not isinstance(policy, Policy):
            msg = f"PerContext policy must be a Policy instance, got {policy!r}"
            raise TypeError(msg)
        self.policy = policy
        if not isinstance(shared_prior, bool):
            msg = f"PerContext shared_prior must be a bool, got {shared_prior!r}"
            raise TypeError(msg)
        self.shared_prior = shared_prior
        if isinstance(max_keys, bool) or not isinstance(max_keys, int):
            msg = f"PerContext max_keys must be an int, got {max_keys!r}"
            raise TypeError(msg)
        if max_keys < 1:
            msg = f"PerContext max_keys must be >= 1, got {max_keys!r}"
            raise ConfigError(msg)
        self.max_keys = max_keys
        self._learners: OrderedDict[str, Policy] = OrderedDict()
        self._default: Policy | None = None
        self._global: Policy | None = self._fresh() if shared_prior else None
        # The prior of a new key without shared_prior: a clone that never learns (its
        # seed is irrelevant and drawn from nothing, so it changes no learner's stream).
        self._blank: Policy | None = None if shared_prior else policy.clone(seed=0)

    # ------------------------------------------------------------------ read-only views
    @property
    def keys(self) -> list[str]:
        """The keys with a learner, least recently used first."""
        return list(self._learners)

    def learner(self, key: str | None) -> Policy | None:
        """The learner of ``key`` (None: the default learner), or None if it has none yet.

        The learner is live: read its properties, do not update it directly.
        """
        return self._default if key is None else self._learners.get(key)

    @property
    def shared(self) -> Policy | None:
        """The global learner fed by every key (None without ``shared_prior``)."""
        return self._global

    # ------------------------------------------------------------------ hooks
    # A wrapper is a Policy too: it calls its learners' hooks, not their public verbs,
    # so the decision is built once, under this policy's name (hence the SLF001 waivers).
    def _select(self, context: Context) -> Choice:
        return self._learner_for(context.key)._select(context)  # noqa: SLF001

    def _update(self, decision: Decision, reward: float) -> None:
        self._learner_for(decision.key)._update(decision, reward)  # noqa: SLF001
        if self._global is not None:
            self._global._update(decision, reward)  # noqa: SLF001

    # ------------------------------------------------------------------ internals
    def _fresh(self) -> Policy:
        seed = int(self._rng.integers(_SEED_BOUND))
        return self.policy.clone(seed=np.random.default_rng(seed))

    def _new_learner(self) -> Policy:
        learner = self._fresh()
        if self._global is not None:
            learner._set_state(self._global._get_state())  # noqa: SLF001
        return learner

    def _learner_for(self, key: str | None) -> Policy:
        if key is None:
            if self._default is None:
                self._default = self._new_learner()
            return self._default
        learners = self._learners
        found = learners.get(key)
        if found is not None:
            learners.move_to_end(key)
            return found
        if len(learners) >= self.max_keys:
            # Churn: the least recently used key's learner, reset to the prior, serves
            # the new key (no clone, no new generator).
            _, found = learners.popitem(last=False)
            found._set_state(self._prior_state())  # noqa: SLF001
        else:
            found = self._new_learner()
        learners[key] = found
        return found

    def _prior_state(self) -> Mapping[str, Any]:
        """The learned state a new key starts from (the global learner's, or a blank one)."""
        prior = self._global if self._global is not None else self._blank
        assert prior is not None  # noqa: S101 - one of them exists (see __init__)
        return prior._get_state()  # noqa: SLF001

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, Any]:
        return {
            "global": None if self._global is None else self._global.state_dict(),
            "default": None if self._default is None else self._default.state_dict(),
            "keys": [[k, p.state_dict()] for k, p in self._learners.items()],
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        pol = self.name
        raw_keys = state_field(pol, state, "keys")
        if not isinstance(raw_keys, list):
            msg = f"state of policy {pol!r}: keys must be a list of [key, state], got {raw_keys!r}"
            raise StateError(msg)
        if len(raw_keys) > self.max_keys:
            msg = (
                f"state of policy {pol!r} has {len(raw_keys)} keys, more than "
                f"max_keys={self.max_keys}"
            )
            raise StateError(msg)
        learners: OrderedDict[str, Policy] = OrderedDict()
        for entry in raw_keys:
            if (
                not isinstance(entry, list | tuple)
                or len(entry) != 2
                or not isinstance(entry[0], str)
            ):
                msg = f"state of policy {pol!r}: each key entry must be [key, state], got {entry!r}"
                raise StateError(msg)
            key, sub = entry
            if key in learners:
                msg = f"state of policy {pol!r}: key {key!r} appears twice"
                raise StateError(msg)
            learners[key] = self._restore(sub)
        raw_global = state_field(pol, state, "global")
        if (raw_global is None) == self.shared_prior:
            msg = (
                f"state of policy {pol!r}: a global learner is "
                f"{'missing' if raw_global is None else 'present'} but "
                f"shared_prior={self.shared_prior!r}"
            )
            raise StateError(msg)
        glob = None if raw_global is None else self._restore(raw_global)
        raw_default = state_field(pol, state, "default")
        default = None if raw_default is None else self._restore(raw_default)
        self._learners = learners
        self._global = glob
        self._default = default

    def _restore(self, state: Any) -> Policy:
        # The seed is irrelevant: load_state_dict restores the learner's generator.
        learner = self.policy.clone(seed=0)
        learner.load_state_dict(state)
        return learner

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        from pickllm.policies.learning_automaton import LearningAutomaton

        return {"policy": LearningAutomaton()}
