"""Engine details pinned down for mutation testing (see [tool.mutmut] in pyproject.toml).

Exact messages, boundaries and defaults of the attempt rules, the plans, the drivers, the
executor, the engine and the routing settings. Every test is deterministic: fake clocks,
recorded sleeps, seeded generators and scripted calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from pickllm import (
    Candidate,
    ConfigError,
    Decision,
    ExecutionError,
    Feedback,
    Objective,
    Plan,
    Router,
)
from pickllm.engine import (
    Engine,
    ErrorKind,
    Executor,
    MemoryRecorder,
    Request,
    RetryConfig,
    RoutingSettings,
)
from pickllm.engine.attempts import Call, Open, all_failed, http_status, retry_after_s
from pickllm.engine.drivers import AsyncIO, SyncIO
from pickllm.engine.plans import Job, Planner
from pickllm.engine.settings import split_seed
from pickllm.errors import AttemptTimeoutError, DeadlineExceededError
from pickllm.policies.base import Choice, Policy
from pickllm.policies.cheapest import Cheapest
from pickllm.pricing import Usage, estimate_tokens
from pickllm.testing import EchoCalls
from pickllm.types import Context

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=3.0, output_price=4.0)
C = Candidate(name="c", input_price=5.0, output_price=6.0)

RETRY_ON_NAMES = (
    "RateLimitError",
    "APITimeoutError",
    "APIConnectionError",
    "InternalServerError",
    "OverloadedError",
    "ServiceUnavailableError",
    "ServiceUnavailable",
    "ResourceExhausted",
    "DeadlineExceeded",
    "ServerError",
    "Timeout",
    "TimeoutException",
    "ConnectError",
)
FATAL_NAMES = (
    "BadRequestError",
    "UnprocessableEntityError",
    "AuthenticationError",
    "PermissionDeniedError",
    "InvalidArgument",
)


def named(name: str, message: str = "boom", **attrs: Any) -> Exception:
    """An exception of a fresh class called ``name``, with ``attrs`` set on it."""
    exc: Exception = type(name, (Exception,), {})(message)
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


class Clock:
    """Advances ``step`` seconds per reading (thread-safe)."""

    def __init__(self, step: float = 1.0, start: float = 0.0) -> None:
        self.now = start
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


def decide(*pool: Candidate, plan: Any = None, decision_id: str = "d") -> Decision:
    return Decision(
        decision_id=decision_id,
        candidate=pool[0],
        ranking=pool,
        probability=1.0,
        policy="fixed",
        plan=plan,
    )


def usage(candidate: Candidate, value: Any) -> Usage:
    del candidate, value
    return Usage(input_tokens=3, output_tokens=2)


class Script:
    """A ``call(candidate)`` playing a per-candidate list of answers and errors."""

    def __init__(self, **plays: list[Any]) -> None:
        self.plays = {k: list(v) for k, v in plays.items()}
        self.calls: list[str] = []

    def __call__(self, candidate: Candidate) -> Any:
        self.calls.append(candidate.name)
        item = self.plays[candidate.name].pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def executor(
    rec: MemoryRecorder | None = None, clock: Clock | None = None, **retry: Any
) -> tuple[Executor, MemoryRecorder, list[float]]:
    rec = rec if rec is not None else MemoryRecorder()
    waits: list[float] = []
    retry.setdefault("jitter_s", 0.0)
    ex = Executor(
        rec, retry=RetryConfig(**retry), sleep=waits.append, seed=0, clock=clock or Clock()
    )
    return ex, rec, waits


# ================================================================ attempts
@pytest.mark.parametrize("name", RETRY_ON_NAMES)
def test_every_default_retry_name_is_transient(name: str) -> None:
    assert RetryConfig().classify(named(name)) is ErrorKind.TRANSIENT


@pytest.mark.parametrize("name", FATAL_NAMES)
def test_every_default_fatal_name_is_fatal(name: str) -> None:
    assert RetryConfig().classify(named(name)) is ErrorKind.FATAL


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (named("ContentPolicyViolationError"), ErrorKind.CONTENT_POLICY),
        (named("ContentFilterError"), ErrorKind.CONTENT_POLICY),
        (named("ContextWindowExceededError"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("blocked by the Content Policy"), ErrorKind.CONTENT_POLICY),
        (ValueError("x content_policy y"), ErrorKind.CONTENT_POLICY),
        (ValueError("the CONTENT FILTER said no"), ErrorKind.CONTENT_POLICY),
        (ValueError("content_filter"), ErrorKind.CONTENT_POLICY),
        (named("E", "x", code="content_filter"), ErrorKind.CONTENT_POLICY),
        (named("E", "x", code="context_length_exceeded"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("Context Length exceeded"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("context window is full"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("over the maximum context"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("Prompt is too long"), ErrorKind.CONTEXT_LENGTH),
        (ValueError("plain"), ErrorKind.OTHER),
        (TimeoutError("t"), ErrorKind.TRANSIENT),
        (ConnectionError("c"), ErrorKind.TRANSIENT),
        (named("E", status_code=408), ErrorKind.TRANSIENT),
        (named("E", status_code=429), ErrorKind.TRANSIENT),
        (named("E", status_code=500), ErrorKind.TRANSIENT),
        (named("E", status_code=599), ErrorKind.TRANSIENT),
        (named("E", status_code=499), ErrorKind.OTHER),
        (named("E", status_code=400), ErrorKind.FATAL),
        (named("E", status_code=401), ErrorKind.FATAL),
        (named("E", status_code=403), ErrorKind.FATAL),
        (named("E", status_code=404), ErrorKind.FATAL),
        (named("E", status_code=413), ErrorKind.FATAL),
        (named("E", status_code=422), ErrorKind.FATAL),
        (named("E", status_code=402), ErrorKind.OTHER),
        (named("E", code=503), ErrorKind.TRANSIENT),
    ],
)
def test_classification_rules(error: Exception, kind: ErrorKind) -> None:
    assert RetryConfig().classify(error) is kind


def test_classification_order_and_custom_lists() -> None:
    class MineError(Exception):
        pass

    # A class listed as fatal wins over a transient name, a status and a message.
    cfg = RetryConfig(fatal=(MineError,))
    err = MineError("content policy")
    assert cfg.classify(err) is ErrorKind.FATAL
    # Content policy and context length come before the fatal names.
    assert RetryConfig().classify(named("BadRequestError", "content policy")) is (
        ErrorKind.CONTENT_POLICY
    )
    assert RetryConfig().classify(named("BadRequestError", "context length")) is (
        ErrorKind.CONTEXT_LENGTH
    )
    # The fatal names come before the transient names and classes.
    assert RetryConfig(fatal_names=("RateLimitError",)).classify(named("RateLimitError")) is (
        ErrorKind.FATAL
    )
    assert RetryConfig(retry_on=(MineError,)).classify(MineError("x")) is ErrorKind.TRANSIENT
    assert (
        RetryConfig(retry_on_names=("MineError",)).classify(MineError("x")) is ErrorKind.TRANSIENT
    )
    assert RetryConfig(retry_on_names=()).classify(named("RateLimitError")) is ErrorKind.OTHER
    assert RetryConfig(fatal_names=()).classify(named("BadRequestError")) is ErrorKind.OTHER
    # A transient name wins over a fatal status.
    assert RetryConfig().classify(named("RateLimitError", status_code=400)) is (ErrorKind.TRANSIENT)


def test_http_status_sources_and_bounds() -> None:
    class Resp:
        status_code = 502

    assert http_status(named("E", status_code=404)) == 404
    assert http_status(named("E", response=Resp())) == 502
    assert http_status(named("E", code=429)) == 429
    assert http_status(named("E", status_code=401, code=500)) == 401
    assert http_status(named("E", status_code="x", code=500)) == 500
    assert http_status(named("E", status_code=100)) == 100
    assert http_status(named("E", status_code=599)) == 599
    assert http_status(named("E", status_code=99)) is None
    assert http_status(named("E", status_code=600)) is None
    assert http_status(named("E", status_code=True)) is None
    assert http_status(ValueError("x")) is None


def test_retry_after_sources() -> None:
    class Resp:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    assert retry_after_s(named("E", retry_after=2)) == 2.0
    assert retry_after_s(named("E", retry_after="1.5", headers={"retry-after": "9"})) == 1.5
    assert retry_after_s(named("E", response=Resp({"retry-after": "3"}))) == 3.0
    assert retry_after_s(named("E", response=Resp({"Retry-After": "4"}))) == 4.0
    assert retry_after_s(named("E", headers={"retry-after": "5"})) == 5.0
    assert retry_after_s(named("E", headers={"Retry-After": "6"})) == 6.0
    assert retry_after_s(named("E", retry_after=0)) == 0.0
    assert retry_after_s(named("E", retry_after=-1)) is None
    assert retry_after_s(named("E", retry_after=float("inf"))) is None
    assert retry_after_s(named("E", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")) is None
    assert retry_after_s(named("E", headers={})) is None
    assert retry_after_s(ValueError("x")) is None


def test_wait_doubles_adds_jitter_and_is_capped() -> None:
    cfg = RetryConfig(initial_wait_s=1.0, max_wait_s=10.0, jitter_s=0.5)
    assert cfg.wait_s(1, 0.0) == 1.0
    assert cfg.wait_s(2, 0.0) == 2.0
    assert cfg.wait_s(3, 0.5) == 4.25
    assert cfg.wait_s(4, 0.0) == 8.0
    assert cfg.wait_s(5, 0.0) == 10.0
    assert cfg.wait_s(10_000, 0.0) == 10.0
    big = RetryConfig(initial_wait_s=1e-300, max_wait_s=1e300, jitter_s=0.0)
    assert big.wait_s(66, 0.0) == 1e-300 * 2.0**64


def test_retry_config_messages_name_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        RetryConfig(max_attempts=0)
    assert str(info.value) == (
        "RetryConfig max_attempts=0 is not allowed: Input should be greater than or equal to 1"
    )
    with pytest.raises(ConfigError) as info:
        RetryConfig(max_attempts=0, jitter_s=-1.0)
    assert str(info.value) == (
        "RetryConfig max_attempts=0 is not allowed: Input should be greater than or equal "
        "to 1; jitter_s=-1.0 is not allowed: Input should be greater than or equal to 0"
    )
    with pytest.raises(ConfigError) as info:
        RetryConfig(retry_on_names=("ok", 3))
    assert str(info.value).startswith("RetryConfig retry_on_names.1=3 is not allowed: ")


def test_all_failed_summarises_the_failures() -> None:
    d = decide(A, B)
    ok = Feedback(candidate="a")
    bad = Feedback(candidate="a", error="RateLimitError")
    worse = Feedback(candidate="b", error="ValueError")
    err = all_failed(d, [bad, ok, worse])
    assert isinstance(err, ExecutionError)
    assert str(err) == (
        "every candidate of decision 'd' (single) failed after 2 attempt(s): "
        "a: RateLimitError, b: ValueError"
    )
    assert err.attempts == (bad, worse) or list(err.attempts) == [bad, worse]


# ================================================================ engine
class Both(Policy):
    """Runs the first two offered candidates as an ensemble; notes the routing threads."""

    name = "both-stub"

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.threads: list[threading.Thread] = []

    def _select(self, context: Context) -> Choice:
        self.threads.append(threading.current_thread())
        return Choice(index=0, probability=1.0, members=(0, 1), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        del decision, reward


class Blocking(Both):
    """A policy that says its routing blocks (as a trained router's does)."""

    blocking = True


class Split(EchoCalls):
    """Whole answers and streams that differ, to tell which path ran."""

    def call(self, candidate: Candidate) -> str:
        return "whole " + super().call(candidate)

    async def acall(self, candidate: Candidate) -> str:
        return "whole " + super().call(candidate)


def two_engine(**kwargs: Any) -> tuple[Engine, Both]:
    policy = Both()
    router = Router([Candidate(name="a"), Candidate(name="b")], policy=policy)
    return Engine(router, clock=Clock(), sleep=lambda _: None, **kwargs), policy


def test_answer_info_lists_every_fact() -> None:
    router = Router([A, B], policy="cheapest", clock=Clock())
    e = Engine(router, clock=Clock(), sleep=lambda _: None)
    answer = e.run(Request(query="x y"), EchoCalls(query="x y"))
    assert answer.info() == {
        "decision_id": answer.decision.decision_id,
        "model": "a",
        "chosen": "a",
        "probability": 1.0,
        "policy": "cheapest",
        "plan": "single",
        "cost_usd": answer.result.feedback.cost_usd,
        "cost_estimated": False,
        "latency_s": 1.0,
        "attempts": 1,
    }
    assert answer.result.feedback.cost_usd > 0


def test_answer_info_of_a_two_member_plan_names_the_members() -> None:
    e, _ = two_engine()
    answer = e.run(Request(query="q"), EchoCalls(query="q"))
    info = answer.info()
    assert info["members"] == ["a", "b"]
    assert info["plan"] == "ensemble"


def test_streaming_a_two_member_plan_runs_the_plan() -> None:
    e, _ = two_engine()
    routed: list[Decision] = []
    finished: list[Any] = []
    chunks = list(
        e.stream(
            Request(query="q"), Split(query="q"), on_finish=finished.append, on_route=routed.append
        )
    )
    assert chunks == ["whole ", "a: ", "q"]
    assert len(routed) == 1
    assert routed[0].kind == "ensemble"
    assert finished[0].decision is routed[0]
    assert finished[0].value == chunks
    assert finished[0].model == "a"


async def test_astream_of_a_two_member_plan_runs_the_plan() -> None:
    e, _ = two_engine()
    routed: list[Decision] = []
    finished: list[Any] = []
    chunks = [
        c
        async for c in e.astream(
            Request(query="q"), Split(query="q"), on_finish=finished.append, on_route=routed.append
        )
    ]
    assert chunks == ["whole ", "a: ", "q"]
    assert routed[0].kind == "ensemble"
    assert finished[0].decision is routed[0]
    assert finished[0].value == chunks
    assert finished[0].info()["members"] == ["a", "b"]


def test_a_streamed_plans_answer_is_evaluated_with_the_query() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def judge(prompt: str, answer: str, **kwargs: Any) -> float:
        seen.append((prompt, answer, kwargs))
        return 1.0

    e, _ = two_engine(evaluator=judge)
    chunks = list(e.stream(Request(query="q", evaluator_kwargs={"k": 1}), Split(query="q")))
    assert len(seen) == 1
    prompt, text, kwargs = seen[0]
    assert (prompt, text) == ("q", "whole a: q")
    assert kwargs["model"] == "a"
    assert kwargs["raw_answer"] == chunks
    assert kwargs["k"] == 1


async def test_async_evaluation_gets_the_keywords() -> None:
    seen: list[dict[str, Any]] = []

    async def judge(prompt: str, answer: str, **kwargs: Any) -> float:
        del prompt, answer
        seen.append(kwargs)
        return 1.0

    router = Router([A, B], policy="cheapest", clock=Clock())
    e = Engine(router, evaluator=judge, clock=Clock())
    answer = await e.arun(Request(query="q", evaluator_kwargs={"k": 2}), EchoCalls(query="q"))
    assert seen == [
        {
            "model": "a",
            "decision_id": answer.decision.decision_id,
            "raw_answer": "a: q",
            "k": 2,
        }
    ]


async def test_only_a_blocking_policy_routes_off_the_event_loop() -> None:
    e, policy = two_engine()
    await e.arun(Request(query="q"), EchoCalls(query="q"))
    assert policy.threads == [threading.current_thread()]
    blocking = Blocking()
    e = Engine(Router([Candidate(name="a"), Candidate(name="b")], policy=blocking))
    await e.arun(Request(query="q"), EchoCalls(query="q"))
    assert len(blocking.threads) == 1
    assert blocking.threads[0] is not threading.current_thread()


def test_aliases_forget_the_oldest_first() -> None:
    e, _ = two_engine(await_feedback=True, max_aliases=2)
    ids = [e.run(Request(query="q"), EchoCalls(query="q")).decision.decision_id for _ in range(3)]
    e.alias("r1", ids[0])
    e.alias("r2", ids[1])
    e.alias("r1", ids[0])  # refreshed: r2 is now the oldest
    e.alias("r3", ids[2])
    assert e.decision_id("r1") == ids[0]
    assert e.decision_id("r3") == ids[2]
    with pytest.raises(KeyError, match="the last 2 run ids are kept"):
        e.decision_id("r2")
    assert e.decision_id(ids[1]) == ids[1]


def test_no_aliases_are_kept_when_none_are_allowed() -> None:
    e, _ = two_engine(await_feedback=True, max_aliases=0)
    answer = e.run(Request(query="q"), EchoCalls(query="q"))
    e.alias("r", answer.decision.decision_id)
    with pytest.raises(KeyError, match="'r' names no pending decision"):
        e.decision_id("r")


# ================================================================ settings
def test_settings_refuse_a_router_that_is_not_one() -> None:
    settings = RoutingSettings.model_construct(router="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^router must be a pickllm Router or None, got 'nope'$"):
        settings.build_engine(["a"], {})


def test_settings_refuse_a_router_of_other_models_with_the_whole_message() -> None:
    router = Router([A], policy="cheapest")
    with pytest.raises(ConfigError) as info:
        RoutingSettings(router=router).build_engine(["b"], {})
    assert str(info.value) == (
        "the router's candidates ['a'] are not the models ['b']; "
        "a router given to a wrapper must route exactly between its models"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prices", {"a": (1.0, 1.0)}),
        ("policy", "ucb1"),
        ("quality", 1.0),
        ("cost", 0.0),
        ("latency", 0.0),
        ("objective", Objective()),
    ],
)
def test_settings_refuse_routing_fields_next_to_a_router(field: str, value: Any) -> None:
    router = Router([A], policy="cheapest")
    settings = RoutingSettings(router=router, **{field: value})
    with pytest.raises(ConfigError) as info:
        settings.build_engine(["a"], {})
    assert str(info.value) == (
        f"['{field}'] cannot be given together with router: the router already has its "
        "prices, policy, objective, circuit breaker, budget, pending bounds and decision log"
    )


