from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pickllm.errors import ConfigError, StateError
from pickllm.learn.models import MLP, LogisticRegression, model_from_state


def _linear_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0, x[:, 3] < 0], axis=1).astype(float)
    return x, y


def test_logistic_regression_learns_a_multi_label_linear_problem() -> None:
    x, y = _linear_data()
    model = LogisticRegression(learning_rate=0.1, seed=0).fit(x, y)
    acc = ((model.predict_proba(x) > 0.5) == y).mean()
    assert acc > 0.95
    assert model.n_outputs == 3
    assert model.n_inputs == 4


def test_mlp_learns_xor_which_a_linear_model_cannot() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:] > 0).astype(float)
    mlp = MLP(hidden=16, learning_rate=0.02, max_epochs=200, seed=0).fit(x, y)
    lin = LogisticRegression(learning_rate=0.05, max_epochs=200, seed=0).fit(x, y)
    assert ((mlp.predict_proba(x) > 0.5) == y).mean() > 0.9
    assert ((lin.predict_proba(x) > 0.5) == y).mean() < 0.7


@pytest.mark.parametrize("cls", [LogisticRegression, MLP])
def test_same_seed_same_weights_other_seed_other_weights(
    cls: type[LogisticRegression | MLP],
) -> None:
    x, y = _linear_data()
    a = cls(seed=3, max_epochs=5).fit(x, y).predict_proba(x)
    b = cls(seed=3, max_epochs=5).fit(x, y).predict_proba(x)
    c = cls(seed=4, max_epochs=5).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    rng = np.random.default_rng(0)
    # Pure noise: validation loss stops improving quickly, training runs on only `patience` more.
    x = rng.normal(size=(400, 50)).astype(np.float32)
    y = (rng.random((400, 2)) < 0.5).astype(float)
    model = MLP(hidden=64, learning_rate=0.01, max_epochs=100, patience=3, seed=0).fit(x, y)
    val = [v for _t, v in model.history_]
    assert len(val) == model.best_epoch_ + 3
    assert min(val) == val[model.best_epoch_ - 1]


def test_no_validation_split_below_twenty_rows() -> None:
    x, y = _linear_data(n=10)
    model = LogisticRegression(max_epochs=7, seed=0).fit(x, y)
    assert len(model.history_) == 7
    assert all(math.isnan(v) for _t, v in model.history_)
    assert model.best_epoch_ == 7


@pytest.mark.parametrize("loss", ["forward_kl", "reverse_kl"])
def test_softmax_distils_soft_labels(loss: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3)).astype(np.float32)
    logits = np.stack([2 * x[:, 0], -2 * x[:, 0], x[:, 1]], axis=1)
    target = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    model = LogisticRegression(
        output="softmax",
        loss=loss,  # type: ignore[arg-type]
        learning_rate=0.05,
        max_epochs=200,
        seed=0,
    ).fit(x, target)
    p = model.predict_proba(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    kl = (target * (np.log(target) - np.log(p))).sum(axis=1).mean()
    assert kl < 0.02
    assert (p.argmax(axis=1) == target.argmax(axis=1)).mean() > 0.95


def test_softmax_rows_are_renormalised_and_checked() -> None:
    x = np.ones((4, 2), dtype=np.float32)
    model = LogisticRegression(output="softmax", max_epochs=2, seed=0)
    model.fit(x, np.array([[2.0, 0.0]] * 4) / 2)
    with pytest.raises(ConfigError, match="positive sum"):
        model.fit(x, np.zeros((4, 2)))


def test_sample_weight_zero_rows_are_ignored() -> None:
    x = np.array([[1.0], [1.0]] * 20, dtype=np.float32)
    y = np.array([[1.0], [0.0]] * 20)
    w = np.array([1.0, 0.0] * 20)
    model = LogisticRegression(learning_rate=0.1, validation_fraction=0.0, max_epochs=100, seed=0)
    p = model.fit(x, y, sample_weight=w).predict_proba(x[:1])
    assert p[0, 0] > 0.9


@pytest.mark.parametrize("cls", [LogisticRegression, MLP])
def test_state_round_trip_through_json_and_arrays(cls: type[LogisticRegression | MLP]) -> None:
    x, y = _linear_data()
    model = cls(max_epochs=3, seed=0).fit(x, y)
    meta, arrays = model.get_state()
    restored = model_from_state(json.loads(json.dumps(meta)), arrays)
    assert type(restored) is cls
    np.testing.assert_array_equal(restored.predict_proba(x), model.predict_proba(x))
    assert restored.get_params() == model.get_params()
    bad = dict(arrays)
    bad.pop("b_out")
    with pytest.raises(StateError, match="weights"):
        model_from_state(meta, bad)
    with pytest.raises(StateError, match="unknown model kind"):
        model_from_state({**meta, "kind": "forest"}, arrays)


def test_validation_names_the_parameter_and_value() -> None:
    with pytest.raises(ConfigError, match=r"learning_rate.*-1"):
        LogisticRegression(learning_rate=-1)
    with pytest.raises(ConfigError, match="hidden"):
        MLP(hidden=0)
    with pytest.raises(ConfigError, match="validation_fraction"):
        MLP(validation_fraction=0.9)
    with pytest.raises(ConfigError, match="needs output='softmax'"):
        LogisticRegression(loss="reverse_kl")
    with pytest.raises(ConfigError, match="output"):
        LogisticRegression(output="tanh")  # type: ignore[arg-type]
    with pytest.raises(StateError, match="not fitted"):
        MLP().predict_proba(np.zeros((1, 2)))
    x, y = _linear_data()
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        LogisticRegression().fit(x, y * 2)
    with pytest.raises(ConfigError, match="finite"):
        LogisticRegression().fit(x * np.nan, y)
    fitted = LogisticRegression(max_epochs=1).fit(x, y)
    with pytest.raises(ConfigError, match="shape"):
        fitted.predict_proba(np.zeros((2, 7)))
