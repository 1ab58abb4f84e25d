"""LinUCB: per-model ridge heads over query features, the highest upper bound wins."""

from __future__ import annotations

from typing import Any

import numpy as np

from pickllm.policies.base import Choice
from pickllm.policies.linear import LinearPolicy
from pickllm.types import Context, SeedLike

__all__ = ["LinUCB"]


class LinUCB(LinearPolicy):
    """LinUCB (Li et al., 2010, disjoint heads): pick the highest ``mean(x) + width(x)``.

    Each candidate has a ridge-regression head over the query's features (see
    :mod:`pickllm.policies.linear`: structural features of ``Context.query`` unless
    ``Context.features`` is given, rewards centred on the running mean reward, so an
    untried model's bound is the centre plus the prior's full width). The bound is
    ``mean(x) + exploration * sqrt(x^T A^-1 x)``; ties go to the cheaper candidate.

    The default ``exploration`` (0.3) was chosen on the train rows of ``routerbench_subset``
    (``pickllm bench --stream train``; 0.25 to 0.4 tried). On long streams of rewards that
    differ little between models, ``regularization=10`` with ``shared_prior=True`` did
    better on those train rows (2,205 prompts: 0.4% above the best single model); the
    defaults stay at 1 and no shared prior because a strong prior makes the deterministic
    bound stop exploring too early when rewards are 0/1 and models differ widely (a
    synthetic two-kinds-of-query test: 50% routed right against 100%). The choice is
    deterministic given
    the history: its probability is 1 (off-policy
    evaluation of other policies from a LinUCB log is then not possible; log a
    Thompson policy for that). The decision's scores are the bounds.

    The other hyperparameters (prior, forgetting, change detection, price prior, key
    buckets, shared prior, pending bound) are documented once, on
    :class:`~pickllm.policies.linear.LinearPolicy`; the defaults are the same.

    Args:
        exploration: the width's multiplier, ``> 0``.
        regularization: ridge penalty ``> 0``, the prior's precision per feature.
        seed: unused by the choice (kept for the common interface).

    Examples:
        >>> from pickllm.types import Candidate, Context
        >>> pool = (Candidate(name="coder"), Candidate(name="writer"))
        >>> policy = LinUCB(seed=0)
        >>> queries = {"coder": "def f(x): return x;", "writer": "Write a poem about the sea."}
        >>> for t in range(200):
        ...     best = ("coder", "writer")[t % 2]
        ...     decision = policy.select(Context(query=queries[best], candidates=pool))
        ...     policy.update(decision, 0.9 if decision.candidate.name == best else 0.2)
        >>> [policy.select(Context(query=q, candidates=pool)).candidate.name
        ...  for q in queries.values()]
        ['coder', 'writer']
    """

    name = "lin_ucb"

    def __init__(
        self,
        *,
        exploration: float = 0.3,
        regularization: float = 1.0,
        prior_mean: float | None = None,
        discount: float = 1.0,
        change_threshold: float | None = None,
        change_delta: float = 0.05,
        change_keep: float = 0.5,
        change_shift: bool = False,
        change_standardized: bool = False,
        change_two_sided: bool = False,
        price_prior: float = 0.0,
        key_buckets: int = 16,
        shared_prior: bool = False,
        max_pending: int = 10_000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            exploration=exploration,
            regularization=regularization,
            prior_mean=prior_mean,
            discount=discount,
            change_threshold=change_threshold,
            change_delta=change_delta,
            change_keep=change_keep,
            change_shift=change_shift,
            change_standardized=change_standardized,
            change_two_sided=change_two_sided,
            price_prior=price_prior,
            key_buckets=key_buckets,
            shared_prior=shared_prior,
            max_pending=max_pending,
            seed=seed,
        )

    def _choose(self, mean: np.ndarray, width: np.ndarray, context: Context) -> Choice:
        bound = mean + width
        scores = bound.tolist()
        top = max(scores)
        tied = [j for j, v in enumerate(scores) if v >= top - 1e-12]
        best = tied[0]
        if len(tied) > 1:
            cands = context.candidates
            best = min(tied, key=lambda j: cands[j].input_price + cands[j].output_price)
        return Choice(best, 1.0, scores)

    @classmethod
    def _unit_test_params(cls) -> dict[str, Any]:
        return {"exploration": 0.3}
