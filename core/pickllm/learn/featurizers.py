"""Turn query texts into feature vectors for the learned routers.

Every featurizer follows the small :class:`Featurizer` protocol: ``fit(texts)``,
``transform(texts) -> (n, dim) float array``, ``dim``, and a state split into a JSON-ready
part and numpy arrays (saved as JSON + npz, never pickled).

* :class:`HashedNgramFeaturizer` (the default) needs nothing external: hashed word uni/bi-grams
  and character 3-5-grams with sublinear term frequency, an IDF fitted on the training texts
  and L2 normalisation, optionally projected to a few hundred dense dimensions by a randomized
  SVD fitted on the training texts.
* :class:`LangChainEmbeddings` and :class:`LlamaIndexEmbeddings` adapt an embedding model the
  user already has, with a bounded in-memory cache keyed by text. The frameworks are imported
  lazily: importing this module imports neither.
* :class:`ContextSignals` appends optional context signals: a one-hot of a task tag from a
  fitted vocabulary, and the number of conversation turns.

Hashing uses a fixed FNV-1a over Unicode code points (never Python's salted ``hash``), so a
text maps to the same features in every process.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from pickllm.errors import ConfigError, StateError
from pickllm.types import SeedLike

__all__ = [
    "ContextSignals",
    "Featurizer",
    "HashedNgramFeaturizer",
    "LangChainEmbeddings",
    "LlamaIndexEmbeddings",
    "TagsLike",
    "count_turns",
    "featurizer_from_state",
    "normalise_tags",
]

_FNV_OFFSET = np.uint64(0x811C9DC5)
_FNV_PRIME = np.uint64(0x01000193)
_MASK32 = np.uint64(0xFFFFFFFF)
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_SPACE_RE = re.compile(r"\s+")
_TURN_RE = re.compile(
    r"^\s*(?:human|user|assistant|ai|system|bot|question|answer)\s*:", re.IGNORECASE | re.MULTILINE
)


@runtime_checkable
class Featurizer(Protocol):
    """What the learned routers need from a featurizer.

    ``fit`` learns whatever the featurizer needs from the training texts (and may do
    nothing); ``transform`` returns one row per text. ``get_state`` returns the
    hyperparameters and learned state as a JSON-ready mapping plus a mapping of numpy
    arrays; :func:`featurizer_from_state` rebuilds the built-in featurizers from them.
    """

    kind: ClassVar[str]

    @property
    def dim(self) -> int:
        """Number of columns ``transform`` returns (valid after ``fit``)."""
        ...

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn from the training texts; returns ``self``."""
        ...

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Features of ``texts``, shape ``(len(texts), dim)``."""
        ...

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Hyperparameters and learned state: a JSON-ready dict and named arrays."""
        ...


# ---------------------------------------------------------------------- hashing helpers
def _fnv_char_ngrams(codes: np.ndarray, n: int) -> np.ndarray:
    """FNV-1a hash (32 bit) of every character n-gram of ``codes`` (uint64 code points)."""
    m = codes.shape[0] - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    # Seeding with n keeps a 3-gram and the 4-gram that extends it far apart.
    h = np.full(m, _FNV_OFFSET ^ np.uint64(n), dtype=np.uint64)
    for j in range(n):
        h ^= codes[j : j + m]
        h *= _FNV_PRIME
        h &= _MASK32
    return h


