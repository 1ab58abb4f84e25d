"""What SelectLLM and Zooter share: featurizing, training, calibration, cost, routing.

A :class:`QueryScorer` learns from recorded outcomes (every model run on every training
query) to predict, from the query text alone, each model's quality ``q(x)``; a small
:class:`CostModel` predicts each model's cost ``c(x)`` from the prompt's tokens. Routing
takes the arg-max of ``q - lam * c`` (:func:`pickllm.costaware.route_by_lambda`), with
``lam = 0`` for quality-only routing and ``lam`` fitted to an average-cost budget on the
training queries by :func:`pickllm.costaware.fit_lambda` (bisection plus the tie mixing of
the cascade-routing paper, so the budget is met exactly).

Subclasses define the learning target (SelectLLM: whether each model answers correctly;
Zooter: a softmax over the models' scores) and how the learner's output maps to quality.

Tags (task names, or the output of a user tagger) can be used in two independent ways:

* ``tag_beta < 1``, Zooter's tag-based label enhancement (tags for training only): the
  target of a query becomes ``beta * y + (1 - beta) * ybar_T``, with ``ybar_T`` the mean
  target of its tags. The loss is linear in the target, so the best predictor of that
  target is ``beta * E[y | x] + (1 - beta) * sum_t P(t | x) ybar_t``, and that is how we
  fit it: a *target head* learns ``E[y | x]`` and a *tag head* (a softmax over the tag
  vocabulary, targets uniform over each query's tags) learns ``P(t | x)``; the output
  mixes them with ``beta``. With ``beta = 0`` only the tag head is trained. On the
  bundled data this structured fit is more stable across seeds than training one learner
  on the smoothed targets (``llmrouter_9llm`` fold 0: 64.8-65.0% over five seeds,
  against 63.8-65.1%).
* ``tags_as_features=True`` appends a one-hot of the tags to the text features (then the
  scorer needs the tags at prediction time too). ``turns_as_features=True`` likewise
  appends the number of conversation turns (:class:`~pickllm.learn.ContextSignals`).

The parts live in their own modules: the learners and their training in
:mod:`pickllm.learn.heads`, the output-to-quality map and cross-fitting in
:mod:`pickllm.learn.calibration`, the cost model in :mod:`pickllm.learn.cost`, and the
saved state and its files in :mod:`pickllm.learn.state`.
"""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from pickllm.costaware import LambdaFit, apply, fit_lambda, route_by_lambda
from pickllm.errors import ConfigError, StateError
from pickllm.learn.calibration import Stacker, cross_fitted_output
from pickllm.learn.cost import CostModel, fit_cost_model, prompt_tokens
from pickllm.learn.featurizers import (
    ContextSignals,
    Featurizer,
    HashedNgramFeaturizer,
    TagsLike,
    normalise_tags,
)
from pickllm.learn.heads import Heads, make_learner, train_heads
from pickllm.learn.models import MLP, LogisticRegression, Output, SoftLoss
from pickllm.learn.state import decode_state, encode_state, write_scorer
from pickllm.types import SeedLike

__all__ = [
    "Calibration",
    "CostModel",
    "Prediction",
    "QueryScorer",
    "Tagger",
    "TagsLike",
    "normalise_tags",
]

Tagger = Callable[[str], "Sequence[str]"]
"""A user tagger: the tags of a query text (Zooter used the InsTag instruction tagger)."""

Calibration = Literal["none", "cross_fit"]

_PARAMS = (
    "featurizer",
    "learner",
    "hidden",
    "learning_rate",
    "weight_decay",
    "max_epochs",
    "ensemble",
    "tag_beta",
    "tags_as_features",
    "turns_as_features",
    "tagger",
    "calibration",
    "cv_folds",
    "seed",
)
"""The hyperparameters of every scorer, in ``__init__`` order."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted quality and cost of every model for a batch of queries.

    Args:
        quality: ``(m, k)`` predicted quality in [0, 1].
        cost: ``(m, k)`` predicted cost in USD (zeros when trained without cost).
        models: the ``k`` model names (column order).
    """

    quality: np.ndarray
    cost: np.ndarray
    models: tuple[str, ...]


def _check_unit(name: str, value: object) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        msg = f"{name} must be a number in [0, 1], got {value!r}"
        raise ConfigError(msg)
    return float(value)


