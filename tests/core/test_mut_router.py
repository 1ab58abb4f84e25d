"""Router details pinned down for mutation testing (see [tool.mutmut] in pyproject.toml).

Budgets and their periods, ``spend``, ``explain``, the printed statistics, error messages
and the bookkeeping of pending decisions, through the Router's public API only. Every
test is deterministic: an injected clock, seeded or deterministic policies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pickllm import (
    Candidate,
    CandidateStats,
    ConfigError,
    Context,
    Decision,
    Feedback,
    NoCandidateError,
    Objective,
    Policy,
    Router,
    StateError,
    StatsTable,
    UnknownDecisionError,
)
from pickllm.errors import BudgetExceededError
from pickllm.ope import DecisionLog
from pickllm.policies.base import Choice
from pickllm.policies.per_context import PerContext
from pickllm.policies.ucb1 import UCB1
from pickllm.router import (
    HISTORY_LENGTH,
    decode_history,
    policy_config,
    policy_from_config,
    read_state,
)
from pickllm.state import MemoryStore
from pickllm.testing import ManualClock

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=3.0, output_price=4.0)


def stats(**overrides: Any) -> CandidateStats:
    values: dict[str, Any] = {
        "calls": 3,
        "errors": 1,
        "mean_reward": 0.123456,
        "total_cost_usd": 2.0,
        "mean_cost_usd": 2.0 / 3.0,
        "latency_p50_s": math.nan,
        "latency_p95_s": 1.5,
        "input_tokens": 10,
        "output_tokens": 20,
    }
    values.update(overrides)
    return CandidateStats(**values)


# ================================================================ spend and budget periods
def test_spend_of_a_key_counts_only_that_key_and_reaches_its_limit_exactly() -> None:
    clock = ManualClock(0.0)
    router = Router(
        [A, B],
        policy="cheapest",
        clock=clock,
        budget_usd=10.0,
        budget_per_key_usd=0.5,
        budget_period_s=100.0,
    )
    clock.now = 10.0
    router.record(router.route("q", key="k"), Feedback(cost_usd=0.5))
    mine = router.spend("k")
    # Spent == limit: the limit is reached (">=", documented "the limit is reached").
    assert (mine.spent_usd, mine.limit_usd, mine.remaining_usd, mine.exceeded) == (
        0.5,
        0.5,
        0.0,
        True,
    )
    other = router.spend("other")  # a key never charged has spent nothing
    assert (other.spent_usd, other.remaining_usd, other.exceeded) == (0.0, 0.5, False)
    total = router.spend()
    assert (total.spent_usd, total.limit_usd, total.remaining_usd) == (0.5, 10.0, 9.5)
    assert total.exceeded is False


def test_spend_of_a_key_adds_up_its_calls() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock(), budget_per_key_usd=1.0)
    for cost in (0.25, 0.5):
        router.record(router.route("q", key="k"), Feedback(cost_usd=cost))
    router.record(router.route("q", key="other"), Feedback(cost_usd=0.125))
    assert router.spend("k").spent_usd == 0.75
    assert router.spend("other").spent_usd == 0.125


def test_spend_says_when_the_period_resets() -> None:
    clock = ManualClock(1000.0)  # the first period starts at the router's creation
    router = Router([A], policy="cheapest", clock=clock, budget_usd=1.0, budget_period_s=100.0)
    clock.now = 1010.0
    s = router.spend()
    assert (s.period_s, s.resets_in_s) == (100.0, 90.0)
    clock.now = 1250.0  # the third period [1200, 1300)
    assert router.spend().resets_in_s == 50.0


def test_spend_without_a_period_never_resets() -> None:
    clock = ManualClock(0.0)
    router = Router([A], policy="cheapest", clock=clock, budget_usd=1.0, budget_period_s=None)
    router.record(router.route("q"), Feedback(cost_usd=0.75))
    clock.now = 1e9
    s = router.spend()
    assert (s.spent_usd, s.period_s, s.resets_in_s) == (0.75, None, None)


def test_spend_without_limits_has_no_limit() -> None:
    router = Router([A], policy="cheapest", clock=ManualClock())
    s = router.spend()
    assert (s.limit_usd, s.remaining_usd, s.exceeded) == (None, None, False)


# ================================================================ explain
def test_explain_keeps_the_query_and_defaults_to_the_empty_query() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    assert router.explain().query == ""
    assert router.explain("what?").query == "what?"


def test_explain_prices_the_query_with_its_estimated_tokens() -> None:
    # Without a size, Cheapest compares input + output prices: "chatty" (3) < 5.5.
    # A 400,000-character query is ~100,000 tokens: 0.05 + 256 * 5e-6 USD for
    # "long-context" against 0.1 + 256 * 2e-6 USD for "chatty".
    long_context = Candidate(name="long-context", input_price=0.5, output_price=5.0)
    chatty = Candidate(name="chatty", input_price=1.0, output_price=2.0)
    router = Router([long_context, chatty], policy="cheapest", clock=ManualClock())
    assert router.explain("x").chosen == "chatty"
    assert router.explain("x" * 400_000).chosen == "long-context"


def test_explain_reads_the_learner_of_the_key() -> None:
    router = Router([A, B], policy=PerContext(policy=UCB1(), seed=0), clock=ManualClock())
    best = {"k": "a", "j": "b"}
    for _ in range(30):
        for key, name in best.items():
            d = router.route("q", key=key)
            router.record(d, Feedback(quality=1.0 if d.candidate.name == name else 0.0))
    assert router.explain(key="k", draws=0).chosen == "a"
    assert router.explain(key="j", draws=0).chosen == "b"


def test_explain_honours_needs_structured_output() -> None:
    plain = Candidate(name="plain", structured_output=False)
    router = Router([plain, B], policy="cheapest", clock=ManualClock())
    why = router.explain(needs_structured_output=True)
    assert why.chosen == "b"
    assert why.excluded == {"plain": "cannot serve: needs structured output"}


def test_explain_without_a_servable_model_names_the_need_and_the_pool() -> None:
    plain = Candidate(name="plain", tool_calling=False)
    router = Router([plain], policy="cheapest", clock=ManualClock())
    with pytest.raises(NoCandidateError) as info:
        router.explain(needs_tool_calling=True)
    assert str(info.value) == (
        "no candidate can serve this call, which needs tool calling; the pool is ['plain']"
    )


def test_explain_notes_a_spent_key_budget() -> None:
    clock = ManualClock(0.0)
    router = Router(
        [A, B], policy="cheapest", clock=clock, budget_per_key_usd=1.0, budget_period_s=60.0
    )
    router.record(router.route("q", key="k"), Feedback(cost_usd=1.0))
    assert router.explain(key="other").note == ""
    assert router.explain(key="k").note == (
        "the budget of 1.0 USD per 60 s of key 'k' is spent (1.0 USD): "
        "calls go to the cheapest model or fail"
    )


def test_explain_draws_zero_is_allowed_and_negative_is_refused() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    why = router.explain(draws=0)
    assert why.draws == 0
    assert router.explain().draws == 200  # the documented default
    with pytest.raises(ConfigError, match=r"^draws must be an int >= 0, got -1$"):
        router.explain(draws=-1)


def test_explain_lists_open_circuits_unless_every_model_is_open() -> None:
    clock = ManualClock(0.0)
    router = Router([A, B], policy="cheapest", clock=clock, breaker_failures=1)
    router.record(router.route("q"), Feedback(error="Boom"))  # "a" (cheapest) opens
    assert router.explain().excluded == {"a": "circuit open"}
    assert router.explain().chosen == "b"
    d = router.route("q")
    assert d.candidate.name == "b"
    router.record(d, Feedback(error="Boom"))  # now both are open: both are offered
    why = router.explain()
    assert why.excluded == {}
    assert why.chosen == "a"


# ================================================================ printed statistics
def test_candidate_stats_repr_shows_none_for_nan_and_four_digits() -> None:
    assert repr(stats()) == (
        "CandidateStats(calls=3, errors=1, mean_reward=0.1235, total_cost_usd=2, "
        "mean_cost_usd=0.6667, latency_p50_s=None, latency_p95_s=1.5, input_tokens=10, "
        "output_tokens=20, circuit='closed')"
    )


def test_candidate_stats_repr_shows_consecutive_failures_only_when_there_are_some() -> None:
    shown = repr(stats(circuit="open", consecutive_failures=2))
    assert shown.endswith(", circuit='open', consecutive_failures=2)")
    # Zero of another count is shown: only consecutive_failures=0 is left out.
    assert "errors=0," in repr(stats(errors=0))


def test_stats_table_repr_is_an_aligned_table() -> None:
    assert repr(StatsTable()) == "StatsTable(empty)"
    table = StatsTable(a=stats(), **{"a-long-name": stats(calls=7, errors=0, mean_reward=math.nan)})
    cols = ("calls", "errors", "reward", "cost_usd", "p50_s", "p95_s", "circuit")
    head = "model       " + " ".join(f"{c:>9}" for c in cols)
    row_a = "a           " + " ".join(
        f"{v:>9}" for v in ("3", "1", "0.1235", "2", "-", "1.5", "closed")
    )
    row_b = "a-long-name " + " ".join(f"{v:>9}" for v in ("7", "0", "-", "2", "-", "1.5", "closed"))
    assert str(table) == f"{head}\n{row_a}\n{row_b}"


def test_stats_table_pads_short_names_to_the_model_header() -> None:
    lines = repr(StatsTable(a=stats())).split("\n")
    assert lines[0].startswith("model ")
    assert lines[1].startswith("a     ")  # "a" padded to len("model"), then a space
    assert len(lines[0]) == len(lines[1]) == 5 + 1 + 7 * 9 + 6


# ================================================================ router-made decisions
def test_pinned_and_budget_decisions_carry_the_policy_and_the_key() -> None:
    router = Router([A, B], policy="thompson", seed=0, clock=ManualClock(), budget_per_key_usd=0.1)
    pinned = router.route("q", key="k", pin="b")
    assert (pinned.policy, pinned.key, pinned.probability) == ("thompson", "k", 1.0)
    assert pinned.ranking == (B,)
    router.record(pinned, Feedback(cost_usd=0.1))
    router_cheap = Router(
        [A, B],
        policy="thompson",
        seed=0,
        clock=ManualClock(),
        budget_per_key_usd=0.1,
        on_budget="cheapest",
    )
    router_cheap.record(router_cheap.route("q", key="k"), Feedback(cost_usd=0.1))
    cheap = router_cheap.route("q", key="k")
    assert (cheap.candidate.name, cheap.policy, cheap.key) == ("a", "thompson", "k")


# ================================================================ refused scores say why
def refusal(router: Router, decision_id: str) -> tuple[str, str]:
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback(decision_id, 1.0)
    prefix = f"decision {decision_id!r} is not pending: "
    assert str(info.value).startswith(prefix)
    return info.value.reason, str(info.value).removeprefix(prefix)


def test_each_refused_score_names_its_reason() -> None:
    clock = ManualClock(0.0)
    router = Router([A, B], policy="cheapest", clock=clock, pending_ttl_s=10.0, max_pending=5)
    failed = router.route("q")
    router.record(failed, Feedback(error="Boom"))
    assert refusal(router, failed.decision_id) == (
        "failed",
        (
            "every attempt of its call failed (learned from with reward 0); a failed call "
            "takes no score"
        ),
    )
    scored = router.route("q")
    router.record(scored, Feedback(), await_score=True)
    router.feedback(scored.decision_id, 0.5)
    assert refusal(router, scored.decision_id) == (
        "scored",
        "it is already scored; a second score is refused",
    )
    learned = router.route("q")
    router.record(learned, Feedback(quality=1.0))
    assert refusal(router, learned.decision_id) == (
        "learned",
        "it was recorded without await_score=True and already learned from",
    )
    released = router.route("q")
    assert router.release(released.decision_id) is None  # nothing recorded: nothing learned
    assert refusal(router, released.decision_id) == (
        "released",
        "it was released without a score",
    )
    expired = router.route("q")
    clock.now = 10.0
    assert router.expire() == 1
    assert refusal(router, expired.decision_id) == (
        "expired",
        (
            "it expired and was learned from without a score (pending decisions wait at most "
            "10.0 s and 5 at a time)"
        ),
    )
    assert refusal(router, "never-issued") == (
        "unknown",
        "this router never issued it, or has forgotten it",
    )


# ================================================================ aggregate
class Voter(Policy):
    """Always the first candidate; votes for the answer of the heaviest member."""

    name = "test_voter"

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass

    def member_weights(self, decision: Decision) -> list[float]:
        return [1.0, 0.0]

    def aggregate(self, answers: Sequence[str], weights: Sequence[float] | None = None) -> int:
        if weights is None:
            return len(answers) - 1  # unweighted: the last answer
        return max(range(len(answers)), key=lambda i: weights[i])


def test_aggregate_weighs_only_with_a_decision_of_matching_size() -> None:
    router = Router([A, B], policy=Voter(), clock=ManualClock())
    d = router.route("q")
    answers = ["x", "y", "z"]
    assert router.aggregate(answers) == 2  # no decision: unweighted
    assert router.aggregate(answers, d) == 2  # 2 weights for 3 answers: unweighted
    assert router.aggregate(["x", "y"], d) == 0  # weighted: the heaviest member
    assert router.aggregate(["x", "y"]) == 1  # no decision: unweighted, the last answer
    with pytest.raises(ConfigError) as info:
        router.aggregate([])
    assert str(info.value) == "aggregate() needs at least one answer, got none"


def test_aggregate_of_a_policy_without_a_vote_is_the_first_answer() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    assert router.aggregate(["x", "y"], router.route("q")) == 0


# ================================================================ saved history
def test_decode_history_messages() -> None:
    with pytest.raises(StateError) as info:
        decode_history({"models": ["a"], "choice": [0, 0], "reward": [1.0]})
    assert str(info.value) == "malformed history (ValueError: 2 choices for 1 rewards)"
    with pytest.raises(StateError) as info:
        decode_history({"choice": [], "reward": []})
    assert str(info.value) == "malformed history (KeyError: 'models')"
    for bad in (1.5, -0.5):
        with pytest.raises(StateError) as info:
            decode_history({"models": ["a"], "choice": [0], "reward": [bad]})
        assert str(info.value) == "malformed history: a reward outside [0, 1]"
    assert decode_history({"models": ["a"], "choice": [0, 0], "reward": [0, 1]}) == [
        ("a", 0.0),
        ("a", 1.0),
    ]


# ================================================================ decision log
def test_decision_log_keeps_the_context_of_the_latest_1024_decisions(tmp_path: Path) -> None:
    # max_pending=0: the log keeps max(0, 1024) contexts; the oldest is forgotten first,
    # so the first of 1025 routed decisions is learned from but not logged.
    path = tmp_path / "log.jsonl"
    router = Router(
        [A, B], policy="cheapest", clock=ManualClock(), max_pending=0, decision_log=path
    )
    decisions = [router.route("q", key=f"k{i}") for i in range(1025)]
    for d in decisions:
        router.record(d, Feedback(quality=1.0))
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert keys == [f"k{i}" for i in range(1, 1025)]


# ================================================================ save
def test_save_writes_a_temporary_file_beside_the_target_and_keeps_it_from_cleaning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Documented: the JSON goes to ``.{name}.*.tmp`` in the target's folder, and a save's
    # cleaning of stray temporary files spares those of saves running in this process.
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    target = tmp_path / "state.json"
    seen: list[list[str]] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        fsync(fd)
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        if len(seen) == 1:
            router.save(target)  # a second save to the same path while the first runs

    monkeypatch.setattr(os, "fsync", spy)
    router.save(target)
    outer = seen[0]
    assert len(outer) == 1
    assert outer[0].startswith(".state.json.")
    assert outer[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert Router.load(target).state_dict() == router.state_dict()


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    router = Router([A], policy="cheapest", clock=ManualClock())
    target = tmp_path / "state.json"
    target.mkdir()  # a directory: the rename over it fails
    (target / "inside").write_text("x")
    with pytest.raises(OSError):
        router.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


# ================================================================ feedback details
def test_a_second_early_score_is_refused_with_the_first(caplog: pytest.LogCaptureFixture) -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    d = router.route("q")
    with caplog.at_level(logging.DEBUG, logger="pickllm.router"):
        assert router.feedback(d.decision_id, 0.5) is None  # before the call is recorded
    assert f"score {d.decision_id}: quality 0.5" in caplog.messages
    with pytest.raises(UnknownDecisionError) as info:
        router.feedback(d.decision_id, 1.0)
    assert info.value.reason == "scored"
    assert str(info.value) == (
        f"decision {d.decision_id!r} is already scored (0.5); a second score is refused"
    )


# ================================================================ load
def edited(tmp_path: Path, router: Router, edit: Any) -> Path:
    """``router`` saved, its state passed through ``edit`` and written back unsigned."""
    path = tmp_path / "state.json"
    router.save(path)
    document = json.loads(path.read_text())
    edit(document["router"])
    path.write_text(json.dumps(document))
    return path


def test_load_restores_every_guard_setting(tmp_path: Path) -> None:
    router = Router(
        [A, B],
        policy="cheapest",
        clock=ManualClock(),
        breaker_failures=None,
        breaker_cooldown_s=7.0,
        budget_usd=3.0,
        budget_per_key_usd=2.0,
        budget_period_s=None,
        on_budget="cheapest",
    )
    path = tmp_path / "state.json"
    router.save(path)
    loaded = Router.load(path, clock=ManualClock())
    assert loaded.state_dict()["settings"] == router.state_dict()["settings"]
    assert (loaded.budget_per_key_usd, loaded.budget_period_s) == (2.0, None)


def test_load_gives_files_saved_before_the_guards_the_documented_defaults(
    tmp_path: Path,
) -> None:
    def drop_guards(body: dict[str, Any]) -> None:
        for name in (
            "breaker_failures",
            "breaker_cooldown_s",
            "budget_usd",
            "budget_per_key_usd",
            "budget_period_s",
            "on_budget",
        ):
            del body["settings"][name]

    router = Router([A], policy="cheapest", clock=ManualClock(), budget_per_key_usd=1.0)
    loaded = Router.load(edited(tmp_path, router, drop_guards), verify=False)
    assert (
        loaded.state_dict()["settings"] == Router([A], clock=ManualClock()).state_dict()["settings"]
    )
    assert (
        loaded.breaker_failures,
        loaded.breaker_cooldown_s,
        loaded.budget_usd,
        loaded.budget_per_key_usd,
        loaded.budget_period_s,
        loaded.on_budget,
    ) == (5, 30.0, None, None, 86_400.0, "raise")


@pytest.mark.parametrize(
    ("field", "value"), [("calls", -1), ("errors", -1), ("rewarded", -1), ("errors", 5)]
)
def test_load_refuses_inconsistent_statistics(tmp_path: Path, field: str, value: int) -> None:
    router = Router([A], policy="cheapest", clock=ManualClock())
    router.record(router.route("q"), Feedback(quality=1.0))  # calls 1, errors 0, rewarded 1

    def corrupt(body: dict[str, Any]) -> None:
        body["stats"]["a"][field] = value

    with pytest.raises(StateError, match=r"statistics of 'a' are inconsistent: \{"):
        Router.load(edited(tmp_path, router, corrupt), verify=False)


class Hoarder(Policy):
    """Always the first candidate; its state holds what a policy's own state might."""

    name = "test_hoarder"

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._state: dict[str, Any] = {
            "nan": math.nan,
            "inf": math.inf,
            "minus_inf": -math.inf,
            "array": np.array([1.5, 2.0]),
            "count": np.int64(3),
            "half": np.float32(0.5),
        }

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass

    def _get_state(self) -> dict[str, Any]:
        return dict(self._state)

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)


