"""Executor: timing, retries, fallbacks, fatal errors, plans, streaming, async and cancellation.

Every test injects a fake clock (advancing 1 s per reading) and a fake sleep that only
records the waits, so nothing here depends on wall time.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from pickllm import Candidate, ConfigError, Context, Decision, ExecutionError, Feedback, Plan
from pickllm.engine import (
    DEFAULT_FATAL_NAMES,
    DEFAULT_RETRY_ON_NAMES,
    ExecutionResult,
    Executor,
    MemoryRecorder,
    Recorder,
    RetryConfig,
)
from pickllm.policies.base import Choice, Policy
from pickllm.pricing import Usage
from pickllm.types import PlanKind

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=3.0, output_price=4.0)
C = Candidate(name="c", input_price=5.0, output_price=6.0)


# ---------------------------------------------------------------- test doubles
class RateLimitError(Exception):
    """Named like the provider SDKs' error: transient by name."""


class AcmeRateLimitError(RateLimitError):
    """A subclass: transient because a class of its MRO is named RateLimitError."""


class BadRequestError(Exception):
    """Named like the provider SDKs' error: fatal by name."""


class FakeClock:
    """Advances by ``step`` seconds on every reading (thread-safe)."""

    def __init__(self, step: float = 1.0) -> None:
        self.now = 0.0
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


class ScoringRecorder(MemoryRecorder):
    """Returns 0.0 for failures, 0.8 for answers and None when the score is awaited."""

    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        super().record(decision, feedback, await_score=await_score)
        if await_score:
            return None
        return 0.0 if feedback.failed else 0.8


Item = str | BaseException


class Script:
    """A ``call(candidate)`` that plays a per-candidate list of answers and errors."""

    def __init__(self, **script: list[Item]) -> None:
        self.script = {name: list(items) for name, items in script.items()}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def next_item(self, candidate: Candidate) -> str:
        with self._lock:
            self.calls.append(candidate.name)
            item = self.script[candidate.name].pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def __call__(self, candidate: Candidate) -> str:
        return self.next_item(candidate)

    async def acall(self, candidate: Candidate) -> str:
        await asyncio.sleep(0)
        return self.next_item(candidate)


def usage(candidate: Candidate, value: str) -> Usage:
    return Usage(input_tokens=10, output_tokens=len(value))


def decide(*ranking: Candidate, kind: PlanKind | None = None, decision_id: str = "d1") -> Decision:
    plan = None if kind is None else Plan(kind=kind, members=ranking)
    return Decision(
        decision_id=decision_id,
        candidate=ranking[0],
        ranking=ranking,
        probability=1.0,
        policy="test",
        plan=plan,
    )


class Harness:
    """An executor with a fake clock, recorded sleeps and a recorder."""

    def __init__(self, *, seed: int = 0, max_workers: int | None = None, **retry: Any) -> None:
        self.recorder = ScoringRecorder()
        self.clock = FakeClock()
        self.waits: list[float] = []
        self.async_waits: list[float] = []
        self.executor = Executor(
            self.recorder,
            retry=RetryConfig(**retry),
            clock=self.clock,
            sleep=self.waits.append,
            async_sleep=self._async_sleep,
            seed=seed,
            max_workers=max_workers,
        )

    async def _async_sleep(self, seconds: float) -> None:
        self.async_waits.append(seconds)

    def recorded(self) -> list[tuple[str, str | None, bool]]:
        """(candidate the decision names, error, await_score) of every record, in order."""
        return [(d.candidate.name, fb.error, wait) for d, fb, wait in self.recorder.records]


