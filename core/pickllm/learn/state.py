"""A query scorer's learned state as JSON-ready meta plus named arrays, and its files.

:func:`encode_state` and :func:`decode_state` turn a trained scorer's parts into
``(meta, arrays)`` and back; :func:`write_scorer` writes them into a directory (a JSON
file and an npz archive, each written to a temporary name and renamed into place, so a
crash never leaves a half-written scorer). :mod:`pickllm.learn.persist` reads them back.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pickllm._version import __version__
from pickllm.errors import StateError
from pickllm.learn.calibration import Stacker
from pickllm.learn.cost import CostModel
from pickllm.learn.featurizers import ContextSignals, Featurizer
from pickllm.learn.heads import Heads, check_heads
from pickllm.learn.models import MLP, LogisticRegression, model_from_state

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LEGACY_FORMATS",
    "META_FILE",
    "WEIGHTS_FILE",
    "Restored",
    "decode_state",
    "encode_state",
    "write_scorer",
]

FORMAT = "pickllm-query-scorer"
"""The ``format`` key of a saved scorer's JSON file."""
LEGACY_FORMATS = ("pickllm-learned-router",)
"""Format keys of files saved before the rename to QueryScorer, still read."""
FORMAT_VERSION = 1
META_FILE = "router.json"
WEIGHTS_FILE = "weights.npz"


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored:
    """The learned parts of a scorer read back by :func:`decode_state`."""

    signals: ContextSignals | None
    models: tuple[str, ...]
    tag_vocab: tuple[str, ...]
    heads: Heads
    stacker: Stacker | None
    cost_model: CostModel | None
    train_quality: np.ndarray
    train_cost: np.ndarray
    summary: dict[str, Any]


def encode_state(
    *,
    kind: str,
    params: Mapping[str, Any],
    featurizer: Featurizer,
    signals: ContextSignals | None,
    models: Sequence[str],
    tag_vocab: Sequence[str],
    heads: Heads,
    stacker: Stacker | None,
    cost_model: CostModel | None,
    train_quality: np.ndarray,
    train_cost: np.ndarray,
    summary: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A trained scorer's parts as JSON-ready meta and named arrays."""
    arrays: dict[str, np.ndarray] = {}
    feat_meta, feat_arrays = featurizer.get_state()
    arrays.update({f"featurizer/{k}": v for k, v in feat_arrays.items()})
    head_meta: dict[str, list[dict[str, Any]]] = {"target": [], "tag": []}
    for head, members in (("target", heads.target), ("tag", heads.tag)):
        for i, m in enumerate(members):
            meta, weights = m.get_state()
            head_meta[head].append(meta)
            arrays.update({f"{head}{i}/{k}": v for k, v in weights.items()})
    if heads.tag_means is not None:
        arrays["tag_means"] = heads.tag_means
    if stacker is not None and stacker.weights is not None:
        arrays["stacker/w"] = stacker.weights
    if cost_model is not None:
        arrays.update({f"cost/{k}": v for k, v in cost_model.get_state().items()})
    arrays["train/quality"] = train_quality
    arrays["train/cost"] = train_cost
    meta_all = {
        "kind": kind,
        "params": dict(params),
        "models": list(models),
        "featurizer": feat_meta,
        "signals": None if signals is None else signals.get_state(),
        "heads": head_meta,
        "tags": list(tag_vocab),
        "stacker": None if stacker is None else stacker.transform,
        "has_cost": cost_model is not None,
        "summary": dict(summary),
    }
    return meta_all, arrays


def decode_state(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *, tag_beta: float
) -> Restored:
    """The learned parts saved by :func:`encode_state` (the featurizer is rebuilt apart).

    Raises:
        StateError: the learners do not fit the models and tags; KeyError, TypeError or
            ValueError for missing or malformed entries.
    """

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    signals = meta.get("signals")
    models = tuple(str(m) for m in meta["models"])
    tag_vocab = tuple(str(t) for t in meta.get("tags", []))
    heads = Heads(beta=tag_beta)
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
    check_heads(heads, len(models), len(tag_vocab))
    transform = meta.get("stacker")
    return Restored(
        signals=None if signals is None else ContextSignals.from_state(signals),
        models=models,
        tag_vocab=tag_vocab,
        heads=heads,
        stacker=None if transform is None else Stacker.from_weights(transform, arrays["stacker/w"]),
        cost_model=CostModel.from_state(group("cost/")) if meta.get("has_cost") else None,
        train_quality=np.asarray(arrays["train/quality"], dtype=float),
        train_cost=np.asarray(arrays["train/cost"], dtype=float),
        summary=dict(meta.get("summary", {})),
    )


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_scorer(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str | os.PathLike[str]
) -> Path:
    """Write a scorer's ``(meta, arrays)`` into the directory ``path`` (created if needed).

    Returns:
        The directory.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "version": FORMAT_VERSION, "pickllm": __version__, **meta}
    text = json.dumps(body, indent=2, sort_keys=True, allow_nan=False)
    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    _write_atomic(
        directory / WEIGHTS_FILE, lambda h: np.savez_compressed(h, allow_pickle=False, **clean)
    )
    _write_atomic(directory / META_FILE, lambda h: h.write(text.encode("utf-8")))
    return directory