def _fnv_string(text: str) -> int:
    """FNV-1a hash (32 bit) of a string's code points."""
    h = 0x811C9DC5
    for ch in text:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Combine two 32-bit hashes into one (order-sensitive), for word bigrams."""
    h = (a * np.uint64(0x9E3779B1)) & _MASK32
    h ^= b + np.uint64(0x7F4A7C15) + ((h << np.uint64(6)) & _MASK32) + (h >> np.uint64(2))
    h *= _FNV_PRIME
    out: np.ndarray = h & _MASK32
    return out


def _clip_text(text: str, max_chars: int | None) -> str:
    # Keep the head and the tail: the instruction is often first and the question last.
    if max_chars is None or len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + " " + text[-(max_chars - half) :]


class HashedNgramFeaturizer:
    """TF-IDF of hashed word and character n-grams, with an optional SVD projection.

    Word uni- and bi-grams and character n-grams (on lower-cased text with collapsed
    whitespace) are hashed with a fixed FNV-1a into two blocks of ``n_features // 2``
    columns each. Counts get sublinear scaling ``1 + log(tf)`` and a smoothed IDF
    ``log((1 + n) / (1 + df)) + 1`` fitted on the training texts; each block is
    L2-normalised and weighted ``sqrt(1/2)`` so a row has unit norm. With ``components``
    set, a randomized SVD fitted on the training matrix projects rows to that many dense
    dimensions (then re-normalised), which makes the MLP and nearest-neighbour routers much
    faster at no measured loss (see ``benchmarks/learned_routers.py``).

    Args:
        n_features: total hashed columns (even, >= 2).
        word_ngrams: ``(min_n, max_n)`` of word n-grams, or None for no word block.
        char_ngrams: ``(min_n, max_n)`` of character n-grams, or None for no char block.
        max_chars: texts longer than this keep their first and last ``max_chars / 2``
            characters (None: no limit).
        components: dimension of the SVD projection, or None for the raw hashed TF-IDF.
        chunk_size: texts hashed per batch (bounds the dense count buffer's memory).
        seed: seeds the randomized SVD.

    Examples:
        >>> f = HashedNgramFeaturizer(n_features=64).fit(["what is 2+2", "name a red fruit"])
        >>> x = f.transform(["what is 3+3"])
        >>> x.shape, round(float(np.linalg.norm(x)), 6)
        ((1, 64), 1.0)
    """

    kind: ClassVar[str] = "hashed_ngram"

    def __init__(
        self,
        *,
        n_features: int = 2**14,
        word_ngrams: tuple[int, int] | None = (1, 2),
        char_ngrams: tuple[int, int] | None = (3, 5),
        max_chars: int | None = 4000,
        components: int | None = None,
        chunk_size: int = 256,
        seed: SeedLike = 0,
    ) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 2:
            msg = f"n_features must be an int >= 2, got {n_features!r}"
            raise ConfigError(msg)
        if n_features % 2:
            msg = f"n_features must be even (two equal blocks), got {n_features!r}"
            raise ConfigError(msg)
        for pname, rng in (("word_ngrams", word_ngrams), ("char_ngrams", char_ngrams)):
            if rng is not None and not _valid_range(rng):
                msg = (
                    f"{pname} must be None or (min_n, max_n) with 1 <= min_n <= max_n, got {rng!r}"
                )
                raise ConfigError(msg)
        if word_ngrams is None and char_ngrams is None:
            msg = "word_ngrams and char_ngrams cannot both be None (no features at all)"
            raise ConfigError(msg)
        if max_chars is not None and (
            isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 2
        ):
            msg = f"max_chars must be None or an int >= 2, got {max_chars!r}"
            raise ConfigError(msg)
        if components is not None and (
            isinstance(components, bool) or not isinstance(components, int) or components < 1
        ):
            msg = f"components must be None or a positive int, got {components!r}"
            raise ConfigError(msg)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            msg = f"chunk_size must be a positive int, got {chunk_size!r}"
            raise ConfigError(msg)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
        ):
            msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
            raise TypeError(msg)
        self.n_features = n_features
        self.word_ngrams = (
            None if word_ngrams is None else (int(word_ngrams[0]), int(word_ngrams[1]))
        )
        self.char_ngrams = (
            None if char_ngrams is None else (int(char_ngrams[0]), int(char_ngrams[1]))
        )
        self.max_chars = max_chars
        self.components = components
        self.chunk_size = chunk_size
        self.seed = seed
        self._idf: np.ndarray | None = None
        self._projection: np.ndarray | None = None
        self._word_cache: dict[str, int] = {}

    # ------------------------------------------------------------------ protocol
    @property
    def dim(self) -> int:
        """Output dimension: ``components`` if set, else ``n_features``."""
        if self._projection is not None:
            return int(self._projection.shape[1])
        return self.n_features

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` (or a state load) has run."""
        return self._idf is not None

    def fit(self, texts: Sequence[str]) -> Self:
        """Fit the IDF (and the SVD projection) on ``texts``."""
        texts = _as_texts(texts)
        if not texts:
            msg = "fit() needs at least one text, got none"
            raise ConfigError(msg)
        n = len(texts)
        df = np.zeros(self.n_features, dtype=np.float64)
        chunks = []
        for start in range(0, n, self.chunk_size):
            tf = self._counts(texts[start : start + self.chunk_size])
            df += (tf > 0).sum(axis=0)
            if self.components is not None:
                chunks.append(tf)
        self._idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self._projection = None
        if self.components is not None:
            x = np.concatenate([self._weigh(tf) for tf in chunks]) if chunks else None
            if x is not None:
                self._projection = _randomized_svd_basis(
                    x, min(self.components, *x.shape), np.random.default_rng(self.seed)
                )
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Features of ``texts``: float32, shape ``(len(texts), dim)``, rows of unit norm."""
        if self._idf is None:
            msg = "HashedNgramFeaturizer.transform() called before fit()"
            raise StateError(msg)
        texts = _as_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.chunk_size):
            x = self._weigh(self._counts(texts[start : start + self.chunk_size]))
            if self._projection is not None:
                x = _normalise_rows(x @ self._projection)
            out[start : start + x.shape[0]] = x
        return out

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        """``fit(texts)`` then ``transform(texts)``."""
        return self.fit(texts).transform(texts)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, JSON-ready (a Generator seed is reported as None)."""
        return {
            "n_features": self.n_features,
            "word_ngrams": None if self.word_ngrams is None else list(self.word_ngrams),
            "char_ngrams": None if self.char_ngrams is None else list(self.char_ngrams),
            "max_chars": self.max_chars,
            "components": self.components,
            "chunk_size": self.chunk_size,
            "seed": self.seed if isinstance(self.seed, int) else None,
        }

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Hyperparameters (JSON) and the fitted IDF / projection (arrays)."""
        if self._idf is None:
            msg = "HashedNgramFeaturizer is not fitted; nothing to save"
            raise StateError(msg)
        arrays = {"idf": self._idf}
        if self._projection is not None:
            arrays["projection"] = self._projection
        return {"kind": self.kind, "params": self.get_params()}, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Self:
        """Rebuild a fitted featurizer from :meth:`get_state`'s output."""
        params = dict(meta["params"])
        for key in ("word_ngrams", "char_ngrams"):
            if params.get(key) is not None:
                params[key] = tuple(params[key])
        obj = cls(**params)
        idf = np.asarray(arrays["idf"], dtype=np.float32)
        if idf.shape != (obj.n_features,):
            msg = f"idf has shape {idf.shape}, expected ({obj.n_features},)"
            raise StateError(msg)
        obj._idf = idf
        if "projection" in arrays:
            proj = np.asarray(arrays["projection"], dtype=np.float32)
            if proj.ndim != 2 or proj.shape[0] != obj.n_features:
                msg = f"projection has shape {proj.shape}, expected ({obj.n_features}, d)"
                raise StateError(msg)
            obj._projection = proj
        return obj

    # ------------------------------------------------------------------ internals
    def _weigh(self, tf: np.ndarray) -> np.ndarray:
        """Sublinear tf times IDF, each block L2-normalised, as float32."""
        if self._idf is None:  # pragma: no cover - callers check first
            msg = "not fitted"
            raise StateError(msg)
        x = np.zeros(tf.shape, dtype=np.float32)
        nz = tf > 0
        x[nz] = 1.0 + np.log(tf[nz])
        x *= self._idf
        half = self.n_features // 2
        blocks = [
            b
            for b, on in ((slice(0, half), self.word_ngrams), (slice(half, None), self.char_ngrams))
            if on
        ]
        scale = np.float32(1.0 / math.sqrt(len(blocks)))
        for b in blocks:
            x[:, b] = _normalise_rows(x[:, b]) * scale
        return x

    def _counts(self, texts: Sequence[str]) -> np.ndarray:
        """Raw hashed counts of a batch of texts, shape ``(len(texts), n_features)``."""
        m = len(texts)
        half = self.n_features // 2
        cleaned = [_SPACE_RE.sub(" ", _clip_text(t, self.max_chars).lower()).strip() for t in texts]
        keys: list[np.ndarray] = []
        if self.word_ngrams is not None:
            keys.append(self._word_keys(cleaned, half))
        if self.char_ngrams is not None:
            keys.append(self._char_keys(cleaned, half) + half)
        # One flat bincount over (row, column) keys is far faster than per-text updates.
        flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        counts = np.bincount(flat, minlength=m * self.n_features)
        return counts.reshape(m, self.n_features).astype(np.float32)

    def _word_keys(self, cleaned: Sequence[str], width: int) -> np.ndarray:
        if self.word_ngrams is None:  # pragma: no cover - guarded by the caller
            return np.zeros(0, dtype=np.int64)
        lo, hi = self.word_ngrams
        out: list[np.ndarray] = []
        for row, text in enumerate(cleaned):
            base = self._word_hashes(_WORD_RE.findall(text))
            grams: list[np.ndarray] = []
            cur = base
            for n in range(1, hi + 1):
                if n > 1:
                    cur = _mix(cur[:-1], base[n - 1 :])
                if n >= lo and cur.size:
                    grams.append(cur ^ np.uint64(n * 0x3C6EF372 & 0xFFFFFFFF))
            if grams:
                cols = (np.concatenate(grams) % np.uint64(width)).astype(np.int64)
                out.append(cols + row * self.n_features)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _word_hashes(self, words: Sequence[str]) -> np.ndarray:
        """FNV hashes of ``words``, memoised (a bounded cache: vocabularies are Zipfian)."""
        cache = self._word_cache
        hashes = []
        for w in words:
            h = cache.get(w)
            if h is None:
                h = _fnv_string(w)
                if len(cache) < 1_000_000:
                    cache[w] = h
            hashes.append(h)
        return np.asarray(hashes, dtype=np.uint64)

    def _char_keys(self, cleaned: Sequence[str], width: int) -> np.ndarray:
        if self.char_ngrams is None:  # pragma: no cover - guarded by the caller
            return np.zeros(0, dtype=np.int64)
        lo, hi = self.char_ngrams
        # Hash every text of the batch in one pass over the concatenation, then drop the
        # n-grams that straddle two texts.
        padded = [f" {t} " for t in cleaned]
        lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=len(padded))
        joined = "".join(padded)
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        row_of = np.repeat(np.arange(len(padded), dtype=np.int64), lengths)
        end_of = np.repeat(np.cumsum(lengths), lengths)
        out: list[np.ndarray] = []
        for n in range(lo, hi + 1):
            h = _fnv_char_ngrams(codes, n)
            if not h.size:
                continue
            starts = np.arange(h.size, dtype=np.int64)
            ok = starts + n <= end_of[: h.size]
            cols = (h[ok] % np.uint64(width)).astype(np.int64)
            out.append(cols + row_of[: h.size][ok] * self.n_features - 0)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"HashedNgramFeaturizer({args})"


