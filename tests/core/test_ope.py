"""Off-policy evaluation on synthetic logs whose true values are known."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from pickllm import ConfigError
from pickllm.ope import LoggedDecision, append_log, evaluate, read_log
from pickllm.policies import Choice, Fixed, LinearThompson, Policy, Random
from pickllm.types import Candidate, Context, Decision

POOL = (Candidate(name="a"), Candidate(name="b"), Candidate(name="c"))


def _mean(name: str, f: float) -> float:
    # "a" is best for f < 0.5, "c" for f >= 0.5; "b" is always middling.
    return {"a": 0.8 - 0.6 * f, "b": 0.5, "c": 0.2 + 0.6 * f}[name]


class _Rule(Policy):
    """Picks "a" for a small feature, "c" otherwise: the best per context.

    Args:
        seed: seed.

    Examples:
        >>> _Rule().name
        ''
    """

    def _select(self, context: Context) -> Choice:
        f = (context.features or (0.0,))[0]
        return Choice(0 if f < 0.5 else len(context.candidates) - 1, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


class _Softmax(Policy):
    """A stochastic logger that prefers "b" and ignores the context: chances 0.3, 0.5, 0.2.

    Args:
        seed: seed.

    Examples:
        >>> _Softmax(seed=0).select(Context(candidates=POOL)).probability
        0.5
    """

    def _select(self, context: Context) -> Choice:
        i = int(self._rng.choice(3, p=CHANCES))
        return Choice(i, float(CHANCES[i]))

    def _update(self, decision: Decision, reward: float) -> None:
        pass


CHANCES = np.array([0.3, 0.5, 0.2])


@functools.cache
def _log(seed: int, n: int = 800) -> tuple[LoggedDecision, ...]:
    """A log of a non-uniform random logger that does not look at the context."""
    rng = np.random.default_rng(1000 + seed)
    logger = _Softmax(seed=seed)
    out = []
    for _ in range(n):
        ctx = Context(features=(float(rng.random()),), candidates=POOL)
        decision = logger.select(ctx)
        reward = float(rng.random() < _mean(decision.candidate.name, ctx.features[0]))  # type: ignore[index]
        out.append(LoggedDecision.from_decision(ctx, decision, reward))
    return tuple(out)


# The rule's true value: E[max(0.8 - 0.6 f, 0.2 + 0.6 f)] over f ~ U(0, 1) = 0.65.
TRUE_RULE = 0.65


@pytest.mark.parametrize("method", ["ips", "snips", "dr"])
def test_estimates_cover_the_true_value_of_a_contextual_rule(method: str) -> None:
    covered = 0
    errors = []
    for seed in range(20):
        est = evaluate(_Rule(seed=0), _log(seed), method=method)  # type: ignore[arg-type]
        covered += est.low <= TRUE_RULE <= est.high
        errors.append(abs(est.value - TRUE_RULE))
    assert covered >= 18
    assert float(np.mean(errors)) < 0.04


def test_doubly_robust_is_tighter_than_ips() -> None:
    log = _log(0)
    ips = evaluate(_Rule(seed=0), log, method="ips")
    dr = evaluate(_Rule(seed=0), log, method="dr")
    assert dr.high - dr.low < ips.high - ips.low
    assert dr.low <= TRUE_RULE <= dr.high


def test_a_fixed_policy_on_a_uniform_log() -> None:
    rng = np.random.default_rng(101)  # not the logger's seed: independent draws
    logger = Random(seed=1)
    log = []
    for _ in range(3000):
        decision = logger.select(Context(candidates=POOL))
        reward = float(rng.random() < _mean(decision.candidate.name, 0.0))
        log.append(LoggedDecision.from_decision(Context(candidates=POOL), decision, reward))
    for method in ("ips", "snips", "dr"):
        est = evaluate(Fixed(model="a", seed=0), log, method=method)
        assert est.low <= 0.8 <= est.high
        assert est.matched == sum(r.chosen == "a" for r in log)


def test_a_log_round_trips_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    policy = LinearThompson(seed=0)
    ctx = Context(query="What is 2 + 2?", key="math", candidates=POOL)
    for r in (0.0, 1.0, 0.5):
        decision = policy.select(ctx)
        policy.update(decision, r)
        append_log(path, ctx, decision, r)
    log = read_log(path)
    assert [x.reward for x in log] == [0.0, 1.0, 0.5]
    assert log[0].context == ctx
    assert 0.0 < log[0].propensity <= 1.0
    path.write_text('{"chosen": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1"):
        read_log(path)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        evaluate(Fixed(model="a"), [])
    log = _log(0)
    with pytest.raises(ConfigError, match="method"):
        evaluate(Fixed(model="a"), log, method="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="confidence"):
        evaluate(Fixed(model="a"), log, confidence=1.0)
    with pytest.raises(ConfigError, match="propensity"):
        LoggedDecision(context=Context(), chosen="a", propensity=0.0, reward=1.0)