def _check_params(
    *,
    featurizer: object,
    learner: object,
    hidden: object,
    max_epochs: object,
    ensemble: object,
    cv_folds: object,
    learning_rate: object,
    weight_decay: object,
    tag_beta: object,
    tagger: object,
    calibration: object,
    seed: object,
) -> None:
    """Validate a scorer's hyperparameters; the messages name the parameter and value."""
    if featurizer is not None and not isinstance(featurizer, Featurizer):
        msg = f"featurizer must follow the Featurizer protocol, got {type(featurizer).__name__}"
        raise TypeError(msg)
    if learner not in ("mlp", "logistic"):
        msg = f"learner must be 'mlp' or 'logistic', got {learner!r}"
        raise ConfigError(msg)
    for pname, value, low in (
        ("hidden", hidden, 1),
        ("max_epochs", max_epochs, 1),
        ("ensemble", ensemble, 1),
        ("cv_folds", cv_folds, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            msg = f"{pname} must be an int >= {low}, got {value!r}"
            raise ConfigError(msg)
    if learning_rate is not None and (
        not isinstance(learning_rate, int | float)
        or isinstance(learning_rate, bool)
        or not learning_rate > 0
    ):
        msg = f"learning_rate must be None or a number > 0, got {learning_rate!r}"
        raise ConfigError(msg)
    if (
        not isinstance(weight_decay, int | float)
        or isinstance(weight_decay, bool)
        or not weight_decay >= 0
    ):
        msg = f"weight_decay must be a number >= 0, got {weight_decay!r}"
        raise ConfigError(msg)
    _check_unit("tag_beta", tag_beta)
    if tagger is not None and not callable(tagger):
        msg = f"tagger must be None or a callable text -> tags, got {tagger!r}"
        raise TypeError(msg)
    if calibration not in ("none", "cross_fit"):
        msg = f"calibration must be 'none' or 'cross_fit', got {calibration!r}"
        raise ConfigError(msg)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
    ):
        msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
        raise TypeError(msg)


def _check_quality(quality: np.ndarray, n: int, models: Sequence[str]) -> np.ndarray:
    q = np.asarray(quality, dtype=float)
    k = len(models)
    if q.ndim != 2 or q.shape != (n, k) or n == 0 or k == 0:
        msg = f"quality must be (n, k) = ({n}, {k}) with n, k >= 1, got {q.shape}"
        raise ConfigError(msg)
    if len(set(models)) != k:
        msg = f"model names must be unique, got {list(models)!r}"
        raise ConfigError(msg)
    if not np.all((q >= 0) & (q <= 1)):
        msg = "quality must be in [0, 1] everywhere (found a value outside or NaN)"
        raise ConfigError(msg)
    return q


class QueryScorer(ABC):
    """Base of the query scorers (SelectLLM, Zooter); see the module docstring.

    Args:
        featurizer: turns texts into features; default
            ``HashedNgramFeaturizer(components=256)``.
        learner: ``"mlp"`` (one hidden ReLU layer) or ``"logistic"`` (linear).
        hidden: hidden width of the MLP.
        learning_rate: Adam step size (None: 0.003 for the MLP, 0.01 for logistic).
        weight_decay: decoupled weight decay.
        max_epochs: upper bound on training epochs (early stopping on a 10% split).
        ensemble: learners trained with different seeds and averaged (5 steadies the
            per-query estimates at a few tenths of a second of training each).
        tag_beta: weight of each query's own target against its tags' mean target
            (1: no label enhancement).
        tags_as_features: append a one-hot of the tags to the text features.
        turns_as_features: append ``log1p`` of the number of conversation turns.
        tagger: computes tags from the text when none are given.
        calibration: ``"cross_fit"`` fits the output-to-quality map on out-of-fold
            predictions of ``cv_folds`` extra learners (more robust, slower); ``"none"``
            uses the learner's in-sample predictions (see each scorer for what it means).
        cv_folds: folds for ``calibration="cross_fit"``.
        seed: seeds the learners (and the featurizer's projection).
    """

    kind: ClassVar[str] = ""
    _output: ClassVar[Output] = "sigmoid"

    def __init__(
        self,
        *,
        featurizer: Featurizer | None = None,
        learner: Literal["mlp", "logistic"] = "mlp",
        hidden: int = 128,
        learning_rate: float | None = None,
        weight_decay: float = 1e-4,
        max_epochs: int = 60,
        ensemble: int = 5,
        tag_beta: float = 1.0,
        tags_as_features: bool = False,
        turns_as_features: bool = False,
        tagger: Tagger | None = None,
        calibration: Calibration = "none",
        cv_folds: int = 5,
        seed: SeedLike = 0,
    ) -> None:
        _check_params(
            featurizer=featurizer,
            learner=learner,
            hidden=hidden,
            max_epochs=max_epochs,
            ensemble=ensemble,
            cv_folds=cv_folds,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            tag_beta=tag_beta,
            tagger=tagger,
            calibration=calibration,
            seed=seed,
        )
        self.featurizer = featurizer
        self.learner = learner
        self.hidden = hidden
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.ensemble = ensemble
        self.tag_beta = tag_beta
        self.tags_as_features = tags_as_features
        self.turns_as_features = turns_as_features
        self.tagger = tagger
        self.calibration = calibration
        self.cv_folds = cv_folds
        self.seed = seed
        # Every learner's seed derives from this one number, so a fit is reproducible.
        self._base_seed = (
            seed
            if isinstance(seed, int) and seed >= 0
            else int(np.random.default_rng(seed).integers(2**31 - 1))
        )
        self._featurizer: Featurizer | None = None
        self._signals: ContextSignals | None = None
        self._heads = Heads()
        self._tag_vocab: tuple[str, ...] = ()
        self._stacker: Stacker | None = None
        self._cost_model: CostModel | None = None
        self._models: tuple[str, ...] = ()
        self._train_quality: np.ndarray | None = None
        self._train_cost: np.ndarray | None = None
        self._summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _targets(self, quality: np.ndarray) -> np.ndarray:
        """The learner's training target for each query, from the models' qualities."""

    @abstractmethod
    def _quality_from_output(self, output: np.ndarray) -> np.ndarray:
        """Predicted quality (m, k) from the averaged learner output (m, k)."""

    @abstractmethod
    def _fit_stacker(self, output: np.ndarray, quality: np.ndarray) -> None:
        """Fit the output-to-quality map (``output`` in-sample or cross-fitted)."""

    # ------------------------------------------------------------------ properties
    @property
    def models(self) -> tuple[str, ...]:
        """The model names, in column order (empty before ``fit``)."""
        return self._models

    @property
    def fitted(self) -> bool:
        """Whether the scorer has been trained (or loaded)."""
        return bool(self._heads.target or self._heads.tag)

    @property
    def summary(self) -> Mapping[str, Any]:
        """Training summary: sizes, epochs, timings (JSON-ready)."""
        return dict(self._summary)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as given (featurizer and tagger objects included)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def __repr__(self) -> str:
        shown = {
            k: v
            for k, v in self.get_params().items()
            if k not in ("featurizer", "tagger") or v is not None
        }
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: Sequence[str],
        quality: np.ndarray,
        models: Sequence[str],
        *,
        tags: TagsLike | None = None,
        cost: np.ndarray | None = None,
        input_tokens: Sequence[int] | np.ndarray | None = None,
    ) -> Self:
        """Train on recorded outcomes.

        Args:
            texts: the ``n`` training queries.
            quality: ``(n, k)`` quality in [0, 1] of every model on every query.
            models: the ``k`` model names.
            tags: per query, its tag(s) (e.g. the task); None uses ``tagger`` if set.
            cost: ``(n, k)`` USD per call, to fit the cost model (None: cost-free routing).
            input_tokens: ``(n,)`` prompt tokens (None: estimated from the text).

        Raises:
            ConfigError: shapes disagree, or ``tags_as_features`` without any tags.
        """
        t0 = time.perf_counter()
        texts = list(texts)
        q = _check_quality(quality, len(texts), models)
        tag_rows = self._resolve_tags(texts, tags)
        if self.tags_as_features and not any(tag_rows):
            msg = "tags_as_features=True needs tags (pass tags=... or a tagger)"
            raise ConfigError(msg)
        featurizer = self.featurizer if self.featurizer is not None else self._default_featurizer()
        featurizer.fit(texts)
        self._featurizer = featurizer
        x = featurizer.transform(texts)
        self._signals = None
        if self.tags_as_features or self.turns_as_features:
            self._signals = ContextSignals(
                tags=self.tags_as_features, turns=self.turns_as_features
            ).fit(texts, tag_rows)
            x = np.hstack([x, self._signals.transform(texts, tag_rows)])
        t_feat = time.perf_counter() - t0
        y = self._targets(q)
        self._models = tuple(str(m) for m in models)
        self._tag_vocab = tuple(sorted({t for row in tag_rows for t in row}))
        self._heads = self._train(x, y, tag_rows, self._base_seed)
        self._calibrate(x, y, tag_rows, q)
        self._cost_model, self._train_cost = fit_cost_model(texts, q, cost, input_tokens)
        self._summary = {
            "n_train": len(texts),
            "n_models": len(self._models),
            "feature_dim": int(x.shape[1]),
            "epochs": self._heads.epochs,
            "tags": len(self._tag_vocab),
            "featurize_s": round(t_feat, 3),
            "train_s": round(time.perf_counter() - t0, 3),
        }
        return self

    def _calibrate(
        self, x: np.ndarray, y: np.ndarray, tag_rows: Sequence[tuple[str, ...]], q: np.ndarray
    ) -> None:
        """Fit the output-to-quality map, on out-of-fold outputs with cross-fitting."""
        if self.calibration == "cross_fit":
            output = cross_fitted_output(
                x, y, tag_rows, folds=self.cv_folds, seed=self._base_seed, train=self._train
            )
        else:
            output = self._heads.output(x)
        self._fit_stacker(output, q)
        self._train_quality = self._quality_from_output(output)

    def _default_featurizer(self) -> HashedNgramFeaturizer:
        return HashedNgramFeaturizer(components=256, seed=self._base_seed)

    def _resolve_tags(self, texts: Sequence[str], tags: TagsLike | None) -> list[tuple[str, ...]]:
        if tags is None and self.tagger is not None:
            return [tuple(self.tagger(t)) for t in texts]
        return normalise_tags(tags, len(texts))

    def _make_learner(self, seed: int, output: Output | None = None) -> LogisticRegression | MLP:
        return make_learner(
            self.learner,
            output=self._output if output is None else output,
            loss=self._learner_loss() if output is None else "forward_kl",
            hidden=self.hidden,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            seed=seed,
        )

    def _learner_loss(self) -> SoftLoss:
        return "forward_kl"

    def _train(
        self, x: np.ndarray, y: np.ndarray, tag_rows: Sequence[tuple[str, ...]], seed: int
    ) -> Heads:
        return train_heads(
            x,
            y,
            tag_rows,
            seed=seed,
            tag_vocab=self._tag_vocab,
            tag_beta=self.tag_beta,
            ensemble=self.ensemble,
            make=self._make_learner,
        )

    # ------------------------------------------------------------------ prediction
    def _require_fitted(self) -> None:
        if not self.fitted or self._featurizer is None:
            msg = f"{type(self).__name__} is not trained: call fit() first"
            raise StateError(msg)

    def features(self, texts: Sequence[str], *, tags: TagsLike | None = None) -> np.ndarray:
        """The learner's input for ``texts`` (text features plus tag columns if used)."""
        self._require_fitted()
        if self._featurizer is None:  # pragma: no cover - checked above
            msg = "not fitted"
            raise StateError(msg)
        texts = list(texts)
        x = self._featurizer.transform(texts)
        if self._signals is not None:
            x = np.hstack([x, self._signals.transform(texts, self._resolve_tags(texts, tags))])
        return x

    def output(self, texts: Sequence[str], *, tags: TagsLike | None = None) -> np.ndarray:
        """The learners' raw output (m, k): the ensemble mean, heads mixed by ``tag_beta``."""
        return self._heads.output(self.features(texts, tags=tags))

    def predict_quality(self, texts: Sequence[str], *, tags: TagsLike | None = None) -> np.ndarray:
        """Predicted quality (m, k) of every model on ``texts``."""
        return self._quality_from_output(self.output(texts, tags=tags))

    def predict_cost(
        self, texts: Sequence[str], *, input_tokens: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Predicted cost (m, k) in USD (zeros if trained without cost)."""
        self._require_fitted()
        texts = list(texts)
        if self._cost_model is None:
            return np.zeros((len(texts), len(self._models)))
        return self._cost_model.predict(prompt_tokens(texts, input_tokens))

    def predict(
        self,
        texts: Sequence[str],
        *,
        tags: TagsLike | None = None,
        input_tokens: Sequence[int] | np.ndarray | None = None,
    ) -> Prediction:
        """Predicted quality and cost of every model on ``texts``."""
        texts = list(texts)
        return Prediction(
            quality=self.predict_quality(texts, tags=tags),
            cost=self.predict_cost(texts, input_tokens=input_tokens),
            models=self._models,
        )

    def routing_quality(
        self, texts: Sequence[str], *, lam: float = 0.0, tags: TagsLike | None = None
    ) -> np.ndarray:
        """The per-model values :meth:`route` trades off against ``lam`` times cost.

        That is the predicted quality, except for Zooter's quality-only routing (``lam == 0``),
        which ranks by the scorer's own distribution.
        """
        del lam
        return self.predict_quality(texts, tags=tags)

    def route(
        self,
        texts: Sequence[str],
        *,
        lam: float = 0.0,
        tags: TagsLike | None = None,
        input_tokens: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Model index per query: arg-max of ``q - lam * c`` (cheapest on ties)."""
        texts = list(texts)
        q = self.routing_quality(texts, lam=lam, tags=tags)
        c = self.predict_cost(texts, input_tokens=input_tokens)
        return route_by_lambda(q, c, lam)

    def fit_budget(self, budget: float) -> LambdaFit:
        """Fit ``lam`` and the tie mixing to an average cost of ``budget`` USD per query.

        The fit uses the predictions for the training queries (cross-fitted ones with
        ``calibration="cross_fit"``), so the expected predicted cost there equals the budget.

        Raises:
            StateError: the scorer was trained without cost.
        """
        self._require_fitted()
        if self._cost_model is None or self._train_quality is None or self._train_cost is None:
            msg = "fit_budget needs a scorer trained with cost=..."
            raise StateError(msg)
        return fit_lambda(self._train_quality, self._train_cost, budget)

    def route_budget(
        self,
        texts: Sequence[str],
        fit: LambdaFit,
        *,
        rng: np.random.Generator,
        tags: TagsLike | None = None,
        input_tokens: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Model index per query under a fitted budget rule (ties mixed with ``rng``)."""
        p = self.predict(texts, tags=tags, input_tokens=input_tokens)
        return apply(fit, p.quality, p.cost, rng)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the trained scorer into the directory ``path`` (JSON + npz).

        Load it back with :func:`pickllm.learn.load_trained`.
        """
        meta, arrays = self.get_state()
        return write_scorer(meta, arrays, path)

    def training_predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Quality and cost predicted for the training queries, as :meth:`fit_budget` uses.

        The quality is cross-fitted when ``calibration="cross_fit"``.
        """
        self._require_fitted()
        if self._train_quality is None or self._train_cost is None:  # pragma: no cover
            msg = "no training predictions"
            raise StateError(msg)
        return self._train_quality, self._train_cost

    # ------------------------------------------------------------------ state
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything needed to rebuild the trained scorer: JSON-ready meta and arrays.

        The featurizer and tagger objects are not part of the hyperparameters saved;
        the featurizer's own state is (embedding adapters need their model passed back
        at load time, see :func:`pickllm.learn.load_trained`).
        """
        self._require_fitted()
        if self._featurizer is None or self._train_quality is None or self._train_cost is None:
            msg = "not fitted"  # pragma: no cover
            raise StateError(msg)
        params = {k: v for k, v in self.get_params().items() if k not in ("featurizer", "tagger")}
        params["seed"] = self._base_seed  # a Generator seed is saved as the int it gave
        params.update(self._extra_params())
        return encode_state(
            kind=self.kind,
            params=params,
            featurizer=self._featurizer,
            signals=self._signals,
            models=self._models,
            tag_vocab=self._tag_vocab,
            heads=self._heads,
            stacker=self._stacker,
            cost_model=self._cost_model,
            train_quality=self._train_quality,
            train_cost=self._train_cost,
            summary=self._summary,
        )

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def _set_state(
        self,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        featurizer: Featurizer,
    ) -> None:
        restored = decode_state(meta, arrays, tag_beta=self.tag_beta)
        self._featurizer = featurizer
        self._signals = restored.signals
        self._models = restored.models
        self._tag_vocab = restored.tag_vocab
        self._heads = restored.heads
        self._stacker = restored.stacker
        self._cost_model = restored.cost_model
        self._train_quality = restored.train_quality
        self._train_cost = restored.train_cost
        self._summary = restored.summary
