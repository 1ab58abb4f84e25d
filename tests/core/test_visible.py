"""Visible routing in the core: logging, beliefs(), explain(), reprs, the stats table."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from pickllm import Candidate, Feedback, PerContext, Router, make_policy
from pickllm.beliefs import Belief
from pickllm.engine import Engine, Request
from pickllm.errors import ConfigError
from pickllm.testing import EchoCalls

SECRET = "zebra-quokka-7731 what is my password"  # noqa: S105 - a marker, not a password


def _pool() -> list[Candidate]:
    return [
        Candidate(name="small", input_price=0.1, output_price=0.4),
        Candidate(name="large", input_price=3.0, output_price=15.0),
    ]


def _train(router: Router, n: int = 30) -> None:
    for _ in range(n):
        d = router.route(SECRET)
        quality = 0.9 if d.candidate.name == "small" else 0.3
        router.record(d, Feedback(quality=quality, latency_s=0.1))


# ---------------------------------------------------------------------- logging
def test_each_decision_and_update_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    router = Router(_pool(), seed=0)
    with caplog.at_level(logging.DEBUG, logger="pickllm"):
        decision = router.route(SECRET)
        reward = router.record(decision, Feedback(quality=1.0))
    records = [r for r in caplog.records if r.name == "pickllm.router"]
    route, update = records
    assert route.levelno == update.levelno == logging.DEBUG
    text = route.getMessage()
    assert decision.decision_id in text
    assert decision.candidate.name in text
    assert f"{decision.probability:.3g}" in text
    assert reward is not None
    assert f"reward {reward:.3g}" in update.getMessage()
    assert decision.decision_id in update.getMessage()


def test_nothing_is_logged_above_debug_by_routing(caplog: pytest.LogCaptureFixture) -> None:
    router = Router(_pool(), seed=0)
    with caplog.at_level(logging.INFO, logger="pickllm"):
        _train(router, 5)
    assert caplog.records == []


def test_no_prompt_text_reaches_any_log_record(caplog: pytest.LogCaptureFixture) -> None:
    router = Router(_pool(), seed=0, breaker_failures=1)
    engine = Engine(router, await_feedback=True, sleep=lambda _s: None)
    with caplog.at_level(logging.DEBUG):
        answer = engine.run(Request(query=SECRET, prompt=SECRET * 3), EchoCalls(query=SECRET))
        engine.feedback(answer.decision.decision_id, 0.5)
        d = router.route(SECRET)
        router.record(d, Feedback(error="RuntimeError"))  # opens a circuit: a warning
        router.explain(SECRET)
    assert caplog.records
    for record in caplog.records:
        assert "zebra" not in record.getMessage()
        assert "zebra" not in str(record.args)


def test_an_evaluator_error_quoting_the_prompt_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def evaluator(prompt: str, answer: str, **_kw: object) -> float:
        msg = f"cannot score {prompt!r} -> {answer!r}"
        raise ValueError(msg)

    def on_error(_decision_id: str, exc: BaseException) -> None:
        raise RuntimeError(str(exc))

    engine = Engine(Router(_pool(), seed=0), evaluator=evaluator)
    engine.evaluation.on_error = on_error  # type: ignore[union-attr]
    with caplog.at_level(logging.DEBUG):
        engine.run(Request(query=SECRET), EchoCalls(query=SECRET))
    assert any("ValueError" in r.getMessage() for r in caplog.records)
    handler = logging.Handler()
    for record in caplog.records:
        assert "zebra" not in handler.format(record)


# ---------------------------------------------------------------------- beliefs
def test_thompson_beliefs_are_its_beta_posteriors() -> None:
    router = Router(_pool(), seed=0)
    _train(router)
    state = router.policy.state_dict()["state"]
    for name, belief in router.beliefs().items():
        a, b = state["alpha"][name], state["beta"][name]
        assert belief.mean_reward == pytest.approx(a / (a + b))
        assert belief.uncertainty == pytest.approx(math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
        assert belief.calls == router.stats()[name].calls
    beliefs = router.beliefs()
    assert beliefs["small"].mean_reward > beliefs["large"].mean_reward  # type: ignore[operator]


@pytest.mark.parametrize("name", ["ucb1", "epsilon_greedy_q", "learning_automaton", "random"])
def test_beliefs_of_each_policy_come_from_its_state(name: str) -> None:
    router = Router(_pool(), policy=name, seed=1)
    _train(router)
    beliefs = router.beliefs()
    assert set(beliefs) == {"small", "large"}
    stats = router.stats()
    state = router.policy.state_dict()["state"]
    for model, belief in beliefs.items():
        assert isinstance(belief, Belief)
        if name == "epsilon_greedy_q":
            assert belief.mean_reward == state["q_values"].get(model)
        elif name == "learning_automaton":
            assert belief.probability == state["probabilities"][model]
            assert belief.mean_reward == pytest.approx(stats[model].mean_reward)
        elif stats[model].calls:
            assert belief.mean_reward == pytest.approx(stats[model].mean_reward)
            assert belief.calls == stats[model].calls
    if name == "learning_automaton":
        assert sum(b.probability or 0.0 for b in beliefs.values()) == pytest.approx(1.0)


def test_per_context_beliefs_are_the_shared_learners() -> None:
    router = Router(_pool(), policy=PerContext(policy=make_policy("thompson"), seed=0))
    _train(router)
    beliefs = router.beliefs()
    assert beliefs["small"].detail.endswith("posterior")
    assert beliefs["small"].calls + beliefs["large"].calls == 30


def test_a_belief_prints_without_nan() -> None:
    router = Router(_pool(), policy="ucb1", seed=0)
    text = repr(router.beliefs())
    assert "nan" not in text
    assert "no estimate" in text


# ---------------------------------------------------------------------- explain
def test_explain_neither_learns_nor_draws_from_the_live_policy() -> None:
    router, twin = Router(_pool(), seed=3), Router(_pool(), seed=3)
    _train(router, 10)
    _train(twin, 10)
    before = router.policy.state_dict()
    why = router.explain(SECRET, draws=50)
    assert router.policy.state_dict() == before
    assert router.pending() == twin.pending()
    picks = [router.route("q").candidate.name for _ in range(20)]
    assert picks == [twin.route("q").candidate.name for _ in range(20)]
    assert why.chosen in {"small", "large"}
    assert sum(why.choice_rates.values()) == pytest.approx(1.0)
    assert why.scores is not None
    assert set(why.scores) == {"small", "large"}


def test_explain_shows_the_learned_preference() -> None:
    router = Router(_pool(), seed=0)
    _train(router, 40)
    why = router.explain("anything", draws=400)
    assert why.choice_rates["small"] > 0.8
    text = str(why)
    assert "small" in text
    assert "large" in text
    assert "nan" not in text


def test_explain_lists_models_that_cannot_serve_and_why() -> None:
    pool = [
        Candidate(name="small", tool_calling=False),
        Candidate(name="large"),
        Candidate(name="flaky"),
    ]
    router = Router(pool, policy="random", seed=0, breaker_failures=1, clock=lambda: 0.0)
    router.record(router.route(pin="flaky"), Feedback(error="RuntimeError"))
    why = router.explain("q", needs_tool_calling=True, draws=10)
    assert why.excluded == {"small": "cannot serve: needs tool calling", "flaky": "circuit open"}
    assert why.chosen == "large"
    assert why.choice_rates == {"large": 1.0}
    assert "excluded" in str(why)


def test_explain_checks_draws() -> None:
    with pytest.raises(ConfigError, match="draws"):
        Router(_pool()).explain("q", draws=-1)


# ---------------------------------------------------------------------- reprs and stats
def test_reprs_are_short_and_name_the_pool() -> None:
    router = Router(_pool(), seed=np.random.default_rng(0))
    for obj in (router, Engine(router), router.policy):
        text = repr(obj)
        assert len(text) < 400
        assert " object at 0x" not in text
    assert "['small', 'large']" in repr(router)
    assert repr(router) in repr(Engine(router))


def test_stats_print_as_a_table_without_nan() -> None:
    router = Router(_pool(), policy="cheapest")
    router.record(router.route("q"), Feedback(latency_s=0.5, cost_usd=0.01, quality=1.0))
    stats = router.stats()
    assert stats["small"].calls == 1  # still a mapping of CandidateStats
    text = repr(stats)
    assert "nan" not in text
    assert text.splitlines()[0].split()[:3] == ["model", "calls", "errors"]
    assert "-" in text.splitlines()[2]  # large: no reward measured yet
    rows = stats.rows()
    assert rows[1]["model"] == "large"
    assert rows[1]["mean_reward"] is None
    assert rows[0]["mean_reward"] == stats["small"].mean_reward
    assert "nan" not in repr(stats["large"])
    assert math.isnan(stats["large"].mean_reward)  # the field keeps its float type
