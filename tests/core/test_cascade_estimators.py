"""Cascade estimators: noisy oracle, post-hoc agreement model, costs, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pickllm.cascade.answers import Answer, agree, read_answer
from pickllm.cascade.estimators import (
    LearnedEstimator,
    NoisyOracle,
    PostHocModel,
    TokenCostModel,
    load_estimator_state,
    residual_covariance,
    save_estimator_state,
)
from pickllm.errors import ConfigError, StateError


def _auroc(score: np.ndarray, label: np.ndarray) -> float:
    pos, neg = score[label > 0.5], score[label <= 0.5]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_noisy_oracle_post_hoc_is_less_noisy_than_ex_ante() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((400, 3)) < [0.4, 0.6, 0.8]).astype(float)
    cost = np.tile([1.0, 2.0, 3.0], (400, 1))
    oracle = NoisyOracle.fit(truth, cost, ante=1.6, post=0.4, fit_rows=np.arange(200), seed=1)
    test = slice(200, 400)
    ante = _auroc(oracle.ante[test].ravel(), truth[test].ravel())
    post = _auroc(oracle.post[test].ravel(), truth[test].ravel())
    assert post > ante + 0.1
    e = oracle.estimate(0, (1,))
    assert e.q_hat[1] == oracle.post[0, 1]
    assert e.q_hat[0] == oracle.ante[0, 0]
    assert e.sigma is not None
    assert e.sigma[1, 1] == pytest.approx(1e-6)
    assert e.sigma[0, 0] == pytest.approx(oracle.variance[0])
    with pytest.raises(ConfigError, match="ante"):
        NoisyOracle.fit(truth, cost, ante=-1.0, post=0.1, fit_rows=np.arange(10))


def test_answers_extract_letters_and_code() -> None:
    assert read_answer("The answer is C").letter == "C"
    code = read_answer("Here:\n```python\ndef add(a, b):\n    return a + b\n```")
    assert code.function == "add"
    assert code.parses
    broken = read_answer("def add(a, b) return")
    assert not broken.parses
    assert agree(read_answer("C"), read_answer("(C)"))
    assert not agree(read_answer("I do not know"), read_answer("I do not know"))


def _agreement_data(n: int, seed: int) -> tuple[list[list[Answer]], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 4)) < [0.5, 0.6, 0.7, 0.8]).astype(float)
    answers = [
        [read_answer("A" if t else str("BCD"[int(rng.integers(3))])) for t in row] for row in truth
    ]
    return answers, truth


def test_post_hoc_model_learns_that_agreement_means_right() -> None:
    answers, truth = _agreement_data(300, 0)
    ante = np.tile([0.5, 0.6, 0.7, 0.8], (300, 1))
    model = PostHocModel(seed=0).fit(answers[:200], ante[:200], truth[:200], ["t"] * 200)
    alone, paired = [], []
    for i in range(200, 300):
        row = answers[i]
        alone.append(model.predict(0, row, (0,), ante[i], "t"))
        paired.append(model.predict(0, row, (0, 1, 2, 3), ante[i], "t"))
    label = truth[200:, 0]
    assert _auroc(np.array(paired), label) > 0.9
    assert _auroc(np.array(paired), label) > _auroc(np.array(alone), label) + 0.2
    restored = PostHocModel.from_state(model.state())
    assert restored.predict(0, answers[250], (0, 1), ante[250], "t") == pytest.approx(
        model.predict(0, answers[250], (0, 1), ante[250], "t")
    )
    with pytest.raises(StateError):
        PostHocModel.from_state({**model.state(), "features": ["x"]})


def test_conditioning_lowers_correlated_models_after_a_wrong_answer() -> None:
    answers, truth = _agreement_data(200, 1)
    ante = np.tile([0.5, 0.6, 0.7, 0.8], (200, 1))
    # models 0 and 1 share their errors; 2 and 3 are independent of them
    truth[:, 1] = truth[:, 0]
    model = PostHocModel(seed=0).fit(answers, ante, truth, ["t"] * 200)
    cov = residual_covariance(truth, ante, ["t"] * 200)
    est = LearnedEstimator(
        ante=ante,
        cost_ante=np.ones((200, 4)),
        cost=np.ones((200, 4)),
        answers=answers,
        tasks=["t"] * 200,
        posthoc=model,
        covariance=cov,
        post_variance=0.01,
    )
    wrong = int(np.flatnonzero(truth[:, 0] == 0)[0])
    e = est.estimate(wrong, (0, 2))
    before = est.estimate(wrong, ())
    assert e.q_hat[1] < before.q_hat[1]
    assert e.sigma is not None
    assert e.sigma[1, 1] < cov["t"][1, 1]


def test_token_cost_model_and_estimator_files(tmp_path: Path) -> None:
    tokens = np.array([10, 20, 30, 40, 50])
    cost = np.stack([0.5 + 0.01 * tokens, 2 + 0.1 * tokens], axis=1).astype(float)
    costs = TokenCostModel().fit(cost, tokens, ["a"] * 5)
    assert costs.predict(np.array([100]), ["unseen"]).round(6).tolist() == [[1.5, 12.0]]
    answers, truth = _agreement_data(60, 2)
    ante = np.full((60, 4), 0.6)
    model = PostHocModel(seed=0).fit(answers, ante, truth, ["t"] * 60)
    cov = residual_covariance(truth, ante, ["t"] * 60)
    save_estimator_state(
        tmp_path,
        posthoc=model,
        covariance=cov,
        post_variance=0.02,
        cost_model=costs,
        models=["m0", "m1", "m2", "m3"],
    )
    posthoc, cov2, var, costs2, models = load_estimator_state(tmp_path)
    assert models == ("m0", "m1", "m2", "m3")
    assert var == 0.02
    assert np.allclose(cov2["t"], cov["t"])
    assert costs2 is not None
    assert np.allclose(costs2.predict(tokens, ["a"] * 5), costs.predict(tokens, ["a"] * 5))
    assert posthoc.state() == model.state()
    (tmp_path / "cascade_estimator.json").write_text("{", encoding="utf-8")
    with pytest.raises(StateError, match="not valid JSON"):
        load_estimator_state(tmp_path)
