"""Trained cascade estimators: fitted from recorded outcomes, saved as JSON, used live.

:func:`fit_learned_estimator` fits the post-hoc model, the covariance of the ex-ante
estimates and the cost model on some rows of an outcome table (the bench and
``pickllm train --cascade`` use it). :class:`TrainedCascadeEstimator` puts a trained query
scorer and those parts behind the :class:`~pickllm.cascade.live.LiveEstimator` interface,
and :func:`load_estimator` reads one saved by ``pickllm train --policy zooter --cascade``
(the scorer's JSON + npz and ``cascade_estimator.json``, in one directory).

Live there is no task label, so the estimator uses its all-task post-hoc weights and
covariance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pickllm.cascade.answers import Answer, read_answer
from pickllm.cascade.estimators import (
    LearnedEstimator,
    PostHocModel,
    TokenCostModel,
    load_estimator_state,
    residual_covariance,
    save_estimator_state,
)
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.learn.base import QueryScorer

__all__ = [
    "TrainedCascadeEstimator",
    "fit_learned_estimator",
    "load_estimator",
    "save_estimator",
]


def _answers(table: OutcomeTable) -> list[list[Answer]]:
    if table.responses is None:
        msg = f"{table.name}: the learned cascade estimators need recorded responses"
        raise ConfigError(msg)
    return [[read_answer(text) for text in row] for row in table.responses]


def fit_learned_estimator(
    table: OutcomeTable,
    ante: np.ndarray,
    fit_rows: np.ndarray,
    *,
    answers: Sequence[Sequence[Answer]] | None = None,
    seed: int = 0,
) -> LearnedEstimator:
    """The learned estimators of every row, fitted on ``fit_rows``.

    Args:
        table: the outcomes (with costs and responses).
        ante: ``(n, k)`` ex-ante quality predictions for every row (out of fold on
            ``fit_rows``).
        fit_rows: the rows the post-hoc model, the covariance and the cost model learn from.
        answers: pre-read answers (default: read from the table's responses).
        seed: the post-hoc model's draws of run sets.
    """
    if table.cost is None:
        msg = f"{table.name}: the cascade bench needs costs"
        raise ConfigError(msg)
    answers = _answers(table) if answers is None else answers
    rows = np.asarray(fit_rows, dtype=np.intp)
    tasks = list(table.tasks)
    fit_tasks = [tasks[i] for i in rows.tolist()]
    posthoc = PostHocModel(seed=seed).fit(
        [answers[i] for i in rows.tolist()], ante[rows], table.quality[rows], fit_tasks
    )
    # The paper's Sigma: the covariance of (estimate now - estimate with every model run),
    # here of the ex-ante estimates against the post-hoc ones with all answers seen; the
    # measurement noise of a post-hoc estimate seen early is its spread around the latter.
    k = table.n_models
    every = tuple(range(k))
    full = np.empty((rows.size, k))
    early: list[float] = []
    for r, i in enumerate(rows.tolist()):
        row: list[Answer | None] = list(answers[i])
        full[r] = [posthoc.predict(j, row, every, ante[i], tasks[i]) for j in every]
        early.extend(posthoc.predict(j, row, (j,), ante[i], tasks[i]) - full[r, j] for j in every)
    cost_model = TokenCostModel().fit(table.cost[rows], table.input_tokens[rows], fit_tasks)
    return LearnedEstimator(
        ante=ante,
        cost_ante=cost_model.predict(table.input_tokens, tasks),
        cost=np.asarray(table.cost),
        answers=answers,
        tasks=tasks,
        posthoc=posthoc,
        covariance=residual_covariance(full, ante[rows], fit_tasks),
        post_variance=float(np.mean(np.square(early))),
        cost_model=cost_model,
    )


class TrainedCascadeEstimator:
    """A trained query scorer plus the cascade's post-hoc model, covariance and costs.

    Args:
        scorer: the trained query scorer (ex-ante quality per model).
        posthoc: the post-hoc model.
        covariance: the ex-ante estimates' covariance per task (``"*"``: all tasks).
        post_variance: the post-hoc estimates' noise.
        cost_model: the ex-ante cost model, or None (prices and tokens then).
    """

    def __init__(
        self,
        scorer: QueryScorer,
        posthoc: PostHocModel,
        covariance: dict[str, np.ndarray],
        post_variance: float,
        cost_model: TokenCostModel | None = None,
    ) -> None:
        self.scorer = scorer
        self.posthoc = posthoc
        self.covariance = covariance
        self.post_variance = post_variance
        self.cost_model = cost_model
        self.models = tuple(scorer.models)

    def _columns(self, names: Sequence[str]) -> list[int]:
        index = {m: j for j, m in enumerate(self.models)}
        missing = [n for n in names if n not in index]
        if missing:
            msg = f"the cascade estimator knows {list(self.models)}, not {missing}"
            raise ConfigError(msg)
        return [index[n] for n in names]

    def ex_ante(
        self, query: str, names: Sequence[str], prompt_tokens: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Ex-ante quality, its covariance and cost for the models called ``names``."""
        cols = self._columns(names)
        pred = self.scorer.predict([query], input_tokens=[prompt_tokens])
        q = np.clip(np.asarray(pred.quality, dtype=float)[0, cols], 0.0, 1.0)
        sigma = self.covariance["*"][np.ix_(cols, cols)]
        cost = None
        if self.cost_model is not None:
            cost = self.cost_model.predict(np.array([prompt_tokens]), ["*"])[0, cols]
        return q, sigma, cost

    def post_hoc(
        self,
        model: int,
        answers: Sequence[Answer | None],
        run: Sequence[int],
        ante: np.ndarray,
    ) -> float:
        """The post-hoc estimate of ``model``'s answer given the answers of ``run``."""
        return self.posthoc.predict(model, answers, run, ante, None)


def save_estimator(
    estimator: LearnedEstimator, models: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """Save the trained parts of ``estimator`` next to a saved scorer in ``path``."""
    return save_estimator_state(
        path,
        posthoc=estimator.posthoc,
        covariance=estimator.covariance,
        post_variance=estimator.post_variance,
        cost_model=estimator.cost_model,
        models=models,
    )


def load_estimator(path: str | os.PathLike[str]) -> TrainedCascadeEstimator:
    """Load a cascade estimator saved by ``pickllm train --policy zooter --cascade``.

    Raises:
        StateError: missing or malformed files.
    """
    from pickllm.learn.api import load_trained

    posthoc, covariance, post_variance, cost_model, models = load_estimator_state(path)
    scorer = load_trained(path)
    if tuple(scorer.models) != models:
        msg = f"{path}: the scorer's models {list(scorer.models)} differ from the estimator's"
        raise ConfigError(msg)
    return TrainedCascadeEstimator(scorer, posthoc, covariance, post_variance, cost_model)
