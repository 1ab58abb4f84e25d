"""Router rules pinned through its public verbs: statistics, errors, delayed scores, state.

Written against ``route``/``record``/``feedback``/``release``/``expire``/``stats``/``save``/
``load`` and the built-in policies' read-only views, never the router's internals, so they
hold whatever the pending table looks like inside.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pickllm import (
    Candidate,
    ConfigError,
    Context,
    Feedback,
    NoCandidateError,
    Objective,
    Router,
    StateError,
    UnknownDecisionError,
)
from pickllm.policies import UCB1, Fixed, PerContext
from pickllm.router import policy_config, policy_from_config
from pickllm.testing import ManualClock

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=0.5, output_price=1.0, tool_calling=False)
C = Candidate(name="c", input_price=3.0, output_price=6.0, structured_output=True)
POOL = (A, B, C)
# The reward is the quality score; an unscored call gets 0.5 (or missing_quality).
QUALITY_ONLY = Objective(quality=1.0, cost=0.0, latency=0.0)


def fixed_router(model: str = "a", **kwargs: Any) -> Router:
    """A router that always routes to ``model`` and rewards the quality score."""
    kwargs.setdefault("objective", QUALITY_ONLY)
    return Router(POOL, Fixed(model=model), **kwargs)


def ucb_router(**kwargs: Any) -> tuple[Router, UCB1]:
    """A router whose policy's counts and means show what it learned."""
    policy = UCB1()
    kwargs.setdefault("objective", QUALITY_ONLY)
    return Router(POOL, policy, **kwargs), policy


# ---------------------------------------------------------------------------- statistics
def test_stats_formulas_over_several_calls() -> None:
    router = fixed_router()
    calls = [
        Feedback(quality=1.0, latency_s=0.4, cost_usd=0.01, input_tokens=10, output_tokens=1),
        Feedback(quality=0.5, latency_s=0.1, cost_usd=0.02, input_tokens=20, output_tokens=2),
        Feedback(error="Timeout", latency_s=1.0, cost_usd=0.0, input_tokens=30, output_tokens=0),
        Feedback(quality=0.3, latency_s=0.2, cost_usd=0.03, input_tokens=40, output_tokens=4),
        Feedback(quality=0.8, latency_s=0.3, cost_usd=0.04, input_tokens=50, output_tokens=5),
    ]
    rewards = [router.record(router.route("q"), fb) for fb in calls]
    assert rewards == [1.0, 0.5, 0.0, 0.3, 0.8]
    s = router.stats()["a"]
    assert (s.calls, s.errors) == (5, 1)
    assert s.mean_reward == pytest.approx(2.6 / 5)
    assert s.total_cost_usd == pytest.approx(0.10)
    assert s.mean_cost_usd == pytest.approx(0.02)
    # Sorted latencies 0.1 0.2 0.3 0.4 1.0: the median is the middle one; p95 sits at
    # position 0.95*4 = 3.8, between 0.4 and 1.0.
    assert s.latency_p50_s == pytest.approx(0.3)
    assert s.latency_p95_s == pytest.approx(0.4 + 0.8 * 0.6)
    assert (s.input_tokens, s.output_tokens) == (150, 12)


def test_latency_quantiles_interpolate_and_keep_only_the_window() -> None:
    router = fixed_router(latency_window=4)
    for latency in (9.0, 4.0, 1.0, 3.0, 2.0):  # 9.0 falls out of the window
        router.record(router.route("q"), Feedback(quality=1.0, latency_s=latency))
    s = router.stats()["a"]
    assert s.calls == 5
    # Window 1 2 3 4: the median is halfway between 2 and 3; p95 at 0.95*3 = 2.85.
    assert s.latency_p50_s == pytest.approx(2.5)
    assert s.latency_p95_s == pytest.approx(3.85)