def test_settings_accept_a_router_alone() -> None:
    router = Router([A], policy="cheapest")
    e = RoutingSettings(router=router, seed=1).build_engine(["a"], {})
    assert e.router is router


# ================================================================ plans, drivers, executor
def empty_usage(candidate: Candidate, value: Any) -> Usage:
    del candidate, value
    return Usage()


def test_a_stream_estimates_tokens_from_its_own_texts() -> None:
    ex, rec, _ = executor()

    def open_stream(candidate: Candidate) -> Iterator[str]:
        del candidate
        yield from ["ab", "cd"]

    assert list(ex.stream(decide(A), open_stream, empty_usage)) == ["ab", "cd"]
    assert rec.feedbacks[-1].input_tokens == 0  # no prompt: nothing to estimate
    assert rec.feedbacks[-1].output_tokens == 1  # "abcd"
    chunks = ex.stream(
        decide(A), open_stream, empty_usage, completion_text=lambda c: "x" * 40, prompt_text="p"
    )
    assert list(chunks) == ["ab", "cd"]
    assert rec.feedbacks[-1].input_tokens == 1
    assert rec.feedbacks[-1].output_tokens == 10


async def test_an_async_stream_estimates_tokens_and_waits_for_the_score() -> None:
    ex, rec, _ = executor()

    async def open_stream(candidate: Candidate) -> AsyncIterator[str]:
        del candidate
        for chunk in ["ab", "cd"]:
            yield chunk

    got = [c async for c in ex.astream(decide(A), open_stream, empty_usage)]
    assert got == ["ab", "cd"]
    assert rec.feedbacks[-1].input_tokens == 0
    assert rec.feedbacks[-1].output_tokens == 1
    assert rec.records[-1][2] is False
    stream = ex.astream(
        decide(A),
        open_stream,
        empty_usage,
        completion_text=lambda c: "x" * 40,
        await_score=True,
        prompt_text="p",
    )
    assert [c async for c in stream] == ["ab", "cd"]
    assert rec.feedbacks[-1].output_tokens == 10
    assert rec.feedbacks[-1].input_tokens == 1
    assert rec.records[-1][2] is True


