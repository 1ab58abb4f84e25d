"""A trained SelectLLM or Zooter query scorer as a :class:`~pickllm.policies.Policy`.

:class:`LearnedPolicy` scores the offered candidates (matched to the scorer's models by
name) from ``Context.query``: quality-only routing by default, ``q - lam * c`` with a
fixed ``lam``, or with ``lam`` fitted to an average-cost ``budget`` on the scorer's
training data (ties mixed with the policy's seeded Generator, so the budget holds in
expectation). With ``subset_size > 1`` a SelectLLM scorer returns an ensemble plan: the
subset its selection rule picks among the offered candidates, run concurrently by the
executor and combined by :meth:`LearnedPolicy.aggregate`.

The policy does not learn online: the scorer was trained offline (``update`` is a no-op
apart from counting calls). Candidates the scorer was not trained on rank last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from pickllm.costaware import LambdaFit
from pickllm.errors import ConfigError, StateError
from pickllm.learn.base import QueryScorer
from pickllm.learn.selectllm import SelectLLM, select_subset
from pickllm.policies.base import Choice, Policy
from pickllm.pricing import estimate_tokens
from pickllm.types import Context, Decision, SeedLike

__all__ = ["LearnedPolicy"]


class LearnedPolicy(Policy):
    """Route with a trained SelectLLM or Zooter query scorer.

    Args:
        scorer: a trained :class:`~pickllm.learn.QueryScorer`, or the directory it was
            saved to (loaded on first use; a path keeps the policy's configuration
            JSON-ready for ``Router.save``).
        lam: cost penalty: pick the arg-max of ``q - lam * c`` (USD), 0 for quality only.
        budget: average USD per query to spend; fits ``lam`` on the scorer's training
            data (overrides ``lam``; needs a scorer trained with cost).
        subset_size: models run per query; above 1, SelectLLM's selection rule picks an
            ensemble among the offered candidates.
        seed: the Generator of the budget's tie mixing.

    Examples:
        >>> import numpy as np
        >>> from pickllm import Candidate, Context
        >>> from pickllm.learn import SelectLLM
        >>> texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
        >>> quality = np.array([[1, 0], [1, 0], [0, 1], [0, 1]] * 10, dtype=float)
        >>> scorer = SelectLLM(learner="logistic", learning_rate=0.1, seed=0)
        >>> scorer = scorer.fit(texts, quality, ["math", "poet"])
        >>> policy = LearnedPolicy(scorer=scorer, seed=0)
        >>> pool = (Candidate(name="math"), Candidate(name="poet"))
        >>> policy.select(Context(query="write a limerick", candidates=pool)).candidate.name
        'poet'
    """

    name: ClassVar[str] = "learned"
    contextual: ClassVar[bool] = True
    learning: ClassVar[bool] = False
    blocking = True

    def __init__(
        self,
        *,
        scorer: str | QueryScorer,
        lam: float = 0.0,
        budget: float | None = None,
        subset_size: int = 1,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed=seed)
        if not isinstance(scorer, str | QueryScorer):
            msg = f"scorer must be a trained QueryScorer or a directory path, got {scorer!r}"
            raise TypeError(msg)
        if isinstance(scorer, QueryScorer) and not scorer.fitted:
            msg = "scorer must be trained (call fit() first)"
            raise ConfigError(msg)
        if not isinstance(lam, int | float) or isinstance(lam, bool) or not (lam >= 0):
            msg = f"lam must be a number >= 0, got {lam!r}"
            raise ConfigError(msg)
        if budget is not None and (
            not isinstance(budget, int | float) or isinstance(budget, bool) or not budget >= 0
        ):
            msg = f"budget must be None or a number of USD >= 0, got {budget!r}"
            raise ConfigError(msg)
        if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
            msg = f"subset_size must be an int >= 1, got {subset_size!r}"
            raise ConfigError(msg)
        self.scorer = scorer
        self.lam = lam
        self.budget = budget
        self.subset_size = subset_size
        self._scorer: QueryScorer | None = scorer if isinstance(scorer, QueryScorer) else None
        self._fit: LambdaFit | None = None
        self._calls = 0

    # ------------------------------------------------------------------ loading
    @property
    def trained(self) -> QueryScorer:
        """The scorer (loaded from ``scorer`` if that is a path)."""
        if self._scorer is None:
            from pickllm.learn.api import load_trained

            self._scorer = load_trained(os.fspath(self.scorer))  # type: ignore[arg-type]
        return self._scorer

    def _lambda_fit(self) -> LambdaFit | None:
        if self.budget is None:
            return None
        if self._fit is None:
            self._fit = self.trained.fit_budget(float(self.budget))
        return self._fit

    # ------------------------------------------------------------------ hooks
    def _select(self, context: Context) -> Choice:
        scorer = self.trained
        cands = context.candidates
        column = {m: j for j, m in enumerate(scorer.models)}
        known = [i for i, c in enumerate(cands) if c.name in column]
        if not known:
            # Nothing the scorer knows: the cheapest candidate, as a deterministic fallback.
            prices = [c.input_price + c.output_price for c in cands]
            return Choice(index=int(np.argmin(prices)), probability=1.0)
        cols = [column[cands[i].name] for i in known]
        text, tags = [context.query], [context.key]
        tokens = context.input_tokens
        if tokens is None:
            tokens = estimate_tokens(context.query)
        cost = scorer.predict_cost(text, input_tokens=[tokens])[0][cols]
        if self.subset_size > 1 and isinstance(scorer, SelectLLM):
            return self._ensemble(scorer, text, tags, known=known, cols=cols, n=len(cands))
        fit = self._lambda_fit()
        lam = float(self.lam) if fit is None else fit.lam
        value = scorer.routing_quality(text, lam=lam, tags=tags)[0][cols] - lam * cost
        pick, probability = _best(value, cost), 1.0
        if fit is not None and fit.gamma > 0.0 and fit.lam_expensive != fit.lam:
            # The other side of the tie mixing: routing at the other end of the bracket.
            lam2 = fit.lam_expensive
            value2 = scorer.routing_quality(text, lam=lam2, tags=tags)[0][cols] - lam2 * cost
            other = _best(value2, cost)
            draw = self._rng.random()  # one draw per decision, wherever ties fall
            if other != pick:
                if draw < fit.gamma:
                    pick, probability = other, float(fit.gamma)
                else:
                    probability = float(1.0 - fit.gamma)
        scores = np.full(len(cands), float(value.min()) - 1.0)
        scores[known] = value
        self._calls += 1
        return Choice(index=known[pick], probability=probability, scores=scores.tolist())

    def _ensemble(
        self,
        scorer: SelectLLM,
        text: list[str],
        tags: list[str | None],
        *,
        known: list[int],
        cols: list[int],
        n: int,
    ) -> Choice:
        """SelectLLM's subset among the offered candidates, as an ensemble plan."""
        conf = scorer.confidence(text, tags=tags)[0][cols]
        chosen = select_subset(
            conf,
            self.subset_size,
            policy=scorer.selection,
            threshold=scorer.threshold,
            order_key=scorer.order_key()[cols],
        )
        scores = np.full(n, float(conf.min()) - 1.0)
        scores[known] = conf
        members = [known[j] for j in chosen]
        self._calls += 1
        if len(members) == 1:
            return Choice(index=members[0], probability=1.0, scores=scores.tolist())
        return Choice(
            index=members[0],
            probability=1.0,
            scores=scores.tolist(),
            members=members,
            kind="ensemble",
        )

    def _update(self, decision: Decision, reward: float) -> None:
        # Trained offline: nothing to learn from one reward.
        del decision, reward

    def _get_state(self) -> dict[str, Any]:
        return {"calls": self._calls}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        calls = state.get("calls")
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            msg = f"state 'calls' must be an int >= 0, got {calls!r}"
            raise StateError(msg)
        self._calls = calls

    # ------------------------------------------------------------------ ensembles
    def member_weights(self, decision: Decision) -> list[float]:
        """The confidence of each member of ``decision``'s plan (for a weighted vote)."""
        if decision.scores is None:
            return [1.0] * len(decision.members)
        by_name = {c.name: s for c, s in zip(decision.ranking, decision.scores, strict=True)}
        return [max(float(by_name.get(m.name, 0.0)), 0.0) for m in decision.members]

    def aggregate(self, answers: Sequence[str], weights: Sequence[float] | None = None) -> int:
        """Which answer of an ensemble plan wins: the index of a member that gave it.

        SelectLLM's vote over extracted answers (confidence-weighted for
        ``weighted_max_conf`` when ``weights`` are given, see :meth:`member_weights`);
        other scorers keep the first member's answer.
        """
        scorer = self.trained
        if not answers:
            msg = "aggregate() needs at least one answer, got none"
            raise ConfigError(msg)
        if not isinstance(scorer, SelectLLM):
            return 0
        return scorer.vote()(answers, weights)[1]


def _best(value: np.ndarray, cost: np.ndarray) -> int:
    """Arg-max of ``value``, the cheapest among (numerically) tied models."""
    top = float(value.max())
    tied = value >= top - 1e-12 * max(1.0, abs(top))
    return int(np.where(tied, cost, np.inf).argmin())