def test_save_writes_non_finite_and_numpy_values_of_a_policy_state(tmp_path: Path) -> None:
    router = Router([A], policy=Hoarder(), clock=ManualClock())
    path = tmp_path / "state.json"
    router.save(path)
    written = json.loads(path.read_text())["router"]["policy_state"]["state"]
    assert written == {
        "nan": {"__float__": "nan"},
        "inf": {"__float__": "inf"},
        "minus_inf": {"__float__": "-inf"},
        "array": [1.5, 2.0],
        "count": 3,
        "half": 0.5,
    }
    state = Router.load(path).policy.state_dict()["state"]
    assert math.isnan(state["nan"])
    assert (state["inf"], state["minus_inf"]) == (math.inf, -math.inf)
    assert (state["array"], state["count"], state["half"]) == ([1.5, 2.0], 3, 0.5)
    assert type(state["count"]) is int


# ================================================================ read_state
def test_read_state_names_the_file_in_each_refusal(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StateError) as info:
        read_state(missing)
    assert str(info.value) == f"router state file {str(missing)!r} does not exist"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(StateError) as info:
        read_state(broken)
    assert str(info.value).startswith(f"router state file {str(broken)!r} is not valid JSON: ")
    other = tmp_path / "other.json"
    other.write_text('{"checksum": "x"}')
    with pytest.raises(StateError) as info:
        read_state(other)
    assert str(info.value) == (
        f"router state file {str(other)!r} has no 'router' object; is it a PickLLM state?"
    )


