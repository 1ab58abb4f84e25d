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
  router needs the tags at prediction time too). ``turns_as_features=True`` likewise
  appends the number of conversation turns (:class:`~pickllm.learn.ContextSignals`).
"""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from pickllm.costaware import LambdaFit, apply, fit_lambda, route_by_lambda
from pickllm.errors import ConfigError, StateError
from pickllm.learn.featurizers import (
    ContextSignals,
    Featurizer,
    HashedNgramFeaturizer,
    TagsLike,
    normalise_tags,
)
from pickllm.learn.models import MLP, LogisticRegression, Output, SoftLoss, model_from_state
from pickllm.pricing import estimate_tokens
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


def _tokens(texts: Sequence[str], input_tokens: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if input_tokens is None:
        return np.array([estimate_tokens(t) for t in texts], dtype=float)
    arr = np.asarray(input_tokens, dtype=float).reshape(-1)
    if arr.shape[0] != len(texts) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        msg = f"input_tokens must be {len(texts)} finite numbers >= 0"
        raise ConfigError(msg)
    return arr


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


@dataclass
class _Heads:
    """The fitted learners: the target head, the tag head and the tags' mean targets."""

    target: list[LogisticRegression | MLP] = field(default_factory=list)
    tag: list[LogisticRegression | MLP] = field(default_factory=list)
    tag_means: np.ndarray | None = None  # (n_tags, k)
    beta: float = 1.0

    def output(self, x: np.ndarray) -> np.ndarray:
        """``beta * target head + (1 - beta) * P(tag | x) @ tag_means``, shape (m, k)."""
        parts: list[np.ndarray] = []
        if self.target:
            head: np.ndarray = np.mean([m.predict_proba(x) for m in self.target], axis=0)
            parts.append((self.beta if self.tag else 1.0) * head)
        if self.tag and self.tag_means is not None:
            p_tag = np.mean([m.predict_proba(x) for m in self.tag], axis=0)
            parts.append((1.0 - self.beta if self.target else 1.0) * (p_tag @ self.tag_means))
        out: np.ndarray = np.sum(parts, axis=0)
        return out

    @property
    def epochs(self) -> list[int]:
        return [m.best_epoch_ for m in (*self.target, *self.tag)]


def _check_heads(heads: _Heads, k: int, n_tags: int) -> None:
    if not heads.target and not heads.tag:
        msg = "a saved router needs at least one learner"
        raise StateError(msg)
    for m in heads.target:
        if m.n_outputs != k:
            msg = f"learner has {m.n_outputs} outputs for {k} models"
            raise StateError(msg)
    for m in heads.tag:
        if m.n_outputs != n_tags:
            msg = f"tag learner has {m.n_outputs} outputs for {n_tags} tags"
            raise StateError(msg)
    if heads.tag and (heads.tag_means is None or heads.tag_means.shape != (n_tags, k)):
        msg = f"tag means must have shape ({n_tags}, {k})"
        raise StateError(msg)