def test_a_sync_stream_that_stalls_before_its_first_chunk_falls_back() -> None:
    release = threading.Event()
    ex, rec, _ = executor(timeout=0.05, max_attempts=1)

    def open_stream(candidate: Candidate) -> Iterator[str]:
        if candidate.name == "a":
            release.wait(2.0)
        yield candidate.name

    try:
        assert list(ex.stream(decide(A, B), open_stream, usage)) == ["b"]
    finally:
        release.set()
    assert [(f.candidate, f.error) for f in rec.feedbacks] == [
        ("a", "AttemptTimeoutError"),
        ("b", None),
    ]


def test_closing_a_sync_stream_early_closes_the_source() -> None:
    ex, rec, _ = executor()
    sources: list[Iterator[str]] = []
    closed: list[bool] = []

    def chunks() -> Iterator[str]:
        try:
            yield from ["x", "y", "z"]
        finally:
            closed.append(True)

    def open_stream(candidate: Candidate) -> Iterator[str]:
        del candidate
        source = chunks()
        sources.append(source)  # kept alive: only an explicit close runs its finally
        return source

    stream = ex.stream(decide(A), open_stream, usage)
    assert next(stream) == "x"
    stream.close()
    assert closed == [True]
    assert rec.feedbacks[-1].extra == (("closed_early", 1.0),)


