"""The engine under a cascade strategy: steps, feedback, streaming, failures, settings."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, ExecutionError, Router
from pickllm.cascade import CascadeSession, CascadeStep, CascadeStrategy, factory
from pickllm.engine import Engine, Executor, MemoryRecorder, Request, RetryConfig, RoutingSettings
from pickllm.engine.settings import split_seed
from pickllm.errors import DeadlineExceededError
from pickllm.policies import Fixed
from pickllm.pricing import Usage, estimate_tokens
from pickllm.testing import EchoCalls, ManualClock
from tests.core.cascade_fakes import PriceOrderCascade

CHEAP = Candidate(name="cheap", input_price=0.1, output_price=0.4)
MID = Candidate(name="mid", input_price=1.0, output_price=4.0)
DEAR = Candidate(name="dear", input_price=3.0, output_price=15.0)


class Ticker:
    """A clock that moves ``step`` seconds per reading."""

    def __init__(self, step: float = 1.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def good_if(*models: str) -> Callable[..., float]:
    """An evaluator: 1.0 for the answers of ``models``, else 0.0."""

    def evaluate(prompt: str, answer: str, **kwargs: Any) -> float:
        del prompt, kwargs
        return 1.0 if answer.split(":", maxsplit=1)[0] in models else 0.0

    return evaluate


def make_engine(
    strategy: CascadeStrategy | None,
    *,
    pool: tuple[Candidate, ...] = (CHEAP, MID, DEAR),
    clock: Callable[[], float] | None = None,
    **kwargs: Any,
) -> Engine:
    router = Router(list(pool), policy="cheapest", clock=Ticker())
    kwargs.setdefault("retry", RetryConfig(max_attempts=1, jitter_s=0.0))
    return Engine(
        router,
        clock=clock or Ticker(),
        sleep=lambda _: None,
        strategy=strategy,
        **kwargs,
    )


# ---------------------------------------------------------------------- run
def test_a_good_cheap_answer_stops_the_cascade() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=good_if("cheap"))
    calls = EchoCalls(query="Hi")
    answer = e.run(Request(query="Hi"), calls)
    assert calls.calls == ["cheap"]
    assert (answer.value, answer.model) == ("cheap: Hi", "cheap")
    info = answer.info()
    assert (info["plan"], info["strategy"], info["model"]) == ("cascade", "price_order", "cheap")
    assert [s["model"] for s in info["steps"]] == ["cheap"]
    assert info["steps"][0]["estimate"] == 1.0
    assert strategy.settled == strategy.sessions
    assert e.router.stats()["cheap"].calls == 1
    assert e.router.stats()["dear"].calls == 0


def test_a_bad_cheap_answer_escalates_and_every_step_is_recorded() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=good_if("dear"))
    calls = EchoCalls(query="Hi there")
    answer = e.run(Request(query="Hi there"), calls)
    assert calls.calls == ["cheap", "mid", "dear"]
    assert answer.model == "dear"
    assert answer.value == "dear: Hi there"
    session = strategy.sessions[0]
    assert [(o.model, o.score) for o in session.observed] == [
        ("cheap", 0.0),
        ("mid", 0.0),
        ("dear", 1.0),
    ]
    # The session saw each step's own measured cost and latency.
    steps = answer.result.steps
    assert [s.model for s in steps] == ["cheap", "mid", "dear"]
    assert [o.cost_usd for o in session.observed] == [s.cost_usd for s in steps]
    assert [o.latency_s for o in session.observed] == [s.latency_s for s in steps]
    assert steps[0].cost_usd < steps[1].cost_usd < steps[2].cost_usd
    # One feedback per step, its quality the evaluator's score; the call's cost is the sum.
    answered = [f for f in answer.result.attempts if f.error is None]
    assert [(f.candidate, f.quality) for f in answered] == [
        ("cheap", 0.0),
        ("mid", 0.0),
        ("dear", 1.0),
    ]
    assert dict(answered[0].extra)["cascade_estimate"] == 0.0
    assert answer.result.feedback.cost_usd == pytest.approx(sum(s.cost_usd for s in steps))
    stats = e.router.stats()
    assert {name: s.calls for name, s in stats.items()} == {"cheap": 1, "mid": 1, "dear": 1}
    assert {name: s.mean_reward for name, s in stats.items()}["dear"] > stats["cheap"].mean_reward
    assert e.router.pending() == 0
    assert answer.result.reward is not None
    assert answer.info()["members"] == ["cheap", "mid", "dear"]
    # The metadata lists every step; "chosen" is the model the cascade started with.
    info = answer.info()
    assert info["chosen"] == "cheap"
    assert info["steps"] == [
        {
            "model": model,
            "cost_usd": step.cost_usd,
            "latency_s": session_step.latency_s,
            "estimate": score,
            "ex_ante": None,  # the fake strategy estimates nothing before a step
            "error": None,
        }
        for model, score, step, session_step in zip(
            ("cheap", "mid", "dear"), (0.0, 0.0, 1.0), steps, session.observed, strict=True
        )
    ]


def test_without_evaluator_the_estimate_is_the_quality_and_the_evaluator_gets_each_step() -> None:
    strategy = PriceOrderCascade(threshold=0.9, estimate=lambda text: 0.3)
    e = make_engine(strategy)
    answer = e.run(Request(query="Hi"), EchoCalls())
    assert [s.model for s in answer.result.steps] == ["cheap", "mid", "dear"]
    assert all(o.score is None for o in strategy.sessions[0].observed)
    assert [f.quality for f in answer.result.attempts] == [0.3, 0.3, 0.3]
    # Equal estimates: the fake returns the earliest.
    assert answer.model == "cheap"
    seen: list[tuple[str, str]] = []

    def judge(prompt: str, answer: str, *, model: str, decision_id: str) -> float:
        seen.append((model, decision_id))
        return 0.0

    e = make_engine(PriceOrderCascade(), evaluator=judge)
    answer = e.run(Request(query="Hi"), EchoCalls())
    assert seen == [(m, answer.decision.decision_id) for m in ("cheap", "mid", "dear")]


def test_steps_are_scored_inline_even_with_a_background_evaluator() -> None:
    seen: list[tuple[str, Any, Any]] = []

    def judge(prompt: str, answer: str, *, raw_answer: Any, messages: Any) -> float:
        seen.append((answer, raw_answer, messages))
        return 1.0 if answer.startswith("mid") else 0.0

    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=judge, evaluate_in_background=True)
    request = Request(query="Hi", evaluator_kwargs={"messages": ["m"]})
    answer = e.run(request, EchoCalls())
    assert answer.model == "mid"
    assert seen == [("cheap: Hi", "cheap: Hi", ["m"]), ("mid: Hi", "mid: Hi", ["m"])]
    assert [o.score for o in strategy.sessions[0].observed] == [0.0, 1.0]
    assert e.evaluation is not None
    assert e.evaluation.pending == 0
    assert e.router.pending() == 0


def test_an_evaluator_that_fails_gives_no_score_and_does_not_fail_the_call() -> None:
    def broken(prompt: str, answer: str) -> float:
        raise RuntimeError("judge down")

    strategy = PriceOrderCascade(estimate=lambda text: 0.7)
    e = make_engine(strategy, evaluator=broken)
    answer = e.run(Request(query="Hi"), EchoCalls())
    assert answer.model == "cheap"
    assert strategy.sessions[0].observed[0].score is None
    assert answer.result.attempts[-1].quality == 0.7
    assert e.evaluation is not None
    assert e.evaluation.errors == 1


def test_a_failed_step_is_told_to_the_session_and_the_cascade_goes_on() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(
        strategy,
        evaluator=good_if("mid", "dear"),
        retry=RetryConfig(max_attempts=2, jitter_s=0.0),
    )
    calls = EchoCalls(fail={"cheap": ConnectionError("down")})
    answer = e.run(Request(query="Hi"), calls)
    # Retried (transient), then no fallback: the strategy proposes the next model.
    assert calls.calls == ["cheap", "cheap", "mid"]
    assert answer.model == "mid"
    session = strategy.sessions[0]
    assert [(m, err) for m, err, _ in session.failures] == [("cheap", "ConnectionError")]
    assert session.failures[0][2] > 0
    info = answer.info()
    assert [(s["model"], s["error"]) for s in info["steps"]] == [
        ("cheap", "ConnectionError"),
        ("mid", None),
    ]
    assert info["steps"][0]["estimate"] is None
    stats = e.router.stats()
    assert (stats["cheap"].calls, stats["cheap"].errors, stats["mid"].calls) == (2, 2, 1)
    assert strategy.settled == [session]


def test_a_fatal_error_surfaces_after_recording_and_settling() -> None:
    class AuthenticationError(Exception):
        pass

    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=good_if("dear"))
    calls = EchoCalls(fail={"mid": AuthenticationError("bad key")})
    with pytest.raises(AuthenticationError):
        e.run(Request(query="Hi"), calls)
    assert calls.calls == ["cheap", "mid"]
    assert strategy.settled == strategy.sessions
    stats = e.router.stats()
    # The cheap step answered and is learned from although the call failed.
    assert stats["cheap"].calls == 1
    assert not math.isnan(stats["cheap"].mean_reward)
    assert stats["mid"].errors == 1


def test_when_every_step_fails_the_call_raises_and_settles() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(strategy)
    down: dict[str, Exception] = {n: RuntimeError("down") for n in ("cheap", "mid", "dear")}
    with pytest.raises(ExecutionError) as raised:
        e.run(Request(query="Hi"), EchoCalls(fail=down))
    assert [f.candidate for f in raised.value.attempts] == ["cheap", "mid", "dear"]
    assert len(strategy.settled) == 1
    assert len(strategy.sessions[0].failures) == 3


def test_a_strategy_proposing_a_model_not_offered_is_refused_and_settled() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(strategy, pool=(CHEAP, DEAR))
    original = strategy.start

    def start(query: str, candidates: Any, *, prompt_tokens: int) -> Any:
        session = original(query, candidates, prompt_tokens=prompt_tokens)
        session.order.insert(0, "gpt-9")
        return session

    strategy.start = start  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="proposed model 'gpt-9'"):
        e.run(Request(query="Hi"), EchoCalls())
    assert len(strategy.settled) == 1


def test_the_deadline_ends_the_cascade_with_the_best_answer_so_far() -> None:
    strategy = PriceOrderCascade(threshold=1.0, estimate=lambda text: 0.4)
    # Each clock reading moves 1 s; a 5 s deadline passes during the second step.
    e = make_engine(strategy, retry=RetryConfig(max_attempts=1, jitter_s=0.0, deadline=5.0))
    calls = EchoCalls()
    answer = e.run(Request(query="Hi"), calls)
    assert answer.model == "cheap"
    steps = answer.result.steps
    assert steps[-1].error == "DeadlineExceededError"
    assert "dear" not in calls.calls
    assert len(strategy.settled) == 1
    # With no answer before the deadline, the deadline error surfaces.
    e = make_engine(
        PriceOrderCascade(), retry=RetryConfig(max_attempts=1, jitter_s=0.0, deadline=0.5)
    )
    with pytest.raises(DeadlineExceededError):
        e.run(Request(query="Hi"), EchoCalls())


async def test_an_attempt_timeout_fails_the_step_and_the_next_model_answers() -> None:
    class Hanging(EchoCalls):
        async def acall(self, candidate: Candidate) -> str:
            if candidate.name == "cheap":
                await asyncio.Event().wait()
            return await super().acall(candidate)

    strategy = PriceOrderCascade()
    e = make_engine(
        strategy,
        pool=(CHEAP, DEAR),
        retry=RetryConfig(max_attempts=1, jitter_s=0.0, timeout=0.01),
        evaluator=good_if("dear"),
    )
    answer = await e.arun(Request(query="Hi"), Hanging())
    assert answer.model == "dear"
    assert answer.result.steps[0].error == "AttemptTimeoutError"
    assert e.router.stats()["cheap"].errors == 1


def test_await_feedback_keeps_the_returned_step_waiting_for_the_users_score() -> None:
    strategy = PriceOrderCascade(estimate=lambda text: 0.2)
    e = make_engine(strategy, await_feedback=True)
    answer = e.run(Request(query="Hi"), EchoCalls())
    assert answer.result.reward is None
    assert e.router.pending() == 1
    assert answer.model == "cheap"
    assert not math.isnan(e.router.stats()["mid"].mean_reward)
    assert math.isnan(e.router.stats()["cheap"].mean_reward)
    assert e.feedback(answer.decision.decision_id, 1.0) is not None
    assert not math.isnan(e.router.stats()["cheap"].mean_reward)
    assert e.router.pending() == 0


# ---------------------------------------------------------------------- what is cascaded
def test_tool_turns_pins_and_tool_loops_are_routed_by_the_policy() -> None:
    strategy = PriceOrderCascade()
    e = make_engine(strategy)
    for request in (
        Request(query="Hi", needs_tool_calling=True),
        Request(query="Hi", pin="dear"),
        Request(query="Hi", tool_loop_model="mid"),
    ):
        answer = e.run(request, EchoCalls())
        assert answer.decision.kind == "single"
        assert "steps" not in answer.info()
        # Not run by the strategy, so not named as run by it.
        assert answer.strategy is None
        assert "strategy" not in answer.info()
    assert strategy.sessions == []


def test_the_session_gets_the_offered_models_the_query_and_the_prompt_size() -> None:
    strategy = PriceOrderCascade()
    router = Router(
        [
            CHEAP,
            Candidate(name="no_tools", tool_calling=False, input_price=1.0, output_price=4.0),
            DEAR,
        ],
        policy="cheapest",
        on_budget="cheapest",
        budget_usd=1e-9,
    )
    e = Engine(router, strategy=strategy)
    e.run(Request(query="Hi", prompt="system: be brief\nHi"), EchoCalls())
    # In the pool's order, whatever the policy's ranking.
    assert strategy.offered[0] == ("cheap", "no_tools", "dear")
    assert strategy.sessions[0].query == "Hi"
    assert strategy.sessions[0].prompt_tokens > 0
    # Once the spend cap is reached, the router offers only the cheapest model.
    e.run(Request(query="Hi"), EchoCalls())
    assert strategy.offered[1] == ("cheap",)


# ---------------------------------------------------------------------- streaming, async
def test_streaming_emits_exactly_the_final_answer_after_the_steps() -> None:
    strategy = PriceOrderCascade()
    clock = Ticker()
    e = make_engine(strategy, evaluator=good_if("mid"), clock=clock)
    calls = EchoCalls(query="what is two plus two")
    finished: list[Any] = []
    chunks = list(e.stream(Request(query="what is two plus two"), calls, on_finish=finished.append))
    assert "".join(chunks) == "mid: what is two plus two"
    assert chunks == calls.as_chunks("mid: what is two plus two")
    assert calls.calls == ["cheap", "mid"]
    (answer,) = finished
    info = answer.info()
    assert info["model"] == "mid"
    assert [s["model"] for s in info["steps"]] == ["cheap", "mid"]
    # The first chunk comes once the cascade is over: its wait counts from the call's start.
    assert info["time_to_first_token_s"] >= answer.result.feedback.latency_s
    assert e.router.stats()["cheap"].calls == 1
    assert strategy.settled == strategy.sessions


async def test_async_run_and_stream_follow_the_same_path() -> None:
    scored: list[str] = []

    async def judge(prompt: str, answer: str) -> float:
        scored.append(answer)
        return 1.0 if answer.startswith("dear") else 0.0

    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=judge)
    answer = await e.arun(Request(query="Hi"), EchoCalls())
    assert (answer.model, answer.value) == ("dear", "dear: Hi")
    assert scored == ["cheap: Hi", "mid: Hi", "dear: Hi"]
    finished: list[Any] = []
    calls = EchoCalls(query="Hi")
    chunks = [c async for c in e.astream(Request(query="Hi"), calls, on_finish=finished.append)]
    assert "".join(chunks) == "dear: Hi"
    assert finished[0].value == chunks
    assert [s["model"] for s in finished[0].info()["steps"]] == ["cheap", "mid", "dear"]
    assert e.router.stats()["dear"].calls == 2
    assert len(strategy.settled) == 2


async def test_a_cancelled_async_cascade_still_records_and_settles() -> None:
    started = asyncio.Event()

    class Slow(EchoCalls):
        async def acall(self, candidate: Candidate) -> str:
            if candidate.name == "mid":
                started.set()
                await asyncio.Event().wait()
            return await super().acall(candidate)

    strategy = PriceOrderCascade()
    e = make_engine(strategy, evaluator=good_if("dear"))
    task = asyncio.create_task(e.arun(Request(query="Hi"), Slow()))
    # Bounded: a run that fails before the slow step fails the test instead of hanging it.
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(strategy.settled) == 1
    stats = e.router.stats()
    assert (stats["cheap"].calls, stats["mid"].errors) == (1, 1)


# ---------------------------------------------------------------------- settings
def test_settings_take_a_strategy_object() -> None:
    strategy = PriceOrderCascade()
    e = RoutingSettings(prices={"a": (0.1, 0.1), "b": (1.0, 1.0)}, strategy=strategy).build_engine(
        ["a", "b"], {}
    )
    assert e.strategy is strategy
    assert RoutingSettings(prices={"a": (0.1, 0.1)}).build_engine(["a"], {}).strategy is None


def test_settings_build_a_named_strategy_over_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    built = PriceOrderCascade()

    def fake_make_strategy(name: str, **kwargs: Any) -> PriceOrderCascade:
        made.append({"name": name, **kwargs})
        return built

    monkeypatch.setattr(factory, "make_strategy", fake_make_strategy)
    estimator = object()
    settings = RoutingSettings(
        prices={"a": (0.1, 0.1), "b": (1.0, 1.0)},
        strategy="cascade_routing",
        budget_per_call_usd=0.002,
        cascade_estimator=estimator,
        seed=3,
    )
    assert settings.build_engine(["a", "b"], {}).strategy is built
    (args,) = made
    assert args["name"] == "cascade_routing"
    assert [c.name for c in args["candidates"]] == ["a", "b"]
    assert (args["budget_usd"], args["estimator"]) == (0.002, estimator)
    # The strategy's generator is reproducible and distinct from the policy's and jitter's.
    settings.build_engine(["a", "b"], {})
    first, second = made[0]["seed"], made[1]["seed"]
    assert isinstance(first, np.random.Generator)
    assert first.random() == second.random()
    policy_rng, jitter_rng = split_seed(3)
    assert policy_rng is not None
    assert jitter_rng is not None
    draws = {policy_rng.random(), jitter_rng.random(), made[0]["seed"].random()}
    assert len(draws) == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "cascade_routng"}, r"strategy must be one of \['threshold_cascade'"),
        ({"strategy": 3}, "strategy must be one of .* got 3"),
        ({"budget_per_call_usd": 0.01}, "budget_per_call_usd=0.01 applies to a cascade"),
        ({"cascade_estimator": "est"}, "cascade_estimator='est' applies to a cascade"),
        (
            {"strategy": PriceOrderCascade(), "budget_per_call_usd": 0.01},
            "strategy object carries its own",
        ),
        (
            {"strategy": "cascade_routing", "budget_per_call_usd": 0.0},
            r"budget_per_call_usd must be a finite number of USD > 0 or None, got 0\.0",
        ),
        (
            {"strategy": "cascade_routing", "budget_per_call_usd": float("inf")},
            "budget_per_call_usd must be a finite number",
        ),
    ],
)
def test_settings_refuse_bad_cascade_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RoutingSettings(prices={"a": (0.1, 0.1)}, **settings).build_engine(["a"], {})


def test_engine_refuses_a_strategy_that_is_not_one() -> None:
    with pytest.raises(TypeError, match="strategy must implement"):
        Engine(Router([CHEAP]), strategy="cascade_routing")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- pinned details
class Timed(EchoCalls):
    """EchoCalls whose every model call takes ``seconds`` on a manual clock."""

    def __init__(self, clock: ManualClock, seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.seconds = seconds

    def _answer(self, candidate: Candidate) -> str:
        self.clock.now += self.seconds
        return super()._answer(candidate)


@pytest.mark.parametrize("seconds", [0.25, 2.0])
def test_a_streamed_cascades_first_token_waits_exactly_for_every_step(seconds: float) -> None:
    clock = ManualClock(100.0)
    e = make_engine(PriceOrderCascade(), evaluator=good_if("mid"), clock=clock)
    calls = Timed(clock, seconds, query="Hi")
    finished: list[Any] = []
    chunks = list(e.stream(Request(query="Hi"), calls, on_finish=finished.append))
    (answer,) = finished
    assert answer.value == chunks == ["mid: ", "Hi"]
    assert answer.info()["time_to_first_token_s"] == pytest.approx(2 * seconds)


def test_a_streamed_answer_without_usage_is_counted_from_its_text_and_the_prompt() -> None:
    @dataclass(frozen=True)
    class Chunk:  # a framework's chunk: not a str, its text read by chunks_text
        text: str

    class NoUsage(EchoCalls):
        def as_chunks(self, answer: str) -> list[Any]:
            return [Chunk(c) for c in super().as_chunks(answer)]

        def chunks_text(self, chunks: list[Any]) -> str:
            return "".join(c.text for c in chunks)

        def chunks_usage(self, candidate: Candidate, chunks: list[Any]) -> Usage:
            del candidate, chunks
            return Usage()

    e = make_engine(None, pool=(CHEAP,), await_feedback=False)
    request = Request(query="what is two plus two, in words")
    finished: list[Any] = []
    calls = NoUsage(query=request.query)
    chunks = list(e.stream(request, calls, on_finish=finished.append))
    used = finished[0].result.feedback
    assert used.input_tokens == estimate_tokens(request.prompt_text) > 0
    assert used.output_tokens == estimate_tokens(calls.chunks_text(chunks)) > 0


async def test_async_cascade_steps_are_judged_with_the_query_model_and_decision() -> None:
    seen: list[tuple[str, str, str, str, Any]] = []

    async def judge(
        prompt: str, answer: str, *, model: str, decision_id: str, raw_answer: Any
    ) -> float:
        seen.append((prompt, answer, model, decision_id, raw_answer))
        return 0.0

    e = make_engine(PriceOrderCascade(), evaluator=judge)
    answer = await e.arun(Request(query="Hi"), EchoCalls(query="Hi"))
    did = answer.decision.decision_id
    assert seen == [("Hi", f"{m}: Hi", m, did, f"{m}: Hi") for m in ("cheap", "mid", "dear")]


async def test_an_async_judge_that_fails_is_logged_with_the_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(prompt: str, answer: str) -> float:
        raise RuntimeError("judge down")

    e = make_engine(PriceOrderCascade(estimate=lambda text: 0.7), evaluator=broken)
    with caplog.at_level(logging.WARNING, logger="pickllm"):
        answer = await e.arun(Request(query="Hi"), EchoCalls())
    assert answer.model == "cheap"
    assert e.evaluation is not None
    assert e.evaluation.errors == 1
    assert f"failed for decision {answer.decision.decision_id}: RuntimeError" in caplog.text


async def test_executor_arun_runs_a_strategy_cascade_with_awaited_scores() -> None:
    strategy = PriceOrderCascade()
    decision = make_engine(strategy).route(Request(query="Hi"))
    recorder = MemoryRecorder()
    executor = Executor(recorder, retry=RetryConfig(max_attempts=1), clock=Ticker())

    async def score(candidate: Candidate, value: str) -> float:
        del value
        return 1.0 if candidate.name == "mid" else 0.0

    calls = EchoCalls(query="Hi")
    result = await executor.arun(
        decision, calls.acall, calls.usage, strategy=strategy, query="the query", score=score
    )
    session = strategy.sessions[-1]
    assert session.query == "the query"
    assert [(o.model, o.score) for o in session.observed] == [("cheap", 0.0), ("mid", 1.0)]
    assert result.decision.candidate.name == "mid"
    assert [s.model for s in result.steps] == ["cheap", "mid"]
    assert sorted((d.candidate.name, f.quality) for d, f, _ in recorder.records) == [
        ("cheap", 0.0),
        ("mid", 1.0),
    ]
    # Without a query the session is told of none.
    await executor.arun(
        make_engine(strategy).route(Request(query="Hi")),
        calls.acall,
        calls.usage,
        strategy=strategy,
    )
    assert strategy.sessions[-1].query == ""


def test_the_engines_repr_names_its_evaluators_type() -> None:
    class Judge:
        def __call__(self, prompt: str, answer: str) -> float:
            return 1.0

    router = Router([CHEAP], policy="cheapest")
    assert repr(Engine(router)) == (
        f"Engine(router={router!r}, evaluator=None, await_feedback=False)"
    )
    assert "evaluator=Judge, await_feedback=False)" in repr(Engine(router, evaluator=Judge()))


def test_chosen_is_the_model_the_cascade_started_with_not_the_policys_pick() -> None:
    strategy = PriceOrderCascade()
    router = Router([CHEAP, MID, DEAR], Fixed(model="dear"), clock=Ticker())
    e = Engine(router, clock=Ticker(), sleep=lambda _: None, strategy=strategy)
    answer = e.run(Request(query="Hi"), EchoCalls(query="Hi"))
    assert answer.decision.candidate.name == "dear"  # the policy's pick
    info = answer.info()
    assert info["steps"][0]["model"] == info["chosen"] == "cheap"


# ---------------------------------------------------------------------- scripted strategy
@dataclass(frozen=True)
class Reply:
    """A framework's answer object: not a str, its text read by ``completion_text``."""

    text: str