def test_stats_of_unused_candidates_are_nan_and_unscored_calls_have_no_mean_reward() -> None:
    router = fixed_router()
    router.record(router.route("q"), Feedback(latency_s=0.5, cost_usd=0.2), await_score=True)
    s = router.stats()
    assert s["a"].calls == 1
    assert math.isnan(s["a"].mean_reward)  # recorded, but not learned from yet
    assert s["a"].mean_cost_usd == pytest.approx(0.2)
    for name in ("b", "c"):
        unused = s[name]
        assert (unused.calls, unused.errors, unused.total_cost_usd) == (0, 0, 0.0)
        assert math.isnan(unused.mean_cost_usd)
        assert math.isnan(unused.latency_p50_s)
        assert math.isnan(unused.latency_p95_s)
        assert math.isnan(unused.mean_reward)


def test_single_latency_is_every_quantile() -> None:
    router = fixed_router()
    router.record(router.route("q"), Feedback(quality=1.0, latency_s=0.7))
    s = router.stats()["a"]
    assert s.latency_p50_s == 0.7
    assert s.latency_p95_s == 0.7


# ---------------------------------------------------------------------------- errors
def test_an_objective_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"objective must be an Objective, got 'quality=1'"):
        Router(POOL, "ucb1", "quality=1")  # type: ignore[arg-type]


def test_a_policy_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="policy must be a Policy, a policy name or a trained"):
        Router(POOL, 42)  # type: ignore[arg-type]


def test_candidates_must_be_candidates() -> None:
    with pytest.raises(TypeError, match="candidates must be Candidate objects, got 'a'"):
        Router(["a"])  # type: ignore[list-item]