# ---------------------------------------------------------------- configuration
def test_retry_config_defaults() -> None:
    cfg = RetryConfig()
    assert cfg.max_attempts == 3
    assert (cfg.initial_wait_s, cfg.max_wait_s, cfg.jitter_s) == (0.5, 8.0, 0.5)
    assert cfg.max_fallbacks is None
    assert TimeoutError in cfg.retry_on
    assert ConnectionError in cfg.retry_on
    assert cfg.retry_on_names == DEFAULT_RETRY_ON_NAMES
    assert cfg.fatal_names == DEFAULT_FATAL_NAMES
    assert "RateLimitError" in cfg.retry_on_names
    assert "BadRequestError" in cfg.fatal_names
    assert "ContentPolicyViolationError" not in cfg.fatal_names  # its own kind
    assert (cfg.timeout, cfg.deadline, cfg.content_policy_fallbacks) == (None, None, ())


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_attempts": 0}, r"max_attempts=0 is not allowed"),
        ({"max_attempts": True}, r"max_attempts=True"),
        ({"max_attempts": 2.0}, r"max_attempts=2\.0"),
        ({"initial_wait_s": -1.0}, r"initial_wait_s=-1\.0"),
        ({"max_wait_s": float("inf")}, r"max_wait_s=inf"),
        ({"jitter_s": float("nan")}, r"jitter_s=nan"),
        ({"max_fallbacks": -1}, r"max_fallbacks=-1"),
        ({"retry_on": (int,)}, r"retry_on\.0=<class 'int'>"),
        ({"fatal_names": "BadRequestError"}, r"fatal_names='BadRequestError'"),
        ({"max_attempt": 3}, r"max_attempt=3 is not allowed: Extra inputs"),
    ],
)
def test_retry_config_validation_names_the_value(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        RetryConfig(**kwargs)


def test_retry_config_is_frozen() -> None:
    cfg = RetryConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.max_attempts = 5  # type: ignore[misc]


def test_executor_validation() -> None:
    rec = MemoryRecorder()
    with pytest.raises(ConfigError, match="max_workers must be an int >= 1 or None, got 0"):
        Executor(rec, max_workers=0)
    with pytest.raises(TypeError, match="seed"):
        Executor(rec, seed="7")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RetryConfig"):
        Executor(rec, retry={"max_attempts": 2})  # type: ignore[arg-type]
    ex = Executor(rec, seed=3, max_workers=4)
    assert (ex.recorder, ex.retry, ex.seed, ex.max_workers) == (rec, None, 3, 4)


def test_memory_recorder_is_a_recorder() -> None:
    assert isinstance(MemoryRecorder(), Recorder)
    assert isinstance(ScoringRecorder(), Recorder)


def test_error_classification_by_class_and_by_name_in_the_mro() -> None:
    ex = Executor(MemoryRecorder(), retry=RetryConfig(fatal=(KeyError,)))
    assert ex.is_transient(TimeoutError())
    assert ex.is_transient(ConnectionResetError())  # a ConnectionError subclass
    assert ex.is_transient(RateLimitError())
    assert ex.is_transient(AcmeRateLimitError())
    assert not ex.is_transient(ValueError())
    assert ex.is_fatal(BadRequestError())
    assert ex.is_fatal(KeyError("k"))
    assert not ex.is_fatal(ValueError())
    assert not ex.is_transient(KeyboardInterrupt())
    assert not ex.is_fatal(KeyboardInterrupt())

    class BadRequestTimeoutError(BadRequestError, TimeoutError):
        pass

    # Fatal wins: a request that is bad will not get better by retrying it.
    assert ex.is_fatal(BadRequestTimeoutError())
    assert not ex.is_transient(BadRequestTimeoutError())


def test_backoff_is_exponential_capped_and_seeded() -> None:
    ex = Executor(
        MemoryRecorder(),
        retry=RetryConfig(initial_wait_s=0.5, max_wait_s=5.0, jitter_s=0.25),
        seed=42,
    )
    waits = [ex.backoff(n) for n in range(1, 8)]
    for n, wait in enumerate(waits, start=1):
        base = 0.5 * 2 ** (n - 1)
        assert min(5.0, base) <= wait <= min(5.0, base + 0.25)
    assert waits[-1] == 5.0
    again = Executor(
        MemoryRecorder(),
        retry=RetryConfig(initial_wait_s=0.5, max_wait_s=5.0, jitter_s=0.25),
        seed=42,
    )
    assert [again.backoff(n) for n in range(1, 8)] == waits
    assert Executor(MemoryRecorder(), retry=RetryConfig(jitter_s=0.0)).backoff(3) == 2.0
    assert Executor(MemoryRecorder()).backoff(10_000) == 8.0


# ---------------------------------------------------------------- single model
def test_success_first_try() -> None:
    h = Harness()
    script = Script(a=["hello"])
    decision = decide(A, B)
    result = h.executor.run(decision, script, usage)
    assert result.value == "hello"
    assert result.decision is decision
    assert result.served_by == ("a",)
    assert result.values == ("hello",)
    assert result.reward == 0.8
    assert script.calls == ["a"]
    fb = result.feedback
    assert fb.latency_s == 1.0  # the fake clock advanced once between the two readings
    assert (fb.input_tokens, fb.output_tokens) == (10, 5)
    assert fb.cost_usd == pytest.approx(A.price_of(10, 5))
    assert fb.candidate == "a"
    assert not fb.tokens_estimated
    assert result.attempts == (fb,)
    assert h.recorded() == [("a", None, False)]
    assert h.waits == []


def test_transient_error_then_success_retries_with_backoff() -> None:
    h = Harness(max_attempts=3, initial_wait_s=0.5, jitter_s=0.5)
    script = Script(a=[ConnectionError("reset"), "ok"])
    result = h.executor.run(decide(A, B), script, usage)
    assert result.value == "ok"
    assert script.calls == ["a", "a"]
    assert [f.error for f in result.attempts] == ["ConnectionError", None]
    assert h.recorded() == [("a", "ConnectionError", False), ("a", None, False)]
    assert len(h.waits) == 1
    assert 0.5 <= h.waits[0] <= 1.0
    failed = result.attempts[0]
    assert (failed.cost_usd, failed.output_tokens, failed.candidate) == (0.0, 0, "a")
    assert failed.latency_s == 1.0


def test_backoff_waits_grow_between_retries() -> None:
    h = Harness(max_attempts=5, initial_wait_s=1.0, max_wait_s=6.0, jitter_s=0.5)
    script = Script(
        a=[TimeoutError(), RateLimitError(), AcmeRateLimitError(), TimeoutError(), "ok"]
    )
    result = h.executor.run(decide(A), script, usage)
    assert result.value == "ok"
    assert len(h.waits) == 4
    for n, wait in enumerate(h.waits, start=1):
        base = 1.0 * 2 ** (n - 1)
        assert min(6.0, base) <= wait <= min(6.0, base + 0.5)
    # Same seed, same waits: the jitter comes from the executor's own generator.
    h2 = Harness(max_attempts=5, initial_wait_s=1.0, max_wait_s=6.0, jitter_s=0.5)
    script2 = Script(
        a=[TimeoutError(), RateLimitError(), AcmeRateLimitError(), TimeoutError(), "ok"]
    )
    h2.executor.run(decide(A), script2, usage)
    assert h2.waits == h.waits


def test_fallback_after_exhausting_retries() -> None:
    h = Harness(max_attempts=3)
    script = Script(a=[TimeoutError(), TimeoutError(), TimeoutError()], b=["from b"])
    decision = decide(A, B, C)
    result = h.executor.run(decision, script, usage)
    assert result.value == "from b"
    assert result.decision.candidate == B
    assert result.decision.decision_id == decision.decision_id
    assert result.served_by == ("b",)
    assert script.calls == ["a", "a", "a", "b"]
    assert [(f.candidate, f.error) for f in result.attempts] == [
        ("a", "TimeoutError"),
        ("a", "TimeoutError"),
        ("a", "TimeoutError"),
        ("b", None),
    ]
    assert h.recorded() == [
        ("a", "TimeoutError", False),
        ("a", "TimeoutError", False),
        ("a", "TimeoutError", False),
        ("b", None, False),
    ]
    assert len(h.waits) == 2
    assert result.feedback.cost_usd == pytest.approx(B.price_of(10, 6))


def test_non_transient_error_falls_back_at_once() -> None:
    h = Harness(max_attempts=3)
    script = Script(a=[ValueError("unparseable answer")], b=["ok"])
    result = h.executor.run(decide(A, B), script, usage)
    assert result.value == "ok"
    assert script.calls == ["a", "b"]
    assert h.waits == []
    assert h.recorded() == [("a", "ValueError", False), ("b", None, False)]


def test_non_transient_error_during_retries_falls_back() -> None:
    h = Harness(max_attempts=3)
    script = Script(a=[TimeoutError(), ValueError()], b=["ok"])
    result = h.executor.run(decide(A, B), script, usage)
    assert result.value == "ok"
    assert script.calls == ["a", "a", "b"]
    assert len(h.waits) == 1


def test_fatal_error_is_reraised_without_fallback_but_recorded() -> None:
    h = Harness(max_attempts=3)
    error = BadRequestError("prompt too long")
    script = Script(a=[error], b=["never"])
    with pytest.raises(BadRequestError) as info:
        h.executor.run(decide(A, B), script, usage)
    assert info.value is error
    assert script.calls == ["a"]
    assert h.waits == []
    assert h.recorded() == [("a", "BadRequestError", False)]


def test_fatal_error_after_a_retry_is_reraised() -> None:
    h = Harness(max_attempts=3, fatal=(PermissionError,))
    script = Script(a=[TimeoutError(), PermissionError("no")], b=["never"])
    with pytest.raises(PermissionError):
        h.executor.run(decide(A, B), script, usage)
    assert script.calls == ["a", "a"]
    assert [e for _, e, _ in h.recorded()] == ["TimeoutError", "PermissionError"]


def test_fatal_error_of_a_fallback_is_reraised() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=[ValueError()], b=[BadRequestError()], c=["never"])
    with pytest.raises(BadRequestError):
        h.executor.run(decide(A, B, C), script, usage)
    assert script.calls == ["a", "b"]


