"""A baseline that picks uniformly at random among the offered candidates."""

from __future__ import annotations

from pickllm.policies.base import Choice, Policy
from pickllm.types import Context, Decision

__all__ = ["Random"]


class Random(Policy):
    """Choose uniformly at random among the offered candidates (the random-routing baseline).

    Each of the ``K`` offered candidates has probability ``1/K``; the ranking keeps the
    other candidates in their offered order. Feedback is ignored.

    Args:
        seed: seed of the random generator.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> ctx = Context(candidates=tuple(Candidate(name=n) for n in ("a", "b", "c")))
        >>> policy = Random(seed=0)
        >>> [policy.select(ctx).candidate.name for _ in range(6)]
        ['b', 'a', 'a', 'a', 'c', 'c']
        >>> policy.select(ctx).probability
        0.3333333333333333
    """

    name = "random"
    learning = False

    def _select(self, context: Context) -> Choice:
        k = len(context.candidates)
        # One uniform draw scaled to K is several times cheaper than Generator.integers.
        return Choice(min(int(self._rng.random() * k), k - 1), 1.0 / k)

    def _update(self, decision: Decision, reward: float) -> None:
        """Nothing to learn: the choice is random."""