@dataclass(eq=False)
class ScriptedSession:
    """Runs ``order``; ``observe`` returns ``estimates[model]``; ``final`` returns ``final``.

    ``steps`` reports ``revised[model]`` (else the estimate) as an answer's quality and
    ``ex_ante[model]`` as its ex-ante estimate, and leaves out the models of ``hidden``.
    """

    order: list[str]
    estimates: dict[str, Any]
    final_model: str | None
    revised: dict[str, Any]
    ex_ante: dict[str, float]
    hidden: tuple[str, ...]
    texts: list[str] = field(default_factory=list)
    _steps: list[CascadeStep] = field(default_factory=list)

    def next_model(self) -> str | None:
        return self.order.pop(0) if self.order else None

    def observe(
        self,
        model: str,
        text: str,
        *,
        cost_usd: float,
        latency_s: float,
        score: float | None = None,
    ) -> Any:
        del score
        self.texts.append(text)
        quality = self.revised.get(model, self.estimates[model])
        self._steps.append(
            CascadeStep(
                model=model,
                cost_usd=cost_usd,
                latency_s=latency_s,
                quality=quality,
                ex_ante=self.ex_ante.get(model),
            )
        )
        return self.estimates[model]

    def failed(self, model: str, *, error: str, latency_s: float) -> None:
        self._steps.append(
            CascadeStep(
                model=model,
                cost_usd=0.0,
                latency_s=latency_s,
                quality=None,
                ex_ante=self.ex_ante.get(model),
                error=error,
            )
        )

    def final(self) -> str:
        if self.final_model is not None:
            return self.final_model
        return [s.model for s in self._steps if s.quality is not None][-1]

    @property
    def steps(self) -> tuple[CascadeStep, ...]:
        return tuple(s for s in self._steps if s.model not in self.hidden)