def test_default_policy_and_objective() -> None:
    router = Router(POOL, seed=0)
    assert router.policy.name == "thompson"
    assert router.objective == Objective()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"max_pending": 1.5}, r"max_pending must be an int >= 0, got 1.5"),
        ({"max_pending": -1}, r"max_pending must be an int >= 0, got -1"),
        ({"pending_ttl_s": "10"}, r"pending_ttl_s must be a positive number .*got '10'"),
        ({"pending_ttl_s": -1.0}, r"pending_ttl_s must be a positive number .*got -1.0"),
        ({"latency_window": 2.0}, r"latency_window must be an int >= 1, got 2.0"),
        ({"latency_window": 0}, r"latency_window must be an int >= 1, got 0"),
    ],
)
def test_bad_settings_name_the_value(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fixed_router(**bad)


def test_smallest_valid_settings_are_accepted() -> None:
    router = fixed_router(max_pending=0, pending_ttl_s=1, latency_window=1)
    assert (router.max_pending, router.pending_ttl_s, router.latency_window) == (0, 1, 1)


def test_an_unknown_candidate_name_lists_the_pool() -> None:
    router = fixed_router()
    assert router.candidate("b") is B
    with pytest.raises(
        ConfigError, match=r"no candidate named 'z'; the pool has \['a', 'b', 'c'\]"
    ):
        router.candidate("z")
    with pytest.raises(
        ConfigError, match=r"no candidate named 'z'; the pool has \['a', 'b', 'c'\]"
    ):
        router.remove_candidate("z")
    assert router.candidates == POOL


def test_feedback_naming_an_unknown_candidate_lists_the_ranking() -> None:
    router = fixed_router()
    d = router.route("q")
    with pytest.raises(ConfigError, match=r"'z' is neither in .* \(\['a', 'b', 'c'\]\)"):
        router.record(d, Feedback(quality=1.0, candidate="z"))
    assert router.stats()["a"].calls == 0


def test_feedback_may_name_a_pool_candidate_outside_the_ranking() -> None:
    router = fixed_router()
    d = router.route(Context(query="q", candidates=(A,)))
    assert [c.name for c in d.ranking] == ["a"]
    assert router.record(d, Feedback(quality=0.25, candidate="c")) == 0.25
    assert router.stats()["c"].calls == 1
    assert router.stats()["a"].calls == 0


def test_record_needs_a_feedback() -> None:
    router = fixed_router()
    with pytest.raises(TypeError, match="feedback must be a Feedback, got dict"):
        router.record(router.route("q"), {"quality": 1.0})  # type: ignore[arg-type]


def test_no_candidate_message_names_every_need() -> None:
    x = Candidate(name="x", tool_calling=False, structured_output=False, max_context_tokens=5)
    router = Router([x], Fixed(model="x"))
    with pytest.raises(
        NoCandidateError,
        match=r"needs tool calling and structured output and a context window of 10 tokens; "
        r"the pool is \['x'\]",
    ):
        router.route(
            "q", needs_tool_calling=True, needs_structured_output=True, min_context_tokens=10
        )
    with pytest.raises(NoCandidateError, match="needs structured output; the pool is"):
        router.route("q", needs_structured_output=True)


def test_an_empty_pool_says_so() -> None:
    with pytest.raises(ConfigError, match="candidates must hold at least one Candidate"):
        Router([], Fixed(model="a"))


def test_route_passes_the_key_and_the_needs_to_the_context() -> None:
    router = fixed_router(model="c")
    d = router.route("q", key="topic", needs_tool_calling=True)
    assert d.key == "topic"
    assert [c.name for c in d.ranking] == ["c", "a"]  # b cannot call tools
    # Without needs, every candidate is offered, in pool order after the chosen one.
    assert [c.name for c in router.route(None).ranking] == ["c", "a", "b"]


def test_aggregate_uses_the_policy_s_own_rule() -> None:
    class Voter(Fixed):
        name = "test_rules_voter"

        def aggregate(self, answers: list[str]) -> Any:
            return np.int64(answers.index("yes"))

    router = Router(POOL, Voter(model="a"))
    assert router.aggregate(["no", "yes"]) == 1
    assert isinstance(router.aggregate(["no", "yes"]), int)
    with pytest.raises(ConfigError, match="at least one answer"):
        router.aggregate([])


# ---------------------------------------------------------------------------- record rules
def test_a_scored_call_is_learned_at_once_and_leaves_nothing_pending() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    assert router.pending() == 1
    assert router.record(d, Feedback(quality=0.7), await_score=True) == 0.7
    assert router.pending() == 0
    assert policy.means == {d.candidate.name: 0.7}


def test_a_failed_call_ignores_await_score_and_keeps_the_decision_for_its_fallback() -> None:
    router = fixed_router()
    d = router.route("q")
    assert router.record(d, Feedback(error="RateLimit"), await_score=True) == 0.0
    assert router.pending() == 0  # a failed attempt leaves the table at once
    # The fallback's answer re-enters it to wait for its score.
    s = router.stats()["a"]
    assert (s.calls, s.errors, s.mean_reward) == (1, 1, 0.0)
    assert router.record(d, Feedback(candidate="b", latency_s=0.1), await_score=True) is None
    assert router.feedback(d.decision_id, 0.9) == 0.9
    assert router.stats()["b"].mean_reward == 0.9
    assert router.stats()["a"].mean_reward == 0.0
    assert router.pending() == 0


def test_a_failed_call_with_a_score_already_in_is_still_a_failure() -> None:
    router = fixed_router()
    d = router.route("q")
    assert router.feedback(d.decision_id, 1.0) is None
    assert router.record(d, Feedback(error="Boom"), await_score=True) == 0.0
    # The early score waits for the call that succeeds.
    assert router.record(d, Feedback(candidate="b"), await_score=True) == 1.0
    assert router.pending() == 0


def test_an_early_score_is_used_by_the_record_that_comes_later() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    assert router.feedback(d.decision_id, 1) is None  # an int score is accepted
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) == 1.0
    assert policy.means == {d.candidate.name: 1.0}
    assert router.pending() == 0


def test_an_unscored_call_without_await_is_learned_with_the_missing_quality_rule() -> None:
    router, policy = ucb_router(objective=Objective(cost=0.0, latency=0.0, missing_quality=0.2))
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=0.1)) == 0.2
    assert policy.means == {d.candidate.name: 0.2}
    assert router.pending() == 0


def test_ensemble_members_wait_together_and_learn_from_one_score() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) is None
    assert router.record(d, Feedback(candidate="c"), await_score=True) is None
    assert policy.counts == {}
    assert router.pending() == 1
    assert router.feedback(d.decision_id, 0.6) == 0.6
    assert policy.counts == {d.candidate.name: 1, "c": 1}
    assert policy.means == {d.candidate.name: 0.6, "c": 0.6}