def test_all_failing_raises_execution_error_with_attempts() -> None:
    h = Harness(max_attempts=2)
    last = ValueError("b is broken")
    script = Script(a=[TimeoutError(), TimeoutError()], b=[last])
    with pytest.raises(ExecutionError) as info:
        h.executor.run(decide(A, B), script, usage)
    err = info.value
    assert err.__cause__ is last
    assert [(f.candidate, f.error) for f in err.attempts] == [
        ("a", "TimeoutError"),
        ("a", "TimeoutError"),
        ("b", "ValueError"),
    ]
    assert "'d1'" in str(err)
    assert "3 attempt(s)" in str(err)
    assert "b: ValueError" in str(err)
    assert len(h.recorder.records) == 3


@pytest.mark.parametrize(
    ("max_fallbacks", "called"), [(0, ["a"]), (1, ["a", "b"]), (None, ["a", "b", "c"])]
)
def test_max_fallbacks_bounds_the_ranking(max_fallbacks: int | None, called: list[str]) -> None:
    h = Harness(max_attempts=1, max_fallbacks=max_fallbacks)
    script = Script(a=[ValueError()], b=[ValueError()], c=[ValueError()])
    with pytest.raises(ExecutionError) as info:
        h.executor.run(decide(A, B, C), script, usage)
    assert script.calls == called
    assert len(info.value.attempts) == len(called)


def test_ranking_without_the_chosen_candidate_still_starts_with_it() -> None:
    h = Harness(max_attempts=1)
    decision = Decision(
        decision_id="d", candidate=B, ranking=(A, B, A), probability=0.5, policy="x"
    )
    script = Script(a=["from a"], b=[ValueError()])
    result = h.executor.run(decision, script, usage)
    assert script.calls == ["b", "a"]
    assert result.decision.candidate == A


