"""A seeded fault-injection suite over the Engine: fake models that time out, throttle, fail.

Every model is a fake (no network, no real waits): the engine's clock and sleep are
injected, a hung model blocks on a ``threading.Event`` until the test ends (its attempt is
abandoned after ``RetryConfig.timeout``), and every figure below is deterministic.

The figures asserted (1,000 requests each):

* with one healthy model among a hung one, a throttled one (429 + ``retry-after``) and a
  flaky one (503, mid-stream cuts), every request is answered except those whose error
  must surface (generic-class 400s, content-policy refusals, cuts after the first chunk),
  and each of those surfaces, as raised by the model;
* the hung model costs at most one timeout per cooldown window once its circuit opened;
* with ``cheapest`` and two dead models, the total backoff stays under 5% of the 4,001 s
  measured before circuit breakers existed.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, Feedback, Fixed, Router, Usage
from pickllm.engine import Engine, Request, RetryConfig
from pickllm.errors import BudgetExceededError, UnknownDecisionError

REQUESTS = 1_000
COOLDOWN_S = 30.0
# Real seconds a worker thread has to answer: generous, so a loaded machine never times
# out a healthy attempt (only the hung model, which blocks for HANG_S, must time out).
TIMEOUT_S = 0.1
HANG_S = 0.5


class HTTPError(Exception):
    """A generic SDK error with an HTTP status (httpx-style), and maybe a retry-after."""

    def __init__(self, status: int, message: str = "", retry_after: float | None = None):
        super().__init__(message or f"HTTP {status}")
        self.status_code = status
        self.headers = {} if retry_after is None else {"retry-after": str(retry_after)}


class CutError(ConnectionError):
    """The connection dropped in the middle of a stream."""


class Clock:
    """The engine's and router's clock; ``sleep`` advances it and sums the waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.advance(seconds)


class FaultyCalls:
    """The wrapper side of the engine, with one behaviour per model.

    ``hang`` blocks until released (its attempt times out); ``throttled`` answers 429 with
    ``retry-after``; ``flaky`` fails half its calls with a 503 and, streamed, cuts half its
    streams after two chunks; ``dead*`` always answer 503; the others answer. A request's
    ``kind`` makes every model refuse it: ``bad`` (a generic 400) or ``policy`` (a
    content-policy message).
    """

    def __init__(self, clock: Clock, release: threading.Event, seed: int) -> None:
        self.clock = clock
        self.release = release
        self.rng = np.random.default_rng(seed)
        self.kind = "ok"
        self.cut_after: list[str] | None = None
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _attempt(self, candidate: Candidate) -> None:
        name = candidate.name
        with self._lock:
            self.calls[name] += 1
        if name == "hang":
            self.clock.advance(TIMEOUT_S)
            # Long after the attempt's timeout (so it is abandoned), short enough that the
            # abandoned threads never fill the timeout pool.
            self.release.wait(HANG_S)
            return
        self.clock.advance(0.05 if name != "healthy" else 0.5)
        if self.kind == "bad":
            raise HTTPError(400, "invalid value for 'temperature'")
        if self.kind == "policy":
            raise HTTPError(400, "the response was filtered by our content policy")
        if name == "throttled":
            raise HTTPError(429, "slow down", retry_after=1.0)
        if name.startswith("dead") or (name == "flaky" and self.rng.random() < 0.5):
            raise HTTPError(503, "overloaded")

    def call(self, candidate: Candidate) -> str:
        self._attempt(candidate)
        return f"{candidate.name}: answer"

    async def acall(self, candidate: Candidate) -> str:
        return self.call(candidate)

    def stream(self, candidate: Candidate) -> Iterator[str]:
        self._attempt(candidate)
        chunks = [f"{candidate.name}:", " an", "swer"]
        if candidate.name == "flaky" and self.rng.random() < 0.5:
            self.cut_after = chunks[:2]
            yield from chunks[:2]
            msg = "connection reset mid-stream"
            raise CutError(msg)
        yield from chunks

    async def astream(self, candidate: Candidate) -> AsyncIterator[str]:
        for chunk in self.stream(candidate):
            yield chunk

    def usage(self, candidate: Candidate, answer: Any) -> Usage:
        del candidate, answer
        return Usage(input_tokens=10, output_tokens=5)

    def text(self, answer: Any) -> str:
        return str(answer)

    def chunks_usage(self, candidate: Candidate, chunks: list[str]) -> Usage:
        return self.usage(candidate, chunks)

    def chunks_text(self, chunks: list[str]) -> str:
        return "".join(chunks)

    def as_chunks(self, answer: Any) -> list[str]:
        return [str(answer)]