def test_read_state_verifies_by_default(tmp_path: Path) -> None:
    router = Router([A], policy="cheapest", clock=ManualClock())

    def tweak(body: dict[str, Any]) -> None:
        body["settings"]["max_pending"] = 7

    path = edited(tmp_path, router, tweak)
    with pytest.raises(StateError) as info:
        read_state(path)
    assert str(info.value) == (
        f"router state file {str(path)!r} does not match its checksum: it was corrupted or "
        "edited (pass verify=False to load an edited file)"
    )
    assert read_state(path, verify=False)["settings"]["max_pending"] == 7


def test_the_checksum_covers_the_content_not_the_layout(tmp_path: Path) -> None:
    router = Router([A, B], policy="thompson", seed=0, clock=ManualClock())
    router.record(router.route("q"), Feedback(quality=1.0))
    path = tmp_path / "state.json"
    router.save(path)
    document = json.loads(path.read_text())

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(v) for v in value]
        return value

    path.write_text(json.dumps(reversed_keys(document), indent=2))
    assert read_state(path) == router.state_dict()


def test_a_non_finite_literal_in_a_state_file_is_a_state_error(tmp_path: Path) -> None:
    # Regression: ``save`` never writes NaN or Infinity literals, so one means the file
    # was edited; ``load`` raised a bare ValueError from the checksum instead of StateError.
    router = Router([A], policy="cheapest", clock=ManualClock())
    path = tmp_path / "state.json"
    router.save(path)
    text = path.read_text()
    assert '"reward_sum": 0.0' in text
    path.write_text(text.replace('"reward_sum": 0.0', '"reward_sum": NaN'))
    with pytest.raises(StateError, match="does not match its checksum"):
        Router.load(path)