class ScriptedCascade:
    """A strategy whose every session follows the same script (see ScriptedSession)."""

    name = "scripted"

    def __init__(
        self,
        order: tuple[str, ...],
        *,
        estimates: dict[str, Any] | None = None,
        final: str | None = None,
        revised: dict[str, Any] | None = None,
        ex_ante: dict[str, float] | None = None,
        hidden: tuple[str, ...] = (),
    ) -> None:
        self.order = order
        self.estimates = estimates or {}
        self.final = final
        self.revised = revised or {}
        self.ex_ante = ex_ante or {}
        self.hidden = hidden
        self.sessions: list[ScriptedSession] = []
        self.settled: list[CascadeSession] = []

    def start(
        self, query: str, candidates: Sequence[Candidate], *, prompt_tokens: int
    ) -> ScriptedSession:
        del query, candidates, prompt_tokens
        session = ScriptedSession(
            order=list(self.order),
            estimates=self.estimates,
            final_model=self.final,
            revised=self.revised,
            ex_ante=self.ex_ante,
            hidden=self.hidden,
        )
        self.sessions.append(session)
        return session

    def settle(self, session: CascadeSession) -> None:
        self.settled.append(session)


class TimedReplies:
    """Each model call takes ``seconds`` on ``clock`` and answers ``Reply("<model> said")``.

    The models of ``fail`` raise ConnectionError; ``usage`` reports input tokens, and
    output tokens only for the models of ``reported`` (the others are estimated).
    """

    def __init__(
        self,
        clock: ManualClock,
        seconds: float,
        *,
        fail: tuple[str, ...] = (),
        reported: tuple[str, ...] = ("cheap", "mid", "dear"),
    ) -> None:
        self.clock = clock
        self.seconds = seconds
        self.fail = fail
        self.reported = reported

    def call(self, candidate: Candidate) -> Reply:
        self.clock.now += self.seconds
        if candidate.name in self.fail:
            msg = f"{candidate.name} is down"
            raise ConnectionError(msg)
        return Reply(f"{candidate.name} said")

    def usage(self, candidate: Candidate, answer: Reply) -> Usage:
        del answer
        output = 7 if candidate.name in self.reported else None
        return Usage(input_tokens=len(candidate.name), output_tokens=output)


