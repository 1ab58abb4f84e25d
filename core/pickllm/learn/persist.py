"""Save and load trained query scorers as JSON + npz (never pickle).

A saved scorer is a directory with two files:

* ``router.json``: format name and version, the router kind (``selectllm`` or
  ``zooter``), its hyperparameters, the model names, the featurizer's and learners'
  configuration, and the training summary;
* ``weights.npz``: every array (IDF, SVD projection, learner weights, calibration and
  cost-model coefficients, training predictions), read back with ``allow_pickle=False``.

Both files are written to temporary names and renamed into place
(:mod:`pickllm.learn.state`), so a crash never leaves a half-written scorer. Files saved
under the format key used before the rename to ``QueryScorer``
(``pickllm-learned-router``) load too. Loading checks the format, version and array
shapes and raises :class:`~pickllm.errors.StateError` on anything unexpected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pickllm.errors import StateError
from pickllm.learn.base import QueryScorer, Tagger
from pickllm.learn.featurizers import Featurizer, featurizer_from_state
from pickllm.learn.selectllm import SelectLLM
from pickllm.learn.state import (
    FORMAT,
    FORMAT_VERSION,
    LEGACY_FORMATS,
    META_FILE,
    WEIGHTS_FILE,
    write_scorer,
)
from pickllm.learn.zooter import Zooter

__all__ = ["FORMAT", "FORMAT_VERSION", "load_router", "save_router"]

_META = META_FILE
_WEIGHTS = WEIGHTS_FILE
_KINDS: dict[str, type[QueryScorer]] = {"selectllm": SelectLLM, "zooter": Zooter}


def save_router(router: QueryScorer, path: str | os.PathLike[str]) -> Path:
    """Save a trained scorer ``router`` into the directory ``path`` (created if needed).

    Returns:
        The directory.

    Raises:
        StateError: the scorer is not trained.
    """
    meta, arrays = router.get_state()
    return write_scorer(meta, arrays, path)


def load_router(
    path: str | os.PathLike[str],
    *,
    featurizer: Featurizer | None = None,
    tagger: Tagger | None = None,
) -> QueryScorer:
    """Load a router saved with :func:`save_router`.

    Args:
        path: the directory.
        featurizer: the embedding adapter, when the router was trained with one (its
            embedding model is not saved); None for the built-in hashed featurizer.
        tagger: the tagger, when the router was trained with one (callables are not saved).

    Raises:
        StateError: missing files, another format or version, or inconsistent contents.
    """
    directory = Path(path)
    try:
        meta = json.loads((directory / _META).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{directory} holds no saved router ({_META} is missing)"
        raise StateError(msg) from exc
    except json.JSONDecodeError as exc:
        msg = f"{directory / _META} is not valid JSON: {exc}"
        raise StateError(msg) from exc
    known = (FORMAT, *LEGACY_FORMATS)
    if not isinstance(meta, Mapping) or meta.get("format") not in known:
        msg = f"{directory / _META} is not a {FORMAT} file"
        raise StateError(msg)
    if meta.get("version") != FORMAT_VERSION:
        msg = (
            f"{directory / _META} has format version {meta.get('version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
        raise StateError(msg)
    cls = _KINDS.get(str(meta.get("kind")))
    if cls is None:
        msg = f"unknown router kind {meta.get('kind')!r}; known: {sorted(_KINDS)}"
        raise StateError(msg)
    try:
        with np.load(directory / _WEIGHTS, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        msg = f"{directory} holds no {_WEIGHTS}"
        raise StateError(msg) from exc
    except ValueError as exc:
        msg = f"{directory / _WEIGHTS} is not a plain npz archive: {exc}"
        raise StateError(msg) from exc
    try:
        params = dict(meta["params"])
        router = cls(**params, tagger=tagger, featurizer=None)
        feats = {
            k[len("featurizer/") :]: v for k, v in arrays.items() if k.startswith("featurizer/")
        }
        fz = featurizer_from_state(meta["featurizer"], feats, featurizer=featurizer)
        router._set_state(meta, arrays, fz)
    except StateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{directory} holds an inconsistent router: {exc}"
        raise StateError(msg) from exc
    return router