def test_ensemble_members_run_in_named_threads_at_most_max_workers_at_once() -> None:
    lock = threading.Condition()
    active = [0]
    peak = [0]
    names: list[str] = []

    def call(candidate: Candidate) -> str:
        with lock:
            names.append(threading.current_thread().name)
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            lock.notify_all()
            lock.wait_for(lambda: active[0] >= 3, timeout=0.2)
            active[0] -= 1
        return candidate.name

    rec = MemoryRecorder()
    ex = Executor(rec, retry=RetryConfig(jitter_s=0.0), clock=Clock(), max_workers=2)
    result = ex.run(decide(A, B, C, plan=Plan(kind="ensemble", members=(A, B, C))), call, usage)
    assert result.values == ("a", "b", "c")
    assert peak[0] == 2
    assert all(name.startswith("pickllm") for name in names)


@pytest.mark.parametrize("kind", ["ensemble", "cascade"])
def test_the_deadline_bounds_every_plan_member(kind: Any) -> None:
    ex, _, waits = executor(deadline=2.5, max_attempts=5, initial_wait_s=0.0)
    call = Script(a=[TimeoutError("slow")] * 5, b=["b"] * 5)
    plan = Plan(kind=kind, members=(A, B))
    with pytest.raises(DeadlineExceededError):
        ex.run(decide(A, B, plan=plan), call, usage)
    assert call.calls == ["a"]
    assert waits == [0.0]


def test_a_cascade_stops_at_a_refusal_without_fallbacks() -> None:
    ex, _, _ = executor()
    refusal = named("ContentPolicyViolationError")
    call = Script(a=[refusal], b=["b"])
    with pytest.raises(type(refusal)):
        ex.run(decide(A, B, plan=Plan(kind="cascade", members=(A, B))), call, usage)
    assert call.calls == ["a"]


def test_a_cascade_goes_on_after_a_refusal_with_fallbacks() -> None:
    ex, _, _ = executor(content_policy_fallbacks=("b",))
    call = Script(a=[named("ContentPolicyViolationError")], b=["b"])
    result = ex.run(decide(A, B, plan=Plan(kind="cascade", members=(A, B))), call, usage)
    assert result.value == "b"


def test_a_plans_combined_feedback() -> None:
    rec = MemoryRecorder()
    ex = Executor(rec, retry=RetryConfig(jitter_s=0.0), clock=Clock(step=0.1))
    plan = Plan(kind="ensemble", members=(A, B))
    result = ex.run(decide(A, B, plan=plan), Script(a=["a"], b=["b"]), usage)
    assert result.feedback.latency_s == pytest.approx(0.5)
    assert result.feedback.tokens_estimated is False
    assert (result.feedback.input_tokens, result.feedback.output_tokens) == (6, 4)

    def some_usage(candidate: Candidate, value: Any) -> Usage:
        del value
        return (
            Usage(input_tokens=3)
            if candidate.name == "b"
            else Usage(input_tokens=1, output_tokens=1)
        )

    result = ex.run(decide(A, B, plan=plan), Script(a=["a"], b=["b b"]), some_usage)
    assert result.feedback.tokens_estimated is True