def run_scripted(
    strategy: ScriptedCascade,
    *,
    score: Callable[[Candidate, Reply], float | None] | None = None,
    fail: tuple[str, ...] = (),
    reported: tuple[str, ...] = ("cheap", "mid", "dear"),
) -> tuple[Any, MemoryRecorder, ManualClock]:
    """Run one cascade call of ``strategy`` with an Executor; every call takes 0.25 s."""
    clock = ManualClock(10.0)
    decision = make_engine(PriceOrderCascade()).route(Request(query="Hi"))
    recorder = MemoryRecorder()
    executor = Executor(recorder, retry=RetryConfig(max_attempts=1), clock=clock)
    calls = TimedReplies(clock, 0.25, fail=fail, reported=reported)
    result = executor.run(
        decision,
        calls.call,
        calls.usage,
        completion_text=lambda reply: reply.text,
        strategy=strategy,
        score=score,
    )
    return result, recorder, clock


def test_a_cascades_result_lists_every_step_and_sums_the_answering_ones() -> None:
    strategy = ScriptedCascade(
        ("cheap", "mid", "dear"),
        estimates={"mid": 0.3, "dear": 0.6},
        revised={"mid": 0.35},  # the session revised mid's estimate once dear answered
        ex_ante={"cheap": 0.7, "mid": 0.5, "dear": 0.8},
        final="mid",
    )
    scores = {"mid": 0.9, "dear": 0.2}
    result, recorder, clock = run_scripted(
        strategy,
        score=lambda candidate, reply: scores[candidate.name],
        fail=("cheap",),
        reported=("mid",),
    )
    assert clock.now == 10.75
    by_model = {f.candidate: f for f in result.attempts}
    assert result.steps == (
        CascadeStep(
            model="cheap",
            cost_usd=0.0,
            latency_s=0.25,
            quality=None,
            ex_ante=0.7,
            error="ConnectionError",
        ),
        CascadeStep(
            model="mid",
            cost_usd=by_model["mid"].cost_usd,
            latency_s=0.25,
            quality=0.35,
            ex_ante=0.5,
        ),
        CascadeStep(
            model="dear",
            cost_usd=by_model["dear"].cost_usd,
            latency_s=0.25,
            quality=0.6,
            ex_ante=0.8,
        ),
    )
    # The session read each answer's text with completion_text.
    assert strategy.sessions[0].texts == ["mid said", "dear said"]
    # The answer returned is final()'s; every answer is in values, in order.
    assert result.value == Reply("mid said")
    assert result.decision.candidate.name == "mid"
    assert result.values == (Reply("mid said"), Reply("dear said"))
    assert result.served_by == ("mid", "dear")
    # The call's feedback: its wall time, the answering steps' tokens summed, the returned
    # step's evaluator score as quality (the estimate is kept in each step's extra).
    mid, dear = by_model["mid"], by_model["dear"]
    assert (mid.output_tokens, mid.tokens_estimated) == (7, False)
    assert (dear.output_tokens, dear.tokens_estimated) == (estimate_tokens("dear said"), True)
    assert result.feedback.latency_s == 0.75
    assert result.feedback.input_tokens == len("mid") + len("dear")
    assert result.feedback.output_tokens == 7 + dear.output_tokens
    assert result.feedback.tokens_estimated is True
    assert result.feedback.cost_usd == mid.cost_usd + dear.cost_usd
    assert result.feedback.quality == 0.9
    recorded = {d.candidate.name: f for d, f, _ in recorder.records if f.error is None}
    assert (recorded["mid"].quality, dict(recorded["mid"].extra)["cascade_estimate"]) == (
        0.9,
        0.35,
    )
    assert (recorded["dear"].quality, dict(recorded["dear"].extra)["cascade_estimate"]) == (
        0.2,
        0.6,
    )