def test_base_exceptions_are_never_swallowed() -> None:
    h = Harness(max_attempts=3)
    script = Script(a=[KeyboardInterrupt()], b=["never"])
    with pytest.raises(KeyboardInterrupt):
        h.executor.run(decide(A, B), script, usage)
    assert script.calls == ["a"]
    assert h.waits == []


def test_missing_usage_is_estimated_from_texts() -> None:
    h = Harness()
    result = h.executor.run(
        decide(A), lambda c: "x" * 41, lambda c, v: Usage(), prompt_text="p" * 100
    )
    fb = result.feedback
    assert (fb.input_tokens, fb.output_tokens, fb.tokens_estimated) == (25, 11, True)
    assert fb.cost_usd == pytest.approx(A.price_of(25, 11))

    def answer(candidate: Candidate) -> dict[str, str]:
        return {"text": "y" * 8}

    structured = h.executor.run(
        decide(A), answer, lambda c, v: Usage(input_tokens=3), completion_text=lambda v: v["text"]
    )
    assert (structured.feedback.input_tokens, structured.feedback.output_tokens) == (3, 2)
    # Without completion_text, a non-string answer has no text to estimate from.
    bare = h.executor.run(decide(A), answer, lambda c, v: Usage(input_tokens=3))
    assert bare.feedback.output_tokens == 0
    assert bare.feedback.tokens_estimated


def test_failure_feedback_estimates_the_prompt() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=[ValueError()], b=["ok"])
    result = h.executor.run(decide(A, B), script, usage, prompt_text="q" * 20)
    failed = result.attempts[0]
    assert (failed.input_tokens, failed.tokens_estimated, failed.cost_usd) == (5, True, 0.0)


def test_a_failing_usage_function_fails_the_attempt() -> None:
    h = Harness(max_attempts=1)

    def bad_usage(candidate: Candidate, value: str) -> Usage:
        if candidate.name == "a":
            msg = "no usage block"
            raise KeyError(msg)
        return Usage(1, 1)

    result = h.executor.run(decide(A, B), Script(a=["x"], b=["y"]), bad_usage)
    assert result.value == "y"
    assert h.recorded() == [("a", "KeyError", False), ("b", None, False)]


def test_await_score_is_passed_for_the_answer_only() -> None:
    h = Harness(max_attempts=1)
    result = h.executor.run(
        decide(A, B), Script(a=[ValueError()], b=["ok"]), usage, await_score=True
    )
    assert result.reward is None
    assert h.recorded() == [("a", "ValueError", False), ("b", None, True)]


def test_concurrent_runs_record_every_attempt() -> None:
    h = Harness(max_attempts=2, jitter_s=0.0)
    per_thread = 200

    def work() -> None:
        for i in range(per_thread):
            script = Script(a=[TimeoutError(), "ok"] if i % 2 else ["ok"])
            assert h.executor.run(decide(A), script, usage).value == "ok"

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(h.recorder.records) == 8 * (per_thread + per_thread // 2)
    assert len(h.waits) == 8 * per_thread // 2


# ---------------------------------------------------------------- ensembles
def test_ensemble_runs_members_concurrently_and_chooses() -> None:
    h = Harness(max_attempts=1)
    barrier = threading.Barrier(2, timeout=10)
    threads: set[str] = set()

    def call(candidate: Candidate) -> str:
        # Both members must be inside call at the same time, or the barrier breaks.
        barrier.wait()
        threads.add(threading.current_thread().name)
        return candidate.name * 3

    chosen: list[Sequence[str]] = []

    def second(values: Sequence[str]) -> int:
        chosen.append(values)
        return 1

    result = h.executor.run(decide(A, B, kind="ensemble"), call, usage, choose=second)
    assert chosen == [("aaa", "bbb")]
    assert result.value == "bbb"
    assert result.values == ("aaa", "bbb")
    assert result.served_by == ("a", "b")
    assert len(threads) == 2
    assert result.decision.candidate == B
    fb = result.feedback
    assert (fb.input_tokens, fb.output_tokens) == (20, 6)
    assert fb.cost_usd == pytest.approx(A.price_of(10, 3) + B.price_of(10, 3))
    assert fb.quality is None
    assert fb.error is None
    assert fb.candidate is None
    # Parallel members: the plan's latency is its wall time (start and end readings
    # around four member readings), not the sum of the members' latencies.
    assert fb.latency_s == 5.0
    assert sorted(h.recorded()) == [("a", None, False), ("b", None, False)]
    assert [f.candidate for f in result.attempts] == ["a", "b"]


def test_ensemble_default_value_is_the_first_member_in_plan_order() -> None:
    h = Harness(max_attempts=1)
    b_done = threading.Event()

    def call(candidate: Candidate) -> str:
        if candidate.name == "a":
            # a finishes last, yet its answer is the default one.
            assert b_done.wait(timeout=10)
        else:
            b_done.set()
        return f"from {candidate.name}"

    result = h.executor.run(decide(A, B, kind="ensemble"), call, usage)
    assert result.value == "from a"
    assert result.values == ("from a", "from b")


def test_ensemble_members_retry_but_do_not_fall_back() -> None:
    h = Harness(max_attempts=2, max_workers=1)
    script = Script(a=[TimeoutError(), "a ok"], b=[ValueError()], c=["never"])
    decision = Decision(
        decision_id="e",
        candidate=A,
        ranking=(A, B, C),
        probability=1.0,
        policy="x",
        plan=Plan(kind="ensemble", members=(A, B)),
    )
    result = h.executor.run(decision, script, usage)
    assert result.value == "a ok"
    assert result.served_by == ("a",)
    assert "c" not in script.calls
    assert len(h.waits) == 1
    assert [(f.candidate, f.error) for f in result.attempts] == [
        ("a", "TimeoutError"),
        ("a", None),
        ("b", "ValueError"),
    ]


def test_ensemble_with_one_worker_runs_in_the_calling_thread() -> None:
    h = Harness(max_workers=1)
    seen: list[str] = []

    def call(candidate: Candidate) -> str:
        seen.append(threading.current_thread().name)
        return candidate.name

    h.executor.run(decide(A, B, C, kind="ensemble"), call, usage)
    assert seen == [threading.current_thread().name] * 3


def test_ensemble_members_see_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    h = Harness()
    token = var.set("request-42")
    try:
        result = h.executor.run(decide(A, B, kind="ensemble"), lambda c: var.get(), usage)
    finally:
        var.reset(token)
    assert result.values == ("request-42", "request-42")


def test_ensemble_all_failing_raises_execution_error() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=[ValueError()], b=[TimeoutError()])
    with pytest.raises(ExecutionError) as info:
        h.executor.run(decide(A, B, kind="ensemble"), script, usage)
    assert sorted(f.error or "" for f in info.value.attempts) == ["TimeoutError", "ValueError"]
    assert "ensemble" in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)