def test_a_non_finite_literal_is_refused_even_with_a_checksum_made_for_it(
    tmp_path: Path,
) -> None:
    # An edit that also rewrote the checksum over the NaN literal: ``save`` never writes
    # one, so the checksum is over text without it and the file is still refused.
    router = Router([A], policy="cheapest", clock=ManualClock())
    path = tmp_path / "state.json"
    router.save(path)
    document = json.loads(path.read_text())
    document["router"]["stats"]["a"]["reward_sum"] = math.nan
    document["checksum"] = hashlib.sha256(
        json.dumps(document["router"], sort_keys=True).encode("utf-8")
    ).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(StateError, match="does not match its checksum"):
        read_state(path)


def test_a_stray_that_cannot_be_deleted_is_kept_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router([A], policy="cheapest", clock=ManualClock())
    stray_file = tmp_path / ".state.json.old.tmp"
    stray_file.write_text("left by a crash")
    stray_dir = tmp_path / ".state.json.dir.tmp"
    stray_dir.mkdir()
    with caplog.at_level(logging.DEBUG, logger="pickllm.router"):
        router.save(tmp_path / "state.json")
    assert not stray_file.exists()
    assert stray_dir.is_dir()
    pattern = rf"could not delete {re.escape(str(stray_dir))}: \[Errno \d+\] .+"
    assert [m for m in caplog.messages if re.fullmatch(pattern, m)]