def _valid_range(value: object) -> bool:
    if not isinstance(value, tuple | list) or len(value) != 2:
        return False
    lo, hi = value
    return (
        isinstance(lo, int)
        and isinstance(hi, int)
        and not isinstance(lo, bool)
        and not isinstance(hi, bool)
        and 1 <= lo <= hi
    )


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        msg = "texts must be a sequence of strings, got a single str (wrap it in a list)"
        raise TypeError(msg)
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            msg = f"texts must all be str, got {type(t).__name__}"
            raise TypeError(msg)
    return out


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = (x / norms).astype(np.float32, copy=False)
    return out


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of a tall ``y``, via the small Gram matrix.

    LAPACK's QR of a tall float32 matrix is an order of magnitude slower here than a
    matrix product, and the basis only has to span the right subspace.
    """
    gram = (y.T @ y).astype(np.float64)
    w, v = np.linalg.eigh(gram)
    keep = w > w.max() * 1e-10
    out: np.ndarray = (y @ (v[:, keep] / np.sqrt(w[keep])).astype(y.dtype)).astype(y.dtype)
    return out


def _randomized_svd_basis(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The top-``k`` right singular vectors of ``x`` (Halko et al.), shape ``(d, k)``."""
    n, d = x.shape
    oversample = min(10, max(0, min(n, d) - k))
    omega = rng.standard_normal((d, k + oversample)).astype(np.float32)
    y = _orthonormal(x @ omega)
    for _ in range(2):
        # Power iterations sharpen the spectrum; re-orthonormalising keeps them stable.
        y = _orthonormal(x @ _orthonormal(x.T @ y))
    b = (y.T @ x).astype(np.float64)
    w, u = np.linalg.eigh(b @ b.T)
    order = np.argsort(w)[::-1][:k]
    s = np.sqrt(np.maximum(w[order], 1e-30))
    basis = (b.T @ u[:, order]) / s
    # Fix each vector's sign so the projection does not depend on LAPACK's choice.
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
    signs[signs == 0] = 1.0
    out: np.ndarray = (basis * signs).astype(np.float32)
    return out