def test_a_scored_member_does_not_close_a_decision_with_a_waiting_member() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) is None
    assert router.record(d, Feedback(candidate="c", quality=0.4)) == 0.4
    assert router.pending() == 1
    assert router.feedback(d.decision_id, 0.9) == 0.9
    assert policy.means == {d.candidate.name: 0.9, "c": 0.4}


def test_an_awaiting_record_without_pending_room_is_learned_at_once() -> None:
    router, policy = ucb_router(max_pending=0)
    d = router.route("q")
    assert router.pending() == 0
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) is None
    assert router.pending() == 0
    assert policy.means == {d.candidate.name: 0.5}  # no score: the unscored reward
    with pytest.raises(UnknownDecisionError, match=r"wait at most 3600\.0 s and 0 at a time"):
        router.feedback(d.decision_id, 1.0)


# ---------------------------------------------------------------------------- expiry
def test_expiry_is_inclusive_of_the_ttl_and_automatic_on_route() -> None:
    clock = ManualClock()
    router = fixed_router(clock=clock, pending_ttl_s=10.0)
    first = router.route("q")
    clock.now = 9.5
    assert router.expire() == 0
    second = router.route("q")
    clock.now = 10.0  # exactly the TTL: the first expires on this route
    router.route("q")
    assert router.pending() == 2
    with pytest.raises(UnknownDecisionError):
        router.feedback(first.decision_id, 1.0)
    assert router.feedback(second.decision_id, 1.0) is None
    clock.now = 30.0
    assert router.expire() == 2
    assert router.pending() == 0
    assert router.expire() == 0


def test_route_keeps_expiring_once_the_queue_emptied() -> None:
    clock = ManualClock()
    router = fixed_router(clock=clock, pending_ttl_s=5.0)
    router.record(router.route("q"), Feedback(quality=1.0))  # closes its entry
    clock.now = 100.0
    late = router.route("q")
    clock.now = 105.0
    router.route("q")
    assert router.pending() == 1
    with pytest.raises(UnknownDecisionError):
        router.feedback(late.decision_id, 1.0)
    clock.now = 200.0
    assert router.expire() == 1  # the queue is empty again
    again = router.route("q")
    clock.now = 205.0
    router.route("q")
    assert router.pending() == 1
    with pytest.raises(UnknownDecisionError):
        router.feedback(again.decision_id, 1.0)


def test_expired_awaiting_calls_are_learned_with_the_missing_quality_rule() -> None:
    clock = ManualClock()
    obj = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.3)
    router, policy = ucb_router(clock=clock, pending_ttl_s=10.0, objective=obj)
    d = router.route("q")
    assert router.record(d, Feedback(latency_s=0.1), await_score=True) is None
    clock.now = 10.0
    assert router.expire() == 1
    assert policy.means == {d.candidate.name: 0.3}
    assert router.stats()[d.candidate.name].mean_reward == 0.3


def test_an_expired_early_score_teaches_nothing() -> None:
    clock = ManualClock()
    router, policy = ucb_router(clock=clock, pending_ttl_s=10.0)
    d = router.route("q")
    router.feedback(d.decision_id, 1.0)
    clock.now = 11.0
    assert router.expire() == 1
    assert policy.counts == {}
    # The call recorded after its entry expired is learned without the lost score.
    assert router.record(d, Feedback(latency_s=0.1)) == 0.5


def test_awaiting_since_the_record_time_when_no_route_entry_is_left() -> None:
    clock = ManualClock()
    router = fixed_router(clock=clock, pending_ttl_s=10.0)
    d = router.route("q")
    router.record(d, Feedback(quality=1.0))  # closes the route entry
    clock.now = 50.0
    assert router.record(d, Feedback(candidate="b"), await_score=True) is None
    clock.now = 59.0
    assert router.expire() == 0
    clock.now = 60.0
    assert router.expire() == 1


def test_overflow_drops_the_oldest_and_learns_its_waiting_call() -> None:
    obj = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.1)
    router, policy = ucb_router(max_pending=2, objective=obj)
    d1 = router.route("q")
    router.record(d1, Feedback(latency_s=0.1), await_score=True)
    d2 = router.route("q")
    assert router.pending() == 2
    assert policy.counts == {}
    router.route("q")
    assert router.pending() == 2
    assert policy.means == {d1.candidate.name: 0.1}
    with pytest.raises(UnknownDecisionError, match="and 2 at a time"):
        router.feedback(d1.decision_id, 1.0)
    assert router.feedback(d2.decision_id, 1.0) is None


