"""Zooter trained on raw reward-model scores (any real scale), as the paper distils them."""

from __future__ import annotations

import numpy as np
import pytest

from pickllm import ConfigError
from pickllm.learn import Zooter
from pickllm.learn.zooter import soft_labels

TEXTS = ["add 2 and 3", "sum 4 and 5", "write a poem", "write a haiku"] * 10
MODELS = ["math-model", "poet-model"]


def _scores(rng: np.random.Generator, scale: float, shift: float) -> np.ndarray:
    # The math model wins the sums and the poet the poems, on a reward model's own scale.
    base = np.array([[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]] * 10)
    return shift + scale * (base + 0.3 * rng.standard_normal(base.shape))


@pytest.mark.parametrize(("scale", "shift"), [(1.0, 0.0), (7.5, -40.0), (0.05, 1000.0)])
def test_raw_rewards_on_any_scale_train_a_router(scale: float, shift: float) -> None:
    rewards = _scores(np.random.default_rng(0), scale, shift)
    z = Zooter(learner="logistic", learning_rate=0.1, tag_beta=1.0, seed=0)
    z.fit(TEXTS, None, MODELS, rewards=rewards)
    assert z.route(["add 7 and 8", "write a sonnet"]).tolist() == [0, 1]
    quality = z.predict_quality(["add 7 and 8"])
    assert np.all((quality >= 0) & (quality <= 1))


def test_the_silver_labels_are_the_softmax_of_the_raw_rewards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rewards = _scores(np.random.default_rng(1), 3.0, -5.0)
    quality = np.clip((rewards + 10) / 20, 0, 1)
    z = Zooter(tag_beta=1.0, seed=0)
    seen: list[np.ndarray] = []
    original = z._targets

    def spy(q: np.ndarray) -> np.ndarray:
        out = original(q)
        seen.append(out)
        return out

    monkeypatch.setattr(z, "_targets", spy)
    z.fit(TEXTS, quality, MODELS, rewards=rewards)
    np.testing.assert_allclose(seen[0], soft_labels(rewards, 1.0))
    # Without rewards the recorded quality is the score, as before.
    z.fit(TEXTS, quality, MODELS)
    np.testing.assert_allclose(seen[-1], soft_labels(quality, 1.0))


def test_a_shift_of_every_score_of_a_query_changes_nothing() -> None:
    # The softmax across models ignores a per-query offset, as in the paper.
    rewards = _scores(np.random.default_rng(2), 2.0, 0.0)
    offset = np.random.default_rng(3).normal(0, 50, size=(len(TEXTS), 1))
    a = soft_labels(rewards)
    b = soft_labels(rewards + offset)
    np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize(
    ("rewards", "quality", "needle"),
    [
        (np.zeros((3, 2)), None, "rewards must be \\(n, k\\)"),
        (np.full((40, 2), np.nan), None, "finite"),
        (None, None, "quality or rewards"),
    ],
)
def test_bad_rewards_are_refused(
    rewards: np.ndarray | None, quality: np.ndarray | None, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        Zooter(seed=0).fit(TEXTS, quality, MODELS, rewards=rewards)
