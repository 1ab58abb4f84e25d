"""Save and load trained routers as JSON + npz (never pickle).

A saved router is a directory with two files:

* ``router.json``: format name and version, the router kind (``selectllm`` or
  ``zooter``), its hyperparameters, the model names, the featurizer's and learners'
  configuration, and the training summary;
* ``weights.npz``: every array (IDF, SVD projection, learner weights, calibration and
  cost-model coefficients, training predictions), read back with ``allow_pickle=False``.

Both files are written to temporary names and renamed into place, so a crash never leaves
a half-written router. Loading checks the format, version and array shapes and raises
:class:`~pickllm.errors.StateError` on anything unexpected.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pickllm._version import __version__
from pickllm.errors import StateError
from pickllm.learn.base import QueryScorer, Tagger
from pickllm.learn.featurizers import Featurizer, featurizer_from_state
from pickllm.learn.selectllm import SelectLLM
from pickllm.learn.zooter import Zooter

__all__ = ["FORMAT", "FORMAT_VERSION", "load_router", "save_router"]

FORMAT = "pickllm-learned-router"
FORMAT_VERSION = 1
_META = "router.json"
_WEIGHTS = "weights.npz"
_KINDS: dict[str, type[QueryScorer]] = {"selectllm": SelectLLM, "zooter": Zooter}


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_router(router: QueryScorer, path: str | os.PathLike[str]) -> Path:
    """Save a trained ``router`` into the directory ``path`` (created if needed).

    Returns:
        The directory.

    Raises:
        StateError: the router is not trained.
    """
    meta, arrays = router.get_state()
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "version": FORMAT_VERSION, "pickllm": __version__, **meta}
    text = json.dumps(body, indent=2, sort_keys=True, allow_nan=False)
    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    _write_atomic(
        directory / _WEIGHTS, lambda h: np.savez_compressed(h, allow_pickle=False, **clean)
    )
    _write_atomic(directory / _META, lambda h: h.write(text.encode("utf-8")))
    return directory


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
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
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
