"""Zooter: distil per-model scores into a router that picks one model per query.

Lu et al. (NAACL 2024; algorithm notes §4). For each training query the models' scores
(the recorded quality, or with ``fit(..., rewards=...)`` a reward model's raw scores on any
real scale, as in the paper) become silver labels by a softmax across the models with
temperature ``tau``: ``s(q) = softmax(score / tau)`` (the paper: ``tau = 1``, the plain
softmax of the raw rewards). Tag-based label
enhancement then mixes each label with the mean label of the query's tags:
``s*(q) = beta * s(q) + (1 - beta) * mean over tags t of s_t`` (tags from the data's task
column or a user tagger; they are used for training only). A softmax router ``Z(q)`` (a
numpy MLP or linear model on text features; the paper fine-tunes mDeBERTa) is trained to
minimise ``KL(s* || Z)`` (the usual distillation direction; ``loss="reverse_kl"`` gives
``KL(Z || s*)``). Quality-only routing takes ``argmax_k Z(q)_k``.

The router's output is a distribution over models, not a quality. For cost-aware routing
we map it to per-model quality with a ridge regression of the recorded qualities on
``[log Z(q), 1]``, fitted on the training queries (on out-of-fold outputs with
``calibration="cross_fit"``): with coarse tags and ``beta`` near 0, ``Z`` is close to a
mixture of the tags' label vectors, which this map sends back to the tags' mean qualities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np

from pickllm.errors import ConfigError
from pickllm.learn.base import Calibration, QueryScorer, Tagger
from pickllm.learn.calibration import Stacker
from pickllm.learn.featurizers import Featurizer, TagsLike
from pickllm.learn.models import SoftLoss
from pickllm.types import SeedLike

__all__ = ["Zooter", "soft_labels"]


def soft_labels(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(scores / temperature)``: Zooter's silver labels.

    Examples:
        >>> soft_labels(np.array([[1.0, 0.0]]), 0.5).round(4).tolist()
        [[0.8808, 0.1192]]
    """
    z = np.asarray(scores, dtype=float) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class Zooter(QueryScorer):
    """Reward-guided routing by distillation of soft labels into a softmax router.

    Args:
        temperature: softmax temperature ``tau`` of the silver labels (the paper: 1).
        loss: ``"forward_kl"`` (``KL(s* || Z)``) or ``"reverse_kl"`` (``KL(Z || s*)``).
        tag_beta: weight ``beta`` of a query's own label against its tags' mean label
            (1 disables the enhancement). The paper's best was 0.3 with fine-grained
            InsTag tags. With one coarse task tag per query, 0.3 routed to the right
            model less often than 0 on a held-out train fold of both bundled data sets
            (quality-only accuracy 86.40% against 86.98% and 68.67% against 68.89%, mean
            of 2 seeds; mean reward within 0.001; ``benchmarks/zooter_beta.py
            --validate``), hence the default 0.
        featurizer: see :class:`~pickllm.learn.base.QueryScorer`.
        learner: ``"mlp"`` or ``"logistic"`` (softmax outputs either way).
        hidden: MLP hidden width.
        learning_rate: Adam step size (None: the learner's default).
        weight_decay: decoupled weight decay.
        max_epochs: epochs at most (early stopping on a validation split).
        ensemble: learners averaged.
        tags_as_features: append the tags to the features.
        turns_as_features: append the number of conversation turns to the features.
        tagger: tags from text when none are given (Zooter used InsTag).
        calibration: where the output-to-quality map is fitted: ``"none"`` on in-sample
            outputs, ``"cross_fit"`` on out-of-fold ones.
        cv_folds: folds for cross-fitting.
        seed: seeds every learner.

    Examples:
        >>> texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
        >>> quality = np.array([[1, 0], [1, 0], [0, 1], [0, 1]] * 10, dtype=float)
        >>> z = Zooter(learner="logistic", learning_rate=0.1, temperature=0.2, seed=0)
        >>> z = z.fit(texts, quality, ["math-model", "poet-model"])
        >>> z.route(["add 7 and 8", "write a sonnet"]).tolist()
        [0, 1]
    """

    kind: ClassVar[str] = "zooter"
    _output = "softmax"

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        loss: SoftLoss = "forward_kl",
        tag_beta: float = 0.0,
        featurizer: Featurizer | None = None,
        learner: Literal["mlp", "logistic"] = "mlp",
        hidden: int = 128,
        learning_rate: float | None = None,
        weight_decay: float = 1e-4,
        max_epochs: int = 60,
        ensemble: int = 5,
        tags_as_features: bool = False,
        turns_as_features: bool = False,
        tagger: Tagger | None = None,
        calibration: Calibration = "none",
        cv_folds: int = 5,
        seed: SeedLike = 0,
    ) -> None:
        super().__init__(
            featurizer=featurizer,
            learner=learner,
            hidden=hidden,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            max_epochs=max_epochs,
            ensemble=ensemble,
            tag_beta=tag_beta,
            tags_as_features=tags_as_features,
            turns_as_features=turns_as_features,
            tagger=tagger,
            calibration=calibration,
            cv_folds=cv_folds,
            seed=seed,
        )
        if (
            not isinstance(temperature, int | float)
            or isinstance(temperature, bool)
            or not temperature > 0
            or not np.isfinite(temperature)
        ):
            msg = f"temperature must be a finite number > 0, got {temperature!r}"
            raise ConfigError(msg)
        if loss not in ("forward_kl", "reverse_kl"):
            msg = f"loss must be 'forward_kl' or 'reverse_kl', got {loss!r}"
            raise ConfigError(msg)
        self.temperature = temperature
        self.loss: SoftLoss = loss
        # The silver labels of the fit under way when it was given raw rewards.
        self._silver: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as given."""
        return {"temperature": self.temperature, "loss": self.loss, **super().get_params()}

    def fit(
        self,
        texts: Sequence[str],
        quality: np.ndarray | None,
        models: Sequence[str],
        *,
        rewards: np.ndarray | None = None,
        tags: TagsLike | None = None,
        cost: np.ndarray | None = None,
        input_tokens: Sequence[int] | np.ndarray | None = None,
    ) -> Self:
        """Train on recorded outcomes, or on a reward model's raw scores.

        Args:
            texts: the ``n`` training queries.
            quality: ``(n, k)`` quality in [0, 1] of every model on every query: the
                scores of the silver labels unless ``rewards`` is given, and what the
                cost-aware output-to-quality map predicts. None (with ``rewards``): the
                rewards min-max scaled to [0, 1] over the whole table stand in for it.
            models: the ``k`` model names.
            rewards: ``(n, k)`` raw reward-model scores, any finite real numbers: the
                silver labels are ``softmax(rewards / temperature)`` across the models of
                each query, as the paper distils its reward model (no other scaling).
            tags: per query, its tag(s) (e.g. the task); None uses ``tagger`` if set.
            cost: ``(n, k)`` USD per call, to fit the cost model (None: cost-free routing).
            input_tokens: ``(n,)`` prompt tokens (None: estimated from the text).

        Raises:
            ConfigError: shapes disagree, rewards that are not finite, neither quality
                nor rewards, or ``tags_as_features`` without any tags.

        Examples:
            >>> texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
            >>> scores = np.array([[4.1, -2.0], [3.5, -1.0], [-3.0, 2.2], [-2.5, 5.0]] * 10)
            >>> z = Zooter(learner="logistic", learning_rate=0.1, seed=0)
            >>> z = z.fit(texts, None, ["math-model", "poet-model"], rewards=scores)
            >>> z.route(["add 7 and 8", "write a sonnet"]).tolist()
            [0, 1]
        """
        texts = list(texts)
        if rewards is None:
            if quality is None:
                msg = "Zooter.fit needs quality or rewards (raw reward-model scores), got neither"
                raise ConfigError(msg)
            return super().fit(
                texts, quality, models, tags=tags, cost=cost, input_tokens=input_tokens
            )
        r = np.asarray(rewards, dtype=float)
        if r.shape != (len(texts), len(models)):
            msg = (
                f"rewards must be (n, k) = ({len(texts)}, {len(models)}) (queries, models), "
                f"got {r.shape}"
            )
            raise ConfigError(msg)
        if not np.isfinite(r).all():
            msg = "rewards must be finite numbers (found NaN or an infinity)"
            raise ConfigError(msg)
        if quality is None:
            low, high = float(r.min()), float(r.max())
            quality = (r - low) / (high - low) if high > low else np.full_like(r, 0.5)
        self._silver = soft_labels(r, self.temperature)
        try:
            return super().fit(
                texts, quality, models, tags=tags, cost=cost, input_tokens=input_tokens
            )
        finally:
            self._silver = None

    # ------------------------------------------------------------------ hooks
    def _learner_loss(self) -> SoftLoss:
        return self.loss

    def _targets(self, quality: np.ndarray) -> np.ndarray:
        if self._silver is not None:
            return self._silver
        return soft_labels(quality, self.temperature)

    def _fit_stacker(self, output: np.ndarray, quality: np.ndarray) -> None:
        self._stacker = Stacker(transform="log").fit(output, quality)

    def _quality_from_output(self, output: np.ndarray) -> np.ndarray:
        if self._stacker is None:  # pragma: no cover - always fitted with the learners
            return output
        return self._stacker.predict(output)

    # ------------------------------------------------------------------ routing
    def distribution(self, texts: Sequence[str], *, tags: TagsLike | None = None) -> np.ndarray:
        """``Z(q)``: the router's distribution over the models, (m, k)."""
        return self.output(texts, tags=tags)

    def routing_quality(
        self, texts: Sequence[str], *, lam: float = 0.0, tags: TagsLike | None = None
    ) -> np.ndarray:
        """``Z(q)`` when ``lam == 0`` (Zooter's own arg-max rule), else calibrated quality."""
        if lam == 0.0:
            return self.distribution(texts, tags=tags)
        return self.predict_quality(texts, tags=tags)
