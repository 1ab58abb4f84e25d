from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pickllm.costaware import route_sides
from pickllm.errors import ConfigError, StateError
from pickllm.learn import (
    CostModel,
    HashedNgramFeaturizer,
    LangChainEmbeddings,
    SelectLLM,
    Zooter,
    load_trained,
    select_subset,
    soft_labels,
)

MODELS = ("coder", "mathlete", "generalist")
TEMPLATES = {
    "code": ["Write a Python function that {}.", "Implement code to {} in Python."],
    "math": ["Compute {} and show the arithmetic.", "Solve the equation for {}."],
    "chat": ["Tell me a story about {}.", "What do you think about {}?"],
}
TOPICS = ["sorting lists", "prime numbers", "the ocean", "a lost cat", "matrices", "fractions"]
# Per task, the probability that each model answers correctly.
SKILL = {"code": (0.9, 0.2, 0.5), "math": (0.2, 0.9, 0.5), "chat": (0.3, 0.3, 0.8)}
PRICE = np.array([2e-4, 4e-4, 1e-4])  # USD per call at 100 tokens


def _data(n: int, seed: int) -> tuple[list[str], np.ndarray, list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tasks = list(TEMPLATES)
    texts, tags, quality, tokens = [], [], [], []
    for i in range(n):
        task = tasks[i % 3]
        template = TEMPLATES[task][rng.integers(2)]
        texts.append(template.format(TOPICS[rng.integers(len(TOPICS))]) + f" (#{i})")
        tags.append(task)
        quality.append((rng.random(3) < np.array(SKILL[task])).astype(float))
        tokens.append(int(rng.integers(50, 150)))
    tok = np.array(tokens)
    cost = tok[:, None] / 100 * PRICE[None, :]
    return texts, np.array(quality), tags, cost, tok


@pytest.fixture(scope="module")
def train_data() -> tuple[list[str], np.ndarray, list[str], np.ndarray, np.ndarray]:
    return _data(300, 0)


@pytest.fixture(scope="module")
def test_data() -> tuple[list[str], np.ndarray, list[str], np.ndarray, np.ndarray]:
    return _data(150, 1)


def _small(**kw: Any) -> dict[str, Any]:
    return {"featurizer": HashedNgramFeaturizer(n_features=2048), "seed": 0, **kw}


def _best_model_rate(route: np.ndarray, tags: list[str]) -> float:
    best = {t: int(np.argmax(s)) for t, s in SKILL.items()}
    return float(np.mean([route[i] == best[t] for i, t in enumerate(tags)]))


@pytest.mark.parametrize(
    "router",
    [
        SelectLLM(**_small()),
        SelectLLM(**_small(learner="logistic", calibration="cross_fit", cv_folds=3)),
        Zooter(**_small(temperature=0.3, tag_beta=0.0)),
        Zooter(**_small(learner="logistic", loss="reverse_kl", tag_beta=1.0)),
    ],
    ids=["selectllm-mlp", "selectllm-logistic-cf", "zooter-b0", "zooter-reverse-kl"],
)
def test_routers_learn_which_model_suits_each_kind_of_query(router, train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, cost, tokens = train_data
    router.fit(texts, quality, MODELS, tags=tags, cost=cost, input_tokens=tokens)
    t_texts, t_quality, t_tags, _c, _t = test_data
    route = router.route(t_texts)
    assert _best_model_rate(route, t_tags) > 0.9
    q = router.predict_quality(t_texts)
    assert q.shape == (150, 3)
    assert np.all((q >= 0) & (q <= 1))
    # Routed answers are far better than any single model's.
    routed = t_quality[np.arange(150), route].mean()
    assert routed > t_quality.mean(axis=0).max() + 0.15


def test_selectllm_probabilities_are_calibrated_per_task(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, _cost, _tokens = train_data
    router = SelectLLM(**_small()).fit(texts, quality, MODELS, tags=tags)
    t_texts, _q, t_tags, _c, _t = test_data
    conf = router.confidence(t_texts)
    for task, skill in SKILL.items():
        rows = [i for i, t in enumerate(t_tags) if t == task]
        np.testing.assert_allclose(conf[rows].mean(axis=0), skill, atol=0.12)


def test_tag_label_enhancement_mixes_a_target_head_and_a_tag_head(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, _c, _t = train_data
    means = {t: quality[[i for i, g in enumerate(tags) if g == t]].mean(axis=0) for t in SKILL}
    zero = SelectLLM(**_small(tag_beta=0.0)).fit(texts, quality, MODELS, tags=tags)
    assert not zero._heads.target
    assert zero._heads.tag
    tag_means = zero._heads.tag_means
    assert tag_means is not None
    np.testing.assert_allclose(tag_means, [means[t] for t in sorted(SKILL)])
    t_texts, _q, t_tags, _c2, _t2 = test_data
    # The text reveals the tag, so beta = 0 predicts the tag's mean quality.
    q = zero.predict_quality(t_texts)
    np.testing.assert_allclose(q, [means[t] for t in t_tags], atol=0.05)
    half = SelectLLM(**_small(tag_beta=0.5)).fit(texts, quality, MODELS, tags=tags)
    x = half.features(t_texts)
    target = np.mean([m.predict_proba(x) for m in half._heads.target], axis=0)
    p_tag = np.mean([m.predict_proba(x) for m in half._heads.tag], axis=0)
    assert half._heads.tag_means is not None
    np.testing.assert_allclose(
        half.output(t_texts), 0.5 * target + 0.5 * p_tag @ half._heads.tag_means
    )
    untagged = SelectLLM(**_small(tag_beta=0.0)).fit(texts, quality, MODELS)
    assert untagged._heads.target
    assert not untagged._heads.tag


def test_tags_as_features_and_a_tagger(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, _c, _t = train_data
    # Texts that do not reveal the task: only the tag tells the models apart.
    blind = [f"query {i}" for i in range(len(texts))]
    router = SelectLLM(**_small(tags_as_features=True, learner="logistic", learning_rate=0.05))
    router.fit(blind, quality, MODELS, tags=tags)
    route = router.route(["query x"] * 3, tags=["code", "math", "chat"])
    assert route.tolist() == [0, 1, 2]
    tagger_router = SelectLLM(
        **_small(tags_as_features=True, learner="logistic", learning_rate=0.05),
        tagger=lambda text: [text.split()[0]],
    )
    tagger_router.fit([f"{t} {q}" for t, q in zip(tags, blind, strict=True)], quality, MODELS)
    assert tagger_router.route(["math anything"]).tolist() == [1]
    with pytest.raises(ConfigError, match="needs tags"):
        SelectLLM(**_small(tags_as_features=True)).fit(blind, quality, MODELS)


def test_same_seed_same_router(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, _cost, _tokens = train_data
    a = Zooter(**_small()).fit(texts, quality, MODELS, tags=tags)
    b = Zooter(**_small()).fit(texts, quality, MODELS, tags=tags)
    np.testing.assert_array_equal(a.predict_quality(test_data[0]), b.predict_quality(test_data[0]))


def test_cost_model_fits_tokens_and_floors_at_the_cheapest_call() -> None:
    tokens = np.array([10.0, 20.0, 30.0])
    cost = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    cm = CostModel().fit(tokens, cost)
    np.testing.assert_allclose(cm.predict(np.array([25.0, 0.0])), [[2.5, 5.0], [1.0, 5.0]])
    flat = CostModel().fit(np.array([7.0, 7.0]), np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(flat.predict(np.array([100.0])), [[2.0]])
    with pytest.raises(StateError):
        CostModel().predict(tokens)


def test_cost_aware_routing_trades_quality_for_cost(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, cost, tokens = train_data
    router = SelectLLM(**_small()).fit(
        texts, quality, MODELS, tags=tags, cost=cost, input_tokens=tokens
    )
    t_texts, _t_quality, _tags, t_cost, t_tokens = test_data
    rows = np.arange(len(t_texts))
    spent = []
    for lam in (0.0, 1e3, 1e6):
        route = router.route(t_texts, lam=lam, input_tokens=t_tokens)
        spent.append(t_cost[rows, route].mean())
    assert spent[0] > spent[1] > spent[2]
    assert router.route(t_texts, lam=1e6, input_tokens=t_tokens).tolist() == [2] * len(t_texts)


def test_budget_fit_meets_the_budget_with_tie_mixing(train_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, cost, tokens = train_data
    router = Zooter(**_small(tag_beta=0.0)).fit(
        texts, quality, MODELS, tags=tags, cost=cost, input_tokens=tokens
    )
    q_train, c_train = router.training_predictions()
    budget = float(
        c_train.min(axis=1).mean() + 0.4 * (c_train.max(axis=1) - c_train.min(axis=1)).mean()
    )
    fit = router.fit_budget(budget)
    assert fit.feasible
    assert fit.cost == pytest.approx(budget, rel=1e-9)
    cheap, expensive = route_sides(fit, q_train, c_train)
    rows = np.arange(len(texts))
    expected = (1 - fit.gamma) * c_train[rows, cheap] + fit.gamma * c_train[rows, expensive]
    assert expected.mean() == pytest.approx(budget, rel=1e-9)
    picks = router.route_budget(texts, fit, rng=np.random.default_rng(0), input_tokens=tokens)
    assert picks.shape == (len(texts),)
    no_cost = Zooter(**_small()).fit(texts, quality, MODELS)
    with pytest.raises(StateError, match="cost"):
        no_cost.fit_budget(1.0)
    assert not no_cost.predict_cost(texts[:2]).any()


def test_select_subset_rules() -> None:
    conf = [0.55, 0.9, 0.3, 0.9]
    assert select_subset(conf, 2, policy="max_conf") == [1, 3]
    assert select_subset(conf, 2, policy="max_conf", order_key=[0, 5, 0, 1]) == [3, 1]
    assert select_subset(conf, 10, policy="labelled_max_conf") == [1, 3, 0]
    assert select_subset(conf, 10, policy="weighted_max_conf", threshold=0.6) == [1, 3]
    assert select_subset([0.1, 0.2], 3, policy="labelled_max_conf") == [1]
    with pytest.raises(ConfigError, match="subset size"):
        select_subset(conf, 0)
    with pytest.raises(ConfigError, match="policy"):
        select_subset(conf, 1, policy="top")  # type: ignore[arg-type]


def test_selectllm_subsets_and_votes(train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, _tags, cost, tokens = train_data
    router = SelectLLM(**_small(extractor="choice", subset_size=2)).fit(
        texts, quality, MODELS, cost=cost, input_tokens=tokens
    )
    subsets = router.subsets(["Write a Python function that sorts a list."], policy="max_conf")
    assert subsets[0][0] == 0
    assert len(subsets[0]) == 2
    assert router.vote("labelled_max_conf")(["A", "B", "B"], [0.9, 0.2, 0.2]) == ("B", 1)
    assert router.vote()(["A", "B", "B"], [0.9, 0.2, 0.2]) == ("A", 0)  # weighted by default
    assert router.vote("weighted_max_conf")(["A", "B", "B"], [0.9, 0.2, 0.2]) == ("A", 0)
    # Faster models win ties when latency is known.
    timed = SelectLLM(**_small(latency={"coder": 3.0, "mathlete": 1.0, "generalist": 2.0}))
    timed.fit(texts, quality, MODELS)
    assert timed.order_key().tolist() == [3.0, 1.0, 2.0]


def test_zooter_soft_labels_and_distribution(train_data) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(soft_labels(np.array([[1.0, 1.0, 0.0]]), 1e-3)[0], [0.5, 0.5, 0.0])
    texts, quality, tags, _c, _t = train_data
    router = Zooter(**_small(tag_beta=0.3)).fit(texts, quality, MODELS, tags=tags)
    z = router.distribution(texts[:5])
    np.testing.assert_allclose(z.sum(axis=1), 1.0, rtol=1e-6)
    # lam = 0 routes by the distribution itself (Zooter's rule).
    assert router.route(texts[:5]).tolist() == z.argmax(axis=1).tolist()


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="tag_beta"):
        SelectLLM(tag_beta=1.5)
    with pytest.raises(ConfigError, match="learner"):
        SelectLLM(learner="forest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="selection"):
        SelectLLM(selection="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="subset_size"):
        SelectLLM(subset_size=0)
    with pytest.raises(ConfigError, match="threshold"):
        SelectLLM(threshold=1.0)
    with pytest.raises(ConfigError, match="unknown extractor"):
        SelectLLM(extractor="letters")
    with pytest.raises(ConfigError, match="temperature"):
        Zooter(temperature=0)
    with pytest.raises(ConfigError, match="calibration"):
        Zooter(calibration="isotonic")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Featurizer"):
        SelectLLM(featurizer=object())  # type: ignore[arg-type]
    with pytest.raises(StateError, match="fit"):
        SelectLLM().route(["x"])
    with pytest.raises(ConfigError, match="quality"):
        SelectLLM(**_small()).fit(["a", "b"], np.ones((2, 2)) * 2, ["m1", "m2"])
    with pytest.raises(ConfigError, match="unique"):
        SelectLLM(**_small()).fit(["a", "b"], np.ones((2, 2)), ["m", "m"])


@pytest.mark.parametrize("kind", ["selectllm", "zooter"])
def test_save_and_load_round_trip(kind: str, tmp_path: Path, train_data, test_data) -> None:  # type: ignore[no-untyped-def]
    texts, quality, tags, cost, tokens = train_data
    cls = SelectLLM if kind == "selectllm" else Zooter
    router = cls(
        featurizer=HashedNgramFeaturizer(n_features=512, components=16),
        tags_as_features=True,
        ensemble=2,
        calibration="cross_fit",
        cv_folds=2,
        seed=np.random.default_rng(5),
    ).fit(texts, quality, MODELS, tags=tags, cost=cost, input_tokens=tokens)
    router.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["router.json", "weights.npz"]
    meta = json.loads((tmp_path / "r" / "router.json").read_text())
    assert meta["kind"] == kind
    assert meta["format"] == "pickllm-query-scorer"
    loaded = load_trained(tmp_path / "r")
    assert type(loaded) is cls
    assert loaded.models == MODELS
    t_texts, _q, t_tags, _c, t_tokens = test_data
    a = router.predict(t_texts, tags=t_tags, input_tokens=t_tokens)
    b = loaded.predict(t_texts, tags=t_tags, input_tokens=t_tokens)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.cost, b.cost)
    assert loaded.fit_budget(3e-4) == router.fit_budget(3e-4)
    # A scorer saved before the rename to QueryScorer (the old format key) still loads.
    legacy = {**meta, "format": "pickllm-learned-router"}
    (tmp_path / "r" / "router.json").write_text(json.dumps(legacy))
    old = load_trained(tmp_path / "r")
    c = old.predict(t_texts, tags=t_tags, input_tokens=t_tokens)
    np.testing.assert_array_equal(a.quality, c.quality)


def test_loading_rejects_bad_directories(tmp_path: Path, train_data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StateError, match="no saved router"):
        load_trained(tmp_path)
    texts, quality, _tags, _c, _t = train_data
    SelectLLM(**_small(learner="logistic", max_epochs=2)).fit(texts, quality, MODELS).save(
        tmp_path / "r"
    )
    meta_path = tmp_path / "r" / "router.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(StateError, match="version"):
        load_trained(tmp_path / "r")
    meta_path.write_text(json.dumps({**meta, "kind": "forest"}))
    with pytest.raises(StateError, match="kind"):
        load_trained(tmp_path / "r")
    meta_path.write_text(json.dumps({**meta, "models": ["a"]}))
    with pytest.raises(StateError, match="outputs"):
        load_trained(tmp_path / "r")
    meta_path.write_text("{not json")
    with pytest.raises(StateError, match="JSON"):
        load_trained(tmp_path / "r")


def test_embedding_featurizer_must_be_passed_back_at_load(tmp_path: Path, train_data) -> None:  # type: ignore[no-untyped-def]
    from langchain_core.embeddings import DeterministicFakeEmbedding

    texts, quality, _tags, _c, _t = train_data
    emb = LangChainEmbeddings(DeterministicFakeEmbedding(size=8))
    router = SelectLLM(featurizer=emb, learner="logistic", max_epochs=2, seed=0)
    router.fit(texts, quality, MODELS).save(tmp_path / "r")
    with pytest.raises(StateError, match="featurizer="):
        load_trained(tmp_path / "r")
    fresh = LangChainEmbeddings(DeterministicFakeEmbedding(size=8))
    loaded = load_trained(tmp_path / "r", featurizer=fresh)
    np.testing.assert_array_equal(
        loaded.predict_quality(texts[:3]), router.predict_quality(texts[:3])
    )


def test_turns_as_features_tell_chats_from_single_questions(tmp_path: Path) -> None:
    single = [f"Question {i}: what is {i} plus {i}?" for i in range(60)]
    chats = [f"User: hi {i}\nAssistant: hello\nUser: what is {i} plus {i}?" for i in range(60)]
    # The only difference the learner can use is the turn count (the words overlap).
    quality = np.array([[1.0, 0.0]] * 60 + [[0.0, 1.0]] * 60)
    router = SelectLLM(
        featurizer=HashedNgramFeaturizer(n_features=64, word_ngrams=None, char_ngrams=(1, 1)),
        turns_as_features=True,
        learner="logistic",
        learning_rate=0.05,
        seed=0,
    ).fit(single + chats, quality, ["solo", "chatty"])
    assert router.route(
        ["Question: 7 plus 7?", "User: a\nAssistant: b\nUser: 7 plus 7?"]
    ).tolist() == [0, 1]
    loaded = load_trained(router.save(tmp_path / "r"))
    assert loaded.turns_as_features
    np.testing.assert_array_equal(
        loaded.predict_quality(chats[:2]), router.predict_quality(chats[:2])
    )
