"""Reliability of the attempt machine: timeouts, deadlines, retry-after, error kinds."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from pickllm import Candidate, Decision, ExecutionError, MemoryRecorder, Usage
from pickllm.engine import ErrorKind, Executor, RetryConfig
from pickllm.errors import AttemptTimeoutError, DeadlineExceededError

A = Candidate(name="a", max_context_tokens=8_000)
B = Candidate(name="b", max_context_tokens=4_000)
C = Candidate(name="c", max_context_tokens=128_000)


def decide(*pool: Candidate) -> Decision:
    return Decision(
        decision_id="d", candidate=pool[0], ranking=pool, probability=1.0, policy="fixed"
    )


def usage(candidate: Candidate, value: Any) -> Usage:
    del candidate, value
    return Usage(input_tokens=3, output_tokens=2)


class HTTPError(Exception):
    """A generic SDK error carrying an HTTP status, the way httpx-style errors do."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None):
        super().__init__(message or f"HTTP {status}")
        self.status_code = status
        self.headers = headers or {}


class Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers = {"retry-after": "2"}


class WrappedError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__("wrapped")
        self.response = Response(status)


def executor(**retry: Any) -> tuple[Executor, MemoryRecorder, list[float]]:
    rec = MemoryRecorder()
    waits: list[float] = []
    retry.setdefault("jitter_s", 0.0)
    ex = Executor(rec, retry=RetryConfig(**retry), sleep=waits.append, seed=0)
    return ex, rec, waits


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (HTTPError(400), ErrorKind.FATAL),
        (HTTPError(401), ErrorKind.FATAL),
        (HTTPError(404), ErrorKind.FATAL),
        (HTTPError(422), ErrorKind.FATAL),
        (HTTPError(408), ErrorKind.TRANSIENT),
        (HTTPError(429), ErrorKind.TRANSIENT),
        (HTTPError(503), ErrorKind.TRANSIENT),
        (WrappedError(500), ErrorKind.TRANSIENT),
        (WrappedError(403), ErrorKind.FATAL),
        (HTTPError(418), ErrorKind.OTHER),
        (ValueError("nope"), ErrorKind.OTHER),
        (
            HTTPError(400, "Your request was rejected by our content policy"),
            ErrorKind.CONTENT_POLICY,
        ),
        (HTTPError(400, "This model's maximum context length is 8192"), ErrorKind.CONTEXT_LENGTH),
        (AttemptTimeoutError("slow"), ErrorKind.TRANSIENT),
    ],
)
def test_errors_are_classified_by_class_status_and_message(
    error: Exception, kind: ErrorKind
) -> None:
    assert RetryConfig().classify(error) is kind


def test_a_generic_400_surfaces_and_is_not_rerouted() -> None:
    ex, rec, _ = executor()
    calls: list[str] = []

    def call(c: Candidate) -> str:
        calls.append(c.name)
        raise HTTPError(400)

    with pytest.raises(HTTPError):
        ex.run(decide(A, B), call, usage)
    assert calls == ["a"]
    assert [fb.error for fb in rec.feedbacks] == ["HTTPError"]


def test_a_generic_429_is_retried_honouring_retry_after() -> None:
    ex, _, waits = executor(max_attempts=3, initial_wait_s=0.1)
    outcomes: list[Any] = [HTTPError(429, headers={"retry-after": "1.5"}), "ok"]

    def call(c: Candidate) -> str:
        del c
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return str(out)

    assert ex.run(decide(A, B), call, usage).value == "ok"
    assert waits == [1.5]


def test_a_retry_after_longer_than_max_wait_falls_back_at_once() -> None:
    ex, _, waits = executor(max_attempts=3, max_wait_s=1.0)

    def call(c: Candidate) -> str:
        if c.name == "a":
            raise HTTPError(429, headers={"retry-after": "30"})
        return c.name

    assert ex.run(decide(A, B), call, usage).value == "b"
    assert waits == []