class CostModel:
    """Per-model cost as an affine function of the prompt's input tokens.

    ``c_k(x) = a_k + b_k * tokens(x)``, fitted by least squares on the training queries
    and clipped below at the model's cheapest observed call (an affine fit can go
    negative on short prompts). With one distinct token count it is the mean cost.

    Examples:
        >>> cm = CostModel().fit(np.array([100, 200, 300]), np.array([[1.0], [2.0], [3.0]]))
        >>> cm.predict(np.array([250])).round(6).tolist()
        [[2.5]]
    """

    def __init__(self) -> None:
        self._coef: np.ndarray | None = None  # (2, k): intercept, slope
        self._floor: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has run."""
        return self._coef is not None

    def fit(self, tokens: np.ndarray, cost: np.ndarray) -> Self:
        """Fit on ``tokens`` (n,) and ``cost`` (n, k)."""
        t = np.asarray(tokens, dtype=float).reshape(-1)
        c = np.asarray(cost, dtype=float)
        if c.ndim != 2 or c.shape[0] != t.shape[0] or t.shape[0] == 0:
            msg = f"CostModel.fit needs tokens (n,) and cost (n, k), got {t.shape} and {c.shape}"
            raise ConfigError(msg)
        if np.ptp(t) > 0:
            design = np.stack([np.ones_like(t), t], axis=1)
            coef, *_ = np.linalg.lstsq(design, c, rcond=None)
        else:
            coef = np.stack([c.mean(axis=0), np.zeros(c.shape[1])])
        self._coef = coef
        self._floor = c.min(axis=0)
        return self

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        """Predicted cost ``(m, k)`` for prompts of ``tokens`` (m,) input tokens."""
        if self._coef is None or self._floor is None:
            msg = "CostModel.predict called before fit"
            raise StateError(msg)
        t = np.asarray(tokens, dtype=float).reshape(-1)
        out: np.ndarray = np.maximum(self._coef[0] + t[:, None] * self._coef[1], self._floor)
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        """The coefficients as arrays."""
        if self._coef is None or self._floor is None:
            msg = "CostModel is not fitted"
            raise StateError(msg)
        return {"coef": self._coef, "floor": self._floor}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray]) -> CostModel:
        """Rebuild from :meth:`get_state`."""
        obj = cls()
        coef = np.asarray(arrays["coef"], dtype=float)
        floor = np.asarray(arrays["floor"], dtype=float)
        if coef.ndim != 2 or coef.shape[0] != 2 or floor.shape != (coef.shape[1],):
            msg = f"cost model arrays have shapes {coef.shape} and {floor.shape}"
            raise StateError(msg)
        obj._coef, obj._floor = coef, floor
        return obj


class _Stacker:
    """Maps a learner's (k) outputs to (k) qualities: ridge regression on transformed outputs.

    Fitted on the learner's predictions for the training queries (cross-fitted ones when
    available), it turns Zooter's distribution into per-model qualities and re-calibrates
    SelectLLM's probabilities using every model's output at once.
    """

    def __init__(self, *, transform: Literal["logit", "log"], ridge: float = 1e-3) -> None:
        self.transform = transform
        self.ridge = ridge
        self._w: np.ndarray | None = None

    def _design(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
        f = np.log(p / (1 - p)) if self.transform == "logit" else np.log(p)
        return np.hstack([f, np.ones((f.shape[0], 1))])

    def fit(self, p: np.ndarray, quality: np.ndarray) -> Self:
        a = self._design(p)
        reg = self.ridge * a.shape[0] * np.eye(a.shape[1])
        reg[-1, -1] = 0.0
        self._w = np.linalg.solve(a.T @ a + reg, a.T @ np.asarray(quality, dtype=float))
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        if self._w is None:
            msg = "stacker not fitted"
            raise StateError(msg)
        out: np.ndarray = np.clip(self._design(p) @ self._w, 0.0, 1.0)
        return out


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


class QueryScorer(ABC):
    """Base of the query-aware routers; see the module docstring.

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
            uses the learner's in-sample predictions (see each router for what it means).
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
        self._heads = _Heads()
        self._tag_vocab: tuple[str, ...] = ()
        self._stacker: _Stacker | None = None
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
        """Whether the router has been trained (or loaded)."""
        return bool(self._heads.target or self._heads.tag)

    @property
    def summary(self) -> Mapping[str, Any]:
        """Training summary: sizes, epochs, timings (JSON-ready)."""
        return dict(self._summary)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as given (featurizer and tagger objects included)."""
        return {
            "featurizer": self.featurizer,
            "learner": self.learner,
            "hidden": self.hidden,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "max_epochs": self.max_epochs,
            "ensemble": self.ensemble,
            "tag_beta": self.tag_beta,
            "tags_as_features": self.tags_as_features,
            "turns_as_features": self.turns_as_features,
            "tagger": self.tagger,
            "calibration": self.calibration,
            "cv_folds": self.cv_folds,
            "seed": self.seed,
        }

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
        q = self._check_quality(quality, len(texts), models)
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
        self._fit_cost(texts, q, cost, input_tokens)
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

    @staticmethod
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

    def _calibrate(
        self, x: np.ndarray, y: np.ndarray, tag_rows: Sequence[tuple[str, ...]], q: np.ndarray
    ) -> None:
        """Fit the output-to-quality map, on out-of-fold outputs with cross-fitting."""
        if self.calibration != "cross_fit":
            output = self._heads.output(x)
            self._fit_stacker(output, q)
            self._train_quality = self._quality_from_output(output)
            return
        n = x.shape[0]
        oof = np.zeros_like(y)
        fold = np.random.default_rng([self._base_seed, 1]).permutation(n) % self.cv_folds
        for f in range(self.cv_folds):
            held = fold == f
            if not held.any() or held.all():
                continue
            rest = [row for row, h in zip(tag_rows, held, strict=True) if not h]
            part = self._train(x[~held], y[~held], rest, self._base_seed + 1 + f)
            oof[held] = part.output(x[held])
        self._fit_stacker(oof, q)
        self._train_quality = self._quality_from_output(oof)

    def _fit_cost(
        self,
        texts: Sequence[str],
        q: np.ndarray,
        cost: np.ndarray | None,
        input_tokens: Sequence[int] | np.ndarray | None,
    ) -> None:
        if cost is None:
            self._cost_model = None
            self._train_cost = np.zeros_like(q)
            return
        c = np.asarray(cost, dtype=float)
        if c.shape != q.shape or not np.all(np.isfinite(c)) or np.any(c < 0):
            msg = f"cost must be finite, >= 0 and of shape {q.shape}, got {c.shape}"
            raise ConfigError(msg)
        tokens = _tokens(texts, input_tokens)
        self._cost_model = CostModel().fit(tokens, c)
        self._train_cost = self._cost_model.predict(tokens)

    def _default_featurizer(self) -> HashedNgramFeaturizer:
        return HashedNgramFeaturizer(components=256, seed=self._base_seed)

    def _resolve_tags(self, texts: Sequence[str], tags: TagsLike | None) -> list[tuple[str, ...]]:
        if tags is None and self.tagger is not None:
            return [tuple(self.tagger(t)) for t in texts]
        return normalise_tags(tags, len(texts))

    def _make_learner(self, seed: int, output: Output | None = None) -> LogisticRegression | MLP:
        out = self._output if output is None else output
        loss = self._learner_loss() if output is None else "forward_kl"
        if self.learner == "mlp":
            return MLP(
                hidden=self.hidden,
                output=out,
                loss=loss,
                learning_rate=self.learning_rate or 0.003,
                weight_decay=self.weight_decay,
                max_epochs=self.max_epochs,
                seed=seed,
            )
        return LogisticRegression(
            output=out,
            loss=loss,
            learning_rate=self.learning_rate or 0.01,
            weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            seed=seed,
        )

    def _learner_loss(self) -> SoftLoss:
        return "forward_kl"

    def _train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        tag_rows: Sequence[tuple[str, ...]],
        seed: int,
    ) -> _Heads:
        """Fit the target head (unless ``tag_beta == 0``) and the tag head (if tagged)."""
        heads = _Heads(beta=self.tag_beta)
        vocab = {t: j for j, t in enumerate(self._tag_vocab)}
        tagged = np.array([bool(row) for row in tag_rows])
        use_tags = self.tag_beta < 1.0 and bool(vocab) and bool(tagged.any())
        if not use_tags or self.tag_beta > 0.0:
            heads.target = [
                self._make_learner((seed * 1000 + e) % 2**32).fit(x, y)
                for e in range(self.ensemble)
            ]
        if use_tags:
            p_tag = np.zeros((len(tag_rows), len(vocab)))
            for i, row in enumerate(tag_rows):
                for t in row:
                    p_tag[i, vocab[t]] += 1.0 / len(row)
            # ybar_t: the mean target of the queries carrying tag t.
            carries = (p_tag > 0).astype(float)
            counts = carries.sum(axis=0)[:, None]
            heads.tag_means = (carries.T @ y) / np.maximum(counts, 1.0)
            heads.tag = [
                self._make_learner((seed * 1000 + 500 + e) % 2**32, output="softmax").fit(
                    x[tagged], p_tag[tagged]
                )
                for e in range(self.ensemble)
            ]
        return heads

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
        return self._cost_model.predict(_tokens(texts, input_tokens))

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
        which ranks by the router's own distribution.
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
            StateError: the router was trained without cost.
        """
        self._require_fitted()
        if self._cost_model is None or self._train_quality is None or self._train_cost is None:
            msg = "fit_budget needs a router trained with cost=..."
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
        """Save the trained router into the directory ``path`` (JSON + npz).

        Load it back with :func:`pickllm.learn.load_trained`.
        """
        from pickllm.learn.persist import save_router

        return save_router(self, path)

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
        """Everything needed to rebuild the trained router: JSON-ready meta and arrays.

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
        arrays: dict[str, np.ndarray] = {}
        feat_meta, feat_arrays = self._featurizer.get_state()
        arrays.update({f"featurizer/{k}": v for k, v in feat_arrays.items()})
        heads: dict[str, list[dict[str, Any]]] = {"target": [], "tag": []}
        for head, members in (("target", self._heads.target), ("tag", self._heads.tag)):
            for i, m in enumerate(members):
                meta, weights = m.get_state()
                heads[head].append(meta)
                arrays.update({f"{head}{i}/{k}": v for k, v in weights.items()})
        if self._heads.tag_means is not None:
            arrays["tag_means"] = self._heads.tag_means
        if self._stacker is not None and self._stacker._w is not None:  # noqa: SLF001
            arrays["stacker/w"] = self._stacker._w  # noqa: SLF001
        if self._cost_model is not None:
            arrays.update({f"cost/{k}": v for k, v in self._cost_model.get_state().items()})
        arrays["train/quality"] = self._train_quality
        arrays["train/cost"] = self._train_cost
        meta_all = {
            "kind": self.kind,
            "params": params,
            "models": list(self._models),
            "featurizer": feat_meta,
            "signals": None if self._signals is None else self._signals.get_state(),
            "heads": heads,
            "tags": list(self._tag_vocab),
            "stacker": None if self._stacker is None else self._stacker.transform,
            "has_cost": self._cost_model is not None,
            "summary": self._summary,
        }
        return meta_all, arrays

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def _set_state(
        self,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        featurizer: Featurizer,
    ) -> None:
        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        self._featurizer = featurizer
        signals = meta.get("signals")
        self._signals = None if signals is None else ContextSignals.from_state(signals)
        self._models = tuple(str(m) for m in meta["models"])
        self._tag_vocab = tuple(str(t) for t in meta.get("tags", []))
        heads = _Heads(beta=self.tag_beta)
        for head in ("target", "tag"):
            members = getattr(heads, head)
            for i, lm in enumerate(meta["heads"][head]):
                learner = model_from_state(lm, group(f"{head}{i}/"))
                if not isinstance(learner, LogisticRegression | MLP):  # pragma: no cover
                    msg = "unexpected learner type"
                    raise StateError(msg)
                members.append(learner)
        if heads.tag:
            heads.tag_means = np.asarray(arrays["tag_means"], dtype=float)
        _check_heads(heads, len(self._models), len(self._tag_vocab))
        self._heads = heads
        transform = meta.get("stacker")
        if transform is not None:
            stacker = _Stacker(transform=transform)
            stacker._w = np.asarray(arrays["stacker/w"], dtype=float)  # noqa: SLF001
            self._stacker = stacker
        self._cost_model = CostModel.from_state(group("cost/")) if meta.get("has_cost") else None
        self._train_quality = np.asarray(arrays["train/quality"], dtype=float)
        self._train_cost = np.asarray(arrays["train/cost"], dtype=float)
        self._summary = dict(meta.get("summary", {}))
