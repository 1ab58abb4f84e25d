"""A baseline that always routes to the cheapest offered candidate."""

from __future__ import annotations

from pickllm.errors import ConfigError
from pickllm.policies.base import Choice, Policy
from pickllm.types import Context, Decision, SeedLike

__all__ = ["Cheapest"]


class Cheapest(Policy):
    """Choose the cheapest offered candidate (the "always the cheap model" baseline).

    When the context knows its prompt size (``context.input_tokens``), candidates are
    priced for that call: ``input_tokens`` at the input price plus ``output_tokens`` (the
    expected completion size) at the output price. Otherwise they are compared by
    ``input_price + output_price``. Ties go to the first name in alphabetical order. The
    decision's scores are the negated prices, so the fallback ranking is the next
    cheapest. Feedback is ignored.

    Args:
        output_tokens: the expected completion tokens used to price a call whose
            ``input_tokens`` is known (an int >= 0; 0 ranks by prompt cost alone).
        seed: accepted for a uniform interface; the policy draws no random numbers.

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> pool = (Candidate(name="long-context", input_price=0.5, output_price=5.0),
        ...         Candidate(name="chatty", input_price=1.0, output_price=2.0))
        >>> policy = Cheapest()
        >>> policy.select(Context(candidates=pool)).candidate.name
        'chatty'
        >>> policy.select(Context(candidates=pool, input_tokens=100_000)).candidate.name
        'long-context'
    """

    name = "cheapest"
    learning = False

    def __init__(self, *, output_tokens: int = 256, seed: SeedLike = None) -> None:
        super().__init__(seed=seed)
        if isinstance(output_tokens, bool) or not isinstance(output_tokens, int):
            msg = f"Cheapest output_tokens must be an int, got {output_tokens!r}"
            raise TypeError(msg)
        if output_tokens < 0:
            msg = f"Cheapest output_tokens must be >= 0, got {output_tokens!r}"
            raise ConfigError(msg)
        self.output_tokens = output_tokens

    def _select(self, context: Context) -> Choice:
        cands = context.candidates
        tokens = context.input_tokens
        if tokens is None:
            prices = [c.input_price + c.output_price for c in cands]
        else:
            out = self.output_tokens
            prices = [c.price_of(tokens, out) for c in cands]
        best = 0
        for i in range(1, len(cands)):
            if prices[i] < prices[best] or (
                prices[i] == prices[best] and cands[i].name < cands[best].name
            ):
                best = i
        return Choice(best, 1.0, [-p for p in prices])

    def _update(self, decision: Decision, reward: float) -> None:
        """Nothing to learn: the choice follows the prices."""