def test_a_second_plan_member_overflowing_the_table_is_learned_at_once() -> None:
    router, policy = ucb_router(max_pending=1)
    d = router.route("q")
    router.record(d, Feedback(quality=1.0))
    other = router.route("q")
    # d's entry is gone: its waiting member opens a new one, which pushes out the oldest.
    assert router.record(d, Feedback(candidate="c"), await_score=True) is None
    assert router.pending() == 1
    with pytest.raises(UnknownDecisionError):
        router.feedback(other.decision_id, 1.0)
    assert "c" not in policy.means
    assert router.feedback(d.decision_id, 0.8) == 0.8
    assert policy.means["c"] == 0.8


# ---------------------------------------------------------------------------- release
def test_release_returns_the_missing_quality_reward_of_every_waiting_member() -> None:
    obj = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.4)
    router, policy = ucb_router(objective=obj)
    d = router.route("q")
    router.record(d, Feedback(latency_s=0.1), await_score=True)
    router.record(d, Feedback(candidate="c"), await_score=True)
    assert router.release(d.decision_id) == 0.4
    assert policy.means == {d.candidate.name: 0.4, "c": 0.4}
    assert router.release(d.decision_id) is None
    assert router.release("never-routed") is None


def test_release_of_a_routed_decision_learns_nothing() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    assert router.release(d.decision_id) is None
    assert policy.counts == {}
    assert router.pending() == 0


def test_release_of_an_early_score_learns_nothing() -> None:
    router, policy = ucb_router()
    d = router.route("q")
    router.feedback(d.decision_id, 1.0)
    assert router.release(d.decision_id) is None
    assert policy.counts == {}


# ---------------------------------------------------------------------------- state
def test_save_writes_a_checksummed_document_and_load_restores_the_settings(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    router = fixed_router(model="b", max_pending=7, pending_ttl_s=12.5, latency_window=3)
    for latency in (0.1, 0.5, 0.2, 0.4):
        router.record(router.route("q"), Feedback(quality=0.5, latency_s=latency))
    router.record(router.route("q"), Feedback(quality=1.0, candidate="c"))
    router.remove_candidate("c")
    path = tmp_path / "state.json"
    router.save(path)
    document = json.loads(path.read_text())
    assert set(document) == {"checksum", "router"}
    assert document["router"]["format"] == "pickllm.router"
    assert document["router"]["version"] == 1
    assert document["router"]["stats"]["b"]["latencies"] == [0.5, 0.2, 0.4]
    assert document["router"]["settings"] == {
        "max_pending": 7,
        "pending_ttl_s": 12.5,
        "latency_window": 3,
        "breaker_failures": 5,
        "breaker_cooldown_s": 30.0,
        "budget_usd": None,
        "budget_per_key_usd": None,
        "budget_period_s": 86400.0,
        "on_budget": "raise",
    }
    assert list(tmp_path.iterdir()) == [path]

    loaded = Router.load(path, clock=clock)
    assert (loaded.max_pending, loaded.pending_ttl_s, loaded.latency_window) == (7, 12.5, 3)
    assert loaded.clock is clock
    assert loaded.stats() == router.stats()
    assert loaded.stats()["b"].latency_p50_s == pytest.approx(0.4)
    assert [c.name for c in loaded.candidates] == ["a", "b"]
    loaded.add_candidate(C)  # what was known of c came back with the file
    assert loaded.stats()["c"].calls == 1
    assert loaded.stats()["c"].mean_reward == 1.0
    # The restored latency window keeps its length.
    loaded.record(loaded.route("q"), Feedback(quality=0.5, latency_s=0.9))
    assert loaded.stats()["b"].latency_p50_s == pytest.approx(0.4)
    assert loaded.stats()["b"].latency_p95_s == pytest.approx(0.85)


def test_load_uses_the_given_clock_for_expiry(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "state.json"
    fixed_router(pending_ttl_s=5.0).save(path)
    loaded = Router.load(path, clock=clock)
    d = loaded.route("q")
    clock.now = 5.0
    assert loaded.expire() == 1
    with pytest.raises(UnknownDecisionError):
        loaded.feedback(d.decision_id, 1.0)


def test_a_state_file_without_its_router_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for document in ({"checksum": "x", "state": {}}, ["router"]):
        path.write_text(json.dumps(document))
        with pytest.raises(StateError, match=r"has no 'router' object; is it a PickLLM state\?"):
            Router.load(path)


def _saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    router = fixed_router()
    router.record(router.route("q"), Feedback(quality=1.0, latency_s=0.2))
    path = tmp_path / "state.json"
    router.save(path)
    return path, json.loads(path.read_text())


def _rewrite(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda b: b.update(format="other"), r"state\.json'?: not a 'pickllm\.router' state"),
        (lambda b: b.update(version=2), r"state version 2 is not supported \(expected 1\)"),
        (lambda b: b.pop("settings"), r"malformed router state \(KeyError: 'settings'\)"),
        (lambda b: b["stats"]["a"].update(calls=-1), "statistics of 'a' are inconsistent"),
        (lambda b: b["stats"]["a"].update(rewarded=-1), "statistics of 'a' are inconsistent"),
        (lambda b: b["stats"]["a"].update(errors=2), "statistics of 'a' are inconsistent"),
        (lambda b: b["stats"]["a"].update(calls="x"), r"malformed router state \(ValueError"),
        (lambda b: b["policy"].pop("params"), "cannot rebuild the policy"),
        (lambda b: b["policy_state"].update(policy="ucb1"), "state is for policy 'ucb1'"),
    ],
)
def test_bad_router_states_are_state_errors(tmp_path: Path, edit: Any, match: str) -> None:
    path, document = _saved(tmp_path)
    edit(document["router"])
    _rewrite(path, document)
    with pytest.raises(StateError, match="does not match its checksum"):
        Router.load(path)
    with pytest.raises(StateError, match=match) as info:
        Router.load(path, verify=False)
    assert str(path) in str(info.value)


