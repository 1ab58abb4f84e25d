"""One-call training from an outcome table, and loading saved routers.

:func:`train` is what ``pickllm train`` runs: it picks the rows to learn from, builds a
:class:`~pickllm.learn.selectllm.SelectLLM` or :class:`~pickllm.learn.zooter.Zooter` with
the given hyperparameters and fits it on the rows' prompts, qualities, costs, input tokens
and task tags. :func:`load_trained` reads a router saved with ``router.save(dir)``.
"""

from __future__ import annotations

import os
from typing import Any, Literal, TypeAlias

import numpy as np

from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.learn.base import QueryScorer, Tagger
from pickllm.learn.featurizers import Featurizer
from pickllm.learn.offline import table_fit_args
from pickllm.learn.persist import load_router
from pickllm.learn.selectllm import SelectLLM
from pickllm.learn.zooter import Zooter

__all__ = ["ROUTER_KINDS", "TrainedRouter", "load_trained", "train"]

TrainedRouter: TypeAlias = QueryScorer
"""A fitted :class:`~pickllm.learn.selectllm.SelectLLM` or :class:`~pickllm.learn.zooter.Zooter`."""

ROUTER_KINDS: dict[str, type[QueryScorer]] = {"selectllm": SelectLLM, "zooter": Zooter}
"""The router classes :func:`train` builds, by name."""


def train(
    table: OutcomeTable,
    policy: Literal["selectllm", "zooter"] = "selectllm",
    *,
    rows: np.ndarray | None = None,
    split: str | None = None,
    exclude_fold: int | None = None,
    **params: Any,
) -> TrainedRouter:
    """Train a learned router on recorded outcomes.

    Args:
        table: the outcomes (:func:`pickllm.data.load_outcomes`).
        policy: ``"selectllm"`` or ``"zooter"``.
        rows: the rows to train on; None selects them with ``split`` / ``exclude_fold``
            (and all rows if both are None).
        split: train on the rows of this split (e.g. ``"train"``).
        exclude_fold: train on every fold but this one (e.g. keep fold 0 for testing).
        **params: hyperparameters of the router class.

    Raises:
        ConfigError: unknown policy, bad hyperparameters, or no rows.

    Examples:
        >>> from pickllm.data import load_outcomes
        >>> table = load_outcomes("routerbench_subset")
        >>> rows = table.rows(split="train")[:200]
        >>> router = train(table, "selectllm", rows=rows, learner="logistic", seed=0)
        >>> router.models == table.models, router.summary["n_train"]
        (True, 200)
    """
    cls = ROUTER_KINDS.get(policy)
    if cls is None:
        msg = f"unknown learned policy {policy!r}; available: {', '.join(sorted(ROUTER_KINDS))}"
        raise ConfigError(msg)
    if rows is None:
        rows = table.rows(split=split, exclude_fold=exclude_fold)
    elif split is not None or exclude_fold is not None:
        msg = "pass either rows or split/exclude_fold, not both"
        raise ConfigError(msg)
    idx = np.asarray(rows, dtype=np.intp)
    if idx.size == 0:
        msg = f"{table.name}: no rows to train on"
        raise ConfigError(msg)
    router = cls(**params)
    args = table_fit_args(table, idx)
    texts = args.pop("texts")
    quality = args.pop("quality")
    models = args.pop("models")
    return router.fit(texts, quality, models, **args)


def load_trained(
    path: str | os.PathLike[str],
    *,
    featurizer: Featurizer | None = None,
    tagger: Tagger | None = None,
) -> TrainedRouter:
    """Load a router saved with ``router.save(path)``.

    Args:
        path: the directory it was saved to.
        featurizer: the embedding adapter it was trained with, if any (embedding models
            are not saved).
        tagger: its tagger, if any (callables are not saved).

    Raises:
        StateError: not a saved router, or a corrupted one.
    """
    return load_router(path, featurizer=featurizer, tagger=tagger)