# ---------------------------------------------------------------------- embeddings adapters
class _CachedEmbeddings:
    """Shared logic of the embedding adapters: a bounded LRU cache keyed by text."""

    kind: ClassVar[str] = ""

    def __init__(self, *, cache_size: int, batch_size: int) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            msg = f"cache_size must be an int >= 0, got {cache_size!r}"
            raise ConfigError(msg)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive int, got {batch_size!r}"
            raise ConfigError(msg)
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._dim: int | None = None
        self.calls = 0
        """How many texts were sent to the embedding model (cache misses)."""

    @property
    def dim(self) -> int:
        """Embedding dimension; 0 until the first ``fit`` or ``transform`` reveals it."""
        return 0 if self._dim is None else self._dim

    def fit(self, texts: Sequence[str]) -> Self:
        """Embed (and cache) the training texts; learns only the dimension."""
        self.transform(texts)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as float32, shape ``(len(texts), dim)``."""
        texts = _as_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh: dict[str, np.ndarray] = {}
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            vectors = self._embed(batch)
            if len(vectors) != len(batch):
                msg = f"the embedding model returned {len(vectors)} vectors for {len(batch)} texts"
                raise StateError(msg)
            self.calls += len(batch)
            for t, vector in zip(batch, vectors, strict=True):
                arr = np.asarray(vector, dtype=np.float32).reshape(-1)
                if self._dim is None:
                    self._dim = int(arr.shape[0])
                elif arr.shape[0] != self._dim:
                    msg = f"embedding of dimension {arr.shape[0]}, expected {self._dim}"
                    raise StateError(msg)
                fresh[t] = arr
        rows: list[np.ndarray] = []
        for t in texts:
            vec = fresh.get(t)
            if vec is None:
                vec = self._cache[t]
                self._cache.move_to_end(t)
            rows.append(vec)
        for t, v in fresh.items():
            self._remember(t, v)
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        return np.stack(rows)

    def _remember(self, text: str, vec: np.ndarray) -> None:
        if self.cache_size == 0:
            return
        self._cache[text] = vec
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The kind and dimension; the embedding model itself is not saved."""
        return {
            "kind": self.kind,
            "params": {"cache_size": self.cache_size, "batch_size": self.batch_size},
            "dim": self._dim,
        }, {}

    def _embed(self, texts: list[str]) -> Sequence[Sequence[float]]:
        raise NotImplementedError  # pragma: no cover - every adapter overrides it


