"""Feedback that reaches its decisions: aliases naming several calls, track() blocks, auto."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

from pickllm import Candidate, ConfigError, Router, UnknownDecisionError
from pickllm.engine import Engine, Request, RetryConfig, RoutingSettings
from pickllm.testing import EchoCalls

POOL = [
    Candidate(name="cheap", input_price=0.1, output_price=0.4),
    Candidate(name="dear", input_price=3.0, output_price=15.0),
]


def engine(policy: str = "thompson", **kwargs: Any) -> Engine:
    return Engine(
        Router(POOL, policy=policy, seed=0),
        await_feedback=True,
        retry=RetryConfig(max_attempts=1, jitter_s=0.0),
        sleep=lambda _: None,
        **kwargs,
    )


def run(e: Engine, query: str = "Hi", **calls: Any) -> str:
    return e.run(Request(query=query), EchoCalls(query=query, **calls)).decision.decision_id


# ====================================================================== aliases
def test_an_alias_may_name_several_decisions_and_all_take_the_score() -> None:
    e = engine()
    first, second = run(e), run(e)
    e.alias("chain-run", first)
    e.alias("chain-run", second)
    e.alias("chain-run", second)  # twice: kept once
    assert e.decision_ids("chain-run") == [first, second]
    assert e.decision_id("chain-run") == second  # the latest
    assert e.router.pending() == 2
    assert e.feedback("chain-run", 1.0) is not None
    assert e.router.pending() == 0
    with pytest.raises(UnknownDecisionError) as info:
        e.feedback("chain-run", 1.0)
    assert info.value.reason == "scored"


def test_feedback_each_skips_what_waits_for_nothing() -> None:
    e = engine()
    scored, waiting = run(e), run(e)
    assert e.feedback(scored, 0.2) is not None
    reward = e.feedback_each([scored, waiting], 0.9)
    assert reward is not None
    assert e.router.pending() == 0
    with pytest.raises(
        UnknownDecisionError,
        match=r"^no routed call to give feedback to: none was made in this block$",
    ):
        e.feedback_each([], 0.9)


def test_the_decisions_per_alias_are_bounded() -> None:
    e = engine(max_aliases=2)
    ids = [run(e) for _ in range(3)]
    for decision_id in ids:
        e.alias("agent-run", decision_id)
    assert e.decision_ids("agent-run") == ids[1:]


# ====================================================================== track()
def test_track_collects_the_decisions_of_its_engine_only() -> None:
    e, other = engine(), engine()
    run(e, "before")
    with e.track() as outer:
        run(e, "one")
        with e.track() as inner:
            run(e, "two")
        run(other, "another engine")
    run(e, "after")  # the blocks are closed: neither collects it
    assert len(outer) == 2
    assert inner.decision_ids == outer.decision_ids[1:]
    assert outer.feedback(0.5) is not None
    assert e.router.pending() == 2  # "before" and "after"
    assert other.router.pending() == 1


def test_track_sees_threads_only_with_a_copied_context() -> None:
    e = engine()
    with e.track() as tracked:
        context = contextvars.copy_context()
        copied = threading.Thread(target=context.run, args=(run, e, "copied"))
        plain = threading.Thread(target=run, args=(e, "plain"))  # a fresh context
        for thread in (copied, plain):
            thread.start()
            thread.join()
    assert len(tracked) == 1
    assert e.router.pending() == 2


async def test_async_track_sees_its_tasks_and_not_others() -> None:
    e = engine()
    started = asyncio.Event()
    release = asyncio.Event()

    async def outside() -> str:
        started.set()
        await release.wait()
        return (await e.arun(Request(query="x"), EchoCalls())).decision.decision_id

    task = asyncio.create_task(outside())  # created before the block: not tracked
    await started.wait()
    async with e.track() as tracked:
        answers = await asyncio.gather(
            *(e.arun(Request(query=q), EchoCalls(query=q)) for q in ("a", "b"))
        )
        release.set()
        outsider = await task
    assert tracked.decision_ids == [a.decision.decision_id for a in answers]
    assert outsider not in tracked.decision_ids


def test_failed_calls_in_a_block_are_left_out() -> None:
    e = Engine(Router(POOL, policy="cheapest"), await_feedback=True)
    with e.track() as tracked:
        with pytest.raises(Exception):  # noqa: B017 - every model fails
            run(e, fail={"cheap": ValueError("x"), "dear": ValueError("y")})
        run(e)
    assert len(tracked) == 2
    assert tracked.feedback(1.0) is not None


def test_a_block_cannot_be_entered_twice() -> None:
    block = engine().track()
    message = r"^this track\(\) block is already open; call track\(\) again for another block$"
    with block, pytest.raises(ConfigError, match=message), block:
        pass


# ====================================================================== await_feedback="auto"
def test_await_feedback_auto_waits_only_without_an_evaluator() -> None:
    settings = RoutingSettings(cost=0)
    assert settings.await_feedback == "auto"
    assert settings.build_engine(["a", "b"], {}).await_feedback is True
    with_evaluator = RoutingSettings(cost=0, evaluator=lambda prompt, answer, **kw: 1.0)
    assert with_evaluator.build_engine(["a", "b"], {}).await_feedback is False
    adapted = RoutingSettings(cost=0).build_engine(
        ["a", "b"], {}, evaluator=lambda prompt, answer, **kw: 1.0
    )
    assert adapted.await_feedback is False
    both = RoutingSettings(cost=0, await_feedback=True, evaluator=lambda prompt, answer, **kw: None)
    assert both.build_engine(["a"], {}).await_feedback is True
    assert (
        RoutingSettings(cost=0, await_feedback=False).build_engine(["a"], {}).await_feedback
        is False
    )


def test_pending_bounds_reach_the_router() -> None:
    e = RoutingSettings(cost=0, max_pending=7, pending_ttl_s=12.5).build_engine(["a"], {})
    assert (e.router.max_pending, e.router.pending_ttl_s) == (7, 12.5)