# ================================================================ policy configuration
class Lister(Policy):
    """A policy whose hyperparameter is a list."""

    name = "test_lister"

    def __init__(self, *, weights: Sequence[float] = (1.0,), seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.weights = list(weights)

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


def test_policy_config_round_trips_list_parameters() -> None:
    config = policy_config(Lister(weights=[0.25, 0.75], seed=3))
    assert config == {"name": "test_lister", "params": {"weights": [0.25, 0.75], "seed": 3}}
    again = policy_from_config(json.loads(json.dumps(config)))
    assert isinstance(again, Lister)
    assert (again.weights, again.seed) == ([0.25, 0.75], 3)


# ================================================================ history and sync
def test_the_saved_history_names_each_learned_model_in_order() -> None:
    router = Router([A, B], policy="thompson", seed=0, clock=ManualClock())
    learned = []
    for name, quality in (("a", 1.0), ("b", 0.0), ("a", 0.5)):
        d = router.route("q", pin=name)
        learned.append((name, router.record(d, Feedback(quality=quality))))
    assert decode_history(router.state_dict()["history"]) == learned


def test_sync_is_none_without_a_store_and_a_status_with_one() -> None:
    assert Router([A], policy="cheapest", clock=ManualClock()).sync() is None
    router = Router([A], policy="cheapest", clock=ManualClock(), store=MemoryStore(name="t"))
    status = router.sync()
    assert status is not None
    assert status.connected


# ================================================================ learning
def test_the_reward_prices_the_cost_against_the_pool() -> None:
    # Cost only: a call of 1M prompt tokens costing 2 USD; the pool's bounds for that
    # prompt are 1 USD (the lowest input price) and 3 USD + 256 tokens at 4 USD/1M.
    objective = Objective(quality=0.0, cost=1.0, latency=0.0)
    router = Router([A, B], policy="cheapest", objective=objective, clock=ManualClock())
    reward = router.record(
        router.route("q"), Feedback(input_tokens=1_000_000, cost_usd=2.0, quality=1.0)
    )
    high = 3.0 + 256 * 4.0 / 1e6
    assert reward == pytest.approx(1.0 - (2.0 - 1.0) / (high - 1.0), rel=1e-12)


def test_the_reasons_of_the_latest_closed_decisions_are_remembered() -> None:
    from pickllm import router as router_module

    memory = router_module._CLOSED_MEMORY
    router = Router([A], policy="cheapest", clock=ManualClock(), max_pending=0)
    ids = []
    for _ in range(memory + 1):
        d = router.route("q")
        router.record(d, Feedback(quality=1.0))
        ids.append(d.decision_id)
    assert refusal(router, ids[0])[0] == "unknown"  # the oldest is forgotten
    assert refusal(router, ids[1])[0] == "learned"
    assert refusal(router, ids[-1])[0] == "learned"


def test_each_update_is_logged_with_names_and_numbers(caplog: pytest.LogCaptureFixture) -> None:
    router = Router([A], policy="cheapest", clock=ManualClock(), breaker_failures=None)
    ok, failed = router.route("q"), router.route("q")
    with caplog.at_level(logging.DEBUG, logger="pickllm.router"):
        # The only model at no cost and no latency with quality 1: reward 1.
        router.record(ok, Feedback(quality=1.0))
        router.record(failed, Feedback(error="Boom", latency_s=0.25, cost_usd=0.5))
    updates = [m for m in caplog.messages if m.startswith("update ")]
    assert updates == [
        f"update {ok.decision_id}: a reward 1 (quality 1, cost 0 USD, latency 0 s)",
        (
            f"update {failed.decision_id}: a reward 0 (quality none, cost 0.5 USD, "
            "latency 0.25 s, failed: Boom)"
        ),
    ]


def test_a_model_that_answers_again_leaves_the_other_open_circuits_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cheap = Candidate(name="cheap", input_price=0.1, output_price=0.1)
    mid = Candidate(name="mid", input_price=1.0, output_price=1.0)
    dear = Candidate(name="dear", input_price=5.0, output_price=5.0)
    router = Router([cheap, mid, dear], policy="cheapest", clock=ManualClock(), breaker_failures=1)
    router.record(router.route("q", pin="cheap"), Feedback(error="Boom"))
    router.record(router.route("q", pin="dear"), Feedback(error="Boom"))
    with caplog.at_level(logging.INFO, logger="pickllm.router"):
        router.record(router.route("q", pin="dear"), Feedback(quality=1.0))
    assert "model 'dear' answered: its circuit is closed again" in caplog.messages
    circuits = {name: s.circuit for name, s in router.stats().items()}
    assert circuits == {"cheap": "open", "mid": "closed", "dear": "closed"}
    assert router.route("q").candidate.name == "mid"  # "cheap" is still skipped


# ================================================================ pinned calls
def test_a_pinned_model_that_cannot_serve_says_what_the_call_needs() -> None:
    small = Candidate(name="small", tool_calling=False, structured_output=False)
    short = Candidate(name="short", max_context_tokens=100)
    router = Router([small, short, A], policy="cheapest", clock=ManualClock())
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"pin": "small", "needs_tool_calling": True}, "small", "it needs tool calling"),
        (
            {"pin": "small", "needs_tool_calling": True, "needs_structured_output": True},
            "small",
            "it needs tool calling and structured output",
        ),
        (
            {"pin": "short", "min_context_tokens": 1000},
            "short",
            "it needs a context window of 1000 tokens",
        ),
    ]
    for kwargs, name, why in cases:
        with pytest.raises(NoCandidateError) as info:
            router.route("q", **kwargs)
        assert str(info.value) == f"the pinned model {name!r} cannot serve this call ({why})"
    with pytest.raises(NoCandidateError) as info:
        router.route(Context(candidates=(A,)), pin="short")
    assert str(info.value) == "the pinned model 'short' cannot serve this call (it is not offered)"


