"""Router: routing, recording, delayed scores, statistics, thread safety and saved state."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pickllm import (
    Candidate,
    ConfigError,
    Context,
    Decision,
    Feedback,
    NoCandidateError,
    Objective,
    Router,
    StateError,
    UnknownDecisionError,
)
from pickllm.policies.base import Choice, Policy


class CountingPolicy(Policy):
    """Round-robin policy that counts its updates per arm (a test double)."""

    name = "test_counting"

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._turn = 0
        self._updates: dict[str, int] = {}
        self._rewards: dict[str, float] = {}

    def _select(self, context: Context) -> Choice:
        i = self._turn % len(context.candidates)
        self._turn += 1
        return Choice(index=i, probability=1.0 / len(context.candidates))

    def _update(self, decision: Decision, reward: float) -> None:
        name = decision.candidate.name
        self._updates[name] = self._updates.get(name, 0) + 1
        self._rewards[name] = self._rewards.get(name, 0.0) + reward

    def _get_state(self) -> dict[str, Any]:
        return {"turn": self._turn, "updates": dict(self._updates), "rewards": dict(self._rewards)}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self._turn = int(state["turn"])
        self._updates = {str(k): int(v) for k, v in state["updates"].items()}
        self._rewards = {str(k): float(v) for k, v in state["rewards"].items()}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


POOL = (
    Candidate(name="small", input_price=0.1, output_price=0.2, tool_calling=False),
    Candidate(name="medium", input_price=1.0, output_price=2.0, max_context_tokens=8_000),
    Candidate(name="large", input_price=10.0, output_price=30.0, structured_output=True),
)


def make_router(**kwargs: Any) -> Router:
    return Router(POOL, CountingPolicy(), Objective(quality=1.0, cost=0.5, latency=0.0), **kwargs)


def test_route_offers_only_capable_candidates() -> None:
    router = make_router()
    for _ in range(6):
        d = router.route("q", needs_tool_calling=True, min_context_tokens=10_000)
        assert d.candidate.name == "large"
        assert [c.name for c in d.ranking] == ["large"]
    d = router.route(Context(query="q", needs_tool_calling=True))
    assert d.candidate.name in {"medium", "large"}


def test_route_without_capable_candidate_names_the_need() -> None:
    router = Router([POOL[0]], CountingPolicy())
    with pytest.raises(NoCandidateError, match="tool calling"):
        router.route("q", needs_tool_calling=True)


def test_record_returns_reward_and_updates_policy_and_stats() -> None:
    router = make_router()
    d = router.route("q")
    fb = Feedback(latency_s=0.5, input_tokens=1000, output_tokens=100, cost_usd=1e-4, quality=1.0)
    reward = router.record(d, fb)
    assert reward is not None
    assert 0.0 < reward <= 1.0
    stats = router.stats()[d.candidate.name]
    assert stats.calls == 1
    assert stats.errors == 0
    assert stats.mean_reward == pytest.approx(reward)
    assert stats.total_cost_usd == pytest.approx(1e-4)
    assert stats.latency_p50_s == pytest.approx(0.5)
    assert router.pending() == 0


def test_failed_call_gets_worst_reward_and_counts_as_error() -> None:
    router = make_router()
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=2.0, error="TimeoutError")) == 0.0
    stats = router.stats()[d.candidate.name]
    assert (stats.calls, stats.errors, stats.mean_reward) == (1, 1, 0.0)


def test_feedback_for_a_fallback_is_attributed_to_the_fallback() -> None:
    router = make_router()
    d = router.route("q")
    other = d.ranking[1].name
    router.record(d, Feedback(error="RateLimitError"))
    router.record(d, Feedback(quality=1.0, candidate=other))
    stats = router.stats()
    assert stats[d.candidate.name].errors == 1
    assert stats[other].calls == 1
    assert stats[other].errors == 0
    with pytest.raises(ConfigError, match="nope"):
        router.record(d, Feedback(quality=1.0, candidate="nope"))


def test_delayed_score_joins_pending_decision() -> None:
    router = make_router()
    policy = router.policy
    assert isinstance(policy, CountingPolicy)
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) is None
    assert policy._updates == {}
    assert router.pending() == 1
    reward = router.feedback(d.decision_id, 1.0)
    assert reward is not None
    assert policy._updates == {d.candidate.name: 1}
    assert router.pending() == 0
    with pytest.raises(UnknownDecisionError, match="not pending"):
        router.feedback(d.decision_id, 1.0)


def test_score_that_arrives_before_the_record_is_kept() -> None:
    router = make_router()
    d = router.route("q")
    assert router.feedback(d.decision_id, 0.0) is None
    low = router.record(d, Feedback(latency_s=0.1), await_score=True)
    d2 = router.route("q")
    high = router.record(d2.retarget(d.candidate), Feedback(latency_s=0.1, quality=1.0))
    assert low is not None
    assert high is not None
    assert low < high


def test_routed_entries_expire_in_route_order_with_an_integer_clock() -> None:
    # A routed-only decision is queued as its bare route time; an int clock must work too.
    now = [0]
    router = make_router(clock=lambda: now[0], pending_ttl_s=10.0)
    first = router.route("q")
    now[0] = 4
    second = router.route("q")
    assert router.feedback(first.decision_id, 1.0) is None  # early score, keeps its place
    now[0] = 11
    assert router.expire() == 1
    with pytest.raises(UnknownDecisionError):
        router.feedback(first.decision_id, 1.0)
    assert router.feedback(second.decision_id, 0.5) is None
    now[0] = 15
    assert router.expire() == 1
    assert router.pending() == 0


def test_bad_scores_are_rejected_with_the_value() -> None:
    router = make_router()
    d = router.route("q")
    for bad in (-0.1, 1.5, math.nan, True):
        with pytest.raises(ConfigError, match="score must be"):
            router.feedback(d.decision_id, bad)


def test_pending_entries_expire_and_are_learned_from_without_score() -> None:
    clock = FakeClock()
    router = make_router(clock=clock, pending_ttl_s=10.0)
    policy = router.policy
    assert isinstance(policy, CountingPolicy)
    d = router.route("q")
    router.record(d, Feedback(latency_s=0.1), await_score=True)
    clock.now = 5.0
    assert router.expire() == 0
    clock.now = 11.0
    assert router.expire() == 1
    assert policy._updates == {d.candidate.name: 1}
    with pytest.raises(UnknownDecisionError):
        router.feedback(d.decision_id, 1.0)


def test_pending_is_bounded_oldest_dropped_first() -> None:
    router = make_router(max_pending=3)
    decisions = [router.route("q") for _ in range(5)]
    assert router.pending() == 3
    with pytest.raises(UnknownDecisionError):
        router.feedback(decisions[0].decision_id, 1.0)
    assert router.feedback(decisions[-1].decision_id, 1.0) is None


def test_candidates_can_change_without_losing_stats() -> None:
    router = make_router()
    d = router.route("q")
    router.record(d, Feedback(quality=1.0))
    name = d.candidate.name
    router.remove_candidate(name)
    assert name not in router.stats()
    router.add_candidate(next(c for c in POOL if c.name == name))
    assert router.stats()[name].calls == 1
    with pytest.raises(ConfigError, match="unique"):
        router.add_candidate(POOL[0])


@pytest.mark.parametrize("bad", [{"max_pending": -1}, {"pending_ttl_s": 0}, {"latency_window": 0}])
def test_bad_settings_name_the_parameter(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        make_router(**bad)


def test_eight_threads_lose_no_update() -> None:
    router = make_router()
    policy = router.policy
    assert isinstance(policy, CountingPolicy)
    threads, calls = 8, 5_000
    fb = Feedback(latency_s=0.01, input_tokens=10, output_tokens=5, cost_usd=1e-6, quality=1.0)
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(calls):
            router.record(router.route("q"), fb)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stats = router.stats()
    assert sum(s.calls for s in stats.values()) == threads * calls
    assert sum(policy._updates.values()) == threads * calls
    assert sum(s.input_tokens for s in stats.values()) == threads * calls * 10
    assert router.pending() == 0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    router = make_router()
    for i in range(7):
        router.record(router.route("q"), Feedback(latency_s=0.1 * i, quality=i % 2))
    path = tmp_path / "router.json"
    router.save(path)
    loaded = Router.load(path)
    assert loaded.stats() == router.stats()
    assert loaded.policy.state_dict() == router.policy.state_dict()
    assert loaded.objective == router.objective
    assert loaded.candidates == router.candidates
    assert [loaded.route("q").candidate.name for _ in range(3)] == [
        router.route("q").candidate.name for _ in range(3)
    ]


def test_interrupted_save_leaves_previous_state_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = make_router()
    router.record(router.route("q"), Feedback(quality=1.0))
    path = tmp_path / "router.json"
    router.save(path)
    before = path.read_text()
    router.record(router.route("q"), Feedback(quality=0.0))

    def crash(self: Path, target: Path) -> Path:
        msg = "power cut between write and rename"
        raise OSError(msg)

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        router.save(path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["router.json"]
    assert sum(s.calls for s in Router.load(path).stats().values()) == 1


def test_corrupted_or_edited_state_gives_clear_error(tmp_path: Path) -> None:
    router = make_router()
    router.record(router.route("q"), Feedback(quality=1.0))
    path = tmp_path / "router.json"
    router.save(path)

    path.write_text(path.read_text()[:-20])
    with pytest.raises(StateError, match="not valid JSON"):
        Router.load(path)

    router.save(path)
    doc = json.loads(path.read_text())
    doc["router"]["stats"]["small"]["calls"] = 1000
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="checksum"):
        Router.load(path)

    doc["router"]["stats"]["small"]["errors"] = 5000
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="inconsistent"):
        Router.load(path, verify=False)

    doc["router"]["policy"]["name"] = "no_such_policy"
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="no_such_policy"):
        Router.load(path, verify=False)

    with pytest.raises(StateError, match="does not exist"):
        Router.load(tmp_path / "missing.json")


def test_aggregate_defaults_to_first_answer() -> None:
    router = make_router()
    assert router.aggregate(["a", "b"]) == 0
    with pytest.raises(ConfigError):
        router.aggregate([])


def test_waiting_member_recorded_after_a_scored_member_still_waits() -> None:
    router = make_router()
    d = router.route("q")
    other = d.ranking[1].name
    assert router.record(d, Feedback(quality=1.0)) is not None
    assert router.record(d, Feedback(candidate=other), await_score=True) is None
    assert router.feedback(d.decision_id, 0.5) is not None
    assert router.pending() == 0


def test_context_candidates_narrow_the_call() -> None:
    router = make_router()
    for _ in range(4):
        d = router.route(Context(query="q", candidates=(POOL[0], POOL[2])))
        assert d.candidate.name in {"small", "large"}
        assert {c.name for c in d.ranking} == {"small", "large"}
    with pytest.raises(ConfigError, match="not in the pool"):
        router.route(Context(query="q", candidates=(Candidate(name="ghost"),)))


def test_release_learns_without_the_score_at_once() -> None:
    router = make_router()
    policy = router.policy
    assert isinstance(policy, CountingPolicy)
    d = router.route("q")
    router.record(d, Feedback(latency_s=0.1), await_score=True)
    assert router.release(d.decision_id) is not None
    assert policy._updates == {d.candidate.name: 1}
    assert router.pending() == 0
    assert router.release(d.decision_id) is None
    with pytest.raises(UnknownDecisionError):
        router.feedback(d.decision_id, 1.0)