async def test_arun_passes_every_job_setting() -> None:
    ex, rec, _ = executor()

    async def call(candidate: Candidate) -> str:
        return candidate.name

    result = await ex.arun(decide(A), call, empty_usage)
    assert (result.feedback.input_tokens, result.feedback.output_tokens) == (0, 1)
    assert rec.records[-1][2] is False
    result = await ex.arun(
        decide(A),
        call,
        empty_usage,
        await_score=True,
        prompt_text="p",
        completion_text=lambda v: "x" * 40,
    )
    assert (result.feedback.input_tokens, result.feedback.output_tokens) == (1, 10)
    assert rec.records[-1][2] is True


def single_engine(**kwargs: Any) -> Engine:
    router = Router([A, B], policy="cheapest", clock=Clock())
    return Engine(router, clock=Clock(), sleep=lambda _: None, **kwargs)


async def test_async_calls_of_one_model_stream_and_wait_for_feedback() -> None:
    e = single_engine(await_feedback=True)
    routed: list[Decision] = []
    answer = await e.arun(Request(query="q"), Split(query="q"), on_route=routed.append)
    assert routed == [answer.decision]
    assert answer.value == "whole a: q"
    assert e.router.pending() == 1
    finished: list[Any] = []
    chunks = [
        c
        async for c in e.astream(
            Request(query="q"), Split(query="q"), on_finish=finished.append, on_route=routed.append
        )
    ]
    assert chunks == ["a: ", "q"]
    assert routed[1].candidate.name == "a"
    assert finished[0].decision is routed[1]
    assert finished[0].info()["attempts"] == 1
    assert e.router.pending() == 2


def test_a_stream_of_one_model_waits_for_feedback() -> None:
    e = single_engine(await_feedback=True)
    routed: list[Decision] = []
    assert list(e.stream(Request(query="q"), Split(query="q"), on_route=routed.append)) == [
        "a: ",
        "q",
    ]
    assert routed[0].candidate.name == "a"
    assert e.router.pending() == 1


async def test_async_streaming_a_plan_waits_for_feedback() -> None:
    e, _ = two_engine(await_feedback=True)
    chunks = [c async for c in e.astream(Request(query="q"), Split(query="q"))]
    assert chunks == ["whole ", "a: ", "q"]
    assert e.router.pending() == 1


def test_settings_pass_everything_to_the_engine() -> None:
    waits: list[float] = []
    judged: list[str] = []

    def judge(prompt: str, answer: str) -> float:
        judged.append(answer)
        return 1.0

    settings = RoutingSettings(
        prices={"a": (1.0, 2.0), "b": (3.0, 4.0)},
        policy="cheapest",
        quality=0.7,
        cost=0.2,
        latency=0.1,
        retry=RetryConfig(max_attempts=2, initial_wait_s=0.25, jitter_s=0.5),
        evaluator=judge,
        seed=1,
        clock=Clock(),
        sleep=waits.append,
    )
    e = settings.build_engine(["a", "b"], {})
    assert e.router.objective == Objective(quality=0.7, cost=0.2, latency=0.1)
    assert e.router.clock is settings.clock
    assert [(c.name, c.input_price, c.output_price) for c in e.router.candidates] == [
        ("a", 1.0, 2.0),
        ("b", 3.0, 4.0),
    ]
    answer = e.run(Request(query="q"), EchoCalls(query="q", fail={"a": TimeoutError("slow")}))
    assert answer.model == "b"
    _, jitter = split_seed(1)
    assert jitter is not None
    assert waits == [pytest.approx(0.25 + 0.5 * jitter.random())]
    assert judged == ["b: q"]
    assert answer.result.feedback.latency_s == 1.0


async def test_settings_pass_the_async_sleep() -> None:
    waits: list[float] = []

    async def nap(seconds: float) -> None:
        waits.append(seconds)

    settings = RoutingSettings(
        cost=0,
        policy="cheapest",
        retry=RetryConfig(max_attempts=2, initial_wait_s=0.25, jitter_s=0.0),
        async_sleep=nap,
    )
    e = settings.build_engine(["a", "b"], {})
    answer = await e.arun(Request(query="q"), EchoCalls(fail={"a": TimeoutError("slow")}))
    assert answer.model == "b"
    assert waits == [0.25]


def test_settings_objective_feedback_and_tracked_runs() -> None:
    objective = Objective(quality=0.3, cost=0.0, latency=0.0)
    e = RoutingSettings(objective=objective, await_feedback=True, max_tracked_runs=0).build_engine(
        ["a"], {}
    )
    assert e.router.objective is objective
    answer = e.run(Request(query="q"), EchoCalls(query="q"))
    assert e.router.pending() == 1
    e.alias("run", answer.decision.decision_id)
    with pytest.raises(KeyError):
        e.decision_id("run")
    assert [(c.input_price, c.output_price) for c in e.router.candidates] == [(0.0, 0.0)]


def test_settings_evaluate_in_the_background_when_asked() -> None:
    release = threading.Event()
    done: list[str] = []

    def judge(prompt: str, answer: str) -> float:
        release.wait(2.0)
        done.append(answer)
        return 1.0

    e = RoutingSettings(cost=0, evaluator=judge, evaluate_in_background=True).build_engine(
        ["a"], {}
    )
    try:
        e.run(Request(query="q"), EchoCalls(query="q"))
        assert done == []  # the answer came back before its evaluation
    finally:
        release.set()


def test_settings_messages() -> None:
    with pytest.raises(ConfigError, match=r"^models must name at least one model, got none$"):
        RoutingSettings(cost=0).build_engine([], {})
    with pytest.raises(ConfigError) as info:
        RoutingSettings(prices={"a": (1.0, 1.0)}).build_engine(["a", "b"], {})
    assert str(info.value).startswith(
        "no price for model(s) ['b']: prices must give (input, output) USD per 1M tokens for "
        "every model when the cost weight is not zero (got cost=0.5)"
    )
    # A model with no detected identity is looked up, and named, by its own name.
    assert "no per-token price for 'b' (model 'b', provider None);" in str(info.value)


# ================================================================ drivers
def test_the_sync_driver_refuses_what_it_cannot_do() -> None:
    io = SyncIO(open_stream=lambda c: iter([c.name]))
    with pytest.raises(TypeError, match="the sync driver cannot perform Call"):
        io.perform(Call(A))
    with pytest.raises(TypeError, match="the sync driver cannot perform Open"):
        SyncIO(call=lambda c: c.name).perform(Open(A))


