"""The engine with the real live strategies (no fake strategy): steps, feedback, settle.

The cheap model is wrong when the query's number is odd; the evaluator knows. A thin
spy wraps the real strategy only to keep its sessions and the settled ones; every
decision is the real strategy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ExecutionError, Router
from pickllm.cascade import CascadeSession
from pickllm.cascade.factory import make_strategy
from pickllm.cascade.live import LiveCascade, LiveSession
from pickllm.engine import Engine, Executor, MemoryRecorder, Request, RetryConfig
from pickllm.testing import EchoCalls
from tests.cascade_stream import Ticker

CHEAP = Candidate(name="cheap", input_price=0.1, output_price=0.4)
MID = Candidate(name="mid", input_price=1.0, output_price=4.0)
DEAR = Candidate(name="dear", input_price=3.0, output_price=15.0)
POOL = (CHEAP, DEAR)


class Watched:
    """Delegates to a real :class:`LiveCascade`; keeps its sessions and settled ones."""

    def __init__(self, inner: LiveCascade) -> None:
        self.inner = inner
        self.name = inner.name
        self.sessions: list[LiveSession] = []
        self.settled: list[CascadeSession] = []

    def start(
        self, query: str, candidates: Sequence[Candidate], *, prompt_tokens: int
    ) -> LiveSession:
        session = self.inner.start(query, candidates, prompt_tokens=prompt_tokens)
        self.sessions.append(session)
        return session

    def settle(self, session: CascadeSession) -> None:
        self.settled.append(session)
        self.inner.settle(session)


def cheap_wrong_if_odd(prompt: str, answer: str, **kwargs: Any) -> float:
    """1.0 unless the cheap model answered a query whose number is odd."""
    del kwargs
    number = int(prompt.rsplit(" ", maxsplit=1)[-1])
    return 0.0 if answer.startswith("cheap:") and number % 2 else 1.0


def make(name: str, budget: float | None, **kwargs: Any) -> tuple[Engine, Watched, LiveCascade]:
    strategy = make_strategy(name, candidates=POOL, budget_usd=budget, seed=0)
    assert isinstance(strategy, LiveCascade)
    watched = Watched(strategy)
    router = Router(list(POOL), policy="cheapest", clock=Ticker())
    kwargs.setdefault("evaluator", cheap_wrong_if_odd)
    engine = Engine(
        router,
        retry=RetryConfig(max_attempts=1, jitter_s=0.0),
        clock=Ticker(),
        sleep=lambda _s: None,
        strategy=watched,
        **kwargs,
    )
    return engine, watched, strategy


@pytest.mark.parametrize("name", ["threshold_cascade", "optimal_cascade", "cascade_routing"])
def test_every_step_is_one_feedback_and_the_answer_is_the_sessions_final(name: str) -> None:
    engine, watched, _ = make(name, budget=None)
    rng = np.random.default_rng(0)
    steps = dict.fromkeys(("cheap", "dear"), 0)
    for i in range(40):
        query = f"question {i} number {int(rng.integers(1000))}"
        answer = engine.run(Request(query=query), EchoCalls(query=query))
        session = watched.sessions[-1]
        assert watched.settled[-1] is session
        assert answer.model == session.final()
        assert answer.value == f"{session.final()}: {query}"
        info = answer.info()
        assert info["strategy"] == name
        assert [s["model"] for s in info["steps"]] == [s.model for s in session.steps]
        assert [s["estimate"] for s in info["steps"]] == [s.quality for s in session.steps]
        assert all(0.0 <= s["estimate"] <= 1.0 for s in info["steps"])
        assert info["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in info["steps"]))
        for step in session.steps:
            steps[step.model] += 1
    assert len(watched.settled) == len(watched.sessions) == 40
    stats = engine.router.stats()
    assert {m: stats[m].calls for m in steps} == steps
    assert steps["dear"] > 0  # the cascade escalated at least once


def test_the_executor_records_one_feedback_per_step_with_the_score_as_quality() -> None:
    engine, watched, _ = make("cascade_routing", budget=None)
    recorder = MemoryRecorder()
    executor = Executor(recorder, retry=RetryConfig(max_attempts=1), clock=Ticker())
    for number in (3, 4, 7):  # cheap wrong, right, wrong
        query = f"q number {number}"

        def score(candidate: Candidate, value: str, query: str = query) -> float:
            del candidate
            return cheap_wrong_if_odd(query, value)

        calls = EchoCalls(query=query)
        decision = engine.route(Request(query=query))
        before = len(recorder.records)
        result = executor.run(
            decision,
            calls.call,
            calls.usage,
            strategy=watched,
            query=query,
            score=score,
        )
        session = watched.sessions[-1]
        records = recorder.records[before:]
        assert len(records) == len(session.steps) == len(calls.calls)
        # The returned step is recorded first; each with the evaluator's score.
        assert records[0][0].candidate.name == session.final() == result.decision.candidate.name
        for dec, feedback, waits in records:
            expected = cheap_wrong_if_odd(query, f"{dec.candidate.name}: {query}")
            assert (feedback.quality, waits) == (expected, False)
            assert ("cascade_estimate", expected) in feedback.extra
        assert calls.calls == (["cheap", "dear"] if number % 2 else ["cheap"])


def test_an_answer_known_to_be_right_ends_the_cascade() -> None:
    # Regression: the run model's tiny variance, clipped at 1.0, made a known-right answer
    # average below 1.0, so a dearer model looked worth running after it (found through
    # the wrappers: 20-30% of the right cheap answers were escalated).
    for name in ("cascade_routing", "optimal_cascade"):
        engine, watched, _ = make(name, budget=None)
        for i in range(10):
            query = f"q{i} number {2 * i}"  # the cheap answer is right every time
            engine.run(Request(query=query), EchoCalls(query=query))
            assert [s.model for s in watched.sessions[-1].steps] == ["cheap"]
    strategy = LiveCascade("cascade_routing", candidates=POOL, budget_usd=1.0, lam=1e-3, seed=0)
    session = strategy.start("q", POOL, prompt_tokens=10)
    assert session.next_model() == "cheap"
    session.observe("cheap", "A", cost_usd=1e-6, latency_s=0.1, score=1.0)
    assert session.next_model() is None


def test_a_fatal_error_settles_the_real_strategy_and_records_what_answered() -> None:
    class AuthenticationError(Exception):
        pass

    engine, watched, strategy = make("cascade_routing", budget=None)
    query = "q number 5"  # cheap is wrong: the cascade goes on to dear, which fails
    calls = EchoCalls(query=query, fail={"dear": AuthenticationError("bad key")})
    with pytest.raises(AuthenticationError):
        engine.run(Request(query=query), calls)
    assert calls.calls == ["cheap", "dear"]
    (session,) = watched.sessions
    assert watched.settled == [session]
    assert [(s.model, s.error) for s in session.steps] == [
        ("cheap", None),
        ("dear", "AuthenticationError"),
    ]
    # The real settle ran: it counted the call and what the cheap step cost.
    assert strategy.mean_cost == pytest.approx(session.total_cost)
    assert session.total_cost > 0
    stats = engine.router.stats()
    assert (stats["cheap"].calls, stats["dear"].calls, stats["dear"].errors) == (1, 1, 1)
    assert not math.isnan(stats["cheap"].mean_reward)


def test_when_every_step_fails_the_real_strategy_is_settled() -> None:
    engine, watched, strategy = make("optimal_cascade", budget=1e-4)
    down: dict[str, Exception] = {n: ConnectionError("down") for n in ("cheap", "dear")}
    calls = EchoCalls(query="q number 2", fail=down)
    with pytest.raises(ExecutionError):
        engine.run(Request(query="q number 2"), calls)
    assert calls.calls == ["cheap", "dear"]  # a failed step is not retried by the session
    assert watched.settled == watched.sessions
    assert [s.error for s in watched.sessions[0].steps] == ["ConnectionError"] * 2
    assert strategy.mean_cost == 0.0
    assert engine.router.stats()["cheap"].errors == 1


def test_a_failed_cheap_step_lets_the_dear_model_answer() -> None:
    engine, watched, _ = make("threshold_cascade", budget=None)
    query = "q number 4"
    calls = EchoCalls(query=query, fail={"cheap": ConnectionError("down")})
    answer = engine.run(Request(query=query), calls)
    assert (answer.model, answer.value) == ("dear", f"dear: {query}")
    assert [(s["model"], s["error"]) for s in answer.info()["steps"]] == [
        ("cheap", "ConnectionError"),
        ("dear", None),
    ]
    assert watched.settled == watched.sessions


def test_without_an_evaluator_the_agreement_estimate_is_recorded() -> None:
    engine, watched, _ = make("cascade_routing", budget=None, evaluator=None)
    query = "q number 1"
    answer = engine.run(Request(query=query), EchoCalls(query=query))
    session = watched.sessions[-1]
    assert answer.model == session.final()
    stats = engine.router.stats()
    assert sum(stats[m].calls for m in ("cheap", "dear")) == len(session.steps)
    for step in answer.info()["steps"]:
        assert 0.0 <= step["estimate"] <= 1.0


def test_a_tracked_block_collects_a_cascade_call_for_its_delayed_score() -> None:
    # Regression: Engine.route returned a cascade decision before noting it for the open
    # track() blocks, so their feedback found "no routed call" in the block.
    engine, _, _ = make("cascade_routing", budget=None, evaluator=None, await_feedback=True)
    query = "q number 2"
    with engine.track() as tracked:
        answer = engine.run(Request(query=query), EchoCalls(query=query))
    assert engine.router.is_pending(answer.decision.decision_id)
    assert tracked.feedback(0.9) is not None
    assert not engine.router.is_pending(answer.decision.decision_id)


class Letters(EchoCalls):
    """Each model answers a fixed option letter."""

    def __init__(self, letters: dict[str, str]) -> None:
        super().__init__(query="Which option?")
        self.letters = letters

    def _answer(self, candidate: Candidate) -> str:
        self.calls.append(candidate.name)
        return self.letters[candidate.name]


def test_the_estimates_reported_are_the_revised_ones_final_compared() -> None:
    # Regression: a later answer revises an earlier one's agreement estimate, but the
    # metadata and the feedback kept the estimate observe() returned at the time, so the
    # returned answer could carry the lowest estimate listed.
    strategy = make_strategy("cascade_routing", candidates=(CHEAP, MID, DEAR), budget_usd=None)
    assert isinstance(strategy, LiveCascade)
    watched = Watched(strategy)
    recorder = MemoryRecorder()
    router = Router([CHEAP, MID, DEAR], policy="cheapest", clock=Ticker())
    engine = Engine(router, clock=Ticker(), strategy=watched, await_feedback=False)
    calls = Letters({"cheap": "B", "mid": "A", "dear": "A"})
    decision = engine.route(Request(query="Which option?"))
    executor = Executor(recorder, retry=RetryConfig(max_attempts=1), clock=Ticker())
    result = executor.run(decision, calls.call, calls.usage, strategy=watched, query="q")
    session = watched.sessions[-1]
    assert calls.calls == ["cheap", "mid", "dear"]
    latest = session.estimates
    assert latest["cheap"] < latest["mid"] == latest["dear"]  # the two that agree
    reported = {step.model: step.quality for step in result.steps}
    recorded = {dec.candidate.name: fb.quality for dec, fb, _ in recorder.records}
    assert reported == recorded == latest
    served = result.decision.candidate.name
    assert served == session.final()
    assert reported[served] == max(latest.values())