# ================================================================ trained scorers
def test_a_trained_scorer_is_wrapped_with_the_seed() -> None:
    from pickllm.learn import LearnedPolicy, load_trained
    from pickllm.testing import TEST_POOL, tiny_scorer_dir

    scorer = load_trained(tiny_scorer_dir())
    router = Router(TEST_POOL, policy=scorer, seed=3, clock=ManualClock())
    assert isinstance(router.policy, LearnedPolicy)
    assert router.policy.scorer is scorer
    assert router.policy.seed == 3


# ================================================================ bounded tables
def test_the_spend_of_the_latest_charged_keys_is_remembered() -> None:
    from pickllm import router as router_module

    keys = router_module._MAX_SPEND_KEYS
    router = Router(
        [A], policy="cheapest", clock=ManualClock(), max_pending=0, budget_per_key_usd=1.0
    )
    for i in range(keys + 1):
        router.record(router.route("q", key=f"k{i}"), Feedback(cost_usd=0.5))
    assert router.spend("k0").spent_usd == 0.0  # the least recently charged is dropped
    assert router.spend("k1").spent_usd == 0.5
    assert router.spend(f"k{keys}").spent_usd == 0.5


def test_a_score_awaited_within_max_pending_is_not_dropped() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock(), max_pending=2)
    first, _ = router.route("q"), router.route("q")  # two pending: the table is full
    assert router.record(first, Feedback(), await_score=True) is None
    assert router.pending() == 2
    assert router.feedback(first.decision_id, 1.0) is not None