async def test_the_async_driver_refuses_what_it_cannot_do() -> None:
    async def call(candidate: Candidate) -> str:
        return candidate.name

    with pytest.raises(TypeError, match="the async driver cannot perform Call"):
        await AsyncIO().perform(Call(A))
    with pytest.raises(TypeError, match="the async driver cannot perform Open"):
        await AsyncIO(call=call).perform(Open(A))


def test_the_sync_driver_times_out_only_with_workers() -> None:
    assert SyncIO(call=lambda c: c.name).perform(Call(A, timeout=1.0)).value == "a"
    release = threading.Event()

    def slow(candidate: Candidate) -> str:
        release.wait(2.0)
        return candidate.name

    with ThreadPoolExecutor(max_workers=2) as workers:
        try:
            outcome = SyncIO(call=slow, workers=workers).perform(Call(A, timeout=0.05))
        finally:
            release.set()
    assert isinstance(outcome.error, AttemptTimeoutError)
    assert str(outcome.error) == "the attempt took more than 0.05 s"


def test_a_calls_own_timeout_error_is_not_mistaken_for_ours() -> None:
    ex, rec, _ = executor(timeout=5.0, max_attempts=1)
    own = TimeoutError("own")
    result = ex.run(decide(A, B), Script(a=[own], b=["b"]), usage)
    assert result.value == "b"
    assert [(f.candidate, f.error) for f in rec.feedbacks] == [
        ("a", "TimeoutError"),
        ("b", None),
    ]


def test_a_call_with_a_timeout_sees_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    ex, _, _ = executor(timeout=5.0)
    result = ex.run(decide(A), lambda c: var.get(), usage)
    assert result.value == "caller"


def test_a_sync_stream_that_stalls_mid_way_times_out() -> None:
    release = threading.Event()
    ex, rec, _ = executor(timeout=0.05, max_attempts=1)

    class Stalls:
        """Its second chunk comes late (a plain iterator: no ``close``)."""

        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> Stalls:
            return self

        def __next__(self) -> str:
            self.n += 1
            if self.n > 1:
                release.wait(2.0)
            return f"c{self.n}"

    got: list[str] = []
    try:
        with pytest.raises(AttemptTimeoutError):
            got.extend(ex.stream(decide(A), lambda c: Stalls(), usage))
    finally:
        release.set()
    assert got == ["c1"]
    assert rec.feedbacks[-1].error == "AttemptTimeoutError"


async def test_an_async_stream_that_stalls_mid_way_times_out() -> None:
    ex, rec, _ = executor(timeout=0.05, max_attempts=1)

    async def open_stream(candidate: Candidate) -> AsyncIterator[str]:
        del candidate
        yield "x"
        await asyncio.sleep(2.0)
        yield "y"

    got: list[str] = []

    async def consume() -> None:
        async for chunk in ex.astream(decide(A), open_stream, usage):
            got.append(chunk)  # noqa: PERF401 - the chunks before the error count

    with pytest.raises(AttemptTimeoutError, match=r"^the attempt took more than 0\.05 s$"):
        await consume()
    assert got == ["x"]
    assert rec.feedbacks[-1].error == "AttemptTimeoutError"


async def test_an_async_calls_own_timeout_error_is_not_mistaken_for_ours() -> None:
    ex, rec, _ = executor(timeout=5.0, max_attempts=1)

    async def call(candidate: Candidate) -> str:
        if candidate.name == "a":
            raise TimeoutError("own")
        return candidate.name

    result = await ex.arun(decide(A, B), call, usage)
    assert result.value == "b"
    assert [f.error for f in rec.feedbacks] == ["TimeoutError", None]


class Ticks:
    """An async iterator without ``aclose``."""

    def __init__(self) -> None:
        self.n = 0

    def __aiter__(self) -> Ticks:
        return self

    async def __anext__(self) -> str:
        self.n += 1
        return f"t{self.n}"


async def test_closing_an_async_stream_early_over_a_plain_async_iterator() -> None:
    ex, rec, _ = executor()
    stream = ex.astream(decide(A), lambda c: Ticks(), usage)
    assert await stream.__anext__() == "t1"
    await stream.aclose()
    assert rec.feedbacks[-1].extra == (("closed_early", 1.0),)


# ================================================================ planner rules
def job(*pool: Candidate, plan: Any = None) -> Job:
    return Job(decision=decide(*pool, plan=plan), usage=usage)


def test_backoff_validates_failures_and_draws_jitter() -> None:
    ex, _, _ = executor(initial_wait_s=1.0, jitter_s=0.5)
    for bad in (0, True, 1.5):
        with pytest.raises(ConfigError, match=f"^failures must be an int >= 1, got {bad!r}$"):
            ex.backoff(bad)  # type: ignore[arg-type]
    waits = [ex.backoff(1) for _ in range(3)]
    assert all(1.0 < w < 1.5 for w in waits)
    assert len(set(waits)) == 3
    flat, _, _ = executor(initial_wait_s=1.0, jitter_s=0.0)
    assert flat.backoff(2) == 2.0


def test_an_attempt_is_limited_by_its_timeout_and_what_is_left_of_the_deadline() -> None:
    planner = Planner(
        MemoryRecorder(), retry=RetryConfig(timeout=2.0, deadline=10.0), clock=Clock(), seed=0
    )
    action = next(planner.plan(job(A)))
    assert isinstance(action, Call)
    assert action.timeout == 2.0
    planner = Planner(
        MemoryRecorder(), retry=RetryConfig(timeout=2.0, deadline=1.5), clock=Clock(), seed=0
    )
    action = next(planner.plan(job(A)))
    assert action.timeout == 0.5
    planner = Planner(MemoryRecorder(), retry=RetryConfig(deadline=4.0), clock=Clock(), seed=0)
    assert next(planner.plan(job(A))).timeout == 3.0
    planner = Planner(MemoryRecorder(), retry=RetryConfig(timeout=2.0), clock=Clock(), seed=0)
    assert next(planner.plan(job(A))).timeout == 2.0