def test_without_a_score_the_calls_quality_is_the_returned_steps_estimate() -> None:
    strategy = ScriptedCascade(
        ("cheap", "mid"), estimates={"cheap": 0.4, "mid": 0.2}, revised={"cheap": 0.45}
    )
    result, recorder, _ = run_scripted(strategy)
    assert result.decision.candidate.name == "mid"
    assert result.feedback.quality == 0.2
    assert result.feedback.tokens_estimated is False
    assert [(d.candidate.name, f.quality) for d, f, _ in recorder.records] == [
        ("mid", 0.2),
        ("cheap", 0.45),
    ]


def test_a_step_the_sessions_steps_leave_out_keeps_its_observed_estimate() -> None:
    strategy = ScriptedCascade(
        ("cheap", "mid"), estimates={"cheap": 0.4, "mid": 0.3}, hidden=("mid",)
    )
    result, recorder, _ = run_scripted(strategy, fail=())
    assert [(s.model, s.quality) for s in result.steps] == [("cheap", 0.4), ("mid", 0.3)]
    assert dict(recorder.feedbacks[0].extra)["cascade_estimate"] == 0.3


def test_a_final_model_that_did_not_answer_is_refused_with_the_models_that_did() -> None:
    strategy = ScriptedCascade(
        ("cheap", "mid", "dear"), estimates={"mid": 0.3, "dear": 0.6}, final="cheap"
    )
    with pytest.raises(ConfigError) as raised:
        run_scripted(strategy, fail=("cheap",))
    assert str(raised.value) == (
        "the cascade strategy 'scripted' returned model 'cheap' as final, "
        "but only ['dear', 'mid'] answered in this call"
    )
    assert strategy.settled == strategy.sessions