def engine(pool: list[Candidate], clock: Clock, **retry: Any) -> Engine:
    router = Router(pool, "cheapest", clock=clock, breaker_cooldown_s=COOLDOWN_S)
    config = RetryConfig(**retry)
    return Engine(router, retry=config, seed=0, clock=clock, sleep=clock.sleep)


@dataclass(frozen=True)
class Run:
    """The figures of the mixed-fault run."""

    answered: int
    surfaced: int
    must_surface: int
    wrong: list[str]
    hung_before_open: int
    hung: int
    windows: int
    circuits: dict[str, str]


@pytest.fixture(scope="module")
def mixed_run() -> Run:  # noqa: PLR0912 - one branch per outcome, kept together
    """1,000 requests over a hung, a throttled, a flaky and a healthy model (``cheapest``)."""
    clock = Clock()
    release = threading.Event()
    calls = FaultyCalls(clock, release, seed=12)
    pool = [
        Candidate(name="hang", input_price=0.1, output_price=0.1),
        Candidate(name="throttled", input_price=0.2, output_price=0.2),
        Candidate(name="flaky", input_price=0.3, output_price=0.3),
        Candidate(name="healthy", input_price=1.0, output_price=1.0),
    ]
    eng = engine(pool, clock, timeout=TIMEOUT_S)
    kinds = np.random.default_rng(7).choice(
        ["ok", "bad", "policy", "stream"], size=REQUESTS, p=[0.8, 0.05, 0.05, 0.1]
    )
    answered = surfaced = must_surface = 0
    wrong: list[str] = []
    hung_before_open = -1
    try:
        for kind in kinds:
            calls.kind = "ok" if kind == "stream" else str(kind)
            calls.cut_after = None
            request = Request(query="What is 2 + 2?")
            got: list[str] = []
            try:
                if kind == "stream":
                    got.extend(eng.stream(request, calls))
                else:
                    got.append(eng.run(request, calls).value)
            except HTTPError as exc:
                # The model's own error, as raised: never re-routed, never wrapped.
                if kind in {"bad", "policy"} and exc.status_code == 400:
                    surfaced += 1
                else:
                    wrong.append(f"{kind}: {exc!r}")
            except CutError:
                # A cut after the first chunk surfaces, with every chunk received first.
                if calls.cut_after is not None and got == calls.cut_after:
                    surfaced += 1
                else:
                    wrong.append(f"{kind}: cut after {got}")
            except Exception as exc:  # noqa: BLE001 - any other error is a failure here
                wrong.append(f"{kind}: {exc!r}")
            else:
                if kind in {"bad", "policy"}:
                    wrong.append(f"a {kind} request was answered: {got}")
                answered += 1
            if kind in {"bad", "policy"} or calls.cut_after is not None:
                must_surface += 1
            if hung_before_open < 0 and eng.router.stats()["hang"].circuit == "open":
                hung_before_open = calls.calls["hang"]
    finally:
        release.set()
    return Run(
        answered=answered,
        surfaced=surfaced,
        must_surface=must_surface,
        wrong=wrong,
        hung_before_open=hung_before_open,
        hung=calls.calls["hang"],
        windows=math.ceil(clock.now / COOLDOWN_S),
        circuits={name: s.circuit for name, s in eng.router.stats().items()},
    )


def test_one_healthy_model_answers_everything_that_must_not_surface(mixed_run: Run) -> None:
    assert mixed_run.wrong == []
    assert mixed_run.must_surface > 0
    assert mixed_run.surfaced == mixed_run.must_surface  # 100% of them surface
    assert mixed_run.answered == REQUESTS - mixed_run.must_surface  # 100% of the rest
    assert mixed_run.circuits["healthy"] == "closed"
    assert mixed_run.circuits["hang"] in {"open", "half_open"}


def test_a_hung_model_costs_at_most_one_timeout_per_cooldown_window(mixed_run: Run) -> None:
    assert mixed_run.hung_before_open <= 5  # the failures that open its circuit
    assert mixed_run.hung - mixed_run.hung_before_open <= mixed_run.windows