def test_content_policy_surfaces_by_default_and_reroutes_when_asked() -> None:
    refusal = HTTPError(400, "flagged by the content_filter")

    def call(c: Candidate) -> str:
        if c.name == "a":
            raise refusal
        return c.name

    ex, _, _ = executor()
    with pytest.raises(HTTPError, match="content_filter"):
        ex.run(decide(A, B, C), call, usage)
    ex, _, _ = executor(content_policy_fallbacks=("c",))
    assert ex.run(decide(A, B, C), call, usage).value == "c"


def test_context_length_falls_back_to_a_larger_window() -> None:
    ex, _, _ = executor()
    calls: list[str] = []

    def call(c: Candidate) -> str:
        calls.append(c.name)
        if c.name == "a":
            raise HTTPError(400, "context_length_exceeded")
        return c.name

    # b's window (4k) is smaller than a's (8k): it is skipped.
    assert ex.run(decide(A, B, C), call, usage).value == "c"
    assert calls == ["a", "c"]


def test_a_hung_sync_attempt_times_out_and_falls_back() -> None:
    release = threading.Event()
    ex, rec, _ = executor(max_attempts=1, timeout=0.05)

    def call(c: Candidate) -> str:
        if c.name == "a":
            release.wait(10)
            return "too late"
        return c.name

    try:
        result = ex.run(decide(A, B), call, usage)
    finally:
        release.set()
    assert result.value == "b"
    assert [(fb.candidate, fb.error) for fb in rec.feedbacks] == [
        ("a", "AttemptTimeoutError"),
        ("b", None),
    ]


async def test_a_hung_async_attempt_is_cancelled_and_falls_back() -> None:
    ex, rec, _ = executor(max_attempts=1, timeout=0.05)
    cancelled: list[str] = []

    async def call(c: Candidate) -> str:
        if c.name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(c.name)
                raise
        return c.name

    result = await ex.arun(decide(A, B), call, usage)
    assert result.value == "b"
    assert cancelled == ["a"]
    assert rec.feedbacks[0].error == "AttemptTimeoutError"


async def test_a_stream_that_stalls_before_its_first_chunk_falls_back() -> None:
    ex, rec, _ = executor(max_attempts=1, timeout=0.05)

    async def open_stream(c: Candidate) -> Any:
        if c.name == "a":
            await asyncio.sleep(10)
        yield f"{c.name}-1"
        yield f"{c.name}-2"

    chunks = [x async for x in ex.astream(decide(A, B), open_stream, lambda c, v: Usage())]
    assert chunks == ["b-1", "b-2"]
    assert rec.feedbacks[0].error == "AttemptTimeoutError"


def test_the_deadline_bounds_the_whole_call() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rec = MemoryRecorder()
    ex = Executor(
        rec,
        retry=RetryConfig(max_attempts=5, initial_wait_s=1.0, jitter_s=0.0, deadline=2.5),
        clock=clock,
        sleep=sleep,
    )

    def call(c: Candidate) -> str:
        now[0] += 0.5
        raise TimeoutError(c.name)

    with pytest.raises(DeadlineExceededError, match=r"deadline of 2.5 s passed") as info:
        ex.run(decide(A, B), call, usage)
    assert isinstance(info.value, ExecutionError)
    assert isinstance(info.value, TimeoutError)
    # 0.5 call + 1.0 wait + 0.5 call + 0.5 (wait cut to what is left): no third call.
    assert len(info.value.attempts) == 2
    assert now[0] == pytest.approx(2.5)


def test_timeouts_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RetryConfig(timeout=0)
    with pytest.raises(ValueError, match="deadline"):
        RetryConfig(deadline=float("inf"))


def test_a_sync_generator_stream_that_stalls_mid_way_times_out_and_is_recorded() -> None:
    release = threading.Event()
    ex, rec, _ = executor(max_attempts=1, timeout=0.05)

    def open_stream(c: Candidate) -> Any:
        yield "x"
        release.wait(10)
        yield "y"

    got: list[str] = []
    try:
        with pytest.raises(AttemptTimeoutError):
            got.extend(ex.stream(decide(A), open_stream, usage))
    finally:
        release.set()
    assert got == ["x"]
    assert [(fb.candidate, fb.error) for fb in rec.feedbacks] == [("a", "AttemptTimeoutError")]
