"""The engine: route -> execute -> evaluate -> record, sync, async and streamed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pickllm import Candidate, ConfigError, NoCandidateError, Router, UnknownDecisionError
from pickllm.engine import Engine, Request, RetryConfig, RoutingSettings
from pickllm.engine.settings import split_seed
from pickllm.policies.base import Choice, Policy
from pickllm.testing import EchoCalls
from pickllm.types import Context, Decision

CHEAP = Candidate(name="cheap", input_price=0.1, output_price=0.4)
DEAR = Candidate(name="dear", input_price=3.0, output_price=15.0)


class Ticker:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def engine(policy: Any = "cheapest", **kwargs: Any) -> Engine:
    router = Router([CHEAP, DEAR], policy=policy, clock=Ticker())
    kwargs.setdefault("retry", RetryConfig(max_attempts=1, jitter_s=0.0))
    return Engine(router, clock=Ticker(), sleep=lambda _: None, **kwargs)


def test_run_routes_executes_and_learns_at_once_without_evaluator() -> None:
    e = engine()
    answer = e.run(Request(query="Hi there"), EchoCalls(query="Hi there"))
    assert answer.value == "cheap: Hi there"
    assert answer.model == "cheap"
    info = answer.info()
    assert info["decision_id"] == answer.decision.decision_id
    assert (info["model"], info["plan"], info["attempts"]) == ("cheap", "single", 1)
    stats = e.router.stats()["cheap"]
    assert stats.calls == 1
    assert stats.mean_reward == pytest.approx(answer.result.reward)
    assert e.router.pending() == 0


def test_fallback_is_recorded_and_the_fallback_answers() -> None:
    e = engine()
    calls = EchoCalls(fail={"cheap": RuntimeError("down")})
    answer = e.run(Request(query="Hi"), calls)
    assert calls.calls == ["cheap", "dear"]
    assert answer.model == "dear"
    assert answer.info()["chosen"] == "cheap"
    stats = e.router.stats()
    assert (stats["cheap"].errors, stats["dear"].errors) == (1, 0)


def test_pin_bypasses_the_policy_with_probability_one_and_no_fallback() -> None:
    e = engine()
    routed: list[Decision] = []
    answer = e.run(Request(query="Hi", pin="dear"), EchoCalls(), on_route=routed.append)
    assert routed == [answer.decision]
    assert answer.model == "dear"
    assert answer.decision.probability == 1.0
    assert answer.decision.ranking == (DEAR,)
    with pytest.raises(ConfigError, match="no candidate named 'gpt'"):
        e.run(Request(query="Hi", pin="gpt"), EchoCalls())


def test_pin_that_cannot_serve_the_call_is_refused() -> None:
    router = Router([CHEAP, Candidate(name="dumb", tool_calling=False)], policy="cheapest")
    e = Engine(router)
    with pytest.raises(NoCandidateError, match="'dumb' cannot serve this call"):
        e.run(Request(query="Hi", pin="dumb", needs_tool_calling=True), EchoCalls())


def test_a_tool_loop_stays_on_the_model_that_started_it() -> None:
    e = engine()
    answer = e.run(Request(query="Hi", tool_loop_model="dear"), EchoCalls())
    assert answer.model == "dear"
    # A model no longer in the pool does not pin: the policy routes.
    answer = e.run(Request(query="Hi", tool_loop_model="gone"), EchoCalls())
    assert answer.model == "cheap"


def test_inline_evaluator_scores_the_query_and_the_answer() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def judge(prompt: str, answer: str, **kwargs: Any) -> float:
        seen.append((prompt, answer, kwargs))
        return 1.0

    e = engine(evaluator=judge)
    request = Request(query="Q?", prompt="system\nQ?", evaluator_kwargs={"messages": ["m"]})
    answer = e.run(request, EchoCalls(query="Q?"))
    assert seen == [
        (
            "Q?",
            "cheap: Q?",
            {
                "model": "cheap",
                "decision_id": answer.decision.decision_id,
                "raw_answer": "cheap: Q?",
                "messages": ["m"],
            },
        )
    ]
    assert e.router.pending() == 0
    assert e.router.stats()["cheap"].mean_reward > 0
    assert answer.result.reward is None  # it waited for the score


@pytest.mark.parametrize("outcome", [None, "raise"])
def test_an_unscored_answer_is_learned_from_at_once(outcome: str | None) -> None:
    def judge(prompt: str, answer: str) -> float | None:
        if outcome == "raise":
            raise RuntimeError("judge down")
        return None

    e = engine(evaluator=judge)
    e.run(Request(query="Hi"), EchoCalls())
    assert e.router.pending() == 0
    assert e.router.state_dict()["stats"]["cheap"]["rewarded"] == 1


def test_await_feedback_keeps_the_call_waiting_for_the_users_score() -> None:
    e = engine(await_feedback=True)
    answer = e.run(Request(query="Hi"), EchoCalls())
    assert e.router.pending() == 1
    assert e.router.state_dict()["stats"]["cheap"]["rewarded"] == 0
    reward = e.feedback(answer.decision.decision_id, 1.0)
    assert reward is not None
    assert e.router.pending() == 0


def test_feedback_by_alias_and_unknown_ids() -> None:
    e = engine(await_feedback=True, max_aliases=1)
    first = e.run(Request(query="Hi"), EchoCalls())
    e.alias("run-1", first.decision.decision_id)
    assert e.decision_id("run-1") == first.decision.decision_id
    second = e.run(Request(query="Hi"), EchoCalls())
    e.alias("run-2", second.decision.decision_id)
    with pytest.raises(UnknownDecisionError, match="'run-1' is not pending: this router never"):
        e.feedback("run-1", 1.0)  # forgotten: only one alias is kept
    assert e.feedback("run-2", 0.5) is not None


class Ensemble(Policy):
    """Runs both candidates; votes with the member weights it was given."""

    name = "ensemble-stub"

    def __init__(self, *, weights: tuple[float, ...] = (0.98, 0.02, 0.02)) -> None:
        super().__init__(seed=0)
        self.weights = weights
        self.votes: list[tuple[list[str], list[float] | None]] = []

    def _select(self, context: Context) -> Choice:
        members = range(len(context.candidates))
        return Choice(index=0, probability=1.0, members=tuple(members), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        del decision, reward

    def member_weights(self, decision: Decision) -> list[float]:
        return list(self.weights[: len(decision.members)])

    def aggregate(self, answers: Sequence[str], weights: Sequence[float] | None = None) -> int:
        self.votes.append((list(answers), None if weights is None else list(weights)))
        w = list(weights) if weights is not None else [1.0] * len(answers)
        totals: dict[str, float] = {}
        for answer, weight in zip(answers, w, strict=True):
            totals[answer] = totals.get(answer, 0.0) + weight
        best = max(totals, key=lambda a: totals[a])
        return answers.index(best)


class Votes(EchoCalls):
    """Three models answering A, B, B."""

    def _answer(self, candidate: Candidate) -> str:
        self.calls.append(candidate.name)
        return {"a": "A", "b": "B", "c": "B"}[candidate.name]


def test_an_ensemble_vote_uses_the_policys_member_weights() -> None:
    pool = [Candidate(name=n) for n in "abc"]
    policy = Ensemble()
    e = Engine(Router(pool, policy=policy), await_feedback=True)
    answer = e.run(Request(query="?"), Votes())
    assert policy.votes == [(["A", "B", "B"], [0.98, 0.02, 0.02])]
    assert answer.value == "A"
    assert answer.model == "a"
    # Only the member whose answer is returned waits for the score.
    assert e.router.state_dict()["stats"]["b"]["rewarded"] == 1
    assert e.router.state_dict()["stats"]["a"]["rewarded"] == 0
    e.feedback(answer.decision.decision_id, 1.0)
    assert e.router.state_dict()["stats"]["a"]["rewarded"] == 1


def test_streaming_a_plan_emits_the_returned_answer_as_chunks() -> None:
    pool = [Candidate(name=n) for n in "abc"]
    e = Engine(Router(pool, policy=Ensemble(weights=(0.1, 0.5, 0.5))))
    finished: list[Any] = []
    chunks = list(e.stream(Request(query="?"), Votes(), on_finish=finished.append))
    assert chunks == ["B"]
    assert finished[0].value == ["B"]
    assert finished[0].model == "b"


def test_stream_records_and_evaluates_once_the_consumer_is_done() -> None:
    scores: list[str] = []

    def judge(prompt: str, answer: str) -> float:
        scores.append(answer)
        return 0.5

    e = engine(evaluator=judge)
    finished: list[Any] = []
    stream = e.stream(Request(query="a b c"), EchoCalls(query="a b c"), on_finish=finished.append)
    assert next(stream) == "cheap: "
    assert e.router.stats()["cheap"].calls == 0  # nothing recorded mid-stream
    assert list(stream) == ["a ", "b ", "c"]
    assert scores == ["cheap: a b c"]
    assert finished[0].info()["time_to_first_token_s"] > 0
    assert e.router.stats()["cheap"].calls == 1
    assert e.router.pending() == 0


async def test_arun_and_astream_follow_the_same_path() -> None:
    scored: list[str] = []

    async def judge(prompt: str, answer: str) -> float:
        scored.append(answer)
        return 1.0

    e = engine(evaluator=judge)
    answer = await e.arun(Request(query="x y"), EchoCalls(query="x y"))
    assert answer.value == "cheap: x y"
    chunks = [c async for c in e.astream(Request(query="x y"), EchoCalls(query="x y"))]
    assert chunks == ["cheap: ", "x ", "y"]
    assert scored == ["cheap: x y", "cheap: x y"]
    assert e.router.stats()["cheap"].calls == 2
    assert e.router.pending() == 0


async def test_astream_of_a_plan_and_a_blocking_policy_routes_off_the_loop() -> None:
    pool = [Candidate(name=n) for n in "abc"]

    class BlockingEnsemble(Ensemble):
        blocking = True

    policy = BlockingEnsemble()
    e = Engine(Router(pool, policy=policy))
    chunks = [c async for c in e.astream(Request(query="?"), Votes())]
    assert chunks == ["A"]
    answer = await asyncio.wait_for(e.arun(Request(query="?"), Votes()), timeout=10)
    assert answer.value == "A"


def test_engine_arguments_are_checked() -> None:
    router = Router([CHEAP], policy="cheapest")
    with pytest.raises(TypeError, match="router must be a pickllm Router"):
        Engine("router")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="await_feedback must be a bool, got 'yes'"):
        Engine(router, await_feedback="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_aliases must be an int >= 0, got -1"):
        Engine(router, max_aliases=-1)


# ---------------------------------------------------------------- settings
def test_split_seed_gives_independent_reproducible_generators() -> None:
    assert split_seed(None) == (None, None)
    first = [g.random() for g in split_seed(7) if g is not None]
    again = [g.random() for g in split_seed(7) if g is not None]
    assert len(first) == 2
    assert first == again
    assert first[0] != first[1]


def test_settings_build_the_same_engine_for_the_same_seed() -> None:
    def decisions(seed: int) -> list[str]:
        e = RoutingSettings(
            prices={"cheap": (0.1, 0.4), "dear": (3.0, 15.0)}, policy="random", seed=seed
        ).build_engine(["cheap", "dear"], {})
        return [e.run(Request(query="Hi"), EchoCalls()).model for _ in range(40)]

    assert decisions(3) == decisions(3)
    assert decisions(3) != decisions(4)
    assert set(decisions(3)) == {"cheap", "dear"}


def test_settings_check_prices_capabilities_and_routers() -> None:
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['dear'\]"):
        RoutingSettings(prices={"cheap": (0.1, 0.4)}).build_engine(["cheap", "dear"], {})
    with pytest.raises(ConfigError, match=r"prices names \['gpt'\]"):
        RoutingSettings(prices={"cheap": (0, 0), "gpt": (1, 1)}, cost=0).build_engine(["cheap"], {})
    with pytest.raises(ConfigError, match="capabilities names 'gpt'"):
        RoutingSettings(cost=0, capabilities={"gpt": {}}).build_engine(["cheap"], {})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['vision'\]"):
        RoutingSettings(cost=0, capabilities={"cheap": {"vision": True}}).build_engine(
            ["cheap"], {}
        )
    with pytest.raises(ConfigError, match="at least one model"):
        RoutingSettings(cost=0).build_engine([], {})
    router = Router([CHEAP], policy="cheapest")
    with pytest.raises(ConfigError, match="are not the models"):
        RoutingSettings(router=router).build_engine(["dear"], {})
    with pytest.raises(ConfigError, match=r"\['policy'\] cannot be given together with router"):
        RoutingSettings(router=router, policy="ucb1").build_engine(["cheap"], {})


def test_settings_detected_capabilities_are_overridden_by_the_users() -> None:
    e = RoutingSettings(cost=0, capabilities={"dear": {"tool_calling": True}}).build_engine(
        ["cheap", "dear"],
        {"cheap": {"tool_calling": False}, "dear": {"tool_calling": False}},
    )
    assert [c.tool_calling for c in e.router.candidates] == [False, True]
    decision = e.route(Request(query="Hi", needs_tool_calling=True))
    assert decision.candidate.name == "dear"
    assert decision.ranking == (e.router.candidate("dear"),)


def test_context_windows_are_measured_only_when_a_model_declares_one() -> None:
    small = Candidate(name="small", max_context_tokens=10)
    e = Engine(Router([small, DEAR], policy="cheapest"))
    long_prompt = "word " * 200
    assert e.route(Request(query=long_prompt)).candidate.name == "dear"
    assert e.route(Request(query="short")).candidate.name == "small"


def test_a_tool_calling_turn_runs_one_model_of_a_plan() -> None:
    pool = [Candidate(name=n) for n in "abc"]
    e = Engine(Router(pool, policy=Ensemble()))
    calls = Votes()
    answer = e.run(Request(query="?", needs_tool_calling=True), calls)
    assert calls.calls == ["a"]
    assert answer.info()["plan"] == "single"
    assert [c.name for c in answer.decision.ranking] == ["a", "b", "c"]


def test_a_wrapper_can_adapt_the_evaluator() -> None:
    settings = RoutingSettings(cost=0, evaluator="not callable")
    e = settings.build_engine(["cheap"], {}, evaluator=lambda p, a: 1.0)
    e.run(Request(query="Hi"), EchoCalls())
    assert e.router.stats()["cheap"].mean_reward == 1.0


def test_timeout_and_deadline_reach_the_retry_settings() -> None:
    e = RoutingSettings(cost=0, timeout=2.5, deadline=9.0).build_engine(["cheap"], {})
    config = e.executor.planner.config
    assert (config.timeout, config.deadline, config.max_attempts) == (2.5, 9.0, 3)
    given = RetryConfig(max_attempts=1, timeout=1.0)
    e = RoutingSettings(cost=0, retry=given, deadline=4.0).build_engine(["cheap"], {})
    config = e.executor.planner.config
    assert (config.timeout, config.deadline, config.max_attempts) == (1.0, 4.0, 1)
    assert RoutingSettings(cost=0, retry=given).build_engine(["cheap"], {}).executor.retry is given
    with pytest.raises(ValueError, match="timeout"):
        RoutingSettings(timeout=0)