class LangChainEmbeddings(_CachedEmbeddings):
    """Features from any LangChain ``Embeddings`` (``embed_documents``), cached by text.

    Args:
        embeddings: a ``langchain_core.embeddings.Embeddings`` instance.
        cache_size: how many texts' vectors to keep (least recently used are evicted).
        batch_size: texts per ``embed_documents`` call.

    Examples:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> f = LangChainEmbeddings(DeterministicFakeEmbedding(size=4))
        >>> f.transform(["hi", "hi", "there"]).shape, f.calls
        ((3, 4), 2)
    """

    kind: ClassVar[str] = "langchain"

    def __init__(self, embeddings: Any, *, cache_size: int = 100_000, batch_size: int = 64) -> None:
        if not callable(getattr(embeddings, "embed_documents", None)):
            msg = (
                "embeddings must be a langchain_core Embeddings with embed_documents(), "
                f"got {type(embeddings).__name__}"
            )
            raise TypeError(msg)
        super().__init__(cache_size=cache_size, batch_size=batch_size)
        self.embeddings = embeddings

    def _embed(self, texts: list[str]) -> Sequence[Sequence[float]]:
        result: Sequence[Sequence[float]] = self.embeddings.embed_documents(texts)
        return result


class LlamaIndexEmbeddings(_CachedEmbeddings):
    """Features from a LlamaIndex ``BaseEmbedding`` (``get_text_embedding_batch``), cached.

    Args:
        embed_model: a ``llama_index.core.base.embeddings.base.BaseEmbedding`` instance.
        cache_size: how many texts' vectors to keep (least recently used are evicted).
        batch_size: texts per ``get_text_embedding_batch`` call.

    Examples:
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> f = LlamaIndexEmbeddings(MockEmbedding(embed_dim=3))
        >>> f.fit(["a", "b"]).dim
        3
    """

    kind: ClassVar[str] = "llamaindex"

    def __init__(
        self, embed_model: Any, *, cache_size: int = 100_000, batch_size: int = 64
    ) -> None:
        if not callable(getattr(embed_model, "get_text_embedding_batch", None)):
            msg = (
                "embed_model must be a LlamaIndex BaseEmbedding with "
                f"get_text_embedding_batch(), got {type(embed_model).__name__}"
            )
            raise TypeError(msg)
        super().__init__(cache_size=cache_size, batch_size=batch_size)
        self.embed_model = embed_model

    def _embed(self, texts: list[str]) -> Sequence[Sequence[float]]:
        result: Sequence[Sequence[float]] = self.embed_model.get_text_embedding_batch(texts)
        return result