def test_ensemble_fatal_error_is_reraised_after_recording_the_answers() -> None:
    h = Harness(max_attempts=1, max_workers=1)
    script = Script(a=["a ok"], b=[BadRequestError()])
    with pytest.raises(BadRequestError):
        h.executor.run(decide(A, B, kind="ensemble"), script, usage, await_score=True)
    assert sorted(h.recorded()) == [("a", None, False), ("b", "BadRequestError", False)]


def test_ensemble_await_score_waits_on_the_returned_member_only() -> None:
    # The delayed score judges the answer returned: its member waits, and is recorded
    # first; the other answering member is learned from at once.
    h = Harness(max_attempts=1, max_workers=1)
    script = Script(a=["x"], b=[ValueError()], c=["z"])
    result = h.executor.run(
        decide(A, B, C, kind="ensemble"), script, usage, await_score=True, choose=lambda v: 1
    )
    assert result.value == "z"
    assert result.reward is None
    assert h.recorded() == [("b", "ValueError", False), ("c", None, True), ("a", None, False)]


# ---------------------------------------------------------------- cascades
def test_cascade_stops_at_the_first_accepted_answer() -> None:
    h = Harness(max_attempts=1)
    asked: list[tuple[str, str]] = []

    def good_enough(candidate: Candidate, answer: str) -> bool:
        asked.append((candidate.name, answer))
        return answer.startswith("good")

    script = Script(a=["meh"], b=["good answer"], c=["never"])
    result = h.executor.run(decide(A, B, C, kind="cascade"), script, usage, stop=good_enough)
    assert result.value == "good answer"
    assert result.decision.candidate == B
    assert script.calls == ["a", "b"]
    assert asked == [("a", "meh"), ("b", "good answer")]
    assert result.values == ("meh", "good answer")
    assert result.served_by == ("a", "b")
    fb = result.feedback
    assert (fb.input_tokens, fb.output_tokens) == (20, 14)
    assert fb.cost_usd == pytest.approx(A.price_of(10, 3) + B.price_of(10, 11))
    # Sequential members: start, 2 readings per member, end.
    assert fb.latency_s == 5.0
    assert result.reward == 0.8


def test_cascade_runs_to_the_last_member_and_never_asks_about_it() -> None:
    h = Harness(max_attempts=1)
    asked: list[str] = []

    def never(candidate: Candidate, answer: str) -> bool:
        asked.append(candidate.name)
        return False

    script = Script(a=["1"], b=["2"], c=["3"])
    result = h.executor.run(decide(A, B, C, kind="cascade"), script, usage, stop=never)
    assert result.value == "3"
    assert asked == ["a", "b"]
    assert result.decision.candidate == C


def test_cascade_without_stop_rule_takes_the_first_answer() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=[ValueError()], b=["b"], c=["never"])
    result = h.executor.run(decide(A, B, C, kind="cascade"), script, usage)
    assert result.value == "b"
    assert script.calls == ["a", "b"]
    assert [f.error for f in result.attempts] == ["ValueError", None]


def test_cascade_failure_of_the_last_member_keeps_the_last_answer() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=["only answer"], b=[ValueError()])
    result = h.executor.run(
        decide(A, B, kind="cascade"), script, usage, stop=lambda c, v: False, await_score=True
    )
    assert result.value == "only answer"
    assert result.decision.candidate == A
    assert h.recorded() == [("b", "ValueError", False), ("a", None, True)]


