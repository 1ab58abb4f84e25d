"""SelectLLM: predict which models answer a query correctly, run a confident subset, vote.

Maurya, Srivatsa and Kochmar (arXiv 2408.08545; algorithm notes §2). A multi-label
classifier (here a numpy MLP or logistic regression on text features, trained with binary
cross-entropy; the paper fine-tunes RoBERTa-base) predicts for each model the probability
``s_k`` that it answers the query correctly. A selection policy picks a subset of at most
``subset_size`` models (§2.3; the paper's exact rules were not retrievable, these are the
documented reconstructions):

* ``max_conf``: the top-``n`` models by ``s_k``.
* ``labelled_max_conf``: the models with ``s_k > threshold``, most confident first, capped
  at ``n``; if none, the single most confident one (so the subset size adapts per query).
* ``weighted_max_conf``: the same subset as ``labelled_max_conf``; answers are combined by a
  confidence-weighted vote instead of a plain majority.

Ties in ``s_k`` go to the faster model (``latency`` per model if given), else the cheaper
(by the cost model), else the earlier column. The subset's answers are combined by
:class:`~pickllm.learn.aggregate.Vote` over extracted answers.

For one-model routing, ``s_k`` is the predicted quality: quality-only routing takes the
arg-max and cost-aware routing the arg-max of ``s_k - lam * c_k``. With
``calibration="cross_fit"`` the probabilities are re-calibrated by a ridge regression on
every model's out-of-fold log-odds (it corrects the shrinkage of an early-stopped learner
and lets each model's estimate borrow from the others').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from pickllm.errors import ConfigError
from pickllm.learn.aggregate import Extractor, Vote
from pickllm.learn.base import Calibration, QueryScorer, Tagger
from pickllm.learn.calibration import Stacker
from pickllm.learn.featurizers import Featurizer, TagsLike
from pickllm.types import SeedLike

__all__ = ["SELECTION_POLICIES", "SelectLLM", "SelectionPolicy", "select_subset"]

SelectionPolicy = Literal["max_conf", "labelled_max_conf", "weighted_max_conf"]
SELECTION_POLICIES: tuple[SelectionPolicy, ...] = (
    "max_conf",
    "labelled_max_conf",
    "weighted_max_conf",
)


def select_subset(
    confidence: Sequence[float] | np.ndarray,
    n: int,
    *,
    policy: SelectionPolicy = "weighted_max_conf",
    threshold: float = 0.5,
    order_key: Sequence[float] | np.ndarray | None = None,
) -> list[int]:
    """The model indices one query runs, most confident first.

    Args:
        confidence: ``s_k`` per model.
        n: the largest subset size, ``>= 1``.
        policy: ``max_conf``, ``labelled_max_conf`` or ``weighted_max_conf``.
        threshold: a model is predicted correct when ``s_k > threshold``.
        order_key: breaks ties in ``s_k`` (smaller first: latency or cost).

    Examples:
        >>> select_subset([0.9, 0.2, 0.7, 0.6], 2, policy="max_conf")
        [0, 2]
        >>> select_subset([0.4, 0.2, 0.3], 3, policy="labelled_max_conf")
        [0]
        >>> select_subset([0.8, 0.8, 0.1], 3, order_key=[2.0, 1.0, 0.5])
        [1, 0]
    """
    s = np.asarray(confidence, dtype=float).reshape(-1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"subset size must be an int >= 1, got {n!r}"
        raise ConfigError(msg)
    if policy not in SELECTION_POLICIES:
        msg = f"policy must be one of {', '.join(SELECTION_POLICIES)}, got {policy!r}"
        raise ConfigError(msg)
    key = np.zeros_like(s) if order_key is None else np.asarray(order_key, dtype=float)
    order = np.lexsort((np.arange(s.shape[0]), key, -s))
    if policy == "max_conf":
        return [int(i) for i in order[:n]]
    positive = [int(i) for i in order if s[i] > threshold]
    return positive[:n] if positive else [int(order[0])]


class SelectLLM(QueryScorer):
    """Query-aware subset selection with a multi-label correctness classifier.

    Args:
        selection: ``max_conf``, ``labelled_max_conf`` or ``weighted_max_conf``.
        subset_size: the largest number of models run per query (``n``).
        threshold: predicted-correct threshold on ``s_k`` for the labelled policies.
        extractor: answer extractor for the vote (``choice``, ``number``, ``exact`` or a
            callable).
        latency: typical latency per model name, to break confidence ties (faster first).
        featurizer: see :class:`~pickllm.learn.base.QueryScorer` (and the other
            learner arguments below).
        learner: ``"mlp"`` or ``"logistic"``.
        hidden: MLP hidden width.
        learning_rate: Adam step size (None: the learner's default).
        weight_decay: decoupled weight decay.
        max_epochs: epochs at most (early stopping on a validation split).
        ensemble: learners averaged.
        tag_beta: label enhancement toward the tags' mean correctness (1: none).
        tags_as_features: append the tags to the features.
        turns_as_features: append the number of conversation turns to the features.
        tagger: tags from text when none are given.
        calibration: ``"none"`` (the sigmoid outputs are the qualities) or
            ``"cross_fit"`` (re-calibrated on out-of-fold predictions).
        cv_folds: folds for cross-fitting.
        seed: seeds every learner.

    Examples:
        >>> texts = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
        >>> quality = np.array([[1, 0], [1, 0], [0, 1], [0, 1]] * 10, dtype=float)
        >>> r = SelectLLM(learner="logistic", learning_rate=0.1, seed=0)
        >>> r = r.fit(texts, quality, ["math-model", "poet-model"])
        >>> r.route(["add 7 and 8", "write a sonnet"]).tolist()
        [0, 1]
        >>> r.subsets(["add 7 and 8"], n=2, policy="max_conf")
        [[0, 1]]
    """

    kind: ClassVar[str] = "selectllm"

    def __init__(
        self,
        *,
        selection: SelectionPolicy = "weighted_max_conf",
        subset_size: int = 3,
        threshold: float = 0.5,
        extractor: str | Extractor = "exact",
        latency: Mapping[str, float] | None = None,
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
        if selection not in SELECTION_POLICIES:
            msg = f"selection must be one of {', '.join(SELECTION_POLICIES)}, got {selection!r}"
            raise ConfigError(msg)
        if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
            msg = f"subset_size must be an int >= 1, got {subset_size!r}"
            raise ConfigError(msg)
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not 0.0 <= threshold < 1.0
        ):
            msg = f"threshold must be a number in [0, 1), got {threshold!r}"
            raise ConfigError(msg)
        if latency is not None:
            bad = {k: v for k, v in latency.items() if not (isinstance(v, int | float) and v >= 0)}
            if bad:
                msg = f"latency must map model names to seconds >= 0, got {bad!r}"
                raise ConfigError(msg)
        self.selection: SelectionPolicy = selection
        self.subset_size = subset_size
        self.threshold = threshold
        self.extractor = extractor
        self.latency = latency
        Vote(extractor=extractor)  # validates the extractor name now, not at the first vote

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as given."""
        return {
            "selection": self.selection,
            "subset_size": self.subset_size,
            "threshold": self.threshold,
            "extractor": self.extractor,
            "latency": self.latency,
            **super().get_params(),
        }

    def _extra_params(self) -> dict[str, Any]:
        if not isinstance(self.extractor, str):
            return {"extractor": "exact"}
        return {}

    # ------------------------------------------------------------------ hooks
    def _targets(self, quality: np.ndarray) -> np.ndarray:
        return quality

    def _fit_stacker(self, output: np.ndarray, quality: np.ndarray) -> None:
        if self.calibration == "cross_fit":
            self._stacker = Stacker(transform="logit").fit(output, quality)
        else:
            self._stacker = None

    def _quality_from_output(self, output: np.ndarray) -> np.ndarray:
        if self._stacker is None:
            return output
        return self._stacker.predict(output)

    # ------------------------------------------------------------------ subsets
    def confidence(self, texts: Sequence[str], *, tags: TagsLike | None = None) -> np.ndarray:
        """``s_k``: the predicted probability that each model answers correctly, (m, k)."""
        return self.predict_quality(texts, tags=tags)

    def order_key(self) -> np.ndarray:
        """Per model, the tie-break key: latency if known, else predicted mean cost."""
        self._require_fitted()
        k = len(self.models)
        if self.latency is not None:
            return np.array([float(self.latency.get(m, np.inf)) for m in self.models])
        if self._cost_model is not None and self._train_cost is not None:
            return np.asarray(self._train_cost.mean(axis=0), dtype=float)
        return np.zeros(k)

    def subsets(
        self,
        texts: Sequence[str],
        *,
        n: int | None = None,
        policy: SelectionPolicy | None = None,
        tags: TagsLike | None = None,
    ) -> list[list[int]]:
        """Per query, the model indices to run (most confident first)."""
        conf = self.confidence(texts, tags=tags)
        key = self.order_key()
        size = self.subset_size if n is None else n
        rule = self.selection if policy is None else policy
        return [
            select_subset(row, size, policy=rule, threshold=self.threshold, order_key=key)
            for row in conf
        ]

    def vote(self, policy: SelectionPolicy | None = None) -> Vote:
        """The aggregation of a subset's answers under ``policy`` (default: ``selection``)."""
        rule = self.selection if policy is None else policy
        return Vote(
            extractor=self.extractor,
            mode="weighted" if rule == "weighted_max_conf" else "majority",
        )