def featurizer_from_state(
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    featurizer: Featurizer | None = None,
) -> Featurizer:
    """Rebuild a featurizer saved with ``get_state``.

    The hashed featurizer is rebuilt from its state alone. Embedding adapters wrap a model
    that is not saved: pass a ready ``featurizer`` (of the same kind and dimension).

    Raises:
        StateError: the state is unknown, or names an adapter and ``featurizer`` is missing
            or does not match.
    """
    kind = meta.get("kind")
    if kind == HashedNgramFeaturizer.kind and featurizer is None:
        return HashedNgramFeaturizer.from_state(meta, arrays)
    if featurizer is None:
        msg = (
            f"the saved router uses a {kind!r} featurizer, whose embedding model is not saved; "
            "pass featurizer=... (the same adapter around the same model)"
        )
        raise StateError(msg)
    if getattr(featurizer, "kind", None) != kind:
        msg = f"featurizer is {getattr(featurizer, 'kind', None)!r}, the saved router used {kind!r}"
        raise StateError(msg)
    saved_dim = meta.get("dim")
    if isinstance(featurizer, _CachedEmbeddings) and featurizer._dim is None:  # noqa: SLF001
        featurizer._dim = saved_dim  # noqa: SLF001
    return featurizer


# ---------------------------------------------------------------------- context signals
def count_turns(text: str) -> int:
    r"""Number of conversation turns in ``text``: role-marked lines, at least 1.

    Examples:
        >>> count_turns("User: hi\nAssistant: hello\nUser: and?")
        3
        >>> count_turns("plain question")
        1
    """
    return max(1, len(_TURN_RE.findall(text)))


TagsLike = Sequence["str | Sequence[str] | None"]
"""Per text: one tag, several tags, or None."""


