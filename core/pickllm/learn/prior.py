"""A trained query scorer as the reward prior of a linear contextual policy (a warm start).

:func:`scorer_prior` turns a ``pickllm train`` scorer (SelectLLM, Zooter) into the callable
:meth:`pickllm.policies.linear.LinearPolicy.set_prior` takes: for a context, the predicted
reward of each model the scorer knows,

    prior[m] = clip(quality_weight * q_hat[m](query) + offsets[m], 0, 1)

The objective's reward mixes quality with cost and latency terms the scorer does not
predict per query: ``quality_weight`` is quality's share of the objective's weights and
``offsets`` each model's typical reward from the other terms (e.g. its mean on the
scorer's training rows). The online policy then starts where the scorer is and learns
only where the scorer is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from pickllm.errors import ConfigError
from pickllm.learn.base import QueryScorer
from pickllm.policies.linear import RewardPrior
from pickllm.types import Context

__all__ = ["scorer_prior"]


def scorer_prior(
    scorer: QueryScorer,
    *,
    quality_weight: float = 1.0,
    offsets: Mapping[str, float] | None = None,
) -> RewardPrior:
    """A reward prior from ``scorer``'s predicted quality of ``Context.query``.

    Args:
        scorer: a trained query scorer.
        quality_weight: the weight of predicted quality in the reward, ``> 0`` (1: the
            reward is quality).
        offsets: per model name, what the reward adds to ``quality_weight * quality``
            (finite numbers); 0 for a model not given.

    Returns:
        ``prior(context)``: ``{model: predicted reward in [0, 1]}`` for every model of the
        scorer.

    Raises:
        ConfigError: an untrained scorer, a bad weight or offsets for unknown models.

    Examples:
        >>> import numpy as np
        >>> from pickllm import Candidate, Context
        >>> from pickllm.learn import SelectLLM
        >>> from pickllm.policies import LinUCB
        >>> texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
        >>> quality = np.array([[1, 0], [1, 0], [0, 1], [0, 1]] * 10, dtype=float)
        >>> scorer = SelectLLM(learner="logistic", learning_rate=0.1, seed=0)
        >>> scorer = scorer.fit(texts, quality, ["math", "poet"])
        >>> policy = LinUCB(seed=0)
        >>> policy.set_prior(scorer_prior(scorer))
        >>> pool = (Candidate(name="math"), Candidate(name="poet"))
        >>> policy.select(Context(query="write a limerick", candidates=pool)).candidate.name
        'poet'
    """
    if not isinstance(scorer, QueryScorer) or not scorer.fitted:
        msg = f"scorer must be a trained QueryScorer, got {scorer!r}"
        raise ConfigError(msg)
    if (
        isinstance(quality_weight, bool)
        or not isinstance(quality_weight, int | float)
        or not (0.0 < quality_weight < math.inf)
    ):
        msg = f"quality_weight must be a finite number > 0, got {quality_weight!r}"
        raise ConfigError(msg)
    models = scorer.models
    given = dict(offsets or {})
    unknown = sorted(set(given) - set(models))
    if unknown:
        msg = f"offsets name models the scorer does not know: {unknown} (it knows {list(models)})"
        raise ConfigError(msg)
    shift = np.array([given.get(m, 0.0) for m in models], dtype=float)
    if not np.isfinite(shift).all():
        msg = f"offsets must be finite numbers, got {given!r}"
        raise ConfigError(msg)
    weight = float(quality_weight)

    def prior(context: Context) -> dict[str, float]:
        quality = scorer.predict_quality([context.query])[0]
        reward = np.clip(weight * quality + shift, 0.0, 1.0)
        return dict(zip(models, reward.tolist(), strict=True))

    return prior