def test_cascade_aggregate_and_await_score_on_the_accepted_member_only() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=["short"], b=["a longer answer"])
    result = h.executor.run(
        decide(A, B, kind="cascade"),
        script,
        usage,
        stop=lambda c, v: len(v) > 10,
        choose=lambda values: max(range(len(values)), key=lambda i: len(values[i])),
        await_score=True,
    )
    assert result.value == "a longer answer"
    # The accepted member waits for the score and is recorded first; the rejected one
    # is learned from right away.
    assert h.recorded() == [("b", None, True), ("a", None, False)]


def test_cascade_fatal_error_stops_it() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=["meh"], b=[BadRequestError()], c=["never"])
    with pytest.raises(BadRequestError):
        h.executor.run(decide(A, B, C, kind="cascade"), script, usage, stop=lambda c, v: False)
    assert script.calls == ["a", "b"]
    assert sorted(h.recorded()) == [("a", None, False), ("b", "BadRequestError", False)]


def test_cascade_all_failing() -> None:
    h = Harness(max_attempts=1)
    with pytest.raises(ExecutionError, match="cascade"):
        h.executor.run(
            decide(A, B, kind="cascade"), Script(a=[ValueError()], b=[ValueError()]), usage
        )


# ---------------------------------------------------------------- streaming
def chunks_of(*items: Item, closed: list[str] | None = None) -> Iterator[str]:
    try:
        for item in items:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if closed is not None:
            closed.append("closed")


def chunk_usage(candidate: Candidate, chunks: list[str]) -> Usage:
    return Usage(input_tokens=7, output_tokens=len(chunks))


def test_stream_yields_chunks_and_records_ttft_and_latency() -> None:
    h = Harness()
    started: list[str] = []
    finished: list[ExecutionResult[list[str]]] = []
    stream = h.executor.stream(
        decide(A, B),
        lambda c: chunks_of("He", "llo", "!"),
        chunk_usage,
        on_start=lambda c: started.append(c.name),
        on_finish=finished.append,
    )
    assert h.recorder.records == ()  # nothing runs before the first chunk is asked for
    assert list(stream) == ["He", "llo", "!"]
    assert started == ["a"]
    (result,) = finished
    fb = result.feedback
    assert fb.time_to_first_token_s == 1.0  # open + first chunk: one clock step
    assert fb.latency_s == 2.0  # start, first chunk, end
    assert (fb.input_tokens, fb.output_tokens) == (7, 3)
    assert result.value == ["He", "llo", "!"]
    assert result.reward == 0.8
    assert h.recorded() == [("a", None, False)]


def test_stream_estimates_output_from_string_chunks() -> None:
    h = Harness()
    out = list(
        h.executor.stream(
            decide(A), lambda c: chunks_of("abcd", "efgh", "i"), lambda c, ch: Usage()
        )
    )
    assert out == ["abcd", "efgh", "i"]
    fb = h.recorder.feedbacks[0]
    assert (fb.output_tokens, fb.tokens_estimated) == (3, True)


def test_stream_falls_back_before_the_first_chunk() -> None:
    h = Harness(max_attempts=2)
    opened: list[str] = []

    def open_stream(candidate: Candidate) -> Iterator[str]:
        opened.append(candidate.name)
        if candidate.name == "a":
            if len(opened) == 1:
                msg = "connect failed"
                raise ConnectionError(msg)
            return chunks_of(TimeoutError("first chunk never came"))
        return chunks_of("from", " b")

    started: list[str] = []
    out = list(
        h.executor.stream(
            decide(A, B), open_stream, chunk_usage, on_start=lambda c: started.append(c.name)
        )
    )
    assert out == ["from", " b"]
    assert opened == ["a", "a", "b"]
    assert started == ["b"]
    assert h.recorded() == [
        ("a", "ConnectionError", False),
        ("a", "TimeoutError", False),
        ("b", None, False),
    ]
    assert len(h.waits) == 1


def test_stream_error_after_the_first_chunk_is_recorded_and_reraised() -> None:
    h = Harness(max_attempts=3)
    closed: list[str] = []
    stream = h.executor.stream(
        decide(A, B),
        lambda c: chunks_of("partial", ConnectionError("dropped"), closed=closed),
        chunk_usage,
    )
    got: list[str] = []
    with pytest.raises(ConnectionError, match="dropped"):
        got.extend(stream)
    assert got == ["partial"]
    assert closed == ["closed"]
    # No retry and no fallback once the caller has seen a chunk.
    assert h.recorded() == [("a", "ConnectionError", False)]
    fb = h.recorder.feedbacks[0]
    assert fb.time_to_first_token_s == 1.0
    assert h.waits == []


def test_stream_closed_early_records_what_was_received() -> None:
    h = Harness()
    closed: list[str] = []
    finished: list[ExecutionResult[list[str]]] = []
    stream = h.executor.stream(
        decide(A),
        lambda c: chunks_of("one", "two", "three", closed=closed),
        chunk_usage,
        on_finish=finished.append,
        await_score=True,
    )
    assert next(stream) == "one"
    assert next(stream) == "two"
    stream.close()
    assert closed == ["closed"]
    assert h.recorded() == [("a", None, True)]
    fb = h.recorder.feedbacks[0]
    assert fb.output_tokens == 2
    assert fb.extra == (("closed_early", 1.0),)
    assert finished[0].value == ["one", "two"]
    assert finished[0].reward is None