def test_a_model_proposed_twice_is_refused() -> None:
    strategy = ScriptedCascade(("mid", "mid"), estimates={"mid": 0.3})
    with pytest.raises(ConfigError) as raised:
        run_scripted(strategy)
    assert str(raised.value) == (
        "the cascade strategy 'scripted' proposed model 'mid', which is not among the models "
        "offered for this call ['cheap', 'dear', 'mid'] or has already run in it"
    )
    assert strategy.settled == strategy.sessions


@pytest.mark.parametrize("estimate", ["0.5", True, 1.5, -0.1, float("nan")])
def test_an_estimate_that_is_not_a_number_in_0_1_is_refused(estimate: Any) -> None:
    strategy = ScriptedCascade(("cheap", "mid"), estimates={"cheap": 0.2, "mid": estimate})
    with pytest.raises(ConfigError) as raised:
        run_scripted(strategy)
    assert str(raised.value) == (
        f"the cascade strategy 'scripted' estimated {estimate!r} for 'mid'; "
        "observe() must return a number in [0, 1]"
    )
    # The same rule holds for an estimate the session revises once the steps are over.
    strategy = ScriptedCascade(
        ("cheap", "mid"), estimates={"cheap": 0.2, "mid": 0.3}, revised={"cheap": estimate}
    )
    with pytest.raises(ConfigError) as raised:
        run_scripted(strategy)
    assert str(raised.value) == (
        f"the cascade strategy 'scripted' estimated {estimate!r} for 'cheap'; "
        "observe() must return a number in [0, 1]"
    )


