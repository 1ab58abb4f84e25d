"""A baseline that always routes to one named model."""

from __future__ import annotations

from typing import Any

from pickllm.errors import ConfigError
from pickllm.policies.base import Choice, Policy
from pickllm.types import Context, Decision, SeedLike

__all__ = ["Fixed"]


class Fixed(Policy):
    """Always choose the candidate named ``model`` (the "always the same model" baseline).

    The decision's ranking puts ``model`` first and the other offered candidates after it
    in their offered order, so fallbacks still work. Feedback is ignored.

    Args:
        model: the name of the candidate to choose; it must be offered on every call.
        seed: accepted for a uniform interface; the policy draws no random numbers.

    Raises:
        ConfigError: from ``select``, when ``model`` is not among the offered candidates
            (the message lists them).

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> ctx = Context(candidates=(Candidate(name="small"), Candidate(name="large")))
        >>> decision = Fixed(model="large").select(ctx)
        >>> decision.candidate.name, decision.probability, [c.name for c in decision.ranking]
        ('large', 1.0, ['large', 'small'])
    """

    name = "fixed"
    learning = False

    def __init__(self, *, model: str, seed: SeedLike = None) -> None:
        super().__init__(seed=seed)
        if not isinstance(model, str) or not model:
            msg = f"Fixed model must be a non-empty candidate name, got {model!r}"
            raise ConfigError(msg)
        self.model = model

    def _select(self, context: Context) -> Choice:
        for i, c in enumerate(context.candidates):
            if c.name == self.model:
                return Choice(i, 1.0)
        offered = [c.name for c in context.candidates]
        msg = f"Fixed model {self.model!r} is not among the offered candidates {offered}"
        raise ConfigError(msg)

    def _update(self, decision: Decision, reward: float) -> None:
        """Nothing to learn: the choice is fixed."""

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        # pickllm.testing offers its first candidate, "m0", in every context it builds.
        return {"model": "m0"}