def test_a_failed_attempts_latency_is_measured() -> None:
    rec = MemoryRecorder()
    ex = Executor(rec, retry=RetryConfig(max_attempts=1), clock=Clock(step=0.1))
    ex.run(decide(A, B), Script(a=[ValueError("x")], b=["b"]), usage)
    assert rec.feedbacks[0].latency_s == pytest.approx(0.1)
    assert rec.feedbacks[0].output_tokens == 0
    assert rec.feedbacks[0].cost_usd == 0.0


def test_a_retry_after_equal_to_the_cap_is_honoured() -> None:
    ex, _, waits = executor(max_attempts=2, max_wait_s=2.0, initial_wait_s=0.1)
    call = Script(a=[named("RateLimitError", retry_after=2), "a"], b=["b"])
    assert ex.run(decide(A, B), call, usage).value == "a"
    assert waits == [2.0]


def test_refusal_fallbacks_never_retry_the_refusing_model() -> None:
    ex, _, _ = executor(content_policy_fallbacks=("a", "b"))
    call = Script(a=[named("ContentPolicyViolationError"), "a"], b=["b"])
    assert ex.run(decide(A, B), call, usage).value == "b"
    assert call.calls == ["a", "b"]


def test_a_context_length_error_skips_models_with_the_same_window() -> None:
    small = Candidate(name="s", max_context_tokens=8)
    same = Candidate(name="t", max_context_tokens=8)
    large = Candidate(name="u", max_context_tokens=16)
    ex, _, _ = executor()
    call = Script(s=[named("ContextWindowExceededError")], t=["t"], u=["u"])
    assert ex.run(decide(small, same, large), call, usage).value == "u"
    assert call.calls == ["s", "u"]


def test_a_stream_obeys_the_deadline() -> None:
    ex, _, _ = executor(deadline=2.5, max_attempts=5, initial_wait_s=0.0)

    def open_stream(candidate: Candidate) -> Iterator[str]:
        raise TimeoutError(candidate.name)

    with pytest.raises(DeadlineExceededError):
        list(ex.stream(decide(A, B), open_stream, usage))


def test_a_finished_stream_is_not_marked_closed_early() -> None:
    ex, rec, _ = executor()
    assert list(ex.stream(decide(A), lambda c: iter(["x", "y"]), usage)) == ["x", "y"]
    assert rec.feedbacks[-1].extra == ()


def test_a_stream_that_breaks_mid_way_is_closed_and_timed() -> None:
    ex, rec, _ = executor()
    closed: list[bool] = []

    class Breaks:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> Breaks:
            return self

        def __next__(self) -> str:
            self.n += 1
            if self.n > 1:
                raise ValueError("cut")
            return "x"

        def close(self) -> None:
            closed.append(True)

    got: list[str] = []
    with pytest.raises(ValueError, match="cut"):
        got.extend(ex.stream(decide(A), lambda c: Breaks(), usage))
    assert got == ["x"]
    assert closed == [True]
    failure = rec.feedbacks[-1]
    assert (failure.candidate, failure.error) == ("a", "ValueError")
    assert failure.latency_s == 2.0
    assert failure.time_to_first_token_s == 1.0


def test_a_stream_whose_usage_cannot_be_read_is_a_failure() -> None:
    ex, rec, _ = executor()

    def broken(candidate: Candidate, chunks: list[str]) -> Usage:
        raise KeyError("usage")

    with pytest.raises(KeyError):
        list(ex.stream(decide(A), lambda c: iter(["x"]), broken))
    failure = rec.feedbacks[-1]
    assert (failure.candidate, failure.error) == ("a", "KeyError")
    assert failure.latency_s == 2.0
    assert failure.time_to_first_token_s == 1.0
    assert len(rec.feedbacks) == 1


# ================================================================ more engine details
def test_engine_argument_messages() -> None:
    router = Router([A], policy="cheapest")
    with pytest.raises(ConfigError, match=r"^evaluate_in_background must be a bool, got 'yes'$"):
        Engine(router, evaluate_in_background="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^max_aliases must be an int >= 0, got True$"):
        Engine(router, max_aliases=True)
    with pytest.raises(KeyError, match=r"\(the last 10000 run ids are kept\)"):
        Engine(router).decision_id("nope")
    with pytest.raises(ConfigError, match=r"^max_workers must be an int >= 1 or None, got True$"):
        Executor(MemoryRecorder(), max_workers=True)


def test_the_route_carries_the_key_and_the_prompt_size() -> None:
    long_in = Candidate(name="long", input_price=0.5, output_price=5.0)
    chatty = Candidate(name="chatty", input_price=1.0, output_price=2.0)
    e = Engine(Router([long_in, chatty], policy=Cheapest(output_tokens=0)))
    decision = e.route(Request(query="x" * 4000, key="k"))
    assert decision.key == "k"
    assert decision.candidate == long_in  # priced for 1000 prompt tokens


def test_a_tool_calling_turn_of_a_two_member_plan_runs_one_model() -> None:
    e, _ = two_engine()
    assert e.route(Request(query="q", needs_tool_calling=True)).kind == "single"
    assert e.route(Request(query="q")).kind == "ensemble"


def test_attempts_with_a_timeout_run_in_named_worker_threads() -> None:
    names: list[str] = []

    def call(candidate: Candidate) -> str:
        names.append(threading.current_thread().name)
        if candidate.name == "a":
            raise ValueError("bad")
        return candidate.name

    ex, rec, _ = executor(timeout=5.0)
    assert ex.run(decide(A, B), call, empty_usage).value == "b"
    assert all(name.startswith("pickllm-attempt") for name in names)
    assert [f.error for f in rec.feedbacks] == ["ValueError", None]
    assert rec.feedbacks[-1].input_tokens == 0


def test_a_deadline_alone_bounds_a_hung_attempt() -> None:
    release = threading.Event()

    def call(candidate: Candidate) -> str:
        release.wait(2.0)
        return candidate.name

    rec = MemoryRecorder()
    ex = Executor(rec, retry=RetryConfig(deadline=0.1, jitter_s=0.0), sleep=lambda _: None)
    try:
        with pytest.raises(DeadlineExceededError):
            ex.run(decide(A), call, usage)
    finally:
        release.set()
    assert rec.feedbacks[0].error == "AttemptTimeoutError"