def test_an_estimate_may_be_an_int_or_a_numpy_float() -> None:
    strategy = ScriptedCascade(("cheap", "mid"), estimates={"cheap": 1, "mid": np.float32(0.5)})
    result, _, _ = run_scripted(strategy)
    assert [s.quality for s in result.steps] == [1.0, 0.5]


def test_when_every_step_fails_the_error_is_chained_to_the_last_failure() -> None:
    strategy = ScriptedCascade(("dear", "cheap"))
    with pytest.raises(ExecutionError) as raised:
        run_scripted(strategy, fail=("cheap", "dear"))
    assert [f.candidate for f in raised.value.attempts] == ["dear", "cheap"]
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert str(raised.value.__cause__) == "cheap is down"
    # A session that runs no model at all: the call fails the same way, with no attempt.
    strategy = ScriptedCascade(())
    with pytest.raises(ExecutionError) as raised:
        run_scripted(strategy)
    assert raised.value.attempts == ()
    assert raised.value.__cause__ is None
    assert strategy.settled == strategy.sessions


def test_executor_run_starts_the_session_with_the_query_it_is_given() -> None:
    strategy = PriceOrderCascade()
    executor = Executor(MemoryRecorder(), retry=RetryConfig(max_attempts=1), clock=Ticker())
    calls = EchoCalls(query="Hi")
    decision = make_engine(strategy).route(Request(query="Hi"))
    executor.run(decision, calls.call, calls.usage, strategy=strategy, query="the query")
    executor.run(decision, calls.call, calls.usage, strategy=strategy)
    assert [s.query for s in strategy.sessions] == ["the query", ""]