def test_stream_break_in_a_for_loop_records_the_partial_answer() -> None:
    h = Harness()
    stream = h.executor.stream(decide(A), lambda c: chunks_of("1", "2", "3"), chunk_usage)
    for chunk in stream:
        if chunk == "1":
            break
    stream.close()  # what the garbage collector would do when the loop drops it
    assert h.recorder.feedbacks[0].output_tokens == 1


def test_empty_stream_is_a_success_without_ttft() -> None:
    h = Harness()
    assert list(h.executor.stream(decide(A), lambda c: chunks_of(), chunk_usage)) == []
    fb = h.recorder.feedbacks[0]
    assert fb.time_to_first_token_s is None
    assert fb.error is None
    assert fb.output_tokens == 0


def test_stream_fatal_error_before_first_chunk() -> None:
    h = Harness()
    stream = h.executor.stream(
        decide(A, B), lambda c: chunks_of(BadRequestError("nope")), chunk_usage
    )
    with pytest.raises(BadRequestError):
        next(stream)
    assert h.recorded() == [("a", "BadRequestError", False)]


def test_stream_all_failing() -> None:
    h = Harness(max_attempts=1)
    stream = h.executor.stream(decide(A, B), lambda c: chunks_of(ValueError()), chunk_usage)
    with pytest.raises(ExecutionError) as info:
        next(stream)
    assert len(info.value.attempts) == 2


# ---------------------------------------------------------------- async
async def test_arun_success_and_retry_with_async_sleep() -> None:
    h = Harness(max_attempts=3)
    script = Script(a=[RateLimitError(), "ok"])
    result = await h.executor.arun(decide(A, B), script.acall, usage)
    assert result.value == "ok"
    assert script.calls == ["a", "a"]
    assert h.waits == []
    assert len(h.async_waits) == 1
    assert 0.5 <= h.async_waits[0] <= 1.0
    assert h.recorded() == [("a", "RateLimitError", False), ("a", None, False)]
    assert result.feedback.latency_s == 1.0


async def test_arun_fallback_fatal_and_all_failing() -> None:
    h = Harness(max_attempts=1, max_fallbacks=1)
    script = Script(a=[ValueError()], b=["ok"])
    result = await h.executor.arun(decide(A, B, C), script.acall, usage)
    assert (result.value, result.decision.candidate) == ("ok", B)

    script = Script(a=[BadRequestError()], b=["never"])
    with pytest.raises(BadRequestError):
        await h.executor.arun(decide(A, B), script.acall, usage)
    assert script.calls == ["a"]

    script = Script(a=[ValueError()], b=[ValueError()], c=["never"])
    with pytest.raises(ExecutionError) as info:
        await h.executor.arun(decide(A, B, C), script.acall, usage)
    assert script.calls == ["a", "b"]
    assert len(info.value.attempts) == 2