def normalise_tags(tags: TagsLike | None, n: int) -> list[tuple[str, ...]]:
    """Tags as one tuple per text (empty for None), checking the count.

    Examples:
        >>> normalise_tags(["math", None, ["code", "python"]], 3)
        [('math',), (), ('code', 'python')]
    """
    if tags is None:
        return [()] * n
    if isinstance(tags, str):
        msg = "tags must be one entry per text, got a single str"
        raise TypeError(msg)
    out: list[tuple[str, ...]] = []
    for t in tags:
        if t is None:
            out.append(())
        elif isinstance(t, str):
            out.append((t,))
        else:
            out.append(tuple(str(x) for x in t))
    if len(out) != n:
        msg = f"got {len(out)} tag entries for {n} texts"
        raise ConfigError(msg)
    return out


class ContextSignals:
    """Optional context features appended to the text features.

    A multi-hot of the task tags over the vocabulary seen at ``fit`` (each of a text's
    ``t`` known tags gets ``weight / t``; unknown tags give a zero row), and
    ``log1p(turns)`` for the number of conversation turns.

    Args:
        tags: append the tag columns.
        turns: append ``weight * log1p`` of the number of turns (``turn_counter(text)``).
        weight: scale of the appended columns relative to the unit-norm text features.
        turn_counter: counts turns in a text (default :func:`count_turns`).

    Examples:
        >>> s = ContextSignals(tags=True).fit(["q1", "q2"], ["math", "code"])
        >>> s.transform(["q3", "q4"], ["math", ["math", "code"]]).tolist()
        [[0.0, 1.0], [0.5, 0.5]]
    """

    def __init__(
        self,
        *,
        tags: bool = True,
        turns: bool = False,
        weight: float = 1.0,
        turn_counter: Callable[[str], int] = count_turns,
    ) -> None:
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight > 0:
            msg = f"weight must be a number > 0, got {weight!r}"
            raise ConfigError(msg)
        if not callable(turn_counter):
            msg = f"turn_counter must be callable, got {turn_counter!r}"
            raise TypeError(msg)
        self.tags = bool(tags)
        self.turns = bool(turns)
        self.weight = float(weight)
        self.turn_counter = turn_counter
        self._vocab: list[str] = []

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The tags seen at ``fit``, in column order."""
        return tuple(self._vocab)

    @property
    def dim(self) -> int:
        """Number of appended columns."""
        return (len(self._vocab) if self.tags else 0) + (1 if self.turns else 0)

    def fit(self, texts: Sequence[str], tags: TagsLike | None = None) -> Self:
        """Learn the tag vocabulary (sorted, so column order is reproducible)."""
        texts = _as_texts(texts)
        if self.tags:
            rows = normalise_tags(tags, len(texts))
            self._vocab = sorted({t for row in rows for t in row})
            if not self._vocab:
                msg = "ContextSignals(tags=True).fit needs at least one tag"
                raise ConfigError(msg)
        return self

    def transform(self, texts: Sequence[str], tags: TagsLike | None = None) -> np.ndarray:
        """The context columns for ``texts`` (and their ``tags``), float32."""
        texts = _as_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self.tags and self._vocab:
            col = {t: i for i, t in enumerate(self._vocab)}
            for r, row in enumerate(normalise_tags(tags, len(texts))):
                known = [col[t] for t in row if t in col]
                for j in known:
                    out[r, j] += self.weight / len(known)
        if self.turns:
            out[:, -1] = [self.weight * math.log1p(self.turn_counter(t)) for t in texts]
        return out

    def get_state(self) -> dict[str, Any]:
        """Hyperparameters and vocabulary, JSON-ready (a custom turn counter is not saved)."""
        return {
            "tags": self.tags,
            "turns": self.turns,
            "weight": self.weight,
            "vocabulary": list(self._vocab),
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], *, turn_counter: Callable[[str], int] = count_turns
    ) -> Self:
        """Rebuild from :meth:`get_state`'s output."""
        obj = cls(
            tags=bool(state["tags"]),
            turns=bool(state["turns"]),
            weight=float(state["weight"]),
            turn_counter=turn_counter,
        )
        vocab = state.get("vocabulary", [])
        if not isinstance(vocab, list) or not all(isinstance(v, str) for v in vocab):
            msg = f"context-signal vocabulary must be a list of str, got {vocab!r}"
            raise StateError(msg)
        obj._vocab = list(vocab)
        return obj
