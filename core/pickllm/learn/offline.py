"""Adapters that make the learned routers offline routers for ``pickllm bench``.

``pickllm bench`` fits an offline router on the train rows of an
:class:`~pickllm.data.OutcomeTable`, asks it for predicted quality and cost on the train
and test rows, and fits the cost-aware rule of :mod:`pickllm.costaware` to a grid of
budgets on the train predictions. :class:`LearnedOffline` does that for any
:class:`~pickllm.learn.base.QueryScorer`: it trains on the rows' prompts, qualities,
costs and input tokens, and passes the task column as tags (each router's configuration
decides whether tags are used: ``tag_beta < 1`` uses them for training only,
``tags_as_features=True`` also at prediction time). Asked about its own training rows it
returns the router's training predictions, which are out-of-fold with
``calibration="cross_fit"``, so the budget fit sees test-like predictions.

:func:`offline_routers` lists the configurations benchmarked in
``benchmarks/learned_routers.py`` by name, as factories for
:func:`pickllm.registry.register_offline_router`. :class:`PerTaskAverage`, the per-task
baseline, is not learned from the text: it averages each model's outcomes per task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError, StateError
from pickllm.learn.base import QueryScorer
from pickllm.learn.selectllm import SelectLLM
from pickllm.learn.zooter import Zooter

__all__ = ["LearnedOffline", "PerTaskAverage", "offline_routers", "table_fit_args"]


def table_fit_args(table: OutcomeTable, rows: np.ndarray) -> dict[str, Any]:
    """The keyword arguments of :meth:`QueryScorer.fit` for ``rows`` of ``table``."""
    idx = np.asarray(rows, dtype=np.intp)
    picks = idx.tolist()
    return {
        "texts": [table.prompts[i] for i in picks],
        "quality": table.quality[idx],
        "models": table.models,
        "tags": [table.tasks[i] for i in picks],
        "cost": None if table.cost is None else table.cost[idx],
        "input_tokens": table.input_tokens[idx],
    }


class LearnedOffline:
    """A learned router as a bench :class:`~pickllm.registry.OfflineRouter`.

    Args:
        name: the name the bench reports.
        factory: builds a fresh, untrained router.

    Examples:
        >>> from pickllm.learn.selectllm import SelectLLM
        >>> adapter = LearnedOffline("selectllm", lambda: SelectLLM(learner="logistic"))
        >>> adapter.name
        'selectllm'
    """

    def __init__(self, name: str, factory: Callable[[], QueryScorer]) -> None:
        if not isinstance(name, str) or not name:
            msg = f"name must be a non-empty string, got {name!r}"
            raise ConfigError(msg)
        self.name = name
        self.factory = factory
        self.router: QueryScorer | None = None
        self._fit_key: tuple[int, bytes] | None = None

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        """Train a fresh router on ``rows``."""
        idx = np.asarray(rows, dtype=np.intp)
        if idx.size == 0:
            msg = f"{self.name}: fit needs at least one train row, got none"
            raise ConfigError(msg)
        args = table_fit_args(table, idx)
        texts = args.pop("texts")
        quality = args.pop("quality")
        models = args.pop("models")
        self.router = self.factory().fit(texts, quality, models, **args)
        self._fit_key = (id(table), idx.tobytes())

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``(quality, cost)`` for ``rows``, each ``(len(rows), k)``."""
        if self.router is None:
            msg = f"{self.name}: predict called before fit"
            raise StateError(msg)
        idx = np.asarray(rows, dtype=np.intp)
        if self._fit_key == (id(table), idx.tobytes()):
            q, c = self.router.training_predictions()
            return q.copy(), c.copy()
        args = table_fit_args(table, idx)
        pred = self.router.predict(
            args["texts"], tags=args["tags"], input_tokens=args["input_tokens"]
        )
        return pred.quality, pred.cost