def test_an_edited_but_sound_file_loads_without_verification(tmp_path: Path) -> None:
    path, document = _saved(tmp_path)
    document["router"]["stats"]["a"]["calls"] = 4
    _rewrite(path, document)
    assert Router.load(path, verify=False).stats()["a"].calls == 4
    assert json.loads(path.read_text())["checksum"] == document["checksum"]


def test_a_file_that_is_not_text_is_not_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(StateError, match="is not valid JSON"):
        Router.load(path)


def test_nested_policies_survive_a_round_trip(tmp_path: Path) -> None:
    router = Router(POOL, PerContext(policy=UCB1(exploration=0.5), max_keys=3, seed=1))
    router.record(router.route("q", key="k"), Feedback(quality=1.0))
    path = tmp_path / "state.json"
    router.save(path)
    loaded = Router.load(path)
    policy = loaded.policy
    assert isinstance(policy, PerContext)
    assert isinstance(policy.policy, UCB1)
    assert policy.policy.exploration == 0.5
    assert policy.max_keys == 3
    assert policy.keys == ["k"]
    config = policy_config(router.policy)
    assert config["params"]["policy"] == {
        "__policy__": {"name": "ucb1", "params": {"exploration": 0.5, "seed": None}}
    }
    assert policy_config(policy_from_config(config)) == config


def test_policy_configs_that_cannot_be_rebuilt_are_state_errors() -> None:
    with pytest.raises(StateError, match=r"cannot rebuild the policy from .*'nope'"):
        policy_from_config({"name": "nope", "params": {}})
    with pytest.raises(StateError, match="cannot rebuild the policy"):
        policy_from_config({"name": "ucb1", "params": {"speed": 1}})
    with pytest.raises(StateError, match="cannot rebuild the policy"):
        policy_from_config({"params": {}})


def test_parameters_that_are_not_json_cannot_be_saved() -> None:
    class Opaque(Fixed):
        name = "test_rules_opaque"

    policy = Opaque(model="a")
    policy.model = object()  # type: ignore[assignment]
    with pytest.raises(StateError, match="cannot be saved as JSON"):
        policy_config(policy)