# ================================================================ record refusals
def test_record_refusals_name_the_problem() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    with pytest.raises(TypeError) as wrong:
        router.record("d", Feedback())  # type: ignore[arg-type]
    assert str(wrong.value) == "decision must be a Decision, got str"
    other = Router([A, B], policy="cheapest", clock=ManualClock())
    foreign = other.route("q")
    with pytest.raises(UnknownDecisionError) as info:
        router.record(foreign, Feedback())
    assert info.value.reason == "foreign"
    assert str(info.value) == (
        f"decision {foreign.decision_id!r} was not made by this router (record it with the "
        "router whose route() made it)"
    )


def test_an_opening_circuit_is_logged_with_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock(), breaker_failures=2)
    with caplog.at_level(logging.WARNING, logger="pickllm.router"):
        for _ in range(2):
            router.record(router.route("q", pin="a"), Feedback(error="Boom"))
    assert caplog.messages == ["model 'a' failed 2 times in a row (Boom): skipped for 30.0 s"]


# ================================================================ routing details
def test_knows_context_limits_when_a_candidate_declares_its_window() -> None:
    assert not Router([A, B], clock=ManualClock()).knows_context_limits
    windowed = Candidate(name="w", max_context_tokens=1000)
    assert Router([A, windowed], clock=ManualClock()).knows_context_limits