def test_cheapest_with_two_dead_models_backs_off_little() -> None:
    clock = Clock()
    calls = FaultyCalls(clock, threading.Event(), seed=3)
    pool = [
        Candidate(name="dead1", input_price=0.1, output_price=0.1),
        Candidate(name="dead2", input_price=0.2, output_price=0.2),
        Candidate(name="healthy", input_price=1.0, output_price=1.0),
    ]
    eng = engine(pool, clock)
    for _ in range(REQUESTS):
        assert eng.run(Request(query="Hi"), calls).value == "healthy: answer"
    backoff = sum(clock.waits)
    assert backoff < 0.05 * 4_001
    # Dead models are tried about once per cooldown window each, not 6,000 times.
    windows = math.ceil(clock.now / COOLDOWN_S)
    assert calls.calls["dead1"] + calls.calls["dead2"] <= 2 * 3 * (windows + 2)


async def test_async_calls_fall_back_from_the_hung_model_too() -> None:
    clock = Clock()
    release = threading.Event()
    calls = FaultyCalls(clock, release, seed=5)
    pool = [
        Candidate(name="hang", input_price=0.1, output_price=0.1),
        Candidate(name="healthy", input_price=1.0, output_price=1.0),
    ]
    eng = engine(pool, clock, timeout=TIMEOUT_S, max_attempts=1)

    async def hang_async(candidate: Candidate) -> str:
        if candidate.name == "hang":
            calls.calls["hang"] += 1
            clock.advance(TIMEOUT_S)
            await asyncio_sleep_forever()
        return calls.call(candidate)

    calls.acall = hang_async  # type: ignore[method-assign]
    try:
        for _ in range(200):
            assert (await eng.arun(Request(query="Hi"), calls)).value == "healthy: answer"
    finally:
        release.set()
    assert calls.calls["hang"] <= 5 + math.ceil(clock.now / COOLDOWN_S)


async def asyncio_sleep_forever() -> None:
    await asyncio.sleep(3600)


# ---------------------------------------------------------------------------- the router
class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


POOL = [
    Candidate(name="cheap", input_price=0.1, output_price=0.1),
    Candidate(name="dear", input_price=5.0, output_price=5.0),
]


def test_the_breaker_opens_probes_once_and_closes_on_success() -> None:
    tick = Tick()
    router = Router(POOL, "cheapest", clock=tick, breaker_failures=3, breaker_cooldown_s=10.0)
    for _ in range(3):
        router.record(router.route("q"), Feedback(error="APIConnectionError"))
    stats = router.stats()["cheap"]
    assert (stats.circuit, stats.consecutive_failures) == ("open", 3)
    assert not router.admits("cheap")
    d = router.route("q")
    assert [c.name for c in d.ranking] == ["dear"]  # skipped, also as a fallback
    tick.now = 10.0
    assert router.stats()["cheap"].circuit == "half_open"
    probe = router.route("q")
    assert probe.candidate.name == "cheap"  # one probe is offered...
    assert router.route("q").candidate.name == "dear"  # ...and only one
    router.record(probe, Feedback(error="APIConnectionError"))
    assert router.stats()["cheap"].circuit == "open"  # a failed probe re-opens it
    tick.now = 20.0
    probe = router.route("q")
    assert probe.candidate.name == "cheap"
    router.record(probe, Feedback(latency_s=0.1))
    stats = router.stats()["cheap"]
    assert (stats.circuit, stats.consecutive_failures) == ("closed", 0)


def test_a_probe_that_never_runs_is_offered_again_after_a_cooldown() -> None:
    tick = Tick()
    router = Router(POOL, "cheapest", clock=tick, breaker_failures=1, breaker_cooldown_s=10.0)
    router.record(router.route("q"), Feedback(error="Timeout"))
    tick.now = 10.0
    assert router.route("q").candidate.name == "cheap"  # the probe, never recorded
    tick.now = 15.0
    assert router.route("q").candidate.name == "dear"
    tick.now = 20.0
    assert router.route("q").candidate.name == "cheap"


def test_every_model_open_offers_them_all_and_a_pin_bypasses_the_breaker() -> None:
    router = Router(POOL, "cheapest", breaker_failures=1)
    for name in ("cheap", "dear"):
        router.record(router.route("q", pin=name), Feedback(error="Timeout"))
    assert {s.circuit for s in router.stats().values()} == {"open"}
    assert [c.name for c in router.route("q").ranking] == ["cheap", "dear"]
    router2 = Router(POOL, "cheapest", breaker_failures=1)
    router2.record(router2.route("q"), Feedback(error="Timeout"))
    assert router2.route("q", pin="cheap").candidate.name == "cheap"