def test_a_sync_judge_that_fails_is_logged_with_the_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(prompt: str, answer: str) -> float:
        raise RuntimeError("judge down")

    e = make_engine(PriceOrderCascade(estimate=lambda text: 0.7), evaluator=broken)
    with caplog.at_level(logging.WARNING, logger="pickllm"):
        answer = e.run(Request(query="Hi"), EchoCalls())
    assert f"failed for decision {answer.decision.decision_id}: RuntimeError" in caplog.text


class Unreported(EchoCalls):
    """Answers wrapped in an object, with no token counts reported: the engine estimates them."""

    def call(self, candidate: Candidate) -> Any:
        return {"content": super().call(candidate), "id": "x" * 40}

    def usage(self, candidate: Candidate, answer: Any) -> Usage:
        del candidate, answer
        return Usage()

    def text(self, answer: Any) -> str:
        return str(answer["content"])


@pytest.mark.parametrize("strategy", [None, PriceOrderCascade()], ids=["plain", "cascade"])
def test_unreported_tokens_are_estimated_from_the_prompt_and_the_answer_text(
    strategy: CascadeStrategy | None,
) -> None:
    e = make_engine(strategy, pool=(CHEAP,))
    prompt = "system: answer in one word\nHi"
    answer = e.run(Request(query="Hi", prompt=prompt), Unreported(query="Hi"))
    (fb,) = answer.result.attempts
    # The answer's text (calls.text), not its repr; the whole prompt, not the query.
    assert fb.output_tokens == estimate_tokens("cheap: Hi")
    assert fb.input_tokens == estimate_tokens(prompt)
    assert fb.tokens_estimated


def test_a_cascade_decision_is_made_with_probability_one() -> None:
    # The strategy runs the offered models whatever the policy drew (1/3 each here).
    router = Router([CHEAP, MID, DEAR], policy="random", seed=0)
    e = Engine(router, strategy=PriceOrderCascade(), retry=RetryConfig(max_attempts=1))
    decision = e.route(Request(query="Hi"))
    assert (decision.kind, decision.probability) == ("cascade", 1.0)
    assert router.route("Hi").probability == pytest.approx(1 / 3)