def test_a_call_without_a_query_is_logged_with_the_empty_query(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = DecisionLog(path, include_query=True)
    router = Router([A, B], policy="cheapest", clock=ManualClock(), decision_log=log)
    router.record(router.route(), Feedback(quality=1.0))
    assert json.loads(path.read_text())["query"] == ""


def test_each_route_is_logged_with_names_and_numbers(caplog: pytest.LogCaptureFixture) -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    with caplog.at_level(logging.DEBUG, logger="pickllm.router"):
        d = router.route("q")
    assert caplog.messages == [
        f"route {d.decision_id}: a (probability 1, policy cheapest, plan single, 2 offered)"
    ]


def test_budget_refusals_name_the_limit_and_its_period() -> None:
    for period, shown in ((None, ""), (60.0, " per 60 s")):
        router = Router(
            [A], policy="cheapest", clock=ManualClock(), budget_usd=1.0, budget_period_s=period
        )
        router.record(router.route("q"), Feedback(cost_usd=1.0))
        with pytest.raises(BudgetExceededError) as info:
            router.route("q")
        assert str(info.value) == f"the router's budget of 1.0 USD{shown} is spent (1.0 USD)"
    keyed = Router([A], policy="cheapest", clock=ManualClock(), budget_per_key_usd=1.0)
    keyed.record(keyed.route("q", key="k"), Feedback(cost_usd=1.0))
    keyed.route("q", key="other")  # another key has its own budget
    with pytest.raises(BudgetExceededError) as info:
        keyed.route("q", key="k")
    assert str(info.value) == "the budget of 1.0 USD per 86400 s of key 'k' is spent (1.0 USD)"


def test_keys_route_freely_without_a_per_key_limit() -> None:
    router = Router([A], policy="cheapest", clock=ManualClock(), budget_usd=10.0)
    router.record(router.route("q", key="k"), Feedback(cost_usd=1.0))
    assert router.route("q", key="k").candidate.name == "a"


def test_breaker_failures_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError) as info:
        Router([A], clock=ManualClock(), breaker_failures=0)
    assert str(info.value) == "breaker_failures must be an int >= 1, got 0"


def test_the_documented_defaults() -> None:
    router = Router([A], clock=ManualClock())
    assert router.policy.name == "thompson"  # "The default, Thompson sampling"
    assert (router.max_pending, router.latency_window) == (100_000, 1024)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"breaker_cooldown_s": 0},
            "breaker_cooldown_s must be a positive number of seconds, got 0",
        ),
        (
            {"budget_period_s": -1.0},
            "budget_period_s must be a positive number of seconds, got -1.0",
        ),
        ({"budget_usd": -1.0}, "budget_usd must be a finite number of USD >= 0 or None, got -1.0"),
        (
            {"budget_per_key_usd": math.inf},
            "budget_per_key_usd must be a finite number of USD >= 0 or None, got inf",
        ),
    ],
)
def test_guard_arguments_are_checked_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router([A], clock=ManualClock(), **kwargs)
    assert str(info.value) == message


def test_an_empty_pool_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Router([], clock=ManualClock())
    assert str(info.value) == "candidates must hold at least one Candidate, got none"


def test_the_history_keeps_the_latest_history_length_calls() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock(), max_pending=0)
    for i in range(HISTORY_LENGTH + 1):
        name = "a" if i == 0 else "b"  # the first call is the one forgotten
        router.record(router.route("q", pin=name), Feedback(quality=1.0))
    history = decode_history(router.state_dict()["history"])
    assert len(history) == HISTORY_LENGTH
    assert {name for name, _ in history} == {"b"}


def test_a_decision_for_a_model_the_router_never_had_is_refused() -> None:
    router = Router([A, B], policy="cheapest", clock=ManualClock())
    ghost = dataclasses.replace(router.route("q"), candidate=Candidate(name="ghost"))
    with pytest.raises(ConfigError) as info:
        router.record(ghost, Feedback())
    assert str(info.value) == "feedback for model 'ghost', which this router never had"
