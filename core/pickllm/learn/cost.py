"""The cost side of a query scorer: each model's cost from the prompt's input tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np

from pickllm.errors import ConfigError, StateError
from pickllm.pricing import estimate_tokens

__all__ = ["CostModel", "fit_cost_model", "prompt_tokens"]


def prompt_tokens(
    texts: Sequence[str], input_tokens: Sequence[int] | np.ndarray | None
) -> np.ndarray:
    """``input_tokens`` as a float array, estimated from ``texts`` when None."""
    if input_tokens is None:
        return np.array([estimate_tokens(t) for t in texts], dtype=float)
    arr = np.asarray(input_tokens, dtype=float).reshape(-1)
    if arr.shape[0] != len(texts) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        msg = f"input_tokens must be {len(texts)} finite numbers >= 0"
        raise ConfigError(msg)
    return arr


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


def fit_cost_model(
    texts: Sequence[str],
    quality: np.ndarray,
    cost: np.ndarray | None,
    input_tokens: Sequence[int] | np.ndarray | None,
) -> tuple[CostModel | None, np.ndarray]:
    """The cost model fitted on ``cost`` (None without cost) and its training predictions.

    Raises:
        ConfigError: ``cost`` is not finite, negative somewhere, or not shaped like
            ``quality``.
    """
    if cost is None:
        return None, np.zeros_like(quality)
    c = np.asarray(cost, dtype=float)
    if c.shape != quality.shape or not np.all(np.isfinite(c)) or np.any(c < 0):
        msg = f"cost must be finite, >= 0 and of shape {quality.shape}, got {c.shape}"
        raise ConfigError(msg)
    tokens = prompt_tokens(texts, input_tokens)
    model = CostModel().fit(tokens, c)
    return model, model.predict(tokens)