class PerTaskAverage:
    """Predict each model's mean train quality and cost on the query's task.

    The routing baseline of the cascade-routing paper's RouterBench setting: it knows the
    task of each query and nothing else about it. Tasks unseen in training get the overall
    train means. Without cost in the table, ``c_hat`` is zero.

    Examples:
        >>> import numpy as np
        >>> from pickllm.data import OutcomeTable
        >>> t = OutcomeTable(
        ...     name="toy", prompt_ids=("a", "b", "c", "d"), prompts=("", "", "", ""),
        ...     tasks=("x", "x", "y", "y"), splits=("train",) * 4, folds=np.zeros(4),
        ...     models=("m1", "m2"), quality=np.array([[1, 0], [1, 1], [0, 1], [0, 1]]),
        ...     cost=np.ones((4, 2)), cost_estimated=False, input_tokens=np.ones(4),
        ...     latency=None, responses=None)
        >>> r = PerTaskAverage()
        >>> r.fit(t, np.arange(4))
        >>> r.predict(t, np.array([0, 2]))[0].tolist()
        [[1.0, 0.5], [0.0, 1.0]]
    """

    name = "per_task"

    def __init__(self) -> None:
        self._quality: dict[str, np.ndarray] = {}
        self._cost: dict[str, np.ndarray] = {}
        self._overall: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        """Average quality and cost per task over ``rows``."""
        idx = np.asarray(rows, dtype=np.intp)
        if idx.size == 0:
            msg = "PerTaskAverage.fit needs at least one train row, got none"
            raise ConfigError(msg)
        cost = table.cost if table.cost is not None else np.zeros(table.quality.shape)
        tasks = np.asarray(table.tasks, dtype=object)[idx]
        self._quality, self._cost = {}, {}
        for task in sorted(set(tasks.tolist())):
            sel = idx[tasks == task]
            self._quality[task] = table.quality[sel].mean(axis=0)
            self._cost[task] = cost[sel].mean(axis=0)
        self._overall = (table.quality[idx].mean(axis=0), cost[idx].mean(axis=0))

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-task train means for ``rows``."""
        if self._overall is None:
            msg = "PerTaskAverage.predict called before fit"
            raise ConfigError(msg)
        q_all, c_all = self._overall
        picks = np.asarray(rows, dtype=np.intp).tolist()
        q = np.array([self._quality.get(table.tasks[i], q_all) for i in picks], dtype=float)
        c = np.array([self._cost.get(table.tasks[i], c_all) for i in picks], dtype=float)
        k = table.n_models
        return q.reshape(len(picks), k), c.reshape(len(picks), k)


def offline_routers() -> dict[str, Callable[[], LearnedOffline]]:
    """The benchmarked configurations by name, as factories of fresh adapters.

    * ``selectllm``: SelectLLM's classifier on the text alone (no task labels anywhere).
    * ``selectllm_tagsmooth``: SelectLLM trained on targets smoothed to their task's mean
      (``tag_beta=0``; task labels for training only, not at prediction time).
    * ``selectllm_tags``: SelectLLM with the task appended to the features.
    * ``zooter``: Zooter, ``tau = 1``, ``beta = 0`` on task tags (training only): the best
      learned policy on both bundled data sets.
    * ``zooter_paper``: Zooter with the paper's ``beta = 0.3``.
    """
    configs: dict[str, Callable[[], QueryScorer]] = {
        "selectllm": lambda: SelectLLM(seed=0),
        "selectllm_tagsmooth": lambda: SelectLLM(tag_beta=0.0, seed=0),
        "selectllm_tags": lambda: SelectLLM(tags_as_features=True, seed=0),
        "zooter": lambda: Zooter(tag_beta=0.0, seed=0),
        "zooter_paper": lambda: Zooter(tag_beta=0.3, seed=0),
    }

    def adapter(name: str, make: Callable[[], QueryScorer]) -> Callable[[], LearnedOffline]:
        return lambda: LearnedOffline(name, make)

    return {name: adapter(name, make) for name, make in configs.items()}