def test_refusals_do_not_count_against_a_model() -> None:
    router = Router(POOL, "cheapest", breaker_failures=2)
    for kind in ("fatal", "content_policy", "context_length"):
        router.record(router.route("q"), Feedback(error="HTTPError", error_kind=kind))
    assert router.stats()["cheap"].circuit == "closed"
    assert router.stats()["cheap"].consecutive_failures == 0


def test_no_breaker_when_turned_off() -> None:
    router = Router(POOL, "cheapest", breaker_failures=None)
    for _ in range(20):
        router.record(router.route("q"), Feedback(error="Timeout"))
    assert router.route("q").candidate.name == "cheap"
    assert router.stats()["cheap"].circuit == "closed"


def test_budget_raises_then_resets_with_the_period() -> None:
    tick = Tick()
    router = Router(POOL, "cheapest", clock=tick, budget_usd=1.0, budget_period_s=60.0)
    router.record(router.route("q"), Feedback(cost_usd=0.6))
    router.record(router.route("q"), Feedback(cost_usd=0.6))
    spend = router.spend()
    assert (spend.spent_usd, spend.remaining_usd, spend.exceeded) == (1.2, 0.0, True)
    with pytest.raises(BudgetExceededError, match=r"budget of 1\.0 USD per 60 s is spent"):
        router.route("q")
    tick.now = 60.0
    assert router.spend().spent_usd == 0.0
    assert router.route("q").candidate.name == "cheap"


def test_budget_per_key_sends_that_key_to_the_cheapest_model() -> None:
    router = Router(POOL, Fixed(model="dear"), budget_per_key_usd=1.0)
    router.record(router.route("q", key="k"), Feedback(cost_usd=2.0))
    router.record(router.route("q", key="other"), Feedback(cost_usd=0.5))
    assert router.spend("k").exceeded
    assert not router.spend("other").exceeded
    assert router.spend().limit_usd is None


def test_on_budget_cheapest_offers_only_the_cheapest() -> None:
    router = Router(POOL, Fixed(model="dear"), budget_usd=1.0, on_budget="cheapest")
    router.record(router.route("q"), Feedback(cost_usd=2.0))
    d = router.route("q")
    assert [c.name for c in d.ranking] == ["cheap"]
    assert d.probability == 1.0
    router.record(d, Feedback(cost_usd=0.0))
    with pytest.raises(BudgetExceededError):
        Router(POOL, budget_per_key_usd=0.0).route("q", key="k")


def test_feedback_for_a_failed_a_scored_and_an_unknown_call_is_refused_with_its_reason() -> None:
    router = Router(POOL, "cheapest")
    failed = router.route("q")
    router.record(failed, Feedback(error="Timeout"), await_score=True)
    assert router.pending() == 0  # a failed call leaves the table at once
    with pytest.raises(UnknownDecisionError, match="failed") as info:
        router.feedback(failed.decision_id, 1.0)
    assert info.value.reason == "failed"
    early = router.route("q")
    assert router.feedback(early.decision_id, 0.5) is None
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback(early.decision_id, 0.9)  # a second early score
    assert info.value.reason == "scored"
    assert router.record(early, Feedback(latency_s=0.1), await_score=True) is not None
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback(early.decision_id, 0.9)
    assert info.value.reason == "scored"
    learned = router.route("q")
    router.record(learned, Feedback(latency_s=0.1))
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback(learned.decision_id, 0.9)
    assert info.value.reason == "learned"
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback("never-issued", 0.9)
    assert info.value.reason == "unknown"
    assert router.release("never-issued") is None


def test_save_cleans_the_temporary_files_of_interrupted_saves(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    stray = tmp_path / ".router.json.abc123.tmp"
    stray.write_text("{half a state")
    other = tmp_path / ".other.json.abc123.tmp"
    other.write_text("not ours")
    Router(POOL).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.abc123.tmp", "router.json"]
    assert Router.load(path).names == {"cheap", "dear"}


def test_saved_breaker_and_budget_settings_are_restored(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    Router(
        POOL, breaker_failures=2, breaker_cooldown_s=5.0, budget_usd=3.0, on_budget="cheapest"
    ).save(path)
    loaded = Router.load(path)
    assert (loaded.breaker_failures, loaded.breaker_cooldown_s) == (2, 5.0)
    assert (loaded.budget_usd, loaded.on_budget) == (3.0, "cheapest")