def test_a_memory_recorder_keeps_what_it_is_given() -> None:
    rec = MemoryRecorder()
    fb = Feedback(candidate="a")
    assert rec.record(decide(A), fb) is None
    rec.record(decide(A, decision_id="e"), fb, await_score=True)
    assert [(d.decision_id, f, wait) for d, f, wait in rec.records] == [
        ("d", fb, False),
        ("e", fb, True),
    ]
    assert rec.feedbacks == (fb, fb)


class Gatekeeper(MemoryRecorder):
    """A recorder with a circuit breaker (like ``Router.admits``) that admits ``open``."""

    def __init__(self, *, admit: bool) -> None:
        super().__init__()
        self.admit = admit
        self.asked: list[str] = []

    def admits(self, name: str) -> bool:
        self.asked.append(name)
        return self.admit


@pytest.mark.parametrize(("admit", "attempts"), [(False, 1), (True, 3)])
def test_a_transient_error_is_retried_only_while_the_recorder_admits_the_model(
    admit: bool, attempts: int
) -> None:
    a = Candidate(name="a")
    recorder = Gatekeeper(admit=admit)
    executor = Executor(
        recorder, retry=RetryConfig(max_attempts=3, jitter_s=0.0), sleep=lambda _: None
    )

    def call(candidate: Candidate) -> str:
        raise ConnectionError(candidate.name)

    with pytest.raises(ExecutionError):
        executor.run(decide(a), call, usage)
    assert [fb.candidate for fb in recorder.feedbacks] == ["a"] * attempts
    # Asked after each failure that could be retried (not after the last allowed one).
    assert recorder.asked == ["a"] * min(attempts, 2)


def test_backoff_without_jitter_draws_nothing_from_the_injected_generator() -> None:
    rng = np.random.default_rng(5)
    executor = Executor(MemoryRecorder(), retry=RetryConfig(jitter_s=0.0), seed=rng)
    assert executor.backoff(1) == RetryConfig(jitter_s=0.0).initial_wait_s
    assert rng.random() == np.random.default_rng(5).random()


# ================================================================ what Engine.route passes on
class Seer(Policy):
    """Picks the first offered candidate and keeps every context it was shown."""

    name = "seer-stub"

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.contexts: list[Context] = []

    def _select(self, context: Context) -> Choice:
        self.contexts.append(context)
        return Choice(index=0, probability=1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        del decision, reward


def test_engine_route_shows_the_policy_the_query_and_filters_by_the_needs() -> None:
    plain = Candidate(name="plain", structured_output=False, tool_calling=False)
    able = Candidate(name="able", input_price=1.0, output_price=1.0)
    policy = Seer()
    e = Engine(Router([plain, able], policy), retry=RetryConfig(max_attempts=1, jitter_s=0.0))
    e.run(Request(query="What is 2+2?", prompt="system: be brief\nWhat is 2+2?"), EchoCalls())
    for request in (
        Request(query="Give JSON", needs_structured_output=True),
        Request(query="Give JSON", needs_tool_calling=True),
    ):
        assert e.run(request, EchoCalls()).model == "able"
    first, *needy = policy.contexts
    prompt_tokens = estimate_tokens("system: be brief\nWhat is 2+2?")
    assert prompt_tokens > estimate_tokens("What is 2+2?")
    # The policy routes on the query; the token estimate is of the whole prompt.
    assert (first.query, first.input_tokens) == ("What is 2+2?", prompt_tokens)
    assert [c.name for c in first.candidates] == ["plain", "able"]
    assert [[c.name for c in ctx.candidates] for ctx in needy] == [["able"], ["able"]]
    assert [(ctx.needs_structured_output, ctx.needs_tool_calling) for ctx in needy] == [
        (True, False),
        (False, True),
    ]


def test_a_failed_attempt_carries_its_error_kind_and_spares_the_breaker() -> None:
    # A prompt too long for a model is not the model's fault: its circuit stays closed.
    router = Router([A, B], policy="cheapest", breaker_failures=1)
    e = Engine(router, retry=RetryConfig(max_attempts=1, jitter_s=0.0), sleep=lambda _: None)
    calls = EchoCalls(fail={"a": ValueError("maximum context length exceeded")})
    answer = e.run(Request(query="Hi"), calls)
    assert answer.model == "b"
    failed = answer.result.attempts[0]
    assert (failed.candidate, failed.error, failed.error_kind) == (
        "a",
        "ValueError",
        "context_length",
    )
    assert failed.output_tokens == 0
    assert router.admits("a")
    # A fault of the model's own opens it.
    e.run(Request(query="Hi"), EchoCalls(fail={"a": ValueError("boom")}))
    assert not router.admits("a")


# ================================================================ prices by detected identity
def test_a_price_is_looked_up_by_the_detected_model_and_provider() -> None:
    # This model is priced for one provider only: the lookup must pass the provider on.
    detected = {"fast": {"model": "llama-3.1-8b-instant", "provider": "groq"}}
    engine = RoutingSettings().build_engine(["fast"], detected)
    fast = engine.router.candidates[0]
    assert (fast.input_price, fast.output_price) == (0.05, 0.08)


def test_the_missing_price_message_names_each_model_as_it_was_looked_up() -> None:
    detected = {
        "x": {"model": "", "provider": ""},  # empty: the pool name, no provider
        "y": {"model": "my-local-model", "provider": "acme"},
    }
    with pytest.raises(ConfigError) as info:
        RoutingSettings().build_engine(["x", "y"], detected)
    assert (
        "has no per-token price for 'x' (model 'x', provider None), "
        "'y' (model 'my-local-model', provider 'acme'); add them"
    ) in str(info.value)


def test_cascade_settings_without_a_named_strategy_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as info:
        RoutingSettings(prices={"a": (0.1, 0.1)}, budget_per_call_usd=0.01).build_engine(["a"], {})
    assert str(info.value).endswith("got strategy=None; a strategy object carries its own")


def test_an_engine_names_what_a_strategy_must_implement() -> None:
    with pytest.raises(TypeError) as info:
        Engine(Router([A]), strategy="cascade_routing")  # type: ignore[arg-type]
    assert str(info.value) == (
        "strategy must implement pickllm.cascade.CascadeStrategy (name, start, settle) or be "
        "None, got 'cascade_routing'"
    )
