"""Calibrating a query scorer: the output-to-quality map and its cross-fitted training data.

A scorer's learners output probabilities (SelectLLM) or a distribution over the models
(Zooter); :class:`Stacker` maps those outputs to per-model qualities. Fitted on the
learners' in-sample outputs it is optimistic; :func:`cross_fitted_output` gives
out-of-fold outputs instead (``calibration="cross_fit"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Self

import numpy as np

from pickllm.errors import StateError
from pickllm.learn.heads import Heads

__all__ = ["HeadTrainer", "Stacker", "cross_fitted_output"]

HeadTrainer = Callable[[np.ndarray, np.ndarray, Sequence[tuple[str, ...]], int], Heads]
"""``train(x, y, tag_rows, seed)``: fitted heads for one fold."""


class Stacker:
    """Maps a learner's (k) outputs to (k) qualities: ridge regression on transformed outputs.

    Fitted on the learner's predictions for the training queries (cross-fitted ones when
    available), it turns Zooter's distribution into per-model qualities and re-calibrates
    SelectLLM's probabilities using every model's output at once.

    Args:
        transform: ``"logit"`` (probabilities) or ``"log"`` (a distribution).
        ridge: ridge penalty per training query.

    Examples:
        >>> p = np.array([[0.9, 0.2], [0.1, 0.8], [0.8, 0.3], [0.2, 0.7]])
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
        >>> Stacker(transform="logit").fit(p, q).predict(p).round(1).tolist()[0]
        [1.0, 0.0]
    """

    def __init__(self, *, transform: Literal["logit", "log"], ridge: float = 1e-3) -> None:
        self.transform = transform
        self.ridge = ridge
        self._w: np.ndarray | None = None

    @property
    def weights(self) -> np.ndarray | None:
        """The fitted coefficients (None before ``fit``)."""
        return self._w

    @classmethod
    def from_weights(cls, transform: Literal["logit", "log"], weights: np.ndarray) -> Stacker:
        """A stacker with saved coefficients."""
        stacker = cls(transform=transform)
        stacker._w = np.asarray(weights, dtype=float)
        return stacker

    def _design(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
        f = np.log(p / (1 - p)) if self.transform == "logit" else np.log(p)
        return np.hstack([f, np.ones((f.shape[0], 1))])

    def fit(self, p: np.ndarray, quality: np.ndarray) -> Self:
        """Fit on outputs ``p`` (n, k) and qualities ``quality`` (n, k)."""
        a = self._design(p)
        reg = self.ridge * a.shape[0] * np.eye(a.shape[1])
        reg[-1, -1] = 0.0
        self._w = np.linalg.solve(a.T @ a + reg, a.T @ np.asarray(quality, dtype=float))
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        """Qualities (m, k) in [0, 1] for outputs ``p`` (m, k)."""
        if self._w is None:
            msg = "stacker not fitted"
            raise StateError(msg)
        out: np.ndarray = np.clip(self._design(p) @ self._w, 0.0, 1.0)
        return out


def cross_fitted_output(
    x: np.ndarray,
    y: np.ndarray,
    tag_rows: Sequence[tuple[str, ...]],
    *,
    folds: int,
    seed: int,
    train: HeadTrainer,
) -> np.ndarray:
    """Out-of-fold outputs (n, k): each query scored by heads trained without its fold."""
    n = x.shape[0]
    oof = np.zeros_like(y)
    fold = np.random.default_rng([seed, 1]).permutation(n) % folds
    for f in range(folds):
        held = fold == f
        if not held.any() or held.all():
            continue
        rest = [row for row, h in zip(tag_rows, held, strict=True) if not h]
        part = train(x[~held], y[~held], rest, seed + 1 + f)
        oof[held] = part.output(x[held])
    return oof
