"""Small numpy learners for the routers: logistic regression and a one-hidden-layer MLP.

Both train with Adam on mini-batches, decoupled weight decay (AdamW, weights only), and
early stopping on a validation split (the best epoch's weights are restored). Outputs are
either independent sigmoids (multi-label, binary cross-entropy; targets in [0, 1], so soft
labels work) or a softmax over the K outputs (targets are distributions; the loss is the
KL divergence ``KL(target || model)`` — cross-entropy with soft labels up to a constant —
or the reverse ``KL(model || target)``).

Everything random (initialisation, validation split, batch order) comes from one
``numpy.random.Generator`` built from ``seed``, so a fit is reproducible bit for bit on one
machine. State is a JSON-ready dict plus named arrays (saved as JSON + npz by
:mod:`pickllm.learn.persist`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np

from pickllm.errors import ConfigError, StateError
from pickllm.types import SeedLike

__all__ = ["MLP", "LogisticRegression", "Output", "SoftLoss", "model_from_state"]

Output = Literal["sigmoid", "softmax"]
SoftLoss = Literal["forward_kl", "reverse_kl"]

_EPS = 1e-7


def _check_number(
    name: str, value: object, *, low: float, high: float | None = None, low_open: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if low_open else v >= low) and (high is None or v <= high)
    if not ok:
        lo = f"({low}" if low_open else f"[{low}"
        hi = f"{high}]" if high is not None else "inf)"
        msg = f"{name} must be a finite number in {lo}, {hi}, got {value!r}"
        raise ConfigError(msg)


def _check_int(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        msg = f"{name} must be an int >= {low}, got {value!r}"
        raise ConfigError(msg)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class _Adam:
    """Adam with decoupled weight decay on the ``w_*`` arrays (AdamW)."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float, weight_decay: float) -> None:
        self.lr = lr
        self.weight_decay = weight_decay
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        b1, b2 = 0.9, 0.999
        self.t += 1
        lr_t = self.lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for k, g in grads.items():
            m, v, p = self.m[k], self.v[k], params[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            if self.weight_decay and k.startswith("w_"):
                p -= (self.lr * self.weight_decay) * p
            p -= lr_t * m / (np.sqrt(v) + 1e-8)


class _AdamModel:
    """Shared training loop; subclasses define the parameters and forward/backward."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        output: Output,
        loss: SoftLoss,
        learning_rate: float,
        weight_decay: float,
        batch_size: int,
        max_epochs: int,
        patience: int,
        validation_fraction: float,
        seed: SeedLike,
    ) -> None:
        if output not in ("sigmoid", "softmax"):
            msg = f"output must be 'sigmoid' or 'softmax', got {output!r}"
            raise ConfigError(msg)
        if loss not in ("forward_kl", "reverse_kl"):
            msg = f"loss must be 'forward_kl' or 'reverse_kl', got {loss!r}"
            raise ConfigError(msg)
        if output == "sigmoid" and loss != "forward_kl":
            msg = f"loss={loss!r} needs output='softmax'; sigmoid outputs use binary cross-entropy"
            raise ConfigError(msg)
        _check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        _check_number("weight_decay", weight_decay, low=0.0)
        _check_int("batch_size", batch_size, low=1)
        _check_int("max_epochs", max_epochs, low=1)
        _check_int("patience", patience, low=1)
        _check_number("validation_fraction", validation_fraction, low=0.0, high=0.5)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
        ):
            msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
            raise TypeError(msg)
        self.output: Output = output
        self.loss: SoftLoss = loss
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self._params: dict[str, np.ndarray] = {}
        self.history_: list[tuple[float, float]] = []
        """Per epoch: (training loss, validation loss or NaN without a validation split)."""
        self.best_epoch_: int = 0
        """The epoch whose weights were kept (1-based; 0 before fit)."""

    # ------------------------------------------------------------------ public API
    @property
    def fitted(self) -> bool:
        """Whether the model has weights."""
        return bool(self._params)

    @property
    def n_outputs(self) -> int:
        """K, the number of outputs."""
        self._require_fitted()
        return int(self._params["b_out"].shape[0])

    @property
    def n_inputs(self) -> int:
        """d, the input dimension."""
        self._require_fitted()
        first = "w_hidden" if "w_hidden" in self._params else "w_out"
        return int(self._params[first].shape[0])

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        sample_weight: np.ndarray | None = None,
    ) -> Self:
        """Train on features ``x`` (n, d) and targets ``y`` (n, K).

        For sigmoid outputs ``y`` holds per-output targets in [0, 1]; for softmax outputs
        each row is a distribution (it is renormalised). ``sample_weight`` (n,) weighs rows
        in the loss.
        """
        x, y, w = self._fit_arrays(x, y, sample_weight)
        rng = np.random.default_rng(self.seed)
        n = x.shape[0]
        n_val = round(self.validation_fraction * n) if n >= 20 else 0
        perm = rng.permutation(n)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        self._params = self._init_params(x.shape[1], y.shape[1], rng)
        adam = _Adam(self._params, self.learning_rate, self.weight_decay)
        best = math.inf
        best_params = {k: p.copy() for k, p in self._params.items()}
        self.history_ = []
        self.best_epoch_ = 0
        stale = 0
        for epoch in range(1, self.max_epochs + 1):
            order = train_idx[rng.permutation(train_idx.shape[0])]
            train_loss = self._epoch(x, y, w, order, adam)
            if not n_val:
                self.history_.append((train_loss, math.nan))
                self.best_epoch_ = epoch
                continue
            val_loss = self._mean_loss(x[val_idx], y[val_idx], w[val_idx])
            self.history_.append((train_loss, val_loss))
            if val_loss < best - 1e-6:
                best, stale, self.best_epoch_ = val_loss, 0, epoch
                best_params = {k: p.copy() for k, p in self._params.items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if n_val:
            self._params = best_params
        return self

    def _fit_arrays(
        self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated float32 ``x``, ``y`` (softmax rows renormalised) and row weights."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            msg = (
                f"fit() needs x (n, d) and y (n, K) with the same n >= 1, got {x.shape}, {y.shape}"
            )
            raise ConfigError(msg)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            msg = "fit() needs finite x and y (found NaN or inf)"
            raise ConfigError(msg)
        if y.min() < 0 or y.max() > 1:
            msg = f"targets must be in [0, 1], got values in [{y.min()}, {y.max()}]"
            raise ConfigError(msg)
        if self.output == "softmax":
            sums = y.sum(axis=1, keepdims=True)
            if (sums <= 0).any():
                msg = "softmax targets must have a positive sum in every row"
                raise ConfigError(msg)
            y = y / sums
        if sample_weight is None:
            return x, y, np.ones(x.shape[0], dtype=np.float32)
        w = np.asarray(sample_weight, dtype=np.float32).reshape(-1)
        if w.shape[0] != x.shape[0] or not np.isfinite(w).all() or (w < 0).any():
            msg = "sample_weight must be (n,) finite and >= 0"
            raise ConfigError(msg)
        return x, y, w

    def _epoch(
        self, x: np.ndarray, y: np.ndarray, w: np.ndarray, order: np.ndarray, adam: _Adam
    ) -> float:
        """One pass over ``order`` in mini-batches; the mean training loss."""
        total = 0.0
        weight_seen = 0.0
        for start in range(0, order.shape[0], self.batch_size):
            idx = order[start : start + self.batch_size]
            wb = w[idx]
            wsum = float(wb.sum())
            if wsum <= 0:
                continue
            loss, grads = self._loss_and_grads(x[idx], y[idx], wb / wsum)
            total += loss * wsum
            weight_seen += wsum
            adam.step(self._params, grads)
        return total / weight_seen if weight_seen else math.nan

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """The logits, shape (n, K)."""
        self._require_fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            msg = f"x must have shape (n, {self.n_inputs}), got {x.shape}"
            raise ConfigError(msg)
        return self._forward(x)[0].astype(np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Per-output probabilities (sigmoid) or the distribution over outputs (softmax)."""
        z = self.decision_function(x)
        return _sigmoid(z) if self.output == "sigmoid" else _softmax(z)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters, JSON-ready (a Generator seed is reported as None)."""
        params = self._extra_params()
        params.update(
            output=self.output,
            loss=self.loss,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            validation_fraction=self.validation_fraction,
            seed=self.seed if isinstance(self.seed, int) else None,
        )
        return params

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Hyperparameters and training summary (JSON) and the weights (arrays)."""
        self._require_fitted()
        meta = {
            "kind": self.kind,
            "params": self.get_params(),
            "best_epoch": self.best_epoch_,
            "history": [[a, b if math.isfinite(b) else None] for a, b in self.history_],
        }
        return meta, {k: v.copy() for k, v in self._params.items()}

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Self:
        """Rebuild a fitted model from :meth:`get_state`'s output."""
        obj = cls(**dict(meta["params"]))
        expected = obj._param_names()
        if set(arrays) != expected:
            msg = f"{cls.__name__} weights must be {sorted(expected)}, got {sorted(arrays)}"
            raise StateError(msg)
        obj._params = {k: np.asarray(arrays[k], dtype=np.float32) for k in expected}
        obj._check_shapes()
        obj.best_epoch_ = int(meta.get("best_epoch", 0))
        obj.history_ = [
            (float(a), math.nan if b is None else float(b)) for a, b in meta.get("history", [])
        ]
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ internals
    def _require_fitted(self) -> None:
        if not self._params:
            msg = f"{type(self).__name__} is not fitted"
            raise StateError(msg)

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def _param_names(self) -> set[str]:
        raise NotImplementedError  # pragma: no cover

    def _check_shapes(self) -> None:
        raise NotImplementedError  # pragma: no cover

    def _init_params(self, d: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError  # pragma: no cover

    def _backward(
        self, x: np.ndarray, hidden: np.ndarray | None, dz: np.ndarray
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def _loss_terms(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row loss (n,) and its gradient with respect to the logits (n, K)."""
        if self.output == "sigmoid":
            p = _sigmoid(z)
            # Stable BCE with logits: max(z, 0) - z*y + log(1 + exp(-|z|)).
            per = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
            return per, p - y
        p = _softmax(z)
        logp = np.log(np.clip(p, _EPS, None))
        if self.loss == "forward_kl":
            logy = np.log(np.clip(y, _EPS, None))
            per = (y * (logy - logp)).sum(axis=1)
            return per, p - y
        logy = np.log(np.clip(y, _EPS, None))
        diff = logp - logy
        per = (p * diff).sum(axis=1)
        return per, p * (diff - per[:, None])

    def _loss_and_grads(
        self, x: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        z, hidden = self._forward(x)
        per, dz = self._loss_terms(z, y)
        dz = (dz * w[:, None]).astype(np.float32)
        return float(per @ w), self._backward(x, hidden, dz)

    def _mean_loss(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
        z, _hidden = self._forward(x)
        per, _dz = self._loss_terms(z, y)
        wsum = float(w.sum())
        return float(per @ w) / wsum if wsum > 0 else math.nan


class LogisticRegression(_AdamModel):
    """Linear model with sigmoid (multi-label) or softmax outputs, trained with Adam.

    Args:
        output: ``"sigmoid"`` (one binary cross-entropy per output; multi-label) or
            ``"softmax"`` (a distribution over the outputs; KL to soft targets).
        loss: for softmax outputs, ``"forward_kl"`` (``KL(target || model)``, the usual
            distillation loss) or ``"reverse_kl"``.
        learning_rate: Adam step size.
        weight_decay: decoupled (AdamW) weight decay on the weights, per step, times the
            learning rate.
        batch_size: rows per mini-batch.
        max_epochs: upper bound on passes over the training rows.
        patience: stop after this many epochs without a better validation loss.
        validation_fraction: share of rows held out for early stopping (none with fewer
            than 20 rows, or 0).
        seed: initialisation, split and batch order.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 3)).astype(np.float32)
        >>> y = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1).astype(float)
        >>> model = LogisticRegression(learning_rate=0.1, seed=0).fit(x, y)
        >>> float(((model.predict_proba(x) > 0.5) == y).mean()) > 0.95
        True
    """

    kind: ClassVar[str] = "logistic"

    def __init__(
        self,
        *,
        output: Output = "sigmoid",
        loss: SoftLoss = "forward_kl",
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 100,
        patience: int = 5,
        validation_fraction: float = 0.1,
        seed: SeedLike = 0,
    ) -> None:
        super().__init__(
            output=output,
            loss=loss,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            validation_fraction=validation_fraction,
            seed=seed,
        )

    def _param_names(self) -> set[str]:
        return {"w_out", "b_out"}

    def _check_shapes(self) -> None:
        w, b = self._params["w_out"], self._params["b_out"]
        if w.ndim != 2 or b.shape != (w.shape[1],):
            msg = f"inconsistent weight shapes {w.shape} and {b.shape}"
            raise StateError(msg)

    def _init_params(self, d: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        del rng  # a convex problem: zeros are the canonical start
        return {"w_out": np.zeros((d, k), dtype=np.float32), "b_out": np.zeros(k, dtype=np.float32)}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return x @ self._params["w_out"] + self._params["b_out"], None

    def _backward(
        self, x: np.ndarray, hidden: np.ndarray | None, dz: np.ndarray
    ) -> dict[str, np.ndarray]:
        del hidden
        return {"w_out": x.T @ dz, "b_out": dz.sum(axis=0)}


class MLP(_AdamModel):
    """One-hidden-layer perceptron (ReLU) with sigmoid or softmax outputs, trained with Adam.

    Args:
        hidden: width of the hidden layer.
        output: ``"sigmoid"`` (multi-label) or ``"softmax"`` (distribution over outputs).
        loss: for softmax outputs, ``"forward_kl"`` or ``"reverse_kl"``.
        learning_rate: Adam step size.
        weight_decay: decoupled (AdamW) weight decay on the weights.
        batch_size: rows per mini-batch.
        max_epochs: upper bound on passes over the training rows.
        patience: stop after this many epochs without a better validation loss.
        validation_fraction: share of rows held out for early stopping.
        seed: initialisation (He-normal), split and batch order.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 2)).astype(np.float32)
        >>> y = (x[:, :1] * x[:, 1:] > 0).astype(float)  # XOR: not linearly separable
        >>> model = MLP(hidden=16, learning_rate=0.02, max_epochs=200, seed=0).fit(x, y)
        >>> float(((model.predict_proba(x) > 0.5) == y).mean()) > 0.9
        True
    """

    kind: ClassVar[str] = "mlp"

    def __init__(
        self,
        *,
        hidden: int = 128,
        output: Output = "sigmoid",
        loss: SoftLoss = "forward_kl",
        learning_rate: float = 0.003,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 60,
        patience: int = 5,
        validation_fraction: float = 0.1,
        seed: SeedLike = 0,
    ) -> None:
        _check_int("hidden", hidden, low=1)
        super().__init__(
            output=output,
            loss=loss,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            validation_fraction=validation_fraction,
            seed=seed,
        )
        self.hidden = hidden

    def _extra_params(self) -> dict[str, Any]:
        return {"hidden": self.hidden}

    def _param_names(self) -> set[str]:
        return {"w_hidden", "b_hidden", "w_out", "b_out"}

    def _check_shapes(self) -> None:
        p = self._params
        h = p["w_hidden"].shape[1] if p["w_hidden"].ndim == 2 else -1
        if (
            h != self.hidden
            or p["b_hidden"].shape != (h,)
            or p["w_out"].ndim != 2
            or p["w_out"].shape[0] != h
            or p["b_out"].shape != (p["w_out"].shape[1],)
        ):
            msg = "inconsistent MLP weight shapes"
            raise StateError(msg)

    def _init_params(self, d: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "w_hidden": (rng.standard_normal((d, self.hidden)) * math.sqrt(2.0 / d)).astype(
                np.float32
            ),
            "b_hidden": np.zeros(self.hidden, dtype=np.float32),
            "w_out": (rng.standard_normal((self.hidden, k)) * math.sqrt(1.0 / self.hidden)).astype(
                np.float32
            ),
            "b_out": np.zeros(k, dtype=np.float32),
        }

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        h = x @ self._params["w_hidden"] + self._params["b_hidden"]
        np.maximum(h, 0, out=h)
        return h @ self._params["w_out"] + self._params["b_out"], h

    def _backward(
        self, x: np.ndarray, hidden: np.ndarray | None, dz: np.ndarray
    ) -> dict[str, np.ndarray]:
        if hidden is None:  # pragma: no cover - _forward always returns it
            msg = "missing hidden activations"
            raise StateError(msg)
        dh = dz @ self._params["w_out"].T
        dh *= hidden > 0
        return {
            "w_hidden": x.T @ dh,
            "b_hidden": dh.sum(axis=0),
            "w_out": hidden.T @ dz,
            "b_out": dz.sum(axis=0),
        }


_MODELS: dict[str, type[_AdamModel]] = {"logistic": LogisticRegression, "mlp": MLP}


def model_from_state(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> _AdamModel:
    """Rebuild a :class:`LogisticRegression` or :class:`MLP` saved with ``get_state``.

    Raises:
        StateError: unknown model kind or inconsistent weights.
    """
    kind = meta.get("kind")
    cls = _MODELS.get(str(kind))
    if cls is None:
        msg = f"unknown model kind {kind!r}; known: {sorted(_MODELS)}"
        raise StateError(msg)
    return cls.from_state(meta, arrays)
