"""The outcome table: what every model scored and cost on every prompt of a data set.

An :class:`OutcomeTable` is the dense form of a recorded routing data set: ``n`` prompts
by ``k`` models, with per-prompt metadata (task, split, fold, text) and per-cell outcomes
(quality, cost, latency, response). Benchmarks and offline learners index it by row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from pickllm.errors import ConfigError, DataError

__all__ = ["OutcomeTable"]


def _frozen(array: np.ndarray, dtype: type) -> np.ndarray:
    # A private read-only copy: the table is shared (bundled tables are cached), so
    # nobody may edit it in place, and the caller's array keeps its own flags.
    out: np.ndarray = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OutcomeTable:
    """Per-prompt, per-model outcomes of a recorded data set.

    Arrays are copied and made read-only on construction, so a table can be shared (the
    bundled ones are cached). Tables compare and hash by identity. Row ``i`` is one prompt,
    column ``j`` is ``models[j]``.

    Args:
        name: data set name or file path.
        prompt_ids: the ``n`` prompt ids.
        prompts: the ``n`` query texts.
        tasks: the ``n`` task names.
        splits: the ``n`` split names (``"train"``, ``"test"``, ...).
        folds: ``(n,)`` int fold numbers, -1 where unknown.
        models: the ``k`` model names.
        quality: ``(n, k)`` quality in [0, 1].
        cost: ``(n, k)`` USD per call, or None when unavailable for all.
        cost_estimated: the cost came from a price table and token estimates.
        input_tokens: ``(n,)`` prompt tokens (estimated when the data has none).
        latency: ``(n, k)`` recorded latency in seconds, or None (then benchmarks
            simulate it, see :mod:`pickllm.latency`).
        responses: ``n`` tuples of ``k`` response texts, if the data has them.
        extras: other per-prompt columns, each a tuple of ``n`` strings.

    Raises:
        DataError: shapes disagree or a quality is outside [0, 1].

    Examples:
        >>> import numpy as np
        >>> t = OutcomeTable(
        ...     name="toy", prompt_ids=("p1", "p2", "p3"), prompts=("a", "b", "c"),
        ...     tasks=("x", "x", "y"), splits=("train", "test", "test"),
        ...     folds=np.array([0, 1, 1]), models=("small", "large"),
        ...     quality=np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
        ...     cost=np.array([[1.0, 9.0], [1.0, 9.0], [2.0, 8.0]]), cost_estimated=False,
        ...     input_tokens=np.array([5, 5, 5]), latency=None, responses=None, extras={})
        >>> t.rows(split="test").tolist()
        [1, 2]
        >>> t.subset(t.rows(split="test")).quality.mean(axis=0).tolist()
        [0.5, 0.5]
    """

    name: str
    prompt_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    tasks: tuple[str, ...]
    splits: tuple[str, ...]
    folds: np.ndarray
    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray | None
    cost_estimated: bool
    input_tokens: np.ndarray
    latency: np.ndarray | None
    responses: tuple[tuple[str, ...], ...] | None
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, k = len(self.prompt_ids), len(self.models)
        for label, values in (
            ("prompts", self.prompts),
            ("tasks", self.tasks),
            ("splits", self.splits),
        ):
            if len(values) != n:
                msg = (
                    f"{self.name}: {label} has {len(values)} entries, expected {n} (one per prompt)"
                )
                raise DataError(msg)
        object.__setattr__(self, "prompt_ids", tuple(self.prompt_ids))
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "models", tuple(self.models))
        if len(set(self.models)) != k:
            msg = f"{self.name}: model names must be unique, got {list(self.models)!r}"
            raise DataError(msg)
        object.__setattr__(self, "folds", _frozen(self.folds, int))
        object.__setattr__(self, "input_tokens", _frozen(self.input_tokens, int))
        object.__setattr__(self, "quality", _frozen(self.quality, float))
        self._check_shape("folds", self.folds, (n,))
        self._check_shape("input_tokens", self.input_tokens, (n,))
        self._check_shape("quality", self.quality, (n, k))
        q = self.quality
        if q.size and not (np.all(q >= 0.0) and np.all(q <= 1.0)):  # also catches NaN
            bad = np.argwhere(~((q >= 0.0) & (q <= 1.0)))[0]
            msg = (
                f"{self.name}: quality must be in [0, 1], got {q[bad[0], bad[1]]!r} for prompt "
                f"{self.prompt_ids[bad[0]]!r}, model {self.models[bad[1]]!r}"
            )
            raise DataError(msg)
        self._freeze_outcomes(n, k)

    def _freeze_outcomes(self, n: int, k: int) -> None:
        for label in ("cost", "latency"):
            value = getattr(self, label)
            if value is None:
                continue
            arr = _frozen(value, float)
            self._check_shape(label, arr, (n, k))
            if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr >= 0.0)):
                msg = f"{self.name}: {label} must be finite and >= 0 everywhere"
                raise DataError(msg)
            object.__setattr__(self, label, arr)
        if self.responses is not None:
            resp = tuple(tuple(r) for r in self.responses)
            if len(resp) != n or any(len(r) != k for r in resp):
                msg = f"{self.name}: responses must be {n} rows of {k} texts"
                raise DataError(msg)
            object.__setattr__(self, "responses", resp)
        extras = {str(key): tuple(v) for key, v in self.extras.items()}
        for key, values in extras.items():
            if len(values) != n:
                msg = f"{self.name}: extra column {key!r} has {len(values)} entries, expected {n}"
                raise DataError(msg)
        object.__setattr__(self, "extras", MappingProxyType(extras))

    def _check_shape(self, label: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
        if array.shape != shape:
            msg = f"{self.name}: {label} has shape {array.shape}, expected {shape}"
            raise DataError(msg)

    @property
    def n_prompts(self) -> int:
        """Number of prompts (rows)."""
        return len(self.prompt_ids)

    @property
    def n_models(self) -> int:
        """Number of models (columns)."""
        return len(self.models)

    def model_index(self, model: str) -> int:
        """Column of ``model``.

        Raises:
            ConfigError: the table has no such model (the message lists them).
        """
        try:
            return self.models.index(model)
        except ValueError:
            msg = f"{self.name}: unknown model {model!r}; available: {', '.join(self.models)}"
            raise ConfigError(msg) from None

    def rows(
        self,
        *,
        split: str | None = None,
        fold: int | None = None,
        exclude_fold: int | None = None,
    ) -> np.ndarray:
        """Indices of the rows matching every given filter (all rows if none).

        Args:
            split: keep rows of this split.
            fold: keep rows of this fold.
            exclude_fold: drop rows of this fold.

        Raises:
            ConfigError: ``split`` or ``fold`` does not occur in the table (the message
                lists those that do).
        """
        mask = np.ones(self.n_prompts, dtype=bool)
        if split is not None:
            splits = np.asarray(self.splits, dtype=object)
            if split not in set(self.splits):
                msg = (
                    f"{self.name}: no rows with split {split!r}; "
                    f"available: {', '.join(sorted(set(self.splits)))}"
                )
                raise ConfigError(msg)
            mask &= splits == split
        known_folds = sorted({int(f) for f in self.folds})
        for label, value in (("fold", fold), ("exclude_fold", exclude_fold)):
            if value is not None and value not in known_folds:
                msg = (
                    f"{self.name}: {label}={value!r} is not a fold of the table; "
                    f"available: {', '.join(map(str, known_folds))}"
                )
                raise ConfigError(msg)
        if fold is not None:
            mask &= self.folds == fold
        if exclude_fold is not None:
            mask &= self.folds != exclude_fold
        return np.flatnonzero(mask)

    def subset(self, rows: np.ndarray) -> OutcomeTable:
        """The table restricted to ``rows`` (indices, in the given order)."""
        idx = np.asarray(rows, dtype=np.intp)
        if idx.ndim != 1:
            msg = f"rows must be a 1-d array of indices, got shape {idx.shape}"
            raise ConfigError(msg)
        picks = idx.tolist()

        def take(values: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(values[i] for i in picks)

        return OutcomeTable(
            name=self.name,
            prompt_ids=take(self.prompt_ids),
            prompts=take(self.prompts),
            tasks=take(self.tasks),
            splits=take(self.splits),
            folds=self.folds[idx],
            models=self.models,
            quality=self.quality[idx],
            cost=None if self.cost is None else self.cost[idx],
            cost_estimated=self.cost_estimated,
            input_tokens=self.input_tokens[idx],
            latency=None if self.latency is None else self.latency[idx],
            responses=None if self.responses is None else tuple(self.responses[i] for i in picks),
            extras={key: take(values) for key, values in self.extras.items()},
        )
