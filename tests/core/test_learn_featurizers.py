from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from pickllm.errors import ConfigError, StateError
from pickllm.learn.featurizers import (
    ContextSignals,
    Featurizer,
    HashedNgramFeaturizer,
    LangChainEmbeddings,
    LlamaIndexEmbeddings,
    count_turns,
    featurizer_from_state,
    normalise_tags,
)

TEXTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a list.",
    "Solve 12 * 7 and explain the steps.",
    "Who wrote Pride and Prejudice?",
    "Write a function to sort a dictionary by value.",
    "What is 15% of 240?",
]


def test_hashing_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the featurizer must not depend on it.
    code = (
        "from pickllm.learn.featurizers import HashedNgramFeaturizer;"
        "f = HashedNgramFeaturizer(n_features=256).fit(['a b c', 'hello world']);"
        "x = f.transform(['hello there world']);"
        "print(sorted(map(int, x[0].nonzero()[0])))"
    )
    outs = {
        subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    }
    assert len(outs) == 1
    local = HashedNgramFeaturizer(n_features=256).fit(["a b c", "hello world"])
    assert outs.pop().strip() == str(
        sorted(map(int, local.transform(["hello there world"])[0].nonzero()[0]))
    )


def test_rows_are_unit_norm_float32_and_deterministic() -> None:
    f = HashedNgramFeaturizer(n_features=1024).fit(TEXTS)
    x = f.transform(TEXTS)
    assert x.dtype == np.float32
    assert x.shape == (len(TEXTS), 1024)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    again = HashedNgramFeaturizer(n_features=1024).fit(TEXTS).transform(TEXTS)
    np.testing.assert_array_equal(x, again)


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    f = HashedNgramFeaturizer(n_features=4096).fit(TEXTS)
    a, b, c = f.transform(
        [
            "Write a Python function that reverses a string.",
            "Write a Python function that reverses a list.",
            "Who painted the Mona Lisa?",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_idf_downweights_words_seen_everywhere() -> None:
    texts = ["common alpha", "common beta", "common gamma", "common delta"]
    f = HashedNgramFeaturizer(n_features=2048, char_ngrams=None).fit(texts)
    x = f.transform(["common alpha"])[0]
    only_common = f.transform(["common"])[0]
    only_alpha = f.transform(["alpha"])[0]
    # The rare word carries more of the row than the ubiquitous one.
    assert float(x @ only_alpha) > float(x @ only_common)


def test_word_and_char_blocks_can_be_switched_off() -> None:
    words = HashedNgramFeaturizer(n_features=64, char_ngrams=None).fit(TEXTS).transform(TEXTS)
    chars = HashedNgramFeaturizer(n_features=64, word_ngrams=None).fit(TEXTS).transform(TEXTS)
    assert not words[:, 32:].any()
    assert not chars[:, :32].any()


def test_max_chars_keeps_head_and_tail() -> None:
    long = "start " + "filler " * 500 + "finish"
    f = HashedNgramFeaturizer(n_features=512, max_chars=40, char_ngrams=None).fit([long, "x"])
    row = f.transform([long])[0]
    assert row @ f.transform(["start"])[0] > 0
    assert row @ f.transform(["finish"])[0] > 0


def test_svd_projection_has_orthonormal_basis_and_keeps_neighbours() -> None:
    f = HashedNgramFeaturizer(n_features=2048, components=4, seed=0).fit(TEXTS * 3)
    assert f.dim == 4
    x = f.transform(TEXTS)
    assert x.shape == (len(TEXTS), 4)
    proj = f.get_state()[1]["projection"]
    np.testing.assert_allclose(proj.T @ proj, np.eye(4), atol=1e-4)
    same = HashedNgramFeaturizer(n_features=2048, components=4, seed=0).fit(TEXTS * 3)
    np.testing.assert_array_equal(x, same.transform(TEXTS))


def test_state_round_trip_gives_identical_features() -> None:
    f = HashedNgramFeaturizer(n_features=512, components=3).fit(TEXTS)
    meta, arrays = f.get_state()
    g = featurizer_from_state(meta, arrays)
    np.testing.assert_array_equal(f.transform(TEXTS), g.transform(TEXTS))
    with pytest.raises(StateError):
        HashedNgramFeaturizer.from_state(meta, {"idf": np.ones(3)})


def test_hashed_featurizer_validates() -> None:
    with pytest.raises(ConfigError, match="n_features"):
        HashedNgramFeaturizer(n_features=3)
    with pytest.raises(ConfigError, match="word_ngrams"):
        HashedNgramFeaturizer(word_ngrams=(2, 1))
    with pytest.raises(ConfigError, match="both be None"):
        HashedNgramFeaturizer(word_ngrams=None, char_ngrams=None)
    with pytest.raises(ConfigError, match="components"):
        HashedNgramFeaturizer(components=0)
    with pytest.raises(StateError, match="before fit"):
        HashedNgramFeaturizer().transform(["x"])
    with pytest.raises(TypeError, match="single str"):
        HashedNgramFeaturizer().fit("just one string")
    assert isinstance(HashedNgramFeaturizer(), Featurizer)


class _CountingEmbeddings:
    """A LangChain-style embedding model that counts what it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return [[float(len(t)), 1.0] for t in texts]


def test_langchain_adapter_caches_by_text_and_evicts_least_recent() -> None:
    model = _CountingEmbeddings()
    f = LangChainEmbeddings(model, cache_size=2, batch_size=2)
    x = f.fit(["aa", "b", "aa"]).transform(["aa", "ccc"])
    assert model.seen == ["aa", "b", "ccc"]
    assert x.tolist() == [[2.0, 1.0], [3.0, 1.0]]
    assert f.dim == 2
    f.transform(["b"])  # evicted by "ccc" (cache of 2: "aa" was used more recently)
    assert model.seen[-1] == "b"
    assert isinstance(f, Featurizer)


def test_adapters_reject_wrong_objects() -> None:
    with pytest.raises(TypeError, match="embed_documents"):
        LangChainEmbeddings(object())
    with pytest.raises(TypeError, match="get_text_embedding_batch"):
        LlamaIndexEmbeddings(object())


def test_real_framework_embeddings_work_through_the_adapters() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from llama_index.core.embeddings import MockEmbedding

    lc = LangChainEmbeddings(DeterministicFakeEmbedding(size=5))
    assert lc.fit(TEXTS).transform(TEXTS[:2]).shape == (2, 5)
    li = LlamaIndexEmbeddings(MockEmbedding(embed_dim=3))
    assert li.fit(TEXTS).dim == 3
    meta, arrays = li.get_state()
    with pytest.raises(StateError, match="featurizer="):
        featurizer_from_state(meta, arrays)
    assert featurizer_from_state(meta, arrays, featurizer=li) is li


def test_importing_pickllm_learn_imports_no_framework() -> None:
    code = (
        "import sys, pickllm, pickllm.learn, pickllm.learn.featurizers;"
        "print(any(m.startswith(('langchain', 'llama_index')) for m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_context_signals_one_hot_and_turns() -> None:
    s = ContextSignals(tags=True, turns=True, weight=2.0).fit(["a", "b"], ["x", ["x", "y"]])
    assert s.vocabulary == ("x", "y")
    out = s.transform(["User: hi\nAssistant: yo", "q"], ["y", "unknown"])
    assert out.shape == (2, 3)
    assert out[0, :2].tolist() == [0.0, 2.0]
    assert out[1, :2].tolist() == [0.0, 0.0]
    assert out[0, 2] == pytest.approx(2.0 * np.log1p(2))
    restored = ContextSignals.from_state(s.get_state())
    np.testing.assert_array_equal(restored.transform(["q"], ["x"]), s.transform(["q"], ["x"]))
    with pytest.raises(ConfigError, match="weight"):
        ContextSignals(weight=0)


def test_count_turns_and_tag_normalisation() -> None:
    assert count_turns("Human: a\nAI: b") == 2
    assert count_turns("") == 1
    tags: Sequence[str | Sequence[str] | None] = ["a", None, ("b", "c")]
    assert normalise_tags(tags, 3) == [("a",), (), ("b", "c")]
    with pytest.raises(ConfigError):
        normalise_tags(["a"], 2)