class Rendezvous:
    """Each of ``n`` coroutines waits until all ``n`` arrived (asyncio.Barrier is 3.11+)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.event = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.n:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), timeout=10)


async def test_arun_ensemble_runs_members_concurrently() -> None:
    h = Harness(max_attempts=1)
    meeting = Rendezvous(3)

    async def call(candidate: Candidate) -> str:
        await meeting.wait()
        return candidate.name

    result = await h.executor.arun(
        decide(A, B, C, kind="ensemble"), call, usage, choose=lambda values: 2
    )
    assert result.value == "c"
    assert result.served_by == ("a", "b", "c")
    assert result.feedback.output_tokens == 3
    assert result.reward == 0.8


async def test_arun_cascade() -> None:
    h = Harness(max_attempts=1)
    script = Script(a=["no"], b=[TimeoutError()], c=["yes"])
    result = await h.executor.arun(
        decide(A, B, C, kind="cascade"), script.acall, usage, stop=lambda c, v: v == "yes"
    )
    assert result.value == "yes"
    assert script.calls == ["a", "b", "c"]
    assert result.served_by == ("a", "c")


async def test_arun_cancellation_records_the_in_flight_attempt() -> None:
    h = Harness()
    started = asyncio.Event()

    async def hang(candidate: Candidate) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(h.executor.arun(decide(A, B), hang, usage, prompt_text="abcd"))
    # Bounded: a run that fails before the call fails the test instead of hanging it.
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.recorded() == [("a", "CancelledError", False)]
    assert h.recorder.feedbacks[0].input_tokens == 1


async def test_arun_ensemble_cancellation_records_every_member() -> None:
    h = Harness()
    meeting = Rendezvous(2)

    async def hang(candidate: Candidate) -> str:
        await meeting.wait()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(h.executor.arun(decide(A, B, kind="ensemble"), hang, usage))
    await asyncio.wait_for(meeting.event.wait(), timeout=10)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(h.recorded()) == [("a", "CancelledError", False), ("b", "CancelledError", False)]


async def agen(*items: Item, closed: list[str] | None = None) -> AsyncIterator[str]:
    try:
        for item in items:
            await asyncio.sleep(0)
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if closed is not None:
            closed.append("closed")


async def test_astream_ttft_fallback_and_callbacks() -> None:
    h = Harness(max_attempts=1)
    started: list[str] = []
    finished: list[ExecutionResult[list[str]]] = []

    def open_stream(candidate: Candidate) -> AsyncIterator[str]:
        if candidate.name == "a":
            return agen(ConnectionError("no first chunk"))
        return agen("x", "y")

    out = [
        chunk
        async for chunk in h.executor.astream(
            decide(A, B),
            open_stream,
            chunk_usage,
            on_start=lambda c: started.append(c.name),
            on_finish=finished.append,
        )
    ]
    assert out == ["x", "y"]
    assert started == ["b"]
    assert h.recorded() == [("a", "ConnectionError", False), ("b", None, False)]
    fb = finished[0].feedback
    assert (fb.time_to_first_token_s, fb.latency_s, fb.output_tokens) == (1.0, 2.0, 2)
    assert [f.candidate for f in finished[0].attempts] == ["a", "b"]


async def test_astream_accepts_an_awaitable_stream_and_retries() -> None:
    h = Harness(max_attempts=2)
    calls: list[str] = []

    async def open_stream(candidate: Candidate) -> AsyncIterator[str]:
        calls.append(candidate.name)
        if len(calls) == 1:
            msg = "busy"
            raise RateLimitError(msg)
        return agen("ok")

    out = [c async for c in h.executor.astream(decide(A), open_stream, chunk_usage)]
    assert out == ["ok"]
    assert calls == ["a", "a"]
    assert len(h.async_waits) == 1


async def test_astream_error_after_first_chunk_and_early_close() -> None:
    h = Harness()
    closed: list[str] = []
    stream = h.executor.astream(
        decide(A, B), lambda c: agen("p", ConnectionError("drop"), closed=closed), chunk_usage
    )
    got: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            got.append(chunk)  # noqa: PERF401 - keeps what arrived before the error

    with pytest.raises(ConnectionError):
        await consume()
    assert got == ["p"]
    assert closed == ["closed"]
    assert h.recorded() == [("a", "ConnectionError", False)]

    h = Harness()
    closed = []
    early = h.executor.astream(decide(A), lambda c: agen("1", "2", "3", closed=closed), chunk_usage)
    assert await early.__anext__() == "1"
    await early.aclose()
    assert closed == ["closed"]
    assert h.recorded() == [("a", None, False)]
    assert h.recorder.feedbacks[0].extra == (("closed_early", 1.0),)


async def test_astream_cancellation_mid_stream() -> None:
    h = Harness()
    first = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "first"
        await asyncio.Event().wait()
        yield "never"

    async def consume() -> list[str]:
        got: list[str] = []
        async for chunk in h.executor.astream(decide(A), lambda c: slow(), chunk_usage):
            got.append(chunk)
            first.set()
        return got

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=10)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.recorded() == [("a", "CancelledError", False)]
    assert h.recorder.feedbacks[0].time_to_first_token_s == 1.0


# ---------------------------------------------------------------- with the real Router
class FirstPolicy(Policy):
    """Always the first offered candidate (a test double)."""

    name = "test_executor_first"

    def _select(self, context: Context) -> Choice:
        return Choice(index=0, probability=1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


def test_executor_records_into_the_router() -> None:
    from pickllm import Router

    router = Router([A, B], policy=FirstPolicy())
    ex = Executor(router, retry=RetryConfig(max_attempts=2, jitter_s=0.0), sleep=lambda s: None)
    decision = router.route("hello")
    script = Script(a=[TimeoutError(), TimeoutError()], b=["hi"])
    result = ex.run(decision, script, usage)
    assert result.value == "hi"
    assert result.reward is not None
    assert 0.0 < result.reward <= 1.0
    stats = router.stats()
    assert (stats["a"].calls, stats["a"].errors) == (2, 2)
    assert (stats["b"].calls, stats["b"].errors) == (1, 0)

    pending = router.route("score me later")
    waiting = ex.run(pending, Script(a=["answer"]), usage, await_score=True)
    assert waiting.reward is None
    assert router.feedback(pending.decision_id, 1.0) is not None


def test_cascade_delayed_score_joins_the_router() -> None:
    from pickllm import Router

    router = Router([A, B], policy=FirstPolicy())
    ex = Executor(router, retry=RetryConfig(max_attempts=1))
    routed = router.route("q")
    # The routed decision, made a cascade: record() takes only decisions of its router.
    decision = dataclasses.replace(
        routed, candidate=A, ranking=(A, B), plan=Plan(kind="cascade", members=(A, B))
    )
    result = ex.run(
        decision, Script(a=["no"], b=["yes"]), usage, stop=lambda c, v: v == "yes",
        await_score=True,
    )  # fmt: skip
    assert result.decision.candidate == B
    # The rejected answer was learned from at once; the accepted one waits for its score.
    assert router.stats()["a"].calls == 1
    reward = router.feedback(decision.decision_id, 0.9)
    assert reward is not None
    assert router.stats()["b"].calls == 1
