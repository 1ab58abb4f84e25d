"""The learners behind a query scorer: the target head, the tag head, and their training.

The *target head* learns each query's target (SelectLLM: which models answer correctly;
Zooter: a distribution over the models); the *tag head* learns ``P(tag | x)``, which
Zooter's tag-based label enhancement mixes with the tags' mean targets (see
:mod:`pickllm.learn.base`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pickllm.errors import StateError
from pickllm.learn.models import MLP, LogisticRegression, Output, SoftLoss

__all__ = ["Heads", "LearnerFactory", "check_heads", "make_learner", "train_heads"]

LearnerFactory = Callable[[int, Output | None], LogisticRegression | MLP]
"""``make(seed, output)``: a fresh learner; ``output=None`` for the target head's own."""


@dataclass
class Heads:
    """The fitted learners: the target head, the tag head and the tags' mean targets."""

    target: list[LogisticRegression | MLP] = field(default_factory=list)
    tag: list[LogisticRegression | MLP] = field(default_factory=list)
    tag_means: np.ndarray | None = None  # (n_tags, k)
    beta: float = 1.0

    def output(self, x: np.ndarray) -> np.ndarray:
        """``beta * target head + (1 - beta) * P(tag | x) @ tag_means``, shape (m, k)."""
        parts: list[np.ndarray] = []
        if self.target:
            head: np.ndarray = np.mean([m.predict_proba(x) for m in self.target], axis=0)
            parts.append((self.beta if self.tag else 1.0) * head)
        if self.tag and self.tag_means is not None:
            p_tag = np.mean([m.predict_proba(x) for m in self.tag], axis=0)
            parts.append((1.0 - self.beta if self.target else 1.0) * (p_tag @ self.tag_means))
        out: np.ndarray = np.sum(parts, axis=0)
        return out

    @property
    def epochs(self) -> list[int]:
        """The best epoch of every learner, target head first."""
        return [m.best_epoch_ for m in (*self.target, *self.tag)]


def make_learner(
    kind: Literal["mlp", "logistic"],
    *,
    output: Output,
    loss: SoftLoss,
    hidden: int,
    learning_rate: float | None,
    weight_decay: float,
    max_epochs: int,
    seed: int,
) -> LogisticRegression | MLP:
    """A fresh learner: an MLP (one hidden ReLU layer) or a logistic regression.

    ``learning_rate=None`` takes the default of the kind: 0.003 for the MLP, 0.01 for the
    logistic regression.
    """
    if kind == "mlp":
        return MLP(
            hidden=hidden,
            output=output,
            loss=loss,
            learning_rate=learning_rate or 0.003,
            weight_decay=weight_decay,
            max_epochs=max_epochs,
            seed=seed,
        )
    return LogisticRegression(
        output=output,
        loss=loss,
        learning_rate=learning_rate or 0.01,
        weight_decay=weight_decay,
        max_epochs=max_epochs,
        seed=seed,
    )


def check_heads(heads: Heads, k: int, n_tags: int) -> None:
    """Raise StateError unless ``heads`` fit ``k`` models and ``n_tags`` tags."""
    if not heads.target and not heads.tag:
        msg = "a saved scorer needs at least one learner"
        raise StateError(msg)
    for m in heads.target:
        if m.n_outputs != k:
            msg = f"learner has {m.n_outputs} outputs for {k} models"
            raise StateError(msg)
    for m in heads.tag:
        if m.n_outputs != n_tags:
            msg = f"tag learner has {m.n_outputs} outputs for {n_tags} tags"
            raise StateError(msg)
    if heads.tag and (heads.tag_means is None or heads.tag_means.shape != (n_tags, k)):
        msg = f"tag means must have shape ({n_tags}, {k})"
        raise StateError(msg)


def train_heads(
    x: np.ndarray,
    y: np.ndarray,
    tag_rows: Sequence[tuple[str, ...]],
    *,
    seed: int,
    tag_vocab: Sequence[str],
    tag_beta: float,
    ensemble: int,
    make: LearnerFactory,
) -> Heads:
    """Fit the target head (unless ``tag_beta == 0``) and the tag head (if tagged)."""
    heads = Heads(beta=tag_beta)
    vocab = {t: j for j, t in enumerate(tag_vocab)}
    tagged = np.array([bool(row) for row in tag_rows])
    use_tags = tag_beta < 1.0 and bool(vocab) and bool(tagged.any())
    if not use_tags or tag_beta > 0.0:
        heads.target = [make((seed * 1000 + e) % 2**32, None).fit(x, y) for e in range(ensemble)]
    if use_tags:
        p_tag = np.zeros((len(tag_rows), len(vocab)))
        for i, row in enumerate(tag_rows):
            for t in row:
                p_tag[i, vocab[t]] += 1.0 / len(row)
        # ybar_t: the mean target of the queries carrying tag t.
        carries = (p_tag > 0).astype(float)
        counts = carries.sum(axis=0)[:, None]
        heads.tag_means = (carries.T @ y) / np.maximum(counts, 1.0)
        heads.tag = [
            make((seed * 1000 + 500 + e) % 2**32, "softmax").fit(x[tagged], p_tag[tagged])
            for e in range(ensemble)
        ]
    return heads
